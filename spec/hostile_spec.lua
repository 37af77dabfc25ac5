-- Issue 16: hostile input gives the right answer or a one-line error, with bounded work.
-- The inputs are generated (tools/hostile_cases.lua); each runs in a child process under a
-- generous hang timeout, which also reports the child's peak memory (VmHWM).
local H = require "spec.helpers"
local C = dofile(H.root .. "/tools/hostile_cases.lua")

local HANG = 120 -- seconds: a hang guard, not a timing assertion (timings go to bench/hostile.lua)

-- Runs Lua code in a child with the tier's build; the code's stdout, stderr, exit status and
-- the peak resident memory in MB (appended by the child).
local function child(code)
  local f = os.tmpname()
  H.writefile(f, code .. [[

local s = io.open("/proc/self/status"):read("a")
io.stderr:write("\nVmHWM_MB ", (tonumber(s:match("VmHWM:%s*(%d+)")) or 0) // 1024, "\n")
]])
  local env = {
    LUA_CPATH = H.root .. "/" .. H.build_dir() .. "/?.so;;",
    LUA_PATH = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;",
    -- under the full tier's ASan, freed memory sits in a 256 MB quarantine: keep it small so
    -- VmHWM measures what the code holds
    ASAN_OPTIONS = (os.getenv("ASAN_OPTIONS") or "") .. ":quarantine_size_mb=8",
  }
  local out, err, code_ = H.run(("cd %s && timeout %d lua5.4 %s"):format(H.shell_quote(H.root), HANG, H.shell_quote(f)),
    env)
  os.remove(f)
  local mb = tonumber(err:match("VmHWM_MB (%d+)"))
  err = err:gsub("\nVmHWM_MB %d+\n$", "")
  assert.are_not.equal(124, code_, "hung (over " .. HANG .. " s)")
  return out, err, code_, mb
end

local function with_file(bytes, ext, fn)
  local dir = H.tmpdir()
  local p = dir .. "/case" .. ext
  H.writefile(p, bytes)
  local ok, e = pcall(fn, p)
  H.rmtree(dir)
  if not ok then error(e, 0) end
end

describe("MIDI: the quantized step count is bounded", function()
  local core = require "musicvae.core"
  local limit = core.MAX_STEPS

  it("exposes its documented limit", function()
    assert.equal(131072, limit)
  end)

  it("refuses the issue's 37-byte file (one note, a 2^25-tick delta) before allocating per step", function()
    local bytes = C.midi.huge_delta()
    assert.equal(37, #bytes)
    with_file(bytes, ".mid", function(p)
      for _, cmd in ipairs { "labels --json", "show" } do
        local out, err, code = H.cli(cmd .. " " .. H.shell_quote(p))
        assert.equal(1, code, cmd)
        assert.equal("", out, cmd)
        assert.truthy(err:match("^musicvae: [^\n]*limit is 131072 steps[^\n]*\n$"), cmd .. ": " .. err)
      end
      local _, err, code, mb = child(([[
        local mv = require "musicvae"
        local l, e = mv.midi.labels(%q)
        assert(l == nil and e:find("limit", 1, true), e)
        local p, e2 = mv.midi.groove(%q)
        assert(p == nil and e2:find("limit", 1, true), e2)
        local w = require("musicvae.data").file_windows(%q, {})
        assert(w.drop == "too long" and #w.windows == 0, w.drop)
      ]]):format(p, p, p))
      assert.equal(0, code, err)
      assert.is_true(mb < 300, mb .. " MB")
    end)
  end)

  it("reads a file exactly at the limit and refuses one step more", function()
    with_file(C.midi.at_step_limit(limit), ".mid", function(p)
      local mv = require "musicvae"
      local r = assert(mv.midi.labels(p))
      assert.equal(limit, r.steps)
      assert.equal(limit, #r.labels)
    end)
    with_file(C.midi.past_step_limit(limit), ".mid", function(p)
      local mv = require "musicvae"
      local r, err = mv.midi.labels(p)
      assert.is_nil(r)
      assert.truthy(err:find(("span %d steps"):format(limit + 1), 1, true), err)
    end)
  end)

  it("splits 50k alternating tempo changes without quadratic work", function()
    with_file(C.midi.many_tempos(50000), ".mid", function(p)
      local _, err, code, mb = child(([[
        local w = require("musicvae.data").file_windows(%q, {})
        assert(w.drop, "50k one-step pieces give no window")
      ]]):format(p))
      assert.equal(0, code, err)
      assert.is_true(mb < 300, mb .. " MB")
    end)
  end)
end)

describe("audio: a render's length is bounded", function()
  local audio = require "musicvae.audio"
  local available, why = audio.available()
  if available and not audio.find_soundfont() then available, why = false, "no SoundFont (fluid-soundfont-gm)" end

  it("exposes its documented limits", function()
    assert.equal(3600, audio.MAX_SECONDS)
    assert.equal(1 << 21, audio.MAX_PLAYS)
  end)

  it("refuses the issue's 37-byte file and a note just past an hour, before allocating the samples", function()
    if not available then return pending("audio not available: " .. tostring(why)) end
    for name, bytes in pairs { huge_delta = C.midi.huge_delta(), long_silence = C.midi.long_silence(audio.MAX_SECONDS + 2) } do
      with_file(bytes, ".mid", function(p)
        local _, err, code, mb = child(([[
          local s, e = require("musicvae").audio.render(%q)
          assert(s == nil and e:find("the notes last %%d+ s; a render is at most 3600 s$"), e)
          assert(not e:find("\n"), e)
        ]]):format(p))
        assert.equal(0, code, name .. ": " .. err)
        assert.is_true(mb < 300, name .. ": " .. mb .. " MB")
        local wav = p:gsub("%.mid$", ".wav")
        local out, cerr, ccode = H.cli("render " .. H.shell_quote(p) .. " -o " .. H.shell_quote(wav))
        assert.equal(1, ccode, name)
        assert.equal("", out, name)
        assert.truthy(cerr:match("^musicvae: [^\n]*case%.mid: the notes last %d+ s; a render is at most 3600 s\n$"),
          name .. ": " .. cerr)
        assert.is_nil(io.open(wav), name .. ": wrote " .. wav)
      end)
    end
  end)

  it("refuses loops x length + tail past the limit with one line (a pattern too)", function()
    if not available then return pending("audio not available: " .. tostring(why)) end
    local mv = require "musicvae"
    local p = mv.pattern { labels = { 1, 0, 0, 0 }, bars = 1, steps_per_bar = 4, qpm = 120 } -- 2 s a loop
    local s, e = mv.audio.render(p, { loops = 1800, tail = 0.5 })
    assert.is_nil(s)
    assert.equal("render: 3600.5 s of audio (1800 x 2.0 s + 0.5 s tail) is past the limit of 3600 s", e)
  end)
end)

describe("non-finite numbers", function()
  local mv = require "musicvae"
  local model_path = H.root .. "/models/gmd-4bar-small.safetensors"

  it("a checkpoint with one NaN or infinite weight is refused at load, naming the tensor", function()
    local t, meta, names = assert(mv.safetensors.load(model_path))
    local name = names[#names]
    local dir = H.tmpdir()
    for _, bad in ipairs { 0 / 0, math.huge, -math.huge } do
      local x = t[name]:clone()
      x:view(-1):set(bad, 1)
      local saved = t[name]
      t[name] = x
      assert(mv.safetensors.save(dir .. "/bad.safetensors", t, { metadata = meta }))
      t[name] = saved
      local m, err = mv.Model.load(dir .. "/bad.safetensors")
      assert.is_nil(m)
      assert.truthy(err:find(name, 1, true), err)
      assert.truthy(err:find("NaN or infinite", 1, true), err)
      -- and the CLI says so in one line
      local out, cerr, code = H.cli("sample -n 1 --seed 1 -q -o " .. H.shell_quote(dir .. "/out") .. " --model " ..
        H.shell_quote(dir .. "/bad.safetensors"))
      assert.equal(1, code, out .. cerr)
      assert.truthy(cerr:match("^musicvae: [^\n]*NaN or infinite[^\n]*\n$"), cerr)
    end
    H.rmtree(dir)
  end)

  it("NaN weights that reach the decoder anyway give silence, never every drum (and no UB)", function()
    local m = assert(mv.Model.load(model_path))
    -- poison the output layer through a parameter view (what load now refuses)
    local P = m.vae:params()
    local name
    for _, p in ipairs(m.vae:param_list()) do
      if p.name:find("output_projection/bias", 1, true) then name = p.name end
    end
    assert.is_string(name)
    P[name]:fill(0 / 0)
    for _, temp in ipairs { 0, 0.5 } do
      local ps = m:sample { n = 1, seed = 1, temperature = temp }
      for _, l in ipairs(ps[1].labels) do assert.equal(0, l) end
    end
    m:close()
  end)

  it("the Lua API refuses similarity NaN and temperature inf or NaN", function()
    local m = assert(mv.Model.load(model_path))
    local p = m:sample { n = 1, seed = 1 }[1]
    assert.has_error(function() m:similar(p, { similarity = 0 / 0 }) end)
    for _, bad in ipairs { math.huge, 0 / 0, -1 } do
      assert.has_error(function() m:sample { n = 1, seed = 1, temperature = bad } end)
      assert.has_error(function() m:reconstruct(p, { temperature = bad }) end)
      assert.has_error(function() m:generator { seed = 1, temperature = bad } end)
      assert.has_error(function() m.vae:decode(mv.core.zeros(1, m.config.z), { temperature = bad }) end)
    end
    assert.has_error(function() m:vary(p, { amount = math.huge }) end)
    m:close()
  end)
end)

describe("integer overflow, divide by zero and lost error messages", function()
  local mv = require "musicvae"
  local core = mv.core

  it("quantize_tick validates ppq and steps per quarter instead of casting them (SIGFPE before)", function()
    local ok, err = pcall(core.quantize_tick, 2 ^ 62 | 0, 2 ^ 62 | 0)
    assert.is_false(ok)
    assert.truthy(err:find("quantize_tick", 1, true), err)
    for _, args in ipairs { { 100, 0 }, { 100, -480 }, { 100, 2 ^ 32 | 0 }, { 100, 480, 0 }, { 100, 480, 2 ^ 32 + 4 | 0 },
      { 2 ^ 62 | 0, 480 } } do
      assert.has_error(function() core.quantize_tick(table.unpack(args)) end)
    end
    assert.equal(3, core.quantize_tick(300, 480, 4))
    assert.equal(2 ^ 53 // 120, core.quantize_tick(2 ^ 53 | 0, 480, 4))
  end)

  it("drum options do not wrap out-of-int values into range", function()
    local song = C.midi.at_step_limit(64)
    local h = assert(core.midi_parse(song))
    local opts = require("musicvae.midi").drum_options {}
    opts.steps_per_quarter = 2 ^ 32 + 4 | 0
    assert.has_error(function() h:labels(opts) end)
    h:close()
  end)

  it("view and reshape refuse shapes whose element count overflows", function()
    local t = mv.zeros(4)
    for _, f in ipairs { "view", "reshape" } do
      for _, shape in ipairs { { 2 ^ 62 | 0, 2 ^ 62 | 0 }, { 2 ^ 62 | 0, 2 ^ 62 | 0, -1 }, { 2 ^ 40 | 0, 2 ^ 40 | 0, 2 ^ 40 | 0 } } do
        local ok, err = pcall(t[f], t, table.unpack(shape))
        assert.is_false(ok)
        assert.truthy(err:find("overflow", 1, true) or err:find("size", 1, true), err)
      end
    end
    assert.same({ 2, 2 }, t:view(2, -1):size())
  end)

  it("keeps the messages that used %lld (lua_pushfstring has no such option)", function()
    local ok, err
    if not (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then -- ASan aborts on a 4 EB calloc
      ok, err = pcall(mv.zeros, 1e9, 1e9)
      assert.is_false(ok)
      assert.truthy(err:find("out of memory allocating 1000000000000000000 floats", 1, true), err)
    end
    ok, err = pcall(mv.frombytes, "abc", { 1 })
    assert.is_false(ok)
    assert.truthy(err:find("3 bytes do not hold 1 float32 values", 1, true), err)
    ok, err = pcall(mv.tensor, { { 1, 2 }, { 3 } })
    assert.is_false(ok)
    assert.truthy(err:find("should have 2 entries", 1, true), err)
    ok, err = pcall(function() return mv.zeros(5):view(2, -1) end)
    assert.is_false(ok)
    assert.truthy(err:find("5 elements", 1, true), err)
  end)
end)

describe("checkpoint pairs survive a kill or a full disk", function()
  local mv = require "musicvae"
  local T = require "musicvae.train"
  local core = mv.core
  local micro = { enc = { 16 }, cond = { 8 }, dec = { 16 }, z = 8, batch_size = 2, free_bits = 0,
    sampling_schedule = "constant", sampling_rate = 0.3, learning_rate = 3e-3 }
  local dir, data, run
  before_each(function()
    dir = H.tmpdir()
    data = dir .. "/d.mvd"
    run = dir .. "/run"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, {}))
    local tr = assert(T.new { data = data, config = micro, out = run, seed = 5 })
    assert(tr:run { steps = 3, val_every = 0 })
    tr.model:close()
  end)
  after_each(function() H.rmtree(dir) end)

  local function names()
    local t = {}
    for _, e in ipairs(core.listdir(run)) do t[#t + 1] = e.name end
    table.sort(t)
    return table.concat(t, " ")
  end

  it("a kill between the two writes (either order) resumes from the newest complete pair and cleans up", function()
    local w, s = run .. "/ckpt-00000003.safetensors", run .. "/ckpt-00000003.state.safetensors"
    -- this version's order: the state of step 9 is on disk, its weights half-written
    H.writefile(run .. "/ckpt-00000009.state.safetensors", H.readfile(s))
    H.writefile(run .. "/ckpt-00000009.safetensors.tmp.4242", H.readfile(w):sub(1, 100))
    -- the old order: the weights of step 7 without their state, the state half-written
    H.writefile(run .. "/ckpt-00000007.safetensors", H.readfile(w))
    H.writefile(run .. "/ckpt-00000007.state.safetensors.tmp.4243", "half")
    local complete, partial = T.checkpoints(run)
    assert.equal(1, #complete)
    assert.equal(3, complete[1].step)
    assert.equal(2, #partial)
    local tr = assert(T.new { out = run, resume = true }) -- no --data: named by the state
    assert.equal(3, tr.step)
    assert.equal(w, tr.resumed_from)
    assert.is_nil(names():find("tmp", 1, true), names())
    assert.is_false(core.isfile(run .. "/ckpt-00000009.state.safetensors"))
    assert.is_true(core.isfile(run .. "/ckpt-00000007.safetensors")) -- a usable model is kept
    assert(tr:run { until_step = 5, val_every = 0 })
    assert.equal(5, T.checkpoints(run)[1].step)
    tr.model:close()
  end)

  it("a failed weights write (full disk) removes that step's state and keeps the previous pair", function()
    local tr = assert(T.new { out = run, resume = true })
    tr.step = 4
    assert(core.mkdir_p(run .. "/ckpt-00000004.safetensors")) -- the rename into place fails
    local ok, err = tr:checkpoint(3)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.is_false(core.isfile(run .. "/ckpt-00000004.state.safetensors"))
    assert.is_nil(names():find("tmp", 1, true), names())
    tr.model:close()
    os.remove(run .. "/ckpt-00000004.safetensors")
    local again = assert(T.new { out = run, resume = true })
    assert.equal(3, again.step)
    again.model:close()
  end)

  it("--resume without --data says what is really missing", function()
    -- only weights, no state
    os.remove(run .. "/ckpt-00000003.state.safetensors")
    local _, err, code = H.cli("train --out " .. H.shell_quote(run) .. " --resume --steps 1")
    assert.equal(1, code)
    assert.truthy(err:match("^musicvae: [^\n]*ckpt%-00000003%.safetensors has no ckpt%-00000003%.state%.safetensors[^\n]*\n$"),
      err)
    -- an empty folder, and none at all
    _, err, code = H.cli("train --out " .. H.shell_quote(dir .. "/empty") .. " --resume --steps 1")
    assert.equal(1, code)
    assert.truthy(err:match("^musicvae: [^\n]*no such run folder[^\n]*give %-%-data[^\n]*\n$"), err)
  end)

  it("--resume without --data names the run's dataset when it is gone", function()
    os.remove(data)
    local _, err, code = H.cli("train --out " .. H.shell_quote(run) .. " --resume --steps 1")
    assert.equal(1, code)
    assert.truthy(err:match("^musicvae: [^\n]*d%.mvd[^\n]*is missing; give %-%-data\n$"), err)
  end)
end)

describe("#full SIGKILL at random points of a run with a checkpoint every step", function()
  it("always resumes from the newest complete pair", function()
    local mv = require "musicvae"
    local T = require "musicvae.train"
    local dir = H.tmpdir()
    local data, run = dir .. "/d.mvd", dir .. "/run"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, {}))
    local env = ("LUA_CPATH=%s LUA_PATH=%s"):format(H.shell_quote(H.root .. "/" .. H.build_dir() .. "/?.so;;"),
      H.shell_quote(H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"))
    local last = 0
    local rng = mv.core.rng(16, "kills")
    for round = 1, 8 do
      local cmd = ("%s lua5.4 %s train --data %s --config tiny --set batch_size=2 --out %s --steps 100000 " ..
        "--checkpoint-minutes 0.00001 %s >/dev/null 2>%s/err.txt & echo $!"):format(env,
        H.shell_quote(H.root .. "/bin/musicvae"), H.shell_quote(data), H.shell_quote(run), round > 1 and "--resume" or "",
        H.shell_quote(dir))
      local pid = assert(io.popen(cmd):read("l"))
      os.execute(("sleep %.2f"):format(1.5 + rng:uniform() * 1.5))
      os.execute("kill -9 " .. pid)
      os.execute("while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.05; done")
      assert.equal("", H.readfile(dir .. "/err.txt"))
      local tr, err = T.new { out = run, resume = true }
      assert.truthy(tr, err)
      assert.is_true(tr.step >= last, ("round %d: step %d after %d"):format(round, tr.step, last))
      last = tr.step
      tr.model:close()
    end
    assert.is_true(last > 0)
    H.rmtree(dir)
  end)
end)

describe("CLI misuse gives one line and the right exit status", function()
  local rock = H.shell_quote(H.root .. "/spec/fixtures/midi/rock-8bars-120.mid")
  local cmds = {
    "sample -n 1 --seed 1 -q",
    "reconstruct " .. rock .. " --seed 1 -q",
    "interpolate " .. rock .. " " .. rock .. " --steps 2 --seed 1 -q",
    "similar " .. rock .. " -n 1 --seed 1 -q",
  }

  it("-o naming an existing file, a folder under a file, or '' (no shell mkdir message)", function()
    local dir = H.tmpdir()
    H.writefile(dir .. "/file", "x")
    for _, c in ipairs(cmds) do
      for _, o in ipairs { dir .. "/file", dir .. "/file/sub" } do
        local out, err, code = H.cli(c .. " -o " .. H.shell_quote(o))
        assert.equal(1, code, c .. ": " .. out .. err)
        assert.truthy(err:match("^musicvae: [^\n]*file exists and is not a folder\n$"), c .. ": " .. err)
      end
      local _, err, code = H.cli(c .. " -o ''")
      assert.equal(2, code, c .. ": " .. err)
      assert.truthy(err:match("^musicvae: [^\n]*%-o needs a folder name[^\n]*\n$"), c .. ": " .. err)
    end
    -- and a new nested folder is made
    local _, err, code = H.cli(cmds[1] .. " -o " .. H.shell_quote(dir .. "/a/b/c"))
    assert.equal(0, code, err)
    assert.is_true(require("musicvae.core").isfile(dir .. "/a/b/c/sample-s1-t0.5-001.mid"))
    H.rmtree(dir)
  end)

  it("eval --batch 0 and -1 are usage errors; non-finite numbers are refused", function()
    for _, b in ipairs { "0", "-1" } do
      local _, err, code = H.cli("eval --batch " .. b .. " " .. rock)
      assert.equal(2, code, err)
      assert.truthy(err:match("^musicvae: eval: option %-%-batch must be[^\n]*\n$"), err)
    end
    local _, err, code = H.cli("sample -n 1 --temperature 1e999 -o /tmp/never")
    assert.equal(2, code, err)
    assert.truthy(err:match("^musicvae: [^\n]*finite[^\n]*\n$"), err)
    local mv = require "musicvae"
    local m = assert(mv.load())
    assert.has_error(function() require("musicvae.evaluate").metrics(m, mv.core.zeros(1, 64), { batch_size = 0 }) end)
  end)
end)

describe("safetensors headers: duplicate checks are not quadratic, counts are bounded", function()
  local function load_in_child(case, n)
    local dir = H.tmpdir()
    local p = dir .. "/case.safetensors"
    H.writefile(p, C.safetensors[case](n))
    local out, err, code, mb = child(([[
      local st = require "musicvae.safetensors"
      local t, meta = st.load(%q)
      if not t then
        io.write("error\t", meta)
      else
        local nt, nm = 0, 0
        for _ in pairs(t) do nt = nt + 1 end
        for _ in pairs(meta) do nm = nm + 1 end
        io.write("ok\t", nt, "\t", nm)
      end
    ]]):format(p))
    H.rmtree(dir)
    assert.equal(0, code, err)
    assert.is_true(mb < 300, mb .. " MB")
    return out
  end

  it("reads 100k zero-size tensors and 200k metadata keys", function()
    assert.equal("ok\t100000\t0", load_in_child("many_tensors", 100000))
    assert.equal("ok\t0\t200000", load_in_child("many_metadata", 200000))
  end)

  it("still finds a duplicate at the end of a long header, and refuses counts past the limits", function()
    assert.equal('error\tcase.safetensors: safetensors header: tensor "t1" appears twice',
      (load_in_child("duplicate_last", 100000):gsub("^error\t.*/", "error\t")))
    local limit = 1 << 18
    assert.truthy(load_in_child("many_tensors", limit + 1):find("more than " .. limit .. " tensors", 1, true))
    assert.truthy(load_in_child("many_metadata", limit + 1):find("more than " .. limit .. " __metadata__ entries", 1, true))
    assert.truthy(load_in_child("many_metadata", limit):find("^ok"))
  end)
end)

describe("MIDI reading is linear in the file's events (no libsmf load)", function()
  local function read_in_child(bytes)
    local dir = H.tmpdir()
    local p = dir .. "/case.mid"
    H.writefile(p, bytes)
    local out, err, code, mb = child(([[
      local midi = require "musicvae.midi"
      local s, e = midi.read(%q)
      if s then io.write("ok\t", #s.notes, "\t", s.tracks, "\t", #s.tempos) else io.write("error\t", e) end
    ]]):format(p))
    H.rmtree(dir)
    assert.equal(0, code, err)
    assert.equal("", err)
    assert.is_true(mb < 300, mb .. " MB")
    return out
  end

  it("reads 100k notes, 65,535 empty tracks and 50k tempo changes", function()
    assert.equal("ok\t100000\t1\t0", read_in_child(C.midi.many_notes(100000)))
    assert.equal("ok\t0\t65535\t0", read_in_child(C.midi.many_tracks(65535)))
    assert.equal("ok\t50000\t1\t50000", read_in_child(C.midi.many_tempos(50000)))
  end)

  it("refuses a file with more events than the documented limit, in one line", function()
    local limit = 1 << 21
    assert.truthy(read_in_child(C.midi.many_events(limit)):find("^ok\t0\t1\t0"))
    local out = read_in_child(C.midi.many_events(limit + 1))
    assert.truthy(out:match("^error\t[^\n]*the limit is " .. limit .. "$"), out)
  end)
end)

describe("bench/hostile.lua", function()
  it("prints one JSON line per case with its time, peak memory and outcome", function()
    local json = require "musicvae.json"
    local out, err, code = H.run("cd " .. H.shell_quote(H.root) .. " && lua5.4 bench/hostile.lua --only midi_huge_delta_37_bytes",
      { MUSICVAE_BUILD = H.build_dir() })
    assert.equal(0, code, err)
    local r = assert(json.decode(out:match("[^\n]+")))
    assert.equal("hostile", r.what)
    assert.equal("midi_huge_delta_37_bytes", r.case)
    assert.equal(37, r.bytes)
    assert.is_true(r.seconds >= 0 and r.peak_rss_mb > 0)
    assert.truthy(r.outcome:find("^error: [^\n]*limit is 131072 steps"), r.outcome)
  end)
end)
