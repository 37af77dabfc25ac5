--- The audio side of the CLI: `musicvae render`, the `--wav` option of the generating commands
-- and the SoundFont line of `doctor` (see musicvae.audio).
local A = {}

A.OPTIONS = {
  wav = { name = "--wav", type = "flag", help = "also render each .mid to a .wav beside it (FluidSynth)" },
  soundfont = { name = "--soundfont", arg = "FILE.sf2",
    help = "SoundFont for audio (default: $MUSICVAE_SOUNDFONT, then Debian's FluidR3_GM.sf2)" },
}

local function fail(fmt, ...)
  return require("musicvae.cli").fail(fmt, ...)
end

--- A.check(opts): with --wav, fails now (before anything is written) when audio cannot work
function A.check(opts)
  if not opts.wav then return end
  local audio = require "musicvae.audio"
  local ok, why = audio.available()
  if not ok then fail("--wav: %s", why) end
  local s, err = audio.synth { soundfont = opts.soundfont }
  if not s then fail("--wav: %s", err) end
end

--- A.beside(opts, pattern, stem, kit, out): writes STEM.wav with --wav
function A.beside(opts, pattern, stem, kit, out)
  if not opts.wav then return end
  local info, err = require("musicvae.audio").render_to(stem .. ".wav", pattern,
    { soundfont = opts.soundfont, kit = kit, qpm = pattern.qpm })
  if not info then fail("%s", err) end
  out:write(stem, ".wav\n")
end

--- A.doctor() -> {soundfont, soundfont_how, fluidsynth, libsndfile, audio}
function A.doctor()
  local audio = require "musicvae.audio"
  local i = audio.info()
  local ok, why = audio.available()
  local sf, how = audio.find_soundfont()
  local r = { audio = ok and "yes" or why, fluidsynth = i.fluidsynth, libsndfile = i.libsndfile,
    soundfont = sf, soundfont_how = sf and how or nil }
  if not sf then r.soundfont_missing = how end
  if sf and ok then
    local s, err = audio.synth { soundfont = sf }
    if s then
      r.soundfont_kit = s:info().preset
    else
      r.soundfont_error = err
    end
  end
  return r
end

function A.doctor_lines(r)
  local lines = {}
  if r.audio ~= "yes" then
    lines[#lines + 1] = ("  audio       %s"):format(r.audio)
  else
    lines[#lines + 1] = ("  audio       FluidSynth %s, %s"):format(r.fluidsynth, r.libsndfile)
  end
  if r.soundfont then
    local state = r.soundfont_error and ("; " .. r.soundfont_error) or
      (r.soundfont_kit and ("; drum kit \"" .. r.soundfont_kit .. "\"") or "")
    lines[#lines + 1] = ("  SoundFont   %s (%s%s)"):format(r.soundfont, r.soundfont_how, state)
  else
    lines[#lines + 1] = ("  SoundFont   none: %s"):format(r.soundfont_missing)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- A.install(cli): registers `render`
function A.install(cli)
  cli.register {
    name = "render",
    summary = "Render a MIDI file's drums to audio (WAV, FLAC or Ogg Vorbis) with FluidSynth and a SoundFont.",
    usage = "render IN.mid -o OUT.wav [--soundfont F] [--rate 44100] [--loops N] [--gain G] [--tail S] [--force]",
    details = "The format comes from the output's extension (.wav: 16-bit PCM, --bits 24 or 32 for float;\n" ..
      ".flac; .ogg). The drums are the notes on MIDI channel 10 (--drum-channel N|all); notes on other\n" ..
      "channels are left out and counted. One loop lasts to the end of the bar of the last note; the\n" ..
      "audio is loops x that plus the tail (default 1 s, its last 20 ms fading out). SoundFont:\n" ..
      "--soundfont, else $MUSICVAE_SOUNDFONT, else /usr/share/sounds/sf2/FluidR3_GM.sf2 (Debian\n" ..
      "fluid-soundfont-gm). Reverb and chorus are off.",
    min_args = 1, max_args = 1,
    options = {
      { name = "--output", short = "-o", arg = "OUT.wav", help = "the audio file to write (required)" },
      A.OPTIONS.soundfont,
      { name = "--rate", arg = "HZ", type = "integer", help = "sample rate (default 44100)",
        check = function(v) return v >= 8000 and v <= 96000, "must be 8000-96000" end },
      { name = "--loops", arg = "N", type = "integer", help = "play the file N times (default 1)",
        check = function(v) return v >= 1 and v <= 10000, "must be 1-10000" end },
      { name = "--gain", arg = "G", type = "number", help = "FluidSynth's master gain (default 0.5)",
        check = function(v) return v >= 0 and v <= 10, "must be 0-10" end },
      { name = "--tail", arg = "S", type = "number", help = "seconds after the last loop (default 1)",
        check = function(v) return v >= 0 and v <= 60, "must be 0-60" end },
      { name = "--qpm", arg = "QPM", type = "number", help = "play at this tempo (default: the file's)",
        check = function(v) return v > 0 and v < 1000, "must be between 0 and 1000" end },
      { name = "--bits", arg = "16|24|32", type = "integer", help = "sample size (32 = float, WAV only)",
        check = function(v) return v == 16 or v == 24 or v == 32, "must be 16, 24 or 32" end },
      { name = "--drum-channel", arg = "N|all", help = "MIDI channel holding the drums (default 10)" },
      { name = "--force", type = "flag", help = "overwrite an existing file" },
    },
    run = function(opts, args, out)
      local core = require "musicvae.core"
      local audio = require "musicvae.audio"
      if not opts.output then cli.usage_error("render: -o OUT.wav is required") end
      local ext = opts.output:match("%.([%w]+)$")
      ext = ext and ext:lower()
      if ext ~= "wav" and ext ~= "flac" and ext ~= "ogg" and ext ~= "oga" then
        cli.usage_error("render: %s: the output must end in .wav, .flac or .ogg", opts.output)
      end
      local ok, why = audio.available()
      if not ok then fail("render: %s", why) end
      if core.isfile(opts.output) and not opts.force then fail("%s exists; use --force to overwrite", opts.output) end
      local ch = opts.drum_channel or 10
      if ch ~= "all" then
        ch = math.tointeger(tonumber(ch))
        if not ch or ch < 1 or ch > 16 then cli.usage_error("render: --drum-channel must be 1-16 or all") end
      end
      local info, err = audio.render_to(opts.output, args[1], { soundfont = opts.soundfont, rate = opts.rate,
        loops = opts.loops, gain = opts.gain, tail = opts.tail, qpm = opts.qpm, bits = opts.bits, drum_channel = ch })
      if not info then fail("%s", err) end
      if info.left_out > 0 then
        out:write(("%s: %d note%s on channels other than %s left out (--drum-channel N|all)\n"):format(args[1],
          info.left_out, info.left_out == 1 and "" or "s", tostring(ch)))
      end
      out:write(("wrote %s (%.2f s, %d Hz, stereo; %d x %.2f s + %.2f s tail; %s)\n"):format(opts.output,
        info.seconds, info.rate, info.loops, info.length, info.tail, info.soundfont))
      return 0
    end,
  }
end

return A
