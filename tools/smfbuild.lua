--- A tiny Standard MIDI File builder for tests and fixture generators: it
-- writes exactly the bytes it is told to, so it can also make broken files.
local B = {}

function B.vlq(n)
  assert(n >= 0 and n < 2 ^ 28, "vlq out of range")
  local bytes = { string.char(n & 0x7f) }
  n = n >> 7
  while n > 0 do
    table.insert(bytes, 1, string.char(0x80 | (n & 0x7f)))
    n = n >> 7
  end
  return table.concat(bytes)
end

function B.be16(n) return string.pack(">I2", n) end
function B.be32(n) return string.pack(">I4", n) end

function B.header(format, ntracks, division, extra)
  extra = extra or ""
  return "MThd" .. B.be32(6 + #extra) .. B.be16(format) .. B.be16(ntracks) .. B.be16(division) .. extra
end

function B.chunk(id, body) return id .. B.be32(#body) .. body end
function B.track(body) return B.chunk("MTrk", body) end

--- B.ev(delta, byte, byte, ...) -> delta time + raw bytes
function B.ev(delta, ...) return B.vlq(delta) .. string.char(...) end

function B.tempo(delta, qpm)
  local us = math.floor(60000000 / qpm + 0.5)
  return B.ev(delta, 0xff, 0x51, 3, (us >> 16) & 0xff, (us >> 8) & 0xff, us & 0xff)
end

function B.timesig(delta, num, den)
  local p = 0
  while (1 << p) < den do p = p + 1 end
  return B.ev(delta, 0xff, 0x58, 4, num, p, 24, 8)
end

function B.eot(delta) return B.ev(delta or 0, 0xff, 0x2f, 0) end

--- B.song{ppq = 480, qpm = 120, ts = {4, 4}, notes = {{tick, dur, pitch, vel[, channel 1-16]}},
--         format = 0|1, tempos = {{tick, qpm}}, timesigs = {{tick, num, den}}, noteoff_as_vel0 = bool}
-- A well-formed file: format 0 (one track) or 1 (conductor + notes).
function B.song(s)
  local ppq = s.ppq or 480
  local meta, notes = {}, {}
  local tempos = s.tempos or { { 0, s.qpm or 120 } }
  for _, t in ipairs(tempos) do meta[#meta + 1] = { t[1], 0, "tempo", t[2] } end
  local tss = s.timesigs or (s.ts and { { 0, s.ts[1], s.ts[2] } }) or { { 0, 4, 4 } }
  for _, t in ipairs(tss) do meta[#meta + 1] = { t[1], 0, "ts", t[2], t[3] } end
  for _, n in ipairs(s.notes or {}) do
    local ch = (n[5] or 10) - 1
    notes[#notes + 1] = { n[1], 2, "on", ch, n[3], n[4] }
    notes[#notes + 1] = { n[1] + n[2], 1, "off", ch, n[3] }
  end
  local function body(events)
    table.sort(events, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
    local out, at = {}, 0
    for _, e in ipairs(events) do
      local d = e[1] - at
      at = e[1]
      if e[3] == "tempo" then out[#out + 1] = B.tempo(d, e[4])
      elseif e[3] == "ts" then out[#out + 1] = B.timesig(d, e[4], e[5])
      elseif e[3] == "on" then out[#out + 1] = B.ev(d, 0x90 | e[4], e[5], e[6])
      elseif s.noteoff_as_vel0 then out[#out + 1] = B.ev(d, 0x90 | e[4], e[5], 0)
      else out[#out + 1] = B.ev(d, 0x80 | e[4], e[5], 64) end
    end
    out[#out + 1] = B.eot(0)
    return table.concat(out)
  end
  if (s.format or 0) == 0 then
    local all = {}
    for _, e in ipairs(meta) do all[#all + 1] = e end
    for _, e in ipairs(notes) do all[#all + 1] = e end
    return B.header(0, 1, ppq) .. B.track(body(all))
  end
  return B.header(1, 2, ppq) .. B.track(body(meta)) .. B.track(body(notes))
end

--- Notes from a step grid: {labels...} at 16 steps per bar, one step long.
function B.notes_from_labels(labels, ppq, pitches, vel)
  ppq = ppq or 480
  pitches = pitches or { 36, 38, 42, 46, 45, 48, 50, 49, 51 }
  local step = ppq // 4
  local notes = {}
  for s, l in ipairs(labels) do
    for c = 1, 9 do
      if l & (1 << (c - 1)) ~= 0 then notes[#notes + 1] = { (s - 1) * step, step, pitches[c], vel or 100 } end
    end
  end
  return notes
end

return B
