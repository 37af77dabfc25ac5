--- Hearing patterns: FluidSynth renders them (driven directly, faster than real time) with a
-- General MIDI SoundFont, libsndfile writes WAV, FLAC or Ogg Vorbis files.
--   local samples, info = mv.audio.render(pattern_or_path, {rate = 44100, soundfont = F, loops = 1})
--   mv.audio.write("beat.wav", samples, 44100)
-- samples: a [frames, 2] tensor of interleaved stereo float32. A render lasts loops * the
-- pattern's length + tail seconds (tail 1 s by default, its last 20 ms faded out). Notes start on
-- FluidSynth's 64-frame block nearest their time (1.45 ms at 44.1 kHz). Reverb and chorus are off.
local core = require "musicvae.core"
local D = require "musicvae.drums"
local P = require "musicvae.pattern"

local M = {}

M.DEBIAN_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
M.RATE = 44100
M.GAIN = 0.5 -- FluidSynth's master gain (its own default 0.2): kick + snare at velocity 127 peak near 0.45
M.TAIL = 1.0
-- a render is at most an hour (its samples are held in memory) and plays at most this many
-- notes x loops; past either, render returns nil and a one-line error before allocating
M.MAX_SECONDS = core.AUDIO_MAX_SECONDS
M.MAX_PLAYS = core.AUDIO_MAX_PLAYS

--- M.available() -> true, or false and what to install
function M.available()
  local i = core.audio_info()
  if not i.synth then
    return false, "musicvae was built without FluidSynth: install libfluidsynth-dev (scripts/setup does) and rebuild"
  end
  if not i.sndfile then
    return false, "musicvae was built without libsndfile: install libsndfile1-dev (scripts/setup does) and rebuild"
  end
  return true
end

--- M.info() -> {synth, sndfile, fluidsynth (version), libsndfile (version)}
M.info = core.audio_info

