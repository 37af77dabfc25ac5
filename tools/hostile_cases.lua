--- Hostile inputs for the bounded-work checks (spec/hostile_spec.lua) and the benchmark
-- (bench/hostile.lua): each case is generated here, never committed as a file.
--   C.midi[name]() -> bytes of a MIDI file
--   C.safetensors[name]() -> bytes of a safetensors file
-- Every case must be refused with a one-line error or read, in well under a second and
-- 300 MB; the spec asserts the outcome (and a generous hang timeout), the bench reports
-- time and peak memory.
local B = dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*)/") or ".") .. "/smfbuild.lua")

local C = { midi = {}, safetensors = {} }

local function note(delta, dur, pitch)
  return B.ev(delta, 0x99, pitch or 36, 100) .. B.ev(dur, 0x89, pitch or 36, 0)
end

-- The issue's 37-byte file: ppq 4, one note-on, a delta of 8f ff ff 7f, its note-off.
function C.midi.huge_delta()
  return B.header(0, 1, 4) .. B.track(B.ev(0, 0x99, 0x24, 0x64) .. "\x8f\xff\xff\x7f" .. string.char(0x89, 0x24, 0) ..
    B.eot())
end

-- A note ending exactly on the step limit (ppq 4, so one tick = one 16th step), and one past it.
function C.midi.at_step_limit(limit)
  return B.header(0, 1, 4) .. B.track(note(0, limit) .. B.eot())
end

function C.midi.past_step_limit(limit)
  return B.header(0, 1, 4) .. B.track(note(0, limit + 1) .. B.eot())
end

-- One kick whose note ends `seconds` into the file (ppq 4 at the default 120 qpm: 8 ticks a
-- second; a whole number of bars when seconds is even): the audio renderer's length.
function C.midi.long_silence(seconds)
  local ticks = math.floor(seconds * 8)
  return B.header(0, 1, 4) .. B.track(note(ticks - 1, 1) .. B.eot())
end

-- 100k drum notes, one per 16th (1.2 MB).
function C.midi.many_notes(n)
  n = n or 100000
  local t = {}
  for i = 1, n do t[i] = note(i == 1 and 0 or 30, 30, 36 + i % 10) end
  return B.header(0, 1, 240) .. B.track(table.concat(t) .. B.eot())
end

-- 65,535 empty tracks (786 KB).
function C.midi.many_tracks(n)
  n = n or 65535
  local eot = B.track(B.eot())
  return B.header(1, n, 480) .. eot:rep(n)
end

-- 100k tempo changes, alternating, each followed by a note: splits and seconds must not be quadratic.
function C.midi.many_tempos(n)
  n = n or 50000
  local t = {}
  for i = 1, n do t[i] = B.tempo(i == 1 and 0 or 60, i % 2 == 0 and 120 or 121) .. note(0, 60) end
  return B.header(0, 1, 240) .. B.track(table.concat(t) .. B.eot())
end

-- n note-ons at tick 0 in running status (3 bytes each): past the event limit for n > 2^21.
function C.midi.many_events(n)
  return B.header(0, 1, 480) .. B.track(B.ev(0, 0x99, 36, 100) .. ("\0\36\100"):rep(n - 1) .. B.eot())
end

-- ---- safetensors ----------------------------------------------------------------------------
local function st(header)
  local pad = (8 - #header % 8) % 8
  header = header .. (" "):rep(pad)
  return string.pack("<I8", #header) .. header
end

-- The header entries of n zero-size tensors t1..tn.
local function zero_tensors(n)
  local t = {}
  for i = 1, n do t[i] = ('"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'):format(i) end
  return t
end

-- 100k zero-size tensors.
function C.safetensors.many_tensors(n)
  return st("{" .. table.concat(zero_tensors(n or 100000), ",") .. "}")
end

-- 200k metadata keys.
function C.safetensors.many_metadata(n)
  n = n or 200000
  local t = {}
  for i = 1, n do t[i] = ('"k%d":"v"'):format(i) end
  return st('{"__metadata__":{' .. table.concat(t, ",") .. "}}")
end

-- a duplicate tensor name at the very end of a long header (must still be found)
function C.safetensors.duplicate_last(n)
  local t = zero_tensors(n or 100000)
  t[#t + 1] = t[1]
  return st("{" .. table.concat(t, ",") .. "}")
end

return C
