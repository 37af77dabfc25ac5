local mv = require "musicvae"
local H = require "spec.helpers"
package.path = H.root .. "/tools/?.lua;" .. package.path
local B = require "smfbuild"
local midi = mv.midi
local Data = mv.data

local function tmpfile(dir, name, bytes)
  local p = dir .. "/" .. name
  H.writefile(p, bytes)
  return p
end

local function labels_of(dir, song, opts)
  local r = assert(midi.labels(tmpfile(dir, "t.mid", B.song(song)), opts))
  return r.labels, r.steps
end

local function windows_of(dir, song, opts)
  local r = Data.file_windows(tmpfile(dir, "w.mid", B.song(song)), opts or {})
  return r
end

describe("MIDI reading", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("reads notes in ticks and seconds, tempos, time signatures and ppq", function()
    local p = tmpfile(dir, "a.mid", B.song { ppq = 96, qpm = 100, ts = { 4, 4 }, format = 1,
      notes = { { 0, 24, 36, 100 }, { 48, 24, 38, 64, 10 }, { 96, 12, 60, 50, 1 } } })
    local s = assert(midi.read(p))
    assert.equal(1, s.format)
    assert.equal(96, s.ppq)
    assert.near(100, s.qpm, 1e-3)
    assert.same({ "4/4" }, s.ts)
    assert.equal(3, #s.notes)
    local n = s.notes[2]
    assert.equal(48, n.on)
    assert.equal(72, n.off)
    assert.near(48 / 96 * 60 / 100, n.on_time, 1e-4)
    assert.equal(38, n.pitch)
    assert.equal(64, n.velocity)
    assert.equal(10, n.channel)
    assert.equal(2, n.track)
    assert.equal(1, s.notes[3].channel)
    assert.equal(108, s.end_tick)
  end)

  it("treats a note-on with velocity 0 as a note-off", function()
    local p = tmpfile(dir, "v0.mid", B.song { noteoff_as_vel0 = true, notes = { { 0, 120, 36, 100 }, { 240, 60, 36, 90 } } })
    local s = assert(midi.read(p))
    assert.equal(2, #s.notes)
    assert.equal(120, s.notes[1].off)
    assert.equal(300, s.notes[2].off)
    local r = assert(midi.labels(p))
    assert.same({ 1, 0, 1 }, r.labels)
  end)

  it("pairs overlapping notes of one pitch as magenta.js does", function()
    -- on 0, on 10, off 20, off 30: the first on takes the first off at or after it
    local body = B.ev(0, 0x99, 36, 100) .. B.ev(10, 0x99, 36, 90) .. B.ev(10, 0x89, 36, 0) ..
      B.ev(10, 0x89, 36, 0) .. B.eot()
    local s = assert(midi.parse(B.header(0, 1, 480) .. B.track(body)))
    assert.equal(2, #s.notes)
    assert.same({ 0, 20 }, { s.notes[1].on, s.notes[1].off })
    assert.same({ 10, 30 }, { s.notes[2].on, s.notes[2].off })
  end)

  it("survives the input that aborts libsmf: running status after a SysEx", function()
    local bytes = H.readfile(H.root .. "/spec/fixtures/hostile/11-running-status-after-sysex.mid")
    -- in a child process, so an abort could not take the test runner down
    local out, err, code = H.lua(([[
      local midi = require "musicvae.midi"
      local f = io.open(%q, "rb"); local b = f:read("a"); f:close()
      local s = assert(midi.parse(b))
      io.write(#s.notes)
    ]]):format(H.root .. "/spec/fixtures/hostile/11-running-status-after-sysex.mid"))
    assert.equal(0, code, err)
    assert.equal("2", out)
    assert.equal("", err)
    assert.is_true(#bytes > 0)
  end)
end)

describe("hostile MIDI files", function()
  local expected = dofile(H.root .. "/spec/fixtures/hostile/expected.lua")
  local names = {}
  for k in pairs(expected) do names[#names + 1] = k end
  table.sort(names)

  it("has at least 30 committed cases", function()
    assert.is_true(#names >= 30)
  end)

  it("each gives its expected outcome, with nothing on stderr and no crash", function()
    -- all files in one child process: a crash or any stderr output fails the test
    local out, err, code = H.lua(([[
      local midi = require "musicvae.midi"
      local Data = require "musicvae.data"
      local dir = %q
      local exp = dofile(dir .. "/expected.lua")
      local names = {}
      for k in pairs(exp) do names[#names + 1] = k end
      table.sort(names)
      for _, n in ipairs(names) do
        local s, e = midi.read(dir .. "/" .. n)
        local w = Data.file_windows(dir .. "/" .. n, {})
        local warn = s and table.concat(s.warnings, " | ") or ""
        io.write(n, "\t", s and "ok" or "error", "\t", s and #s.notes or -1, "\t", e or "", "\t", warn, "\t",
          w.drop or "kept", "\n")
      end
    ]]):format(H.root .. "/spec/fixtures/hostile"))
    assert.equal(0, code, err)
    assert.equal("", err)
    local seen = 0
    for line in out:gmatch("[^\n]+") do
      local name, outcome, nnotes, msg, warn = line:match("^(.-)\t(.-)\t(.-)\t(.-)\t(.-)\t")
      local e = expected[name]
      assert.is_table(e, name)
      seen = seen + 1
      if e.error then
        assert.equal("error", outcome, name)
        assert.truthy(msg:find(e.error, 1, true), ("%s: %q lacks %q"):format(name, msg, e.error))
      else
        assert.equal("ok", outcome, name .. ": " .. msg)
        if e.notes then assert.equal(e.notes, tonumber(nnotes), name) end
        if e.warning then assert.truthy(warn:find(e.warning, 1, true), ("%s: warnings %q lack %q"):format(name, warn, e.warning)) end
      end
    end
    assert.equal(#names, seen)
  end)
end)

describe("the drum pipeline (magenta's rules)", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("rounds an exact half-step tie up", function()
    -- 480 ppq: a step is 120 ticks; 60 ticks is exactly half a step
    local l = labels_of(dir, { notes = { { 59, 10, 36, 100 }, { 60 + 240, 10, 38, 100 } } })
    assert.equal(1, l[1])       -- tick 59 -> step 0
    assert.equal(2, l[4])       -- tick 300 = 2.5 steps -> step 3
    assert.equal(0, l[3])
    assert.equal(2, mv.core.quantize_tick(300, 480, 4) - 1)
    assert.equal(3, mv.core.quantize_tick(300, 480, 4))
    assert.equal(2, mv.core.quantize_tick(299, 480, 4))
  end)

  it("reproduces magenta's test vectors: labels 1, 5, 2, 160, 256 and the exemplar pitches", function()
    local step = 120
    local notes = {
      { 0, step, 36, 100 },                                   -- kick: 1
      { step, step, 35, 100 }, { step, step, 42, 100 },       -- kick + closed HH: 5
      { 2 * step, step, 38, 100 },                            -- snare: 2
      { 3 * step, step, 60, 100 }, { 3 * step, step, 55, 100 }, -- mid tom + crash: 160
      { 4 * step, step, 53, 100 },                            -- ride: 256
    }
    local l, steps = labels_of(dir, { notes = notes })
    assert.same({ 1, 5, 2, 160, 256 }, l)
    assert.equal(5, steps)
    -- decoding writes exemplars at velocity 80: 60 -> 48, 55 -> 49, 53 -> 51
    local out = dir .. "/decoded.mid"
    assert.is_true(midi.write(out, mv.pattern { labels = l }))
    local s = assert(midi.read(out))
    local got = {}
    for _, n in ipairs(s.notes) do
      got[#got + 1] = ("%d:%d@%d"):format(n.on // 120, n.pitch, n.velocity)
    end
    assert.same({ "0:36@80", "1:36@80", "1:42@80", "2:38@80", "3:48@80", "3:49@80", "4:51@80" }, got)
  end)

  it("counts two pitches of one class once (no double counting)", function()
    local l = labels_of(dir, { notes = { { 0, 10, 36, 100 }, { 0, 10, 35, 100 } } })
    assert.same({ 1 }, l)
  end)

  it("splits at a tempo change and windows each piece on its own bar grid", function()
    local bar = 1920
    local notes = {}
    for b = 0, 9 do notes[#notes + 1] = { b * bar, 60, 36, 100 } end
    -- 120 qpm for 5 bars, then 100 qpm from bar 5
    local r = windows_of(dir, { notes = notes, tempos = { { 0, 120 }, { 5 * bar, 100 } } })
    assert.is_nil(r.drop)
    -- piece 1: 5 bars -> 2 windows, but they are equal (one kick per bar): 1 distinct; piece 2 the same
    assert.equal(1, #r.windows)
    local r2 = windows_of(dir, { notes = notes, tempos = { { 0, 120 }, { 5 * bar, 120 } } })
    assert.equal(1, #r2.windows)
    -- the split itself: two pieces only when the tempo really changes; a change in mid-bar
    -- restarts the bar grid there
    local function pieces(tempos)
      local h = assert(midi.open(tmpfile(dir, "p.mid", B.song { notes = notes, tempos = tempos })))
      local r = h:tracks(midi.drum_options())
      h:close()
      return r
    end
    assert.equal(1, pieces({ { 0, 120 }, { 5 * bar, 120 } }).pieces)
    local r3 = pieces({ { 0, 120 }, { 5 * bar + bar // 2, 100 } })
    assert.equal(2, r3.pieces)
    local last = r3.tracks[#r3.tracks]
    assert.equal(2, last.piece)
    assert.equal(5 * bar + bar // 2, last.piece_tick)
    -- the kick at bar 6 is 8 steps into the second piece, whose first bar starts at the change
    assert.equal(0, last.start_step)
    assert.equal(0, last.labels[1])
    assert.equal(1, last.labels[9])
  end)

  it("drops 3/4 and keeps 2/2 (16 steps per bar)", function()
    local notes = {}
    for s = 0, 8 * 16 - 1 do notes[#notes + 1] = { s * 120, 60, s % 4 == 0 and 36 or 42, 100 } end
    local r = windows_of(dir, { notes = notes, ts = { 3, 4 } })
    assert.equal("meter", r.drop)
    assert.matches("3/4", r.detail)
    local r2 = windows_of(dir, { notes = notes, ts = { 2, 2 } })
    assert.is_nil(r2.drop)
    assert.is_true(#r2.windows >= 1)
  end)

  it("ends a drum track at a silent bar (the gap rule)", function()
    local function phrase(start_bar, bars, pitch)
      local ns = {}
      for b = 0, bars - 1 do
        for s = 0, 15, 4 do ns[#ns + 1] = { ((start_bar + b) * 16 + s) * 120, 60, pitch, 100 } end
      end
      return ns
    end
    -- 4 bars, 1 silent bar (16+ silent steps), 4 bars: two tracks of 4 bars -> 1 window each
    local notes = phrase(0, 4, 36)
    for _, n in ipairs(phrase(5, 4, 38)) do notes[#notes + 1] = n end
    local r = windows_of(dir, { notes = notes })
    assert.equal(2, #r.windows)
    assert.equal(1, r.windows[1].first_bar)
    assert.equal(6, r.windows[2].first_bar)
    -- a gap of 15 silent steps does not end the track: one 9-bar track with more windows
    local close = phrase(0, 4, 36)
    close[#close + 1] = { (4 * 16 + 12) * 120, 60, 42, 100 } -- bar 5, step 13: gap from step 60 is 15
    for _, n in ipairs(phrase(5, 4, 38)) do close[#close + 1] = n end
    local r2 = windows_of(dir, { notes = close })
    assert.is_true(#r2.windows > 2)
  end)

  it("de-duplicates windows within a file", function()
    local labels = {}
    for b = 1, 8 do
      for s = 1, 16 do labels[#labels + 1] = (s % 4 == 1) and 5 or 0 end
    end
    local r = windows_of(dir, { notes = B.notes_from_labels(labels) })
    assert.equal(1, #r.windows)
    labels[16 * 7 + 3] = 2 -- make the last bar different
    r = windows_of(dir, { notes = B.notes_from_labels(labels) })
    assert.equal(2, #r.windows)
  end)

  it("reads drums from another channel on request", function()
    local notes = { { 0, 60, 36, 100, 1 }, { 120, 60, 38, 100, 1 } }
    local l = labels_of(dir, { notes = notes })
    assert.same({ 0, 0 }, l)
    l = labels_of(dir, { notes = notes }, { drum_channel = 1 })
    assert.same({ 1, 2 }, l)
    l = labels_of(dir, { notes = notes }, { drum_channel = "all" })
    assert.same({ 1, 2 }, l)
  end)

  it("uses other maps: magenta-js-2018 puts 43 in the high tom, magenta in the low tom", function()
    local notes = { { 0, 60, 43, 100 } }
    assert.same({ 16 }, (labels_of(dir, { notes = notes })))
    assert.same({ 64 }, (labels_of(dir, { notes = notes }, { map = "magenta-js-2018" })))
    assert.has_error(function() labels_of(dir, { notes = notes }, { map = "nope" }) end)
  end)
end)

describe("MIDI writing", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("round-trips labels and velocities", function()
    local r = mv.rng(3, "test")
    local labels, vel = {}, {}
    for s = 1, 64 do
      labels[s] = r:integer(0, 511)
      vel[s] = {}
      for c = 1, 9 do vel[s][c] = r:integer(1, 127) end
    end
    local p = mv.pattern { labels = labels, qpm = 97, velocities = vel }
    local path = dir .. "/rt.mid"
    assert.is_true(midi.write(path, p))
    local s = assert(midi.read(path))
    assert.equal(1, s.format)
    assert.equal(480, s.ppq)
    assert.near(97, s.qpm, 1e-3)
    assert.same({ "4/4" }, s.ts)
    local back = assert(midi.labels(path))
    for i = 1, 64 do assert.equal(labels[i], back.labels[i] or 0, "step " .. i) end
    local ex = mv.drums.exemplars(mv.drums.map())
    for _, n in ipairs(s.notes) do
      local step = n.on // 120 + 1
      local c
      for k = 1, 9 do if ex[k] == n.pitch then c = k end end
      assert.equal(vel[step][c], n.velocity)
      assert.equal(10, n.channel)
      assert.equal(120, n.off - n.on)
    end
  end)

  it("keeps velocities and offsets through a write and a read, within one tick", function()
    local r = mv.rng(8, "groove")
    local labels, vel, off = {}, {}, {}
    for s = 1, 64 do
      labels[s] = r:integer(0, 511)
      vel[s], off[s] = {}, {}
      for c = 1, 9 do
        vel[s][c] = r:integer(1, 127)
        off[s][c] = r:uniform(-0.49, 0.49) -- steps, positive = early
      end
    end
    labels[1] = labels[1] & ~0x1ff -- step 1 only late notes (never before time 0)
    for c = 1, 9 do off[1][c] = -math.abs(off[1][c]) end
    labels[1] = 0x1ff
    local path = dir .. "/groove.mid"
    assert.is_true(midi.write(path, mv.pattern { labels = labels, velocities = vel, offsets = off }))
    local p = assert(midi.groove(path))
    local one_tick = 1 / 120 -- a step is 120 ticks at 480 per quarter
    for s = 1, 64 do
      for c = 1, 9 do
        if labels[s] & (1 << (c - 1)) ~= 0 then
          assert.equal(vel[s][c], p.velocities[s][c], ("velocity at step %d class %d"):format(s, c))
          assert.is_true(math.abs(off[s][c] - p.offsets[s][c]) <= one_tick + 1e-9,
            ("offset at step %d class %d: %g vs %g"):format(s, c, off[s][c], p.offsets[s][c]))
        else
          assert.is_nil(p.velocities[s] and p.velocities[s][c])
        end
      end
    end
  end)

  it("writes atomically and reports unwritable paths", function()
    local ok, err = midi.write(dir .. "/no/such/x.mid", mv.pattern { labels = { 1 } })
    assert.is_nil(ok)
    assert.matches("no/such", err)
    assert.is_nil(io.open(dir .. "/no/such/x.mid"))
    -- a write that fails midway (a 512-byte file size limit, SIGXFSZ ignored so write() fails
    -- with EFBIG) leaves the old file as it was and no temporary beside it
    local sub = dir .. "/atomic"
    assert(os.execute("mkdir -p " .. H.shell_quote(sub)))
    local path = sub .. "/x.mid"
    assert(midi.write(path, mv.pattern { labels = { 1 } }))
    local old = H.readfile(path)
    local script = sub .. "/../write.lua"
    H.writefile(script, ([[
      local mv = require "musicvae"
      local full = {}
      for s = 1, 64 do full[s] = 511 end
      local ok, err = mv.midi.write(%q, mv.pattern { labels = full })
      io.write(tostring(ok), "|", tostring(err))
    ]]):format(path))
    local out, err2, code = H.run("trap '' XFSZ; ulimit -f 1; lua5.4 " .. H.shell_quote(script), {
      LUA_CPATH = H.root .. "/" .. H.build_dir() .. "/?.so;;",
      LUA_PATH = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;" })
    assert.equal(0, code, err2)
    assert.matches("^nil|.*x%.mid", out)
    assert.equal(old, H.readfile(path))
    local ls = H.run("ls -A " .. H.shell_quote(sub))
    assert.equal("x.mid\n", ls)
    -- and without the limit the same write replaces it
    local full = {}
    for s = 1, 64 do full[s] = 511 end
    assert(midi.write(path, mv.pattern { labels = full }))
    assert.is_true(#H.readfile(path) > 512)
  end)

  it("uses a kit file and the channel option", function()
    local kit = dir .. "/kit.lua"
    H.writefile(kit, "return { kick = 35, snare = 40, closed_hi_hat = 44, open_hi_hat = 46, low_tom = 41, " ..
      "mid_tom = 47, high_tom = 50, crash = 57, ride = 59 }")
    local k = assert(midi.load_kit(kit))
    assert.same({ 35, 40, 44, 46, 41, 47, 50, 57, 59 }, k)
    local path = dir .. "/k.mid"
    assert.is_true(midi.write(path, mv.pattern { labels = { 3 } }, { kit = k, channel = 2 }))
    local s = assert(midi.read(path))
    assert.same({ 35, 40 }, { s.notes[1].pitch, s.notes[2].pitch })
    assert.equal(2, s.notes[1].channel)
    H.writefile(kit, "return { 1, 2 }")
    local bad, err = midi.load_kit(kit)
    assert.is_nil(bad)
    assert.matches("class 3", err)
  end)

  it("writes files that magenta.js parses (when node and @magenta/music are installed)", function()
    local mod = os.getenv("MUSICVAE_MAGENTA_JS")
    if not H.have("node") or not mod then
      pending("node or @magenta/music is not installed (set MUSICVAE_MAGENTA_JS to its node_modules folder)")
      return
    end
    local shared, why = H.shared()
    local script = shared and shared .. "/oracle/magenta_drums.js"
    if not (script and io.open(script, "r")) then
      pending(shared and (shared .. " has no oracle/magenta_drums.js") or why)
      return
    end
    local path = dir .. "/m.mid"
    assert.is_true(midi.write(path, mv.pattern { labels = { 1, 0, 4, 0, 2, 0, 4, 160 } }))
    H.writefile(dir .. "/list", "m.mid\n")
    local out, err, code = H.run("node " .. H.shell_quote(script) .. " " ..
      H.shell_quote(dir) .. " " .. H.shell_quote(dir .. "/list"), { NODE_PATH = mod })
    assert.equal(0, code, err)
    local o = assert(require("musicvae.json").decode(out))
    assert.same({ 1, 0, 4, 0, 2, 0, 4, 160 }, o.labels)
  end)
end)