local function readable(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

--- M.find_soundfont([explicit]) -> path, how; or nil, err. Order: explicit (--soundfont),
-- $MUSICVAE_SOUNDFONT, Debian's fluid-soundfont-gm file.
function M.find_soundfont(explicit)
  if explicit ~= nil then
    if type(explicit) ~= "string" then error("soundfont must be a path", 2) end
    return explicit, "given"
  end
  local env = os.getenv("MUSICVAE_SOUNDFONT")
  if env and env ~= "" then return env, "MUSICVAE_SOUNDFONT" end
  if readable(M.DEBIAN_SOUNDFONT) then return M.DEBIAN_SOUNDFONT, "Debian fluid-soundfont-gm" end
  return nil, ("no SoundFont: install fluid-soundfont-gm (%s), set MUSICVAE_SOUNDFONT or pass --soundfont FILE.sf2")
    :format(M.DEBIAN_SOUNDFONT)
end

-- Synths are cached per (SoundFont, rate), and kept (a weak cache would let the collector drop
-- one between two beats of a host): loading costs about 55 ms, a render of 4 bars about 30.
local cache = {}

--- M.release(): closes the cached synths (the next render loads its SoundFont again)
function M.release()
  for k, s in pairs(cache) do
    s:close()
    cache[k] = nil
  end
end

--- M.synth{soundfont =, rate =, gain =} -> a synth (cached), its SoundFont path; or nil, err
function M.synth(opts)
  opts = opts or {}
  local ok, why = M.available()
  if not ok then return nil, why end
  local sf, err = M.find_soundfont(opts.soundfont)
  if not sf then return nil, err end
  local rate = opts.rate or M.RATE
  local gain = opts.gain or M.GAIN
  if type(rate) ~= "number" or rate < 8000 or rate > 96000 or rate ~= math.floor(rate) then
    error("audio: rate must be an integer 8000-96000 Hz", 3)
  end
  if type(gain) ~= "number" or not (gain >= 0 and gain <= 10) then error("audio: gain must be 0-10", 3) end
  local key = sf .. "\0" .. rate
  local s = cache[key]
  if not s then
    s, err = core.synth_new(sf, rate, gain)
    if not s then return nil, err end
    cache[key] = s
  end
  s:set_gain(gain)
  return s, sf
end

local function pack_pattern(p, opts)
  local lb = {}
  for i, l in ipairs(p.labels) do lb[i] = string.pack("<I2", l) end
  local t = { labels = table.concat(lb), steps_per_bar = p.steps_per_bar, qpm = opts.qpm or p.qpm,
    velocity = opts.velocity or 80, loops = opts.loops, tail = opts.tail or M.TAIL }
  local pitches = opts.kit or D.exemplars(D.map(opts.map))
  t.pitches = pitches
  local function grid(rows, default)
    if not rows then return nil end
    local out = {}
    for s = 1, #p.labels do
      local row = rows[s]
      for c = 1, D.NUM_CLASSES do
        local v = row and row[c]
        out[#out + 1] = string.pack("<f", type(v) == "number" and v or default)
      end
    end
    return table.concat(out)
  end
  t.velocities = grid(p.velocities, -1)
  t.offsets = grid(p.offsets, 0)
  return t
end

local function check_opts(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("audio.render: options must be a table", 3) end
  local loops = opts.loops or 1
  if math.type(loops) ~= "integer" or loops < 1 or loops > 10000 then error("audio.render: loops must be 1-10000", 3) end
  if opts.tail ~= nil and (type(opts.tail) ~= "number" or not (opts.tail >= 0 and opts.tail <= 60)) then
    error("audio.render: tail must be 0-60 seconds", 3)
  end
  if opts.qpm ~= nil and (type(opts.qpm) ~= "number" or not (opts.qpm > 0 and opts.qpm < 1000)) then
    error("audio.render: qpm must be between 0 and 1000", 3)
  end
  return opts
end

local function render_one(x, opts, s)
  if type(x) == "string" then
    local ch = opts.drum_channel or 10
    if ch == "all" then ch = -1
    elseif math.type(ch) == "integer" and ch >= 1 and ch <= 16 then ch = ch - 1
    else error("audio.render: drum_channel must be 1-16 or \"all\"", 3) end
    local samples, length, left = s:render_midi(x, { channel = ch, qpm = opts.qpm or 0, loops = opts.loops or 1,
      tail = opts.tail or M.TAIL })
    if not samples then return nil, length end
    return samples, { length = length, left_out = left }
  end
  local p = P.new(x)
  local t = pack_pattern(p, opts)
  t.loops = opts.loops or 1
  local samples, length = s:render_pattern(t)
  if not samples then return nil, length end
  return samples, { length = length, left_out = 0 }
end

--- M.render(pattern_or_path, opts) -> samples [frames, 2], info; or nil, err.
-- pattern_or_path: a pattern (categorical, or groove: its velocities and offsets are heard), an
-- array of patterns (returns an array of tensors), or a MIDI file's path (its drum channel, 10
-- unless opts.drum_channel = 1-16 | "all"; info.left_out counts the notes on other channels).
-- opts: rate (44100), soundfont (else $MUSICVAE_SOUNDFONT, else Debian's), gain (0.5), loops (1),
-- tail (seconds, 1), qpm (the pattern's or file's tempo), kit (class -> pitch) or map, velocity
-- (80, for hits without one). info: {rate, frames, seconds, length (one loop), loops, tail,
-- soundfont, left_out}.
function M.render(x, opts)
  opts = check_opts(opts)
  if type(x) ~= "string" and type(x) ~= "table" then error("audio.render: expected a pattern or a MIDI path", 2) end
  local s, sf = M.synth(opts)
  if not s then return nil, sf end
  local function info_of(samples, i)
    i.rate = opts.rate or M.RATE
    i.frames = samples:size(1)
    i.seconds = i.frames / i.rate
    i.loops = opts.loops or 1
    i.tail = opts.tail or M.TAIL
    i.soundfont = sf
    return i
  end
  if type(x) == "table" and not P.is(x) and x[1] ~= nil then
    local outs, infos = {}, {}
    for k, p in ipairs(x) do
      local samples, i = render_one(p, opts, s)
      if not samples then return nil, i end
      outs[k], infos[k] = samples, info_of(samples, i)
    end
    return outs, infos
  end
  local samples, i = render_one(x, opts, s)
  if not samples then return nil, i end
  return samples, info_of(samples, i)
end

--- M.write(path, samples, rate[, opts]) -> true, or nil, err. The format comes from the
-- extension: .wav (16-bit PCM; opts.bits = 24, or 32 for float), .flac (16 or 24 bits),
-- .ogg (Vorbis). Integer formats clip at +-1. Written to a temporary file, then renamed.
function M.write(path, samples, rate, opts)
  if type(path) ~= "string" then error("audio.write: path must be a string", 2) end
  if not core.istensor(samples) then error("audio.write: samples must be a [frames, channels] tensor", 2) end
  rate = rate or M.RATE
  if math.type(rate) ~= "integer" then
    if type(rate) == "number" and rate == math.floor(rate) then rate = math.tointeger(rate)
    else error("audio.write: rate must be an integer", 2) end
  end
  if not core.audio_info().sndfile then
    return nil, "musicvae was built without libsndfile: install libsndfile1-dev (scripts/setup does) and rebuild"
  end
  return core.audio_write(path, samples, rate, opts and opts.bits or 16)
end

--- M.render_to(path, pattern_or_path, opts) -> info, or nil, err: render and write in one call
function M.render_to(path, x, opts)
  local samples, info = M.render(x, opts)
  if not samples then return nil, info end
  local ok, err = M.write(path, samples, info.rate, opts)
  if not ok then return nil, err end
  return info
end

return M
