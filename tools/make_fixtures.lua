#!/usr/bin/env lua5.4
--- Writes the committed MIDI fixtures:
--   spec/fixtures/midi/*.mid       small well-formed files (test inputs and fuzzer seeds)
--   spec/fixtures/hostile/*.mid    malformed or odd files, with their expected outcomes in
--                                  spec/fixtures/hostile/expected.lua
-- Run from the project root: lua5.4 tools/make_fixtures.lua
package.path = "./tools/?.lua;" .. package.path
local B = require "smfbuild"

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- Well-formed files ------------------------------------------------------------
local rock = {}
for bar = 0, 7 do
  for s = 0, 15 do
    local l = 4 -- closed hi-hat on every 8th
    if s % 2 == 1 then l = 0 end
    if s == 0 or s == 8 or (s == 10 and bar % 2 == 1) then l = l | 1 end
    if s == 4 or s == 12 then l = l | 2 end
    if bar == 7 and s >= 12 then l = 32 | (s == 15 and 128 or 0) end
    rock[#rock + 1] = l
  end
end
local valid = {
  ["rock-8bars-120.mid"] = B.song { qpm = 120, notes = B.notes_from_labels(rock) },
  ["rock-8bars-96-format1.mid"] = B.song { qpm = 96, format = 1, notes = B.notes_from_labels(rock, 480, nil, 90) },
  ["waltz-3-4.mid"] = B.song { qpm = 90, ts = { 3, 4 }, notes = B.notes_from_labels(rock) },
  ["cut-time-2-2.mid"] = B.song { qpm = 70, ts = { 2, 2 }, notes = B.notes_from_labels(rock) },
  ["ppq96-vel0-offs.mid"] = B.song { ppq = 96, noteoff_as_vel0 = true, notes = B.notes_from_labels(rock, 96) },
}
for name, bytes in pairs(valid) do write("spec/fixtures/midi/" .. name, bytes) end

-- Hostile files: name -> bytes, expected ----------------------------------------
local ok_song = B.song { notes = B.notes_from_labels({ 1, 0, 4, 0, 2, 0, 4, 0 }) }
local hdr = B.header(0, 1, 480)
local function trk(...) return B.track(table.concat { ... }) end
local note = B.ev(0, 0x99, 36, 100) .. B.ev(120, 0x89, 36, 0)
local cases = {
  { "empty", "", { error = "no MThd" } },
  { "mthd-only", "MThd", { error = "no MThd" } },
  { "header-length-0", "MThd" .. B.be32(0) .. ("\0"):rep(6) .. trk(note, B.eot()), { error = "bad MThd header length" } },
  { "header-length-huge", "MThd" .. B.be32(0x7fffffff) .. ("\0"):rep(6), { error = "bad MThd header length" } },
  { "format-2", B.header(2, 1, 480) .. trk(note, B.eot()), { error = "format 2" } },
  { "format-7", B.header(7, 1, 480) .. trk(note, B.eot()), { error = "unknown MIDI format" } },
  { "smpte-division", B.header(0, 1, 0xE728) .. trk(note, B.eot()), { error = "SMPTE" } },
  { "zero-division", B.header(0, 1, 0) .. trk(note, B.eot()), { error = "zero ticks" } },
  { "no-tracks", hdr, { error = "no tracks" } },
  { "truncated-track", hdr .. "MTrk" .. B.be32(400) .. note, { ok = true, warning = "truncated" } },
  { "running-status-after-sysex", hdr .. trk(B.ev(0, 0x99, 36, 100), B.ev(0, 0xf0, 3, 1, 2, 0xf7),
    B.ev(10, 38, 100), B.ev(110, 0x89, 36, 0), B.ev(0, 38, 0), B.eot()), { ok = true, notes = 2 } },
  { "running-status-without-status", hdr .. trk(B.ev(0, 36, 100), B.eot()), { error = "no running status" } },
  { "unknown-chunk-before-tracks", hdr .. B.chunk("XFIH", "some vendor data") .. trk(note, B.eot()),
    { ok = true, notes = 1, warning = "unknown chunk" } },
  { "rmid-wrapped", "RIFF" .. string.pack("<I4", 4 + 8 + #ok_song) .. "RMID" .. "data" ..
    string.pack("<I4", #ok_song) .. ok_song, { ok = true, notes = 4, warning = "RIFF" } },
  { "rmid-without-data", "RIFF" .. string.pack("<I4", 12) .. "RMID" .. "LIST" .. string.pack("<I4", 0),
    { error = "without a data chunk" } },
  { "junk-after-last-track", ok_song .. "\0\1\2\3\255\254garbage\0\0\0\0\0\0", { ok = true, notes = 4, warning = "junk" } },
  { "missing-eot", hdr .. trk(note), { ok = true, notes = 1, warning = "no end-of-track" } },
  { "events-after-eot", hdr .. trk(note, B.eot(), B.ev(0, 0x99, 40, 100)), { ok = true, notes = 1 } },
  { "vlq-five-bytes", hdr .. trk(note, "\255\255\255\255\127", B.ev(0, 0x99, 38, 1), B.eot()),
    { ok = true, notes = 1, warning = "delta" } },
  { "delta-past-range", hdr .. trk(B.ev(0x0fffffff, 0x99, 36, 1), B.ev(0x0fffffff, 0x89, 36, 0),
    B.ev(0x0fffffff, 0x99, 36, 1), B.eot()), { error = "supported range" } },
  { "meta-length-past-end", hdr .. trk(note, "\0\255\1\127abc"), { ok = true, notes = 1, warning = "meta event length" } },
  { "sysex-length-past-end", hdr .. trk(note, "\0\240\127abc"), { ok = true, notes = 1, warning = "SysEx length" } },
  { "tempo-wrong-length", hdr .. trk(B.ev(0, 0xff, 0x51, 2, 7, 161), note, B.eot()),
    { ok = true, notes = 1, warning = "malformed tempo" } },
  { "tempo-zero", hdr .. trk(B.ev(0, 0xff, 0x51, 3, 0, 0, 0), note, B.eot()), { ok = true, notes = 1, warning = "malformed tempo" } },
  { "timesig-bad-denominator", hdr .. trk(B.ev(0, 0xff, 0x58, 4, 4, 30, 24, 8), note, B.eot()),
    { ok = true, notes = 1, warning = "malformed time signature" } },
  { "undefined-status-f4", hdr .. trk(note, B.ev(0, 0xf4), B.eot()), { error = "undefined status byte" } },
  { "status-where-data-belongs", hdr .. trk(B.ev(0, 0x99, 36, 0x99), B.eot()), { error = "where a data byte belongs" } },
  { "note-on-without-off", hdr .. trk(B.ev(0, 0x99, 36, 100), note, B.eot()), { ok = true, notes = 1, warning = "without a matching note-off" } },
  { "note-off-without-on", hdr .. trk(B.ev(0, 0x89, 36, 0), note, B.eot()), { ok = true, notes = 1 } },
  { "track-count-lies", B.header(1, 65535, 480) .. trk(note, B.eot()), { ok = true, notes = 1, warning = "header says" } },
  { "header-extra-bytes", "MThd" .. B.be32(8) .. B.be16(0) .. B.be16(1) .. B.be16(480) .. "\0\0" .. trk(note, B.eot()),
    { ok = true, notes = 1, warning = "extra bytes" } },
  { "realtime-byte-in-track", hdr .. trk(B.ev(0, 0xf8), note, B.eot()), { ok = true, notes = 1, warning = "system messages" } },
  { "thousand-empty-tracks", B.header(1, 1000, 480) .. (trk(B.eot())):rep(1000), { ok = true, notes = 0 } },
  { "empty-track-chunk", hdr .. B.track(""), { ok = true, notes = 0 } },
  { "long-sysex", hdr .. trk(B.vlq(0) .. "\240" .. B.vlq(20000) .. ("\1"):rep(19999) .. "\247", note, B.eot()),
    { ok = true, notes = 1 } },
  { "drums-on-channel-1", hdr .. trk(B.ev(0, 0x90, 36, 100), B.ev(120, 0x80, 36, 0), B.eot()), { ok = true, notes = 1 } },
  { "truncated-in-header", ("MThd" .. B.be32(6) .. B.be16(0)), { error = "no MThd" } },
  { "negative-looking-vlq", hdr .. trk("\143\255\255\127", B.ev(0, 0x99, 36, 100), B.eot()),
    { error = "no running status" } },
  { "unknown-chunk-only", hdr .. B.chunk("JUNK", "abc"), { error = "no tracks" } },
  { "chunk-id-binary", hdr .. "\0\1\2\3" .. B.be32(4) .. "abcd" .. trk(note, B.eot()), { error = "no tracks" } },
}
local lines = { "-- generated by tools/make_fixtures.lua: name -> expected outcome", "return {" }
for i, c in ipairs(cases) do
  local name = ("%02d-%s.mid"):format(i, c[1])
  write("spec/fixtures/hostile/" .. name, c[2])
  local e = c[3]
  local parts = {}
  for _, k in ipairs { "ok", "error", "notes", "warning" } do
    if e[k] ~= nil then parts[#parts + 1] = ("%s = %q"):format(k, e[k]):gsub('"(%d+)"', "%1"):gsub('= "true"', "= true") end
  end
  lines[#lines + 1] = ('  ["%s"] = { %s },'):format(name, table.concat(parts, ", "))
end
lines[#lines + 1] = "}"
write("spec/fixtures/hostile/expected.lua", table.concat(lines, "\n") .. "\n")
print(("wrote %d valid and %d hostile fixtures"):format(5, #cases))
