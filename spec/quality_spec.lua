local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"
local core = require "musicvae.core"
local F = require "musicvae.features"
local Q = require "musicvae.quality"

-- Two bars counted by hand: kick on 1 and 3 (and the last 16th of bar 1), snare on 2 and 4,
-- closed hi-hat on every 8th.
local KICK, SNARE, HH = 1, 2, 4
local function two_bars()
  local bar = {}
  for s = 1, 16 do bar[s] = 0 end
  for s = 1, 15, 2 do bar[s] = HH end
  bar[1], bar[9] = KICK | HH, KICK | HH
  bar[5], bar[13] = SNARE | HH, SNARE | HH
  local l = {}
  for s = 1, 16 do l[s], l[16 + s] = bar[s], bar[s] end
  l[16] = KICK
  return l
end

describe("pattern features", function()
  it("count a hand-made pattern", function()
    local f = F.features(two_bars(), 16)
    assert.same({ 5, 4, 16, 0, 0, 0, 0, 0, 0 }, f.hits)
    assert.same({ 15 }, f.empty_steps)
    assert.same({ 5 }, f.distinct_labels) -- 5, 4, 6, 1, 0
    assert.same({ 1 }, f.bar_hamming)
    assert.same({ 2 }, f.distinct_bars)
    assert.near(1 / 25, f.off_8th[1], 1e-12)
    assert.near(0.5, f.kick_quarters[1], 1e-12)
    assert.near(1, f.snare_backbeat[1], 1e-12)
    assert.near(2 / 16, f.ioi_hist[1], 1e-12)
    assert.near(14 / 16, f.ioi_hist[2], 1e-12)
    assert.equal(17, #f.ioi_hist)
    assert.near(2 / 17, f.onset_hist[1], 1e-12)
    assert.near(1 / 17, f.onset_hist[16], 1e-12)
    assert.equal(0, f.onset_hist[2])
  end)

  it("give the named attributes of the same pattern", function()
    local a = F.attributes(two_bars(), 16)
    assert.near(12.5, a.density, 1e-12)
    assert.near(2.5, a.kick, 1e-12)
    assert.near(2, a.snare, 1e-12)
    assert.near(8, a.hihat, 1e-12)
    assert.equal(0, a.toms)
    assert.equal(0, a.cymbals)
    assert.near(1 / 25, a.syncopation16, 1e-12)
    assert.near(9 / 25, a.syncopation8, 1e-12)
    assert.near(1, a.variation, 1e-12)
    assert.near(15 / 32, a.empty_steps, 1e-12)
    for _, name in ipairs(F.ATTRIBUTES) do assert.is_number(a[name], name) end
  end)
end)

describe("realism statistics", function()
  local function normals(n, seed, shift)
    local r, out = core.rng(seed, "test"), {}
    for i = 1, n do out[i] = r:normal() + (shift or 0) end
    return out
  end

  it("give OA 1 and KL 0 for two identical sets", function()
    local xs = normals(2000, 1)
    local oa, kl = Q.oa_kl(xs, xs)
    assert.near(1, oa, 1e-9)
    assert.near(0, kl, 1e-9)
  end)

  it("fall as a copy is shifted away", function()
    local xs = normals(2000, 1)
    local prev_oa, prev_kl = 1, 0
    for _, shift in ipairs { 0.5, 1, 2, 4 } do
      local oa, kl = Q.oa_kl(xs, normals(2000, 1, shift))
      assert.is_true(oa < prev_oa, "OA falls at shift " .. shift)
      assert.is_true(kl > prev_kl, "KL grows at shift " .. shift)
      prev_oa, prev_kl = oa, kl
    end
    -- two unit normals 4 apart overlap by 2 * Phi(-2) = 0.0455 (the estimate is a little wider)
    assert.is_true(prev_oa > 0.02 and prev_oa < 0.12, prev_oa)
    -- and 1 apart by 2 * Phi(-0.5) = 0.617
    local oa1 = Q.oa_kl(xs, normals(2000, 1, 1))
    assert.near(0.617, oa1, 0.05)
  end)

  it("position is 0 at the baseline and 1 at real data", function()
    assert.equal(0, Q.position(0.5, 0.5, 0.9))
    assert.equal(1, Q.position(0.9, 0.5, 0.9))
    assert.near(0.5, Q.position(0.7, 0.5, 0.9), 1e-12)
  end)
end)

describe("the bar-position 4-gram baseline", function()
  local rows = {}
  local r = core.rng(3, "test")
  for i = 1, 20 do
    local seq = {}
    for s = 1, 32 do seq[s] = (s % 4 == 1) and 1 or math.floor(r:uniform() * 8) end
    rows[i] = seq
  end
  local g = Q.NGram.train(rows, 16)

  it("has probabilities that sum to 1, for seen and unseen histories", function()
    local unseen = {}
    for s = 1, 32 do unseen[s] = 511 end
    for _, seq in ipairs { rows[1], rows[7], unseen } do
      for _, s in ipairs { 1, 2, 5, 16, 17, 32 } do
        local sum = 0
        for w = 0, 511 do sum = sum + g:prob(seq, s, w) end
        assert.near(1, sum, 1e-9)
      end
    end
    -- what it saw is likelier than what it did not
    assert.is_true(g:prob(rows[1], 5, 1) > 0.5)
    assert.is_true(g:prob(rows[1], 5, 300) < 1e-3)
  end)

  it("samples what it was trained on", function()
    local same = {}
    for i = 1, 50 do same[i] = rows[1] end
    local g1 = Q.NGram.train(same, 16)
    local rng = core.rng(1, "test")
    local hits, total = 0, 0
    for _ = 1, 20 do
      local s = g1:sample(32, rng)
      for k = 1, 32 do
        total = total + 1
        if s[k] == rows[1][k] then hits = hits + 1 end
      end
    end
    assert.is_true(hits / total > 0.9, hits / total)
  end)
end)

describe("reconstruction, latent and memorisation measures", function()
  it("compare inputs and reconstructions", function()
    local a, b = two_bars(), two_bars()
    b[20] = b[20] | SNARE -- one extra hit in bar 2
    local c = Q.compare({ a, a }, { a, b }, 16)
    assert.near(3 / 4, c.bars_exact, 1e-12)
    assert.equal(2, c.distinct_bars_input)
    assert.equal(2, c.distinct_bars)
    -- 50 true hits, 49 + 1 found... tp 50, fp 1, fn 0
    assert.near(2 * 50 / (2 * 50 + 1), c.hit_f1, 1e-12)
  end)

  it("KL per dimension, active units and the half-KL count from known mu and sigma", function()
    local mu = core.tensor { { 1, 0, 0.2 }, { -1, 0, 0.2 } }
    local sigma = core.tensor { { 1, 1, 0.5 }, { 1, 1, 0.5 } }
    local l = Q.latent(mu, sigma)
    assert.near(0.5, l.kl_per_dim[1], 1e-6)
    assert.near(0, l.kl_per_dim[2], 1e-6)
    local k3 = 0.5 * (0.04 + 0.25 - 1 - 2 * math.log(0.5))
    assert.near(k3, l.kl_per_dim[3], 1e-6)
    assert.near(0.5 + k3, l.kl, 1e-6)
    assert.equal(1, l.active_units) -- only dimension 1's mu varies
    assert.equal(1, l.half_kl_dims)
  end)

  it("finds exact copies and copies within 2 steps, not 3", function()
    local rows, r = {}, core.rng(5, "test")
    for i = 1, 200 do
      local seq = {}
      for s = 1, 64 do seq[s] = math.floor(r:uniform() * 512) end
      rows[i] = seq
    end
    local idx = Q.index(rows)
    local function changed(row, steps)
      local c = {}
      for k, v in ipairs(row) do c[k] = v end
      for _, s in ipairs(steps) do c[s] = (c[s] + 1) % 512 end
      return c
    end
    assert.same({ true, true }, { idx:copies(rows[17]) })
    assert.same({ false, true }, { idx:copies(changed(rows[17], { 3, 40 })) })
    assert.same({ false, true }, { idx:copies(changed(rows[17], { 1, 2 })) })
    assert.same({ false, false }, { idx:copies(changed(rows[17], { 3, 30, 60 })) })
    local m = Q.memorisation(idx, { rows[1], changed(rows[2], { 5 }), changed(rows[3], { 5, 25, 50 }) })
    assert.near(1 / 3, m.exact, 1e-12)
    assert.near(2 / 3, m.within2, 1e-12)
  end)
end)

describe("the quality report", function()
  local dir, model_path, data
  setup(function()
    dir = H.tmpdir()
    model_path = dir .. "/tiny.safetensors"
    assert(mv.Model.new("tiny", 1):save(model_path))
    data = dir .. "/t.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, {}))
  end)
  teardown(function() H.rmtree(dir) end)

  it("measures a model against a dataset, the same for the same seed", function()
    local m = assert(mv.Model.load(model_path))
    local ds = assert(mv.data.load(data))
    local all = ds.splits.train.labels
    local rep = assert(Q.report(m, all, { n = 12, seed = 3, pairs = 5, train = all }))
    local again = assert(Q.report(m, all, { n = 12, seed = 3, pairs = 5, train = all }))
    assert.equal(json.encode(rep), json.encode(again))
    for _, feat in ipairs(F.FEATURES) do
      for _, set in ipairs { "model", "baseline", "real" } do
        local v = rep.realism.features[feat][set]
        assert.is_true(v.oa >= 0 and v.oa <= 1, feat .. " " .. set)
        assert.is_true(v.kl >= 0, feat .. " " .. set)
      end
    end
    -- the real set is the reference itself here: its distances match the reference's own
    assert.is_true(rep.realism.mean.real.oa > 0.8, rep.realism.mean.real.oa)
    -- memorisation of real train windows: the reference windows are the train windows
    local c = rep.reconstruction
    assert.is_true(c.tf_accuracy >= 0 and c.tf_accuracy <= 1)
    assert.equal(5, rep.interpolation.pairs)
    assert.equal(16, rep.latent.dims)
    assert.is_number(rep.memorisation.samples.exact)
  end)

  it("runs from the command line, with JSON on the last line, and says what it left out", function()
    local out, err, code = H.cli("quality --model " .. H.shell_quote(model_path) .. " " .. H.shell_quote(data) ..
      " --split train -n 8 --pairs 3 --json")
    assert.equal(0, code, err)
    local last = out:match("([^\n]+)\n$")
    local rep = json.decode(last)
    assert.equal(8, rep.n)
    assert.is_number(rep.realism.position)
    -- a MIDI folder without --train: no baseline, and the report says so
    out, err, code = H.cli("quality --model " .. H.shell_quote(model_path) .. " " ..
      H.shell_quote(H.root .. "/spec/fixtures/midi") .. " -n 4 --pairs 2")
    assert.equal(0, code, err)
    assert.matches("left out: .-%-%-train", out)
    _, err, code = H.cli("quality --model gmd-4bar-humanize " .. H.shell_quote(data))
    assert.equal(1, code)
    assert.matches("^musicvae: .-groove model[^\n]*\n$", err)
    _, err, code = H.cli("quality --model " .. H.shell_quote(model_path) .. " " .. H.shell_quote(data) .. " -n 1")
    assert.equal(2, code)
  end)
end)
