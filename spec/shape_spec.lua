-- The model's config is the single source of its shape: bars, steps per bar, drum map and kind
-- reach every reader, window cutter, writer and generator; unknown config keys are errors.
local mv = require "musicvae"
local H = require "spec.helpers"
local T = require "musicvae.train"
local json = require "musicvae.json"

-- a drum pattern of `bars` bars: kick, snare and hi-hats, a tom on the last 16th of every bar
local function groove_of(bars)
  local labels = {}
  for s = 1, bars * 16 do
    local q = (s - 1) % 16
    local l = 4
    if q == 0 or q == 8 then l = l | 1 end
    if q == 4 or q == 12 then l = l | 2 end
    if q == 15 then l = l | 16 end
    labels[s] = (s // 16) % 2 == 0 and l or l | 256
  end
  return mv.pattern { labels = labels, bars = bars }
end

describe("the model's shape", function()
  local dir, model8, short, long
  setup(function()
    dir = H.tmpdir()
    local m = mv.Model.new(mv.Model.config("tiny", { bars = 8, drum_map = "roland" }), 5)
    model8 = dir .. "/eight.safetensors"
    assert(m:save(model8))
    m:close()
    short, long = dir .. "/four.mid", dir .. "/twelve.mid"
    assert(mv.midi.write(short, groove_of(4), { map = "roland" }))
    assert(mv.midi.write(long, groove_of(12), { map = "roland" }))
  end)
  teardown(function() H.rmtree(dir) end)

  it("an input shorter than the model's bars is a one-line error, never padded", function()
    for _, cmd in ipairs {
      "reconstruct --model " .. model8 .. " " .. short .. " -o " .. dir .. "/r0 -q",
      "similar --model " .. model8 .. " " .. short .. " --seed 1 -o " .. dir .. "/s0 -q",
      "interpolate --model " .. model8 .. " " .. short .. " " .. long .. " -o " .. dir .. "/i0 -q",
      "eval --model " .. model8 .. " " .. short,
    } do
      local _, err, code = H.cli(cmd)
      assert.equal(1, code, cmd)
      assert.matches("^musicvae: [^\n]*no 8%-bar drum window[^\n]*\n$", err)
    end
    assert.is_nil(io.open(dir .. "/r0/reconstruct-s0-t0-001.mid"))
    -- and in Lua: a pattern shorter than the model raises
    local m = assert(mv.Model.load(model8))
    local ok, why = pcall(m.encode, m, groove_of(4))
    assert.is_false(ok)
    assert.matches("pattern has 4 bars, the model needs 8", why)
    m:close()
  end)

  it("windows, written files and sidecars have the model's bars; eval cuts the model's windows", function()
    local _, err, code = H.cli("reconstruct --model " .. model8 .. " " .. long .. " -o " .. dir .. "/r -q")
    assert.equal(0, code, err)
    local side = json.decode(H.readfile(dir .. "/r/reconstruct-s0-t0-001.json"))
    assert.equal(8, side.bars)
    local back = assert(mv.midi.labels(dir .. "/r/reconstruct-s0-t0-001.mid", { map = "roland" }))
    assert.is_true(back.steps <= 128 and back.steps > 64, "8 bars, not 4 padded: " .. back.steps)
    -- the windows start at bars 1-5 of the 12-bar file (8-bar windows at a 1-bar hop)
    local _, err2, code2 = H.cli("reconstruct --model " .. model8 .. " " .. long .. " --bar 6 -o " .. dir .. "/r6 -q")
    assert.equal(1, code2)
    assert.matches("no 8%-bar window starts at bar 6", err2)
    local out, err3, code3 = H.cli("eval --json --model " .. model8 .. " " .. long)
    assert.equal(0, code3, err3)
    local r = json.decode(out:match("[^\n]+\n?$"))
    assert.is_true(r.windows >= 2 and r.windows <= 5, tostring(r.windows))
    local m = assert(mv.Model.load(model8))
    local w = assert(mv.evaluate.windows_from_midi(long, m:window_options()))
    assert.same({ r.windows, 128 }, w:size())
    m:close()
  end)

  it("generation writes with the model's drum map", function()
    local _, err, code = H.cli("sample --model " .. model8 .. " -n 3 --temperature 1 --seed 2 -o " .. dir .. "/s -q")
    assert.equal(0, code, err)
    local roland = {}
    for _, p in ipairs(mv.drums.exemplars(mv.drums.map("roland"))) do roland[p] = true end
    local notes = 0
    for i = 1, 3 do
      local f = ("%s/s/sample-s2-t1-%03d.mid"):format(dir, i)
      local info = assert(mv.midi.read(f))
      for _, n in ipairs(info.notes) do
        assert.is_true(roland[n.pitch], "pitch " .. n.pitch .. " is not a roland exemplar")
        notes = notes + 1
      end
    end
    assert.is_true(notes > 0)
  end)

  it("training records the dataset's drum map in the model", function()
    local data = dir .. "/roland.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, { map = "roland" }))
    local tr = assert(T.new { data = data, config = { enc = { 8 }, cond = { 8 }, dec = { 8 }, z = 4, batch_size = 2 },
      out = dir .. "/run", seed = 1 })
    assert.same(mv.drums.map("roland"), tr.model.config.drum_map)
    local path = assert(tr:checkpoint())
    local m = assert(mv.Model.load(path))
    assert.same(mv.drums.map("roland"), m:drum_map())
    m:close()
  end)
end)

describe("config keys", function()
  it("one list of architecture keys, used by training's resume guard", function()
    for _, k in ipairs(mv.Model.ARCH) do assert.is_true(T.ARCH[k], k) end
    for k in pairs(T.ARCH) do assert.is_true(mv.Model.KEYS[k], k) end
    assert.is_true(T.ARCH.groove and T.ARCH.mode and true)
  end)

  it("an unknown key is an error naming the closest known key", function()
    local ok, why = pcall(mv.Model.config, "tiny", { max_betta = 0.5 })
    assert.is_false(ok)
    assert.matches("unknown config key 'max_betta' %(did you mean max_beta%?%)", why)
    assert.matches("did you mean lr_schedule%?", select(2, mv.Model.check_key("lr")))
    assert.matches("did you mean keep_prob%?", select(2, mv.Model.check_key("keepprob")))
    ok, why = pcall(mv.Model.config, { enc = { 8 }, cond = { 8 }, dec = { 8 }, zz = 4 })
    assert.is_false(ok)
    assert.matches("'zz'", why)
    local _, err, code = H.cli("train --data x.mvd --out " .. H.tmpdir() .. "/r --steps 1 --set max_betta=0.5")
    assert.equal(2, code)
    assert.equal("musicvae: --set max_betta=0.5: unknown config key 'max_betta' (did you mean max_beta?)\n", err)
  end)

  it("defaults live in one place: the learning rate and clipping are the core's Adam defaults", function()
    local a = mv.core.adam_defaults()
    local c = mv.Model.config("small")
    assert.equal(a.lr, c.learning_rate)
    assert.equal(a.clip_norm, c.grad_clip)
    assert.equal(a.zero_above, c.grad_norm_clip_to_zero)
    -- the core has no architecture defaults of its own
    assert.has_error(function() mv.core.vae_new { input_depth = 10, vocab = 512, bars = 4, steps = 16,
      enc = { 8 }, cond = { 8 }, dec = { 8 } } end, "config: z must be an integer")
  end)
end)
