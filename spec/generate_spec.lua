local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"

local ROCK = H.root .. "/spec/fixtures/midi/rock-8bars-120.mid"
local CUT = H.root .. "/spec/fixtures/midi/cut-time-2-2.mid"

describe("generation", function()
  local dir, model
  setup(function()
    dir = H.tmpdir()
    model = dir .. "/tiny.safetensors"
    local m = mv.Model.new("tiny", 1)
    assert(m:save(model))
  end)
  teardown(function() H.rmtree(dir) end)

  local function cli(args)
    return H.cli((args:gsub("MODEL", H.shell_quote(model))))
  end

  it("sample is deterministic by seed, differs across seeds, and pattern i does not depend on n", function()
    local out, err, code = cli("sample --model MODEL -n 3 --seed 7 -o " .. dir .. "/a -q")
    assert.equal(0, code, err)
    _, err, code = cli("sample --model MODEL -n 1 --seed 7 -o " .. dir .. "/b -q")
    assert.equal(0, code, err)
    _, err, code = cli("sample --model MODEL -n 3 --seed 8 -o " .. dir .. "/c -q")
    assert.equal(0, code, err)
    local a1 = H.readfile(dir .. "/a/sample-s7-t0.5-001.mid")
    assert.equal(a1, H.readfile(dir .. "/b/sample-s7-t0.5-001.mid"))
    local differ = false
    for i = 1, 3 do
      local f = ("/sample-s%%d-t0.5-%03d.mid"):format(i)
      if H.readfile(dir .. "/a" .. f:format(7)) ~= H.readfile(dir .. "/c" .. f:format(8)) then differ = true end
    end
    assert.is_true(differ)
    -- the sidecar
    local side = json.decode(H.readfile(dir .. "/a/sample-s7-t0.5-002.json"))
    assert.equal("sample", side.mode)
    assert.equal(7, side.seed)
    assert.equal(2, side.index)
    assert.equal(0.5, side.temperature)
    assert.equal(16, #side.z)
    assert.equal(64, #side.model_sha256)
    assert.equal(mv.core.sha256(H.readfile(model)), side.model_sha256)
    -- pattern 3 alone from the Lua API
    local m = assert(mv.Model.load(model))
    local p3 = m:sample { n = 1, seed = 7, temperature = 0.5, first_index = 3 }
    local back = assert(mv.midi.labels(dir .. "/a/sample-s7-t0.5-003.mid"))
    for s = 1, 64 do assert.equal(p3[1].labels[s], back.labels[s] or 0) end
    -- the output reads back as a 4-bar, 480 ppq, 120 qpm file
    local song = assert(mv.midi.read(dir .. "/a/sample-s7-t0.5-001.mid"))
    assert.equal(480, song.ppq)
    assert.near(120, song.qpm, 1e-3)
    -- no overwriting without --force
    out, err, code = cli("sample --model MODEL -n 1 --seed 7 -o " .. dir .. "/b -q")
    assert.equal(1, code)
    assert.matches("^musicvae: .-exists; use %-%-force", err)
    _, _, code = cli("sample --model MODEL -n 1 --seed 7 -o " .. dir .. "/b -q --force")
    assert.equal(0, code)
    -- a seed is picked and printed without --seed
    out, err, code = cli("sample --model MODEL -n 1 -o " .. dir .. "/d -q")
    assert.equal(0, code, err)
    assert.matches("^seed %d+\n", out)
  end)

  it("interpolation endpoints decode like their inputs' mu", function()
    local m = assert(mv.Model.load(model))
    local a = mv.pattern { labels = { 5, 0, 4, 0, 6, 0, 4, 0, 5, 0, 4, 0, 6, 0, 4, 1 }, bars = 4 }
    local b = mv.pattern { labels = { 1, 1, 2, 0, 256, 0, 2, 0 }, bars = 4 }
    for _, o in ipairs { { temperature = 0 }, { temperature = 0.7, seed = 4 } } do
      local pts = m:interpolate(a, b, { steps = 5, temperature = o.temperature, seed = o.seed })
      assert.equal(5, #pts)
      local mu = m:encode { a, b }
      local da = m:decode(mu:narrow(1, 1, 1):contiguous(), { temperature = o.temperature, seed = o.seed, first_index = 1 })
      local db = m:decode(mu:narrow(1, 2, 1):contiguous(), { temperature = o.temperature, seed = o.seed, first_index = 5 })
      assert.same(da[1].labels, pts[1].labels)
      assert.same(db[1].labels, pts[5].labels)
    end
    -- slerp of a vector with itself is itself; lerp midpoint
    local v = mv.Model.slerp({ 1, 2, 3 }, { 1, 2, 3 }, 0.3)
    assert.near(2, v[2], 1e-12)
    local w = mv.Model.slerp({ 1, 0 }, { 0, 1 }, 0.5)
    assert.near(math.sqrt(0.5), w[1], 1e-12)
  end)

  it("reconstruct, interpolate and similar write files that read back, keeping the input's tempo", function()
    local out, err, code = cli("reconstruct --model MODEL " .. H.shell_quote(ROCK) .. " -o " .. dir .. "/r -q")
    assert.equal(0, code, err)
    local n = select(2, out:gsub("%.mid\n", ""))
    assert.is_true(n >= 2)
    local song = assert(mv.midi.read(dir .. "/r/reconstruct-s0-t0-001.mid"))
    assert.near(120, song.qpm, 1e-3)
    local side = json.decode(H.readfile(dir .. "/r/reconstruct-s0-t0-002.json"))
    assert.equal(ROCK, side.inputs[1].file)
    assert.equal(2, side.inputs[1].bar) -- window i starts at bar i (1-bar hop)
    assert.equal(2, side.index)
    out, err, code = cli("reconstruct --model MODEL " .. H.shell_quote(ROCK) .. " --bar 2 -o " .. dir .. "/r2 -q")
    assert.equal(0, code, err)
    assert.equal(1, select(2, out:gsub("%.mid\n", "")))
    -- encoding and decoding are batch-independent: window 2 alone comes out as in the whole file
    assert.equal(H.readfile(dir .. "/r/reconstruct-s0-t0-002.mid"), H.readfile(dir .. "/r2/reconstruct-s0-t0-001.mid"))
    assert.same(side.z, json.decode(H.readfile(dir .. "/r2/reconstruct-s0-t0-001.json")).z)
    _, err, code = cli("reconstruct --model MODEL " .. H.shell_quote(ROCK) .. " --bar 40 -o " .. dir .. "/r3 -q")
    assert.equal(1, code)
    assert.matches("no 4%-bar window starts at bar 40", err)

    out, err, code = cli("interpolate --model MODEL " .. H.shell_quote(ROCK) .. " " .. H.shell_quote(CUT) ..
      " --steps 4 -o " .. dir .. "/i -q")
    assert.equal(0, code, err)
    assert.matches("using the window at bars 1%-4", out)
    for i = 1, 4 do assert.truthy(mv.midi.read(("%s/i/interpolate-s0-t0-%03d.mid"):format(dir, i))) end
    local all = assert(mv.midi.labels(dir .. "/i/interpolate-s0-t0-all.mid"))
    local iside = json.decode(H.readfile(dir .. "/i/interpolate-s0-t0-003.json"))
    assert.same({ ROCK, CUT }, { iside.inputs[1].file, iside.inputs[2].file })
    assert.equal(16, #iside.z)
    assert.is_true(all.steps > 3 * 64 and all.steps <= 4 * 64)
    _, err, code = cli("interpolate --model MODEL " .. H.shell_quote(ROCK) .. " " .. H.shell_quote(CUT) ..
      " --lerp --steps 3 -o " .. dir .. "/i2 -q")
    assert.equal(0, code, err)

    out, err, code = cli("similar --model MODEL " .. H.shell_quote(ROCK) .. " -n 3 --seed 2 -o " .. dir .. "/s -q")
    assert.equal(0, code, err)
    assert.truthy(mv.midi.read(dir .. "/s/similar-s2-t0.5-003.mid"))
    local s2 = json.decode(H.readfile(dir .. "/s/similar-s2-t0.5-001.json"))
    assert.equal(1, s2.inputs[1].bar)
    assert.equal(ROCK, s2.inputs[1].file)
  end)

  it("names the models folder without detours in sidecars", function()
    local models = require "musicvae.models"
    assert.equal("models", models.tidy("bin/../lua/../models"))
    assert.equal("/a/c", models.tidy("/a/b/../c"))
    assert.equal("../../y", models.tidy("../x/../../y"))
    assert.equal("a/b", models.tidy("./a/./b"))
    assert.equal(".", models.tidy("a/.."))
    local d = models.dir()
    if d then
      assert.is_nil(d:find("/../", 1, true), d)
      assert.is_true(mv.core.isdir(d))
    end
  end)

  it("show, plot, eval and labels run end to end", function()
    local out, err, code = H.cli("show " .. H.shell_quote(ROCK) .. " --svg " .. dir .. "/g.svg")
    assert.equal(0, code, err)
    -- the fixture's hits are all played at velocity >= 100, so they show as loud X
    assert.matches("BD |X---", out, 1, true)
    assert.matches("X loud (>= 100): 102", out, 1, true)
    assert.matches("^<svg", H.readfile(dir .. "/g.svg"))
    local log = dir .. "/log.csv"
    H.writefile(log, "step,epoch,seconds,seq_per_s,loss,recon,kl,beta,p_sample,lr,grad_norm,skipped,val_loss," ..
      "val_tf_accuracy,val_sampled_accuracy\n1,0,1,10,5,4,3,0.2,0.1,0.001,1,0,,,\n2,0,2,10,4,3,2,0.2,0.2,0.001,1,0,4,0.5,0.4\n")
    _, err, code = H.cli("plot " .. log .. " -o " .. dir .. "/c.svg")
    assert.equal(0, code, err)
    assert.matches("polyline", H.readfile(dir .. "/c.svg"))
    _, err, code = H.cli("plot " .. H.shell_quote(ROCK) .. " -o " .. dir .. "/c2.svg")
    assert.equal(1, code)
    -- eval on a file, a folder and a dataset; the last stdout line is JSON
    local data = dir .. "/d.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, {}))
    for _, target in ipairs { H.shell_quote(ROCK), H.shell_quote(H.root .. "/spec/fixtures/midi"), data } do
      out, err, code = cli("eval --model MODEL " .. target .. " --json")
      assert.equal(0, code, err)
      local r = assert(json.decode(out:match("([^\n]+)\n$")))
      assert.is_true(r.windows >= 1)
      for _, k in ipairs { "tf_accuracy", "sampled_accuracy", "recon_nll", "kl" } do assert.is_number(r[k], k) end
    end
    _, err, code = cli("eval --model MODEL " .. data .. " --split test")
    assert.equal(1, code)
    assert.matches("no 'test' windows", err)
  end)

  it("mv.load takes a path or a name and returns nil, err otherwise", function()
    local m = assert(mv.load(model))
    assert.equal(model, m.path)
    local none, err = mv.load("no-such-model")
    assert.is_nil(none)
    assert.matches("no model named 'no%-such%-model'", err)
    none, err = mv.load("/nope/x.safetensors")
    assert.is_nil(none)
    assert.matches("no such model file", err)
  end)

  it("finds models by name and from MUSICVAE_MODEL, and says what is wrong otherwise", function()
    local out, err, code = H.cli("sample -n 1 --seed 1 -o " .. dir .. "/e -q", { MUSICVAE_MODEL = model })
    assert.equal(0, code, err)
    _, err, code = H.cli("sample --model no-such-model -n 1 -o " .. dir .. "/f")
    assert.equal(1, code)
    assert.matches("^musicvae: no model named 'no%-such%-model'[^\n]*\n$", err)
    _, err, code = H.cli("sample --model /nope/x.safetensors -n 1 -o " .. dir .. "/f")
    assert.equal(1, code)
    assert.matches("^musicvae: [^\n]+\n$", err)
    H.writefile(dir .. "/bad.safetensors", "garbage")
    _, err, code = H.cli("sample --model " .. dir .. "/bad.safetensors -n 1 -o " .. dir .. "/f")
    assert.equal(1, code)
    assert.matches("^musicvae: [^\n]+\n$", err)
    for _, args in ipairs { "sample --model MODEL -n 1", "sample --model MODEL -n 0 -o x",
      "sample --model MODEL --temperature -1 -o x", "reconstruct --model MODEL -o x",
      "interpolate --model MODEL a.mid -o x", "similar --model MODEL --similarity 2 a.mid -o x" } do
      out, err, code = cli(args)
      assert.equal(2, code, args)
      assert.matches("^musicvae: [^\n]+\n$", err, args)
    end
    _, err, code = cli("reconstruct --model MODEL " .. H.shell_quote(H.root .. "/spec/fixtures/hostile/05-format-2.mid") ..
      " -o " .. dir .. "/h")
    assert.equal(1, code)
    assert.matches("^musicvae: .-format 2[^\n]*\n$", err)
    _, err, code = cli("reconstruct --model MODEL " .. H.shell_quote(H.root .. "/spec/fixtures/midi/waltz-3-4.mid") ..
      " -o " .. dir .. "/h")
    assert.equal(1, code)
    assert.matches("meter", err)
  end)

  it("train runs from the command line", function()
    local data = dir .. "/t.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, {}))
    local out, err, code = H.cli("train --data " .. data .. " --config tiny --set batch_size=2 --set z=8 " ..
      "--out " .. dir .. "/run --steps 5 --val-every 5")
    assert.equal(0, code, err)
    assert.matches("done after step 5", out)
    assert.matches("validation: loss", out)
    _, err, code = H.cli("train --data " .. data .. " --out " .. dir .. "/run2")
    assert.equal(2, code)
    assert.matches("%-%-minutes or %-%-steps", err)
    _, err, code = H.cli("train --data " .. data .. " --set nonsense --out " .. dir .. "/run3 --steps 1")
    assert.equal(2, code)
  end)
end)
