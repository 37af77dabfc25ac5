--- MIDI files: reading (through the core's validating pre-pass; libsmf only writes)
-- and writing drum patterns. File and data problems return nil, err.
local core = require "musicvae.core"
local D = require "musicvae.drums"
local P = require "musicvae.pattern"

local M = {}

M.PPQ = 480
M.VELOCITY = 80 -- magenta's OUTPUT_VELOCITY for categorical patterns

--- Options for the C drum pipeline from user options:
-- {map = name|table, drum_channel = 1..16|"all" (default 10), steps_per_quarter = 4,
--  steps_per_bar = 16, gap_bars = 1, max_bars = 0 (no limit; magenta: 100)}
function M.drum_options(opts)
  opts = opts or {}
  local ch = opts.drum_channel or 10
  local c
  if ch == "all" then c = -1
  elseif math.type(ch) == "integer" and ch >= 1 and ch <= 16 then c = ch - 1
  else error("drum_channel must be 1-16 or \"all\"", 3) end
  local map = D.map(opts.map)
  return {
    classes = D.class_bytes(map),
    drum_channel = c,
    steps_per_quarter = opts.steps_per_quarter or 4,
    steps_per_bar = opts.steps_per_bar or 16,
    gap_bars = opts.gap_bars or 1,
    max_bars = opts.max_bars or 0,
  }, map
end

--- M.open(path) -> the core's parsed-file handle, or nil, err
function M.open(path)
  if type(path) ~= "string" then error("midi: path must be a string", 2) end
  return core.midi_load(path)
end

local function ts_strings(info)
  local ts = {}
  for i, t in ipairs(info.timesigs) do ts[i] = ("%d/%d"):format(t.numerator, t.denominator) end
  return ts
end

local function describe(h, path)
  local info = h:info()
  return {
    path = path,
    format = info.format,
    ppq = info.ppq,
    tracks = info.tracks,
    qpm = info.tempos[1] and info.tempos[1].qpm or 120,
    tempos = info.tempos,
    timesigs = info.timesigs,
    ts = ts_strings(info),
    notes = h:notes(),
    end_tick = info.end_tick,
    end_time = info.end_time,
    warnings = info.warnings,
  }
end

--- M.read(path) -> {format, ppq, tracks, qpm, tempos, timesigs, ts, notes, end_tick, end_time, warnings}
-- notes: {on, off (ticks), on_time, off_time (seconds), pitch, velocity, channel (1-16), track (1-based)}
-- or nil, err for an unreadable or malformed file.
function M.read(path)
  local h, err = M.open(path)
  if not h then return nil, err end
  local song = describe(h, path)
  h:close()
  return song
end

--- M.parse(bytes) -> as M.read, from the bytes of a file
function M.parse(bytes)
  if type(bytes) ~= "string" then error("midi.parse: expected a string", 2) end
  local h, err = core.midi_parse(bytes)
  if not h then return nil, err end
  local song = describe(h, nil)
  h:close()
  return song
end

--- M.labels(path[, opts]) -> {file, qpm, ts, ppq, steps, labels, warnings} over the whole file
-- (no windowing: what the oracle lists), or nil, err.
function M.labels(path, opts)
  local copts = M.drum_options(opts)
  local h, err = M.open(path)
  if not h then return nil, err end
  local info = h:info()
  local labels, steps = h:labels(copts)
  h:close()
  if not labels then return nil, ("%s: %s"):format(path, steps) end
  return {
    file = path,
    qpm = info.tempos[1] and info.tempos[1].qpm or 120,
    ts = ts_strings(info),
    ppq = info.ppq,
    steps = steps,
    labels = labels,
    warnings = info.warnings,
  }
end

--- M.groove(path[, opts]) -> a pattern over the whole file with velocities[step][class]
-- (0-127, the loudest note of each step and class) and offsets[step][class] (in steps,
-- positive = early, from exact ticks), or nil, err. Classes and steps are 1-based.
function M.groove(path, opts)
  local copts = M.drum_options(opts)
  local h, err = M.open(path)
  if not h then return nil, err end
  local info = h:info()
  local labels, lerr = h:labels(copts)
  local vel, off = h:groove(copts)
  h:close()
  if not labels or not vel then return nil, ("%s: %s"):format(path, lerr or off) end
  local spb = copts.steps_per_bar
  local p = P.new { labels = labels, steps_per_bar = spb, qpm = info.tempos[1] and info.tempos[1].qpm or 120 }
  -- magenta's offsets are in units of 2 x step (-1..1]; a pattern stores steps: halve them
  local o2 = {}
  for s, row in pairs(off) do
    o2[s] = {}
    for c, x in pairs(row) do o2[s][c] = x / 2 end
  end
  p.velocities, p.offsets = vel, o2
  return p
end

--- M.load_kit(path) -> class -> pitch table from a Lua file returning
-- {36, 38, ...} (9 pitches, class order) or {kick = 36, snare = 38, ...}; or nil, err.
function M.load_kit(path)
  local chunk, err = loadfile(path, "t", {})
  if not chunk then return nil, "kit file: " .. err end
  local ok, kit = pcall(chunk)
  if not ok then return nil, "kit file: " .. tostring(kit) end
  if type(kit) ~= "table" then return nil, "kit file: must return a table" end
  local out = {}
  for c = 1, D.NUM_CLASSES do
    local keys = { c, D.NAMES[c], D.NAMES[c]:gsub("[ %-]", "_"), D.SHORT[c] }
    local p
    for _, k in ipairs(keys) do p = p or kit[k] end
    if math.type(p) ~= "integer" or p < 0 or p > 127 then
      return nil, ("kit file: no pitch 0-127 for class %d (%s)"):format(c, D.NAMES[c])
    end
    out[c] = p
  end
  return out
end

--- M.write(path, pattern[, opts]) -> true, or nil, err. Format 1, 480 ticks per quarter,
-- tempo and 4/4 at tick 0, one named drum track on channel 10 (opts.channel 1-16), the
-- exemplar pitches of opts.map (or opts.kit: class -> pitch), velocity opts.velocity (80)
-- or the pattern's velocities, each hit one step long, shifted by the pattern's offsets
-- (never before time 0).
function M.write(path, pattern, opts)
  if type(path) ~= "string" then error("midi.write: path must be a string", 2) end
  opts = opts or {}
  local p = P.new(pattern)
  local pitches = opts.kit or D.exemplars(D.map(opts.map))
  local ppq = opts.ppq or M.PPQ
  local spq = p.steps_per_bar // 4
  if p.steps_per_bar % 4 ~= 0 then error("midi.write: steps_per_bar must be a multiple of 4 (4/4 bars)", 2) end
  local step_ticks = ppq // spq
  local vel0 = opts.velocity or M.VELOCITY
  local notes = {}
  for s, l in ipairs(p.labels) do
    for c = 1, D.NUM_CLASSES do
      if l & (1 << (c - 1)) ~= 0 then
        local v = vel0
        local vs = p.velocities and p.velocities[s]
        if vs and vs[c] then v = math.max(1, math.min(127, math.floor(vs[c] + 0.5))) end
        local tick = (s - 1) * step_ticks
        local os_ = p.offsets and p.offsets[s]
        if os_ and os_[c] then tick = tick - math.floor(os_[c] * step_ticks + 0.5) end
        if tick < 0 then tick = 0 end
        notes[#notes + 1] = { tick = tick, dur = step_ticks, pitch = pitches[c], velocity = v }
      end
    end
  end
  return core.midi_write(path, notes, {
    ppq = ppq, qpm = opts.qpm or p.qpm, channel = (opts.channel or 10) - 1, name = opts.name or "Drums",
  })
end

return M
