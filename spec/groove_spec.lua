-- GrooVAE: groove data, the flat groove model, humanize, groove metrics and the CLI.
local mv = require "musicvae"
local H = require "spec.helpers"
local T = require "musicvae.train"
local Eval = require "musicvae.evaluate"

local micro = { enc = { 16 }, dec = { 16 }, z = 8, batch_size = 4, free_bits = 0, learning_rate = 3e-3,
  keep_prob = 0.8 }

-- a micro groove model of the given mode trained on data for steps steps into out:
-- the trainer, its config and the losses logged every 10 steps
local function micro_run(data, out, mode, seed, steps)
  local cfg = { groove = true, mode = mode, input_depth = 27, vocab = 27 }
  for k, v in pairs(micro) do cfg[k] = v end
  local tr = assert(T.new { data = data, config = cfg, out = out, seed = seed })
  local losses = {}
  assert(tr:run { steps = steps, log_every = 10, val_every = 0, on_line = function(row) losses[#losses + 1] = row.loss end })
  return tr, cfg, losses
end

-- a groove pattern with every velocity and offset known
local function groove_pattern(seed)
  local r = mv.rng(seed, "groove-spec")
  local labels, vel, off = {}, {}, {}
  for s = 1, 64 do
    labels[s] = r:integer(0, 511)
    vel[s], off[s] = {}, {}
    for c = 1, 9 do
      if labels[s] & (1 << (c - 1)) ~= 0 then
        vel[s][c] = r:integer(1, 127)
        off[s][c] = r:integer(-29, 29) / 60 -- steps, exact at 480 ticks per quarter
      end
    end
  end
  return mv.pattern { labels = labels, qpm = 100, velocities = vel, offsets = off }
end

describe("groove data", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("prepare --groove stores magenta's 27 floats per step, consistent with the labels and the file", function()
    local data = dir .. "/g.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, { groove = true }))
    local ds = assert(mv.data.load(data))
    assert.is_true(ds.groove)
    assert.equal("1", ds.meta.groove)
    local n = 0
    for _, split in ipairs { "train", "validation", "test" } do
      local s = ds.splits[split]
      if s and s.labels:size(1) > 0 then
        assert.same({ s.labels:size(1), 64, 27 }, s.groove:size())
        for i = 1, s.labels:size(1) do
          local labels, file, bar = ds:window(split, i)
          local g = s.groove:select(1, i):contiguous():view(-1):totable()
          -- the window's groove from the file itself
          local p = assert(mv.midi.groove(H.root .. "/spec/fixtures/midi/" .. file))
          local first = (bar - 1) * 16
          for st = 1, 64 do
            for c = 1, 9 do
              local hit = (labels[st] >> (c - 1)) & 1
              local b = (st - 1) * 27
              assert.equal(hit, g[b + c])
              local v = p.velocities[first + st] and p.velocities[first + st][c]
              if hit == 1 then
                assert.near(v / 127, g[b + 9 + c], 1e-6)
                assert.near(2 * p.offsets[first + st][c], g[b + 18 + c], 1e-5)
              else
                assert.equal(0, g[b + 9 + c])
                assert.equal(0, g[b + 18 + c])
              end
            end
          end
          n = n + 1
        end
      end
    end
    assert.is_true(n > 0)
    -- batches of the groove tensor
    local it = ds:batches("train", { batch_size = 3, groove = true })
    local b = it()
    assert.same({ 3, 64, 27 }, b:size())
    assert.has_error(function()
      local d2 = dir .. "/plain.mvd"
      assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", d2, {}))
      assert(mv.data.load(d2)):batches("train", { groove = true })
    end)
  end)
end)

describe("the groove model", function()
  it("has magenta's flat-decoder names and shapes", function()
    local m = mv.Model.new(mv.Model.config("groove"), 1)
    local shapes = {}
    for _, p in ipairs(m.vae:param_list()) do shapes[p.name] = p.shape end
    assert.same({ 27 + 512, 2048 }, shapes["encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel"])
    assert.same({ 256, 1024 }, shapes["decoder/z_to_initial_state/kernel"])
    assert.same({ 27 + 256 + 256, 1024 }, shapes["decoder/multi_rnn_cell/cell_0/lstm_cell/kernel"])
    assert.same({ 256 + 256, 1024 }, shapes["decoder/multi_rnn_cell/cell_1/lstm_cell/kernel"])
    assert.same({ 256, 27 }, shapes["decoder/output_projection/kernel"])
    assert.is_nil(shapes["decoder/hierarchical_level_0/initial_state/kernel"])
    m:close()
  end)

  it("turns patterns into tensors and back (velocities rounded, offsets clipped as magenta)", function()
    local m = mv.Model.new(mv.Model.config("humanize-tiny"), 1)
    local p = groove_pattern(1)
    local t = m:groove_tensor(p)
    assert.same({ 1, 64, 27 }, t:size())
    local back = m:groove_patterns(t, 100)[1]
    assert.same(p.labels, back.labels)
    for s = 1, 64 do
      for c = 1, 9 do
        if p.velocities[s][c] then
          assert.equal(p.velocities[s][c], back.velocities[s][c])
          assert.near(p.offsets[s][c], back.offsets[s][c], 1e-6)
        end
      end
    end
    -- humanize's encoder input: hits only
    local x = m:groove_input(t)
    local flat = x:view(-1):totable()
    for i = 0, 63 do
      for k = 10, 27 do assert.equal(0, flat[i * 27 + k]) end
    end
    m:close()
  end)

  it("dropout is seeded: the same stream gives the same loss, another keep probability another", function()
    local m = mv.Model.new(mv.Model.config("groove-tiny"), 2)
    local t = m:groove_tensor { groove_pattern(2), groove_pattern(3) }
    local function loss(keep, seed)
      return m.vae:forward(t, t, { keep_prob = keep, dropout = mv.core.rng(seed, "dropout") }).loss
    end
    assert.equal(loss(0.5, 1), loss(0.5, 1))
    assert.are_not.equal(loss(0.5, 1), loss(0.5, 2))
    assert.are_not.equal(loss(1, 1), loss(0.5, 1))
    assert.has_error(function() m.vae:forward(t, t, { keep_prob = 0.5 }) end) -- no stream
    assert.has_error(function() m.vae:forward(t, t, { keep_prob = 0 }) end)
    assert.has_error(function() m.vae:forward(m:labels_tensor(groove_pattern(2)), {}) end)
    m:close()
  end)

  it("humanize keeps the input's hits exactly and gives them velocities and offsets", function()
    local m = mv.Model.new(mv.Model.config("humanize-tiny"), 3)
    local flat = mv.pattern { labels = groove_pattern(4).labels, qpm = 90 } -- no velocities
    local out = m:humanize(flat)
    assert.same(flat.labels, out.labels)
    assert.equal(90, out.qpm)
    for s = 1, 64 do
      for c = 1, 9 do
        if flat.labels[s] & (1 << (c - 1)) ~= 0 then
          local v, o = out.velocities[s][c], out.offsets[s][c]
          assert.is_true(math.type(v) == "integer" and v >= 1 and v <= 127)
          assert.is_true(o >= -0.5 and o <= 0.5)
        else
          assert.is_nil(out.velocities[s] and out.velocities[s][c])
        end
      end
    end
    assert.has_error(function() mv.Model.new(mv.Model.config("tiny"), 1):humanize(flat) end)
    -- encoding and decoding a pattern give the same bits alone and in a batch, on 1 or 2 threads
    local other = mv.pattern { labels = groove_pattern(7).labels }
    local function run(pats, hits_of)
      local g = m:groove_tensor(pats)
      local mu = m.vae:encode(m:groove_input(g))
      return mu:totable(), m.vae:decode(mu, { temperature = 0, hits = g:narrow(3, 1, 9):contiguous() }):totable()
    end
    local mu1, out1 = run { flat }
    local threads = mv.get_num_threads()
    for _, t in ipairs { 1, 2 } do
      mv.set_num_threads(t)
      local mu3, out3 = run { other, flat, other }
      assert.same(mu1[1], mu3[2])
      assert.same(out1[1], out3[2])
    end
    mv.set_num_threads(threads)
    m:close()
  end)

  it("samples with seeded per-example streams: pattern i is the same whatever n", function()
    local m = mv.Model.new(mv.Model.config("groove-tiny"), 4)
    local a = m:sample { n = 3, seed = 9, temperature = 1 }
    local b = m:sample { n = 1, seed = 9, temperature = 1, first_index = 2 }
    assert.same(a[2].labels, b[1].labels)
    assert.same(a[2].velocities, b[1].velocities)
    assert.has_error(function() m:generator {} end)
    m:close()
  end)

  it("saves and loads under magenta's names (f16 too)", function()
    local dir = H.tmpdir()
    local m = mv.Model.new(mv.Model.config("humanize-tiny"), 5)
    assert(m:save(dir .. "/g.safetensors", { dtype = "F16" }))
    local back = assert(mv.Model.load(dir .. "/g.safetensors"))
    assert.is_true(back.config.groove)
    assert.equal("humanize", back.config.mode)
    local p = groove_pattern(6)
    local a, b = m:humanize(p), back:humanize(p)
    assert.same(a.labels, b.labels)
    m:close()
    back:close()
    H.rmtree(dir)
  end)
end)

describe("groove training and metrics", function()
  local dir, data
  before_each(function()
    dir = H.tmpdir()
    data = dir .. "/g.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, { groove = true }))
  end)
  after_each(function() H.rmtree(dir) end)

  it("a tiny humanize model's loss falls and a resumed run continues bit for bit", function()
    local tr, cfg, losses = micro_run(data, dir .. "/a", "humanize", 4, 60)
    assert.is_true(tr.cfg.mean_velocity > 0)
    assert.is_true(losses[#losses] < 0.7 * losses[1], ("loss %g -> %g"):format(losses[1], losses[#losses]))
    -- 30 + 30 with a resume in between equals 60 in one go
    local t1 = assert(T.new { data = data, config = cfg, out = dir .. "/b", seed = 4 })
    assert(t1:run { steps = 30, val_every = 0 })
    local t2 = assert(T.new { data = data, out = dir .. "/b", resume = true })
    assert(t2:run { steps = 30, val_every = 0 })
    assert.equal(0, H.maxdiff(tr.model.vae:flat("params"):totable(), t2.model.vae:flat("params"):totable()))
    -- a categorical dataset is refused with a message
    local plain = dir .. "/p.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", plain, {}))
    local no, err = T.new { data = plain, config = cfg, out = dir .. "/c", seed = 1 }
    assert.is_nil(no)
    assert.matches("prepare %-%-groove", err)
  end)

  it("note dropout in training draws from the run's seeded stream and resumes bit for bit", function()
    local function cfg_of(nd)
      local c = { groove = true, mode = "tap", input_depth = 27, vocab = 27, note_dropout = nd }
      for k, v in pairs(micro) do c[k] = v end
      return c
    end
    local one = assert(T.new { data = data, config = cfg_of(0.8), out = dir .. "/nd1", seed = 2 })
    assert(one:run { steps = 20, val_every = 0 })
    local t1 = assert(T.new { data = data, config = cfg_of(0.8), out = dir .. "/nd2", seed = 2 })
    assert(t1:run { steps = 10, val_every = 0 })
    local t2 = assert(T.new { data = data, out = dir .. "/nd2", resume = true })
    assert.equal(0.8, t2.cfg.note_dropout)
    assert(t2:run { steps = 10, val_every = 0 })
    assert.equal(0, H.maxdiff(one.model.vae:flat("params"):totable(), t2.model.vae:flat("params"):totable()))
    local off = assert(T.new { data = data, config = cfg_of(0), out = dir .. "/nd0", seed = 2 })
    assert(off:run { steps = 20, val_every = 0 })
    assert.is_true(H.maxdiff(one.model.vae:flat("params"):totable(), off.model.vae:flat("params"):totable()) > 0)
  end)

  it("groove metrics match a direct computation over the hit cells", function()
    local m = mv.Model.new(mv.Model.config("humanize-tiny", { mean_velocity = 70 }), 6)
    local ds = assert(mv.data.load(data))
    local g = ds.splits.train.groove
    local r = Eval.groove_metrics(m, g, { batch_size = 5 })
    -- the baselines by hand
    local flat = g:contiguous():view(-1):totable()
    local vb, ob, cells = 0, 0, 0
    for i = 0, #flat // 27 - 1 do
      for c = 1, 9 do
        if flat[i * 27 + c] == 1 then
          vb = vb + math.abs(70 - flat[i * 27 + 9 + c] * 127)
          ob = ob + math.abs(flat[i * 27 + 18 + c]) / 2
          cells = cells + 1
        end
      end
    end
    assert.near(vb / cells, r.velocity_mae_baseline, 1e-9)
    assert.near(ob / cells, r.offset_mae_baseline, 1e-9)
    -- the model's predictions by hand: humanize with the target's hits fixed
    local mu = m.vae:encode(m:groove_input(g))
    local out, hp = m.vae:decode(mu, { temperature = 0, hits = g:narrow(3, 1, 9):contiguous(), hit_probs = true })
    local pred, p = out:view(-1):totable(), hp:view(-1):totable()
    local vm, vr, om = 0, 0, 0
    for i = 0, #flat // 27 - 1 do
      for c = 1, 9 do
        if flat[i * 27 + c] == 1 then
          -- the expected velocity given the hit: raw / p (p floored at 0.05), at most 1
          local v = math.min(1, pred[i * 27 + 9 + c] / math.max(p[i * 9 + c], 0.05))
          vm = vm + math.abs(v - flat[i * 27 + 9 + c]) * 127
          vr = vr + math.abs(pred[i * 27 + 9 + c] - flat[i * 27 + 9 + c]) * 127
          om = om + math.abs(pred[i * 27 + 18 + c] - flat[i * 27 + 18 + c]) / 2
        end
      end
    end
    assert.near(vm / cells, r.velocity_mae, 1e-4)
    assert.near(vr / cells, r.velocity_mae_raw, 1e-4)
    assert.near(om / cells, r.offset_mae, 1e-6)
    -- hit probabilities are the sigmoid of the hit logits: in (0, 1)
    for k = 1, #p do assert.is_true(p[k] > 0 and p[k] < 1) end
    for _, k in ipairs { "hit_accuracy", "hit_f1", "tf_accuracy", "recon_nll", "kl" } do assert.is_number(r[k]) end
    assert.is_true(r.hit_accuracy >= 0 and r.hit_accuracy <= 1)
    m:close()
  end)

  it("the CLI humanizes a file, keeping its hits and tempo, and evaluates groove models", function()
    micro_run(data, dir .. "/run", "humanize", 5, 20)
    local model = dir .. "/run/best.safetensors"
    local input = H.root .. "/spec/fixtures/midi/rock-8bars-120.mid"
    local q = H.shell_quote
    local out, err, code = H.cli(("humanize %s --model %s -o %s -q"):format(q(input), q(model), q(dir .. "/h.mid")))
    assert.equal(0, code, err)
    local before = assert(mv.midi.labels(input))
    local after = assert(mv.midi.groove(dir .. "/h.mid"))
    for s = 1, 64 do assert.equal(before.labels[s] or 0, after.labels[s] or 0, "step " .. s) end
    assert.near(120, after.qpm, 1e-3)
    local side = require("musicvae.json").decode(H.readfile(dir .. "/h.json"))
    assert.equal("humanize", side.mode)
    out, err, code = H.cli(("eval --model %s %s --split train --json"):format(q(model), q(data)))
    assert.equal(0, code)
    local r = require("musicvae.json").decode(out:match("[^\n]+\n?$"))
    for _, k in ipairs { "hit_accuracy", "hit_f1", "velocity_mae", "offset_mae", "velocity_mae_baseline",
      "offset_mae_baseline" } do
      assert.is_number(r[k], k)
    end
    -- a categorical model is refused with a message, exit status 1
    local tiny = dir .. "/tiny.safetensors"
    assert(mv.Model.new("tiny", 1):save(tiny))
    out, err, code = H.cli(("humanize %s --model %s -o %s"):format(q(input), q(tiny), q(dir .. "/x.mid")))
    assert.equal(1, code)
    assert.matches("needs a groove model", err)
  end)

  describe("tap models (tap2drum)", function()
    it("see one rhythm: the loudest hit's timing in the open hi-hat slot, no velocities", function()
      local m = mv.Model.new(mv.Model.config("tap-tiny"), 1)
      local p = mv.pattern { labels = { 1 | 2, 0, 4 | 256 }, bars = 4,
        velocities = { [1] = { [1] = 60, [2] = 100 }, [3] = { [3] = 70, [9] = 70 } },
        offsets = { [1] = { [1] = 0.1, [2] = -0.2 }, [3] = { [3] = 0.05, [9] = -0.1 } } }
      local x = m:groove_input(m:groove_tensor { p }):totable()[1]
      local function row(tap, off)
        local r = {}
        for k = 1, 27 do r[k] = 0 end
        if tap then r[4], r[22] = 1, off end
        return r
      end
      local function near_rows(a, b)
        for k = 1, 27 do assert.near(a[k], b[k], 1e-6, "column " .. k) end
      end
      near_rows(row(true, -0.4), x[1])  -- the snare (velocity 100) wins; offsets in magenta's units (x2)
      near_rows(row(false), x[2])
      near_rows(row(true, 0.1), x[3])   -- equal velocities: the first class (closed hi-hat)
      for s = 4, 64 do near_rows(row(false), x[s]) end
      -- the tap's velocity and class do not matter, only where and when
      local q = mv.pattern { labels = { 256, 0, 1 }, bars = 4, velocities = { [1] = { [9] = 20 }, [3] = { [1] = 127 } },
        offsets = { [1] = { [9] = -0.2 }, [3] = { [1] = 0.05 } } }
      assert.same(x, m:groove_input(m:groove_tensor { q }):totable()[1])
      assert.has_error(function() mv.Model.new(mv.Model.config("humanize-tiny"), 1):tap(p) end)
      m:close()
    end)

    it("drop notes from the training input when note_dropout is set, soft notes first (magenta's augmentation)",
      function()
        local cfg = mv.Model.config("tap-tiny", { note_dropout = 0.8 })
        local m = mv.Model.new(cfg, 1)
        local pats = {}
        for i = 1, 40 do pats[i] = groove_pattern(100 + i) end
        local target = m:groove_tensor(pats)
        -- without a random stream (encoding, evaluation) or with note_dropout 0: magenta's plain tapify
        local plain = mv.Model.new(mv.Model.config("tap-tiny"), 1)
        assert.same(plain:groove_input(target):totable(), m:groove_input(target):totable())
        assert.same(plain:groove_input(target):totable(), plain:groove_input(target, mv.rng(5, "t")):totable())
        -- with one: the same stream gives the same drops; hits only disappear; soft ones more often
        local a = m:groove_input(target, mv.rng(5, "t"))
        assert.same(a:totable(), m:groove_input(target, mv.rng(5, "t")):totable())
        local g = mv.Model.new(mv.Model.config("groove-tiny", { note_dropout = 0.8 }), 1)
        local x = g:groove_input(target, mv.rng(5, "t")):view(-1):totable()
        local t = target:contiguous():view(-1):totable()
        local kept, dropped = { soft = 0, loud = 0 }, { soft = 0, loud = 0 }
        for r = 0, #t // 27 - 1 do
          for c = 1, 9 do
            local b = r * 27
            if t[b + c] > 0.5 then
              local kind = t[b + 9 + c] < 0.3 and "soft" or t[b + 9 + c] > 0.8 and "loud" or nil
              local gone = x[b + c] == 0
              if gone then
                assert.same({ 0, 0 }, { x[b + 9 + c], x[b + 18 + c] })
              else
                assert.same({ t[b + 9 + c], t[b + 18 + c] }, { x[b + 9 + c], x[b + 18 + c] })
              end
              if kind then
                if gone then dropped[kind] = dropped[kind] + 1 else kept[kind] = kept[kind] + 1 end
              end
            else
              assert.equal(0, x[b + c])
            end
          end
        end
        local function rate(k) return dropped[k] / (dropped[k] + kept[k]) end
        -- expected: loud (velocity > 0.8) at most 0.2 * E[p] = 0.08; soft (< 0.3) at least 0.7 * 0.4 = 0.28
        assert.is_true(rate("loud") < 0.15 and rate("soft") > 0.2 and rate("soft") > 2 * rate("loud"),
          ("dropped %.3f of soft and %.3f of loud hits"):format(rate("soft"), rate("loud")))
        assert.has_error(function() mv.Model.config("tap-tiny", { note_dropout = 1.5 }) end)
        -- categorical models take it too (hits dropped from the encoder's input; train_spec), in 0-1 only
        assert.equal(0.5, mv.Model.config("tiny", { note_dropout = 0.5 }).note_dropout)
        assert.has_error(function() mv.Model.config("tiny", { note_dropout = -0.1 }) end)
        m:close()
        plain:close()
        g:close()
      end)

    it("train, and the CLI turns any notes into drums", function()
      local _, _, losses = micro_run(data, dir .. "/run", "tap", 3, 60)
      assert.is_true(losses[#losses] < 0.8 * losses[1], ("loss %g -> %g"):format(losses[1], losses[#losses]))
      local model = dir .. "/run/best.safetensors"
      -- taps on a piano channel and pitch
      local taps = {}
      for s = 1, 64 do taps[s] = ((s - 1) % 4 == 0 or s % 7 == 0) and 1 or 0 end
      local song = mv.pattern { labels = taps, qpm = 96 }
      assert(mv.midi.write(dir .. "/taps.mid", song, { kit = { 60, 61, 62, 63, 64, 65, 66, 67, 68 }, channel = 1 }))
      local q = H.shell_quote
      local out, err, code = H.cli(("tap %s --model %s -o %s -q --temperature 0"):format(q(dir .. "/taps.mid"),
        q(model), q(dir .. "/d.mid")))
      assert.equal(0, code, err)
      local drums = assert(mv.midi.groove(dir .. "/d.mid"))
      assert.near(96, drums.qpm, 1e-3)
      local side = require("musicvae.json").decode(H.readfile(dir .. "/d.json"))
      assert.equal("tap", side.mode)
      -- the same call again gives the same file (greedy), and in Lua the same pattern
      _, err, code = H.cli(("tap %s --model %s -o %s -q"):format(q(dir .. "/taps.mid"), q(model), q(dir .. "/e.mid")))
      assert.equal(0, code, err)
      assert.equal(H.readfile(dir .. "/d.mid"), H.readfile(dir .. "/e.mid"))
      -- wrong model kinds and the missing default are refused with a message
      local hz = dir .. "/hz.safetensors"
      assert(mv.Model.new(mv.Model.config("humanize-tiny"), 1):save(hz))
      _, err, code = H.cli(("tap %s --model %s -o %s"):format(q(dir .. "/taps.mid"), q(hz), q(dir .. "/x.mid")))
      assert.equal(1, code)
      assert.matches("not a tap model", err)
      _, err, code = H.cli(("tap %s -o %s"):format(q(dir .. "/taps.mid"), q(dir .. "/y.mid")))
      assert.equal(1, code)
      assert.matches("config tap", err)
    end)
  end)
end)

-- true when the checkout has models/NAME.safetensors, else a pending test saying so
local function have_shipped(name)
  local f = io.open(H.root .. "/models/" .. name .. ".safetensors", "rb")
  if f then
    f:close()
    return true
  end
  pending(("models/%s.safetensors is not in this checkout"):format(name))
  return false
end

describe("the shipped humanize model", function()
  if not have_shipped("gmd-4bar-humanize") then return end
  it("turns a flat pattern into one whose velocities and timing vary", function()
    local m = assert(mv.load("gmd-4bar-humanize"))
    local labels = {}
    for s = 1, 64 do
      local l = 0
      if (s - 1) % 2 == 0 then l = l | (1 << 2) end  -- closed hi-hat on 8ths
      if (s - 1) % 8 == 0 then l = l | 1 end         -- kick on 1 and 3
      if (s - 1) % 8 == 4 then l = l | 2 end         -- snare on 2 and 4
      labels[s] = l
    end
    local out = m:humanize(mv.pattern { labels = labels, qpm = 100 })
    assert.same(labels, out.labels)
    local vs, os_ = {}, {}
    for s = 1, 64 do
      for c, v in pairs(out.velocities[s] or {}) do
        vs[v] = true
        os_[("%.3f"):format(out.offsets[s][c])] = true
      end
    end
    local nv, no = 0, 0
    for _ in pairs(vs) do nv = nv + 1 end
    for _ in pairs(os_) do no = no + 1 end
    assert.is_true(nv >= 5, "distinct velocities: " .. nv)
    assert.is_true(no >= 5, "distinct offsets: " .. no)
    m:close()
  end)
end)

describe("the shipped tap model", function()
  if not have_shipped("gmd-4bar-tap") then return end
  it("turns tapped rhythms into drum patterns that follow them", function()
    local m = assert(mv.load("gmd-4bar-tap"))
    local function taps(every, extra)
      local l = {}
      for s = 1, 64 do l[s] = ((s - 1) % every == 0 or (s - 1) % 16 == extra) and 1 or 0 end
      return mv.pattern { labels = l, qpm = 100 }
    end
    local a, b = taps(4, 10), taps(8, 6)
    local pa, pb = m:tap(a), m:tap(b)
    assert.same(pa.labels, m:tap(a).labels) -- greedy: deterministic
    assert.are_not.same(pa.labels, pb.labels)
    -- most tapped steps get a drum, and the drums come with velocities
    for _, case in ipairs { { a, pa }, { b, pb } } do
      local tapped, hit = 0, 0
      for s = 1, 64 do
        if case[1].labels[s] ~= 0 then
          tapped = tapped + 1
          if case[2].labels[s] ~= 0 then hit = hit + 1 end
        end
        for _, v in pairs(case[2].velocities[s] or {}) do assert.is_true(v >= 1 and v <= 127) end
      end
      assert.is_true(hit >= 0.7 * tapped, ("%d of %d tapped steps have drums"):format(hit, tapped))
    end
    m:close()
  end)
end)
