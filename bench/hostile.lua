-- Hostile inputs (issue 16): each case of tools/hostile_cases.lua read in its own child process,
-- printed as one JSON line: {impl, what = "hostile", case, bytes, seconds, peak_rss_mb, outcome,
-- target_s = 1, target_mb = 300}. seconds covers the read (and labels for MIDI; for audio, the
-- render call with its SoundFont loading), not making the file; peak_rss_mb is the child's VmHWM
-- (the whole process: Lua and the module included, see the "baseline" case).
--   lua5.4 bench/hostile.lua [--only NAME]
-- Run from the project root after scripts/setup (MUSICVAE_BUILD picks another build folder).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local build = os.getenv("MUSICVAE_BUILD") or "build"
package.cpath = "./" .. build .. "/?.so;" .. package.cpath
local json = require "musicvae.json"
local C = dofile("tools/hostile_cases.lua")
local only = arg[1] == "--only" and arg[2] or nil

local CASES = {
  { "baseline", "midi", function() return C.midi.at_step_limit(16) end },
  { "midi_huge_delta_37_bytes", "midi", C.midi.huge_delta },
  { "midi_at_step_limit", "midi", function() return C.midi.at_step_limit(1 << 17) end },
  { "midi_past_step_limit", "midi", function() return C.midi.past_step_limit(1 << 17) end },
  { "midi_100k_notes", "midi", function() return C.midi.many_notes(100000) end },
  { "midi_65535_empty_tracks", "midi", function() return C.midi.many_tracks(65535) end },
  { "midi_50k_tempo_changes", "midi", function() return C.midi.many_tempos(50000) end },
  { "midi_past_event_limit", "midi", function() return C.midi.many_events((1 << 21) + 1) end },
  { "audio_render_huge_delta_37_bytes", "audio", C.midi.huge_delta },
  { "audio_render_notes_past_an_hour", "audio", function() return C.midi.long_silence(3602) end },
  { "safetensors_100k_tensors", "safetensors", function() return C.safetensors.many_tensors(100000) end },
  { "safetensors_200k_metadata_keys", "safetensors", function() return C.safetensors.many_metadata(200000) end },
  { "safetensors_duplicate_after_100k", "safetensors", function() return C.safetensors.duplicate_last(100000) end },
  { "safetensors_past_tensor_limit", "safetensors", function() return C.safetensors.many_tensors((1 << 18) + 1) end },
}

local CHILD = [[
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./%s/?.so;" .. package.cpath
local mv = require "musicvae"
local kind, path = %q, %q
local t0 = mv.clock()
local ok, err
if kind == "midi" then
  ok, err = mv.midi.read(path)
  if ok then ok, err = mv.midi.labels(path) end
  if ok then ok = require("musicvae.data").file_windows(path, {}) end
elseif kind == "audio" then
  ok, err = mv.audio.render(path) -- refused before the samples are allocated
else
  ok, err = mv.safetensors.load(path)
end
local secs = mv.clock() - t0
local s = io.open("/proc/self/status"):read("a")
io.write(secs, "\t", tonumber(s:match("VmHWM:%%s*(%%d+)")) / 1024, "\t", ok and "ok" or ("error: " .. tostring(err)))
]]

local tmp = os.tmpname()
for _, c in ipairs(CASES) do
  local name, kind, make = c[1], c[2], c[3]
  if not only or only == name then
    local bytes = make()
    local f = assert(io.open(tmp, "wb"))
    f:write(bytes)
    f:close()
    local script = os.tmpname()
    local sf = assert(io.open(script, "w"))
    sf:write(CHILD:format(build, kind, tmp))
    sf:close()
    local p = io.popen("lua5.4 " .. script .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(script)
    local secs, mb, outcome = out:match("^([^\t]+)\t([^\t]+)\t(.*)$")
    outcome = outcome and outcome:gsub("^error: " .. tmp:gsub("%p", "%%%0") .. ": ", "error: ") or ("child failed: " .. out)
    print(json.encode(json.ordered {
      { "impl", "musicvae" }, { "what", "hostile" }, { "case", name }, { "bytes", #bytes },
      { "seconds", tonumber(secs) or -1 }, { "peak_rss_mb", tonumber(mb) or -1 }, { "outcome", outcome },
      { "target_s", 1 }, { "target_mb", 300 },
    }))
  end
end
os.remove(tmp)
