local mv = require "musicvae"
local H = require "spec.helpers"
local S = require "musicvae.schedules"
local T = require "musicvae.train"
local F = require "musicvae.features"
local core = require "musicvae.core"

describe("schedules", function()
  it("compute magenta's formulas and the others by hand", function()
    local cfg = mv.Model.config("small")
    local s = S.from_config(cfg)
    assert.equal(0, s.beta(0))
    assert.near(0.2, s.beta(1), 1e-12)                     -- beta_rate 0: max_beta from step 1
    local b2 = S.beta.magenta { max_beta = 0.2, beta_rate = 0.99 }
    assert.near((1 - 0.99 ^ 100) * 0.2, b2(100), 1e-12)
    assert.near(1 - 1000 / (1000 + 1), s.sampling(0), 1e-12) -- inverse sigmoid k = 1000
    assert.near(0.5, s.sampling(1000 * math.log(1000)), 1e-9)
    assert.near((1e-3 - 1e-5) * 0.9999 ^ 5000 + 1e-5, s.lr(5000), 1e-15)
    assert.near(1 - 0.999 ^ 10, S.sampling.exponential { sampling_rate = 0.999 }(10), 1e-12)
    assert.equal(0.25, S.sampling.constant { sampling_rate = 0.25 }(77))
    assert.equal(0, S.sampling.none {}(5))
    assert.near(0.25, S.sampling.linear { sampling_steps = 100, sampling_max = 0.5 }(50), 1e-12)
    assert.near(0.1, S.beta.linear { max_beta = 0.2, beta_warmup_steps = 100 }(50), 1e-12)
    local cyc = S.beta.cyclical { max_beta = 1, beta_total_steps = 400, beta_cycles = 4, beta_ratio = 0.5 }
    assert.near(0, cyc(0), 1e-12)
    assert.near(0.5, cyc(25), 1e-12)
    assert.near(1, cyc(75), 1e-12)
    assert.near(0, cyc(100), 1e-12)
    assert.near(0.1, S.beta.sigmoid { max_beta = 0.2, beta_midpoint = 10, beta_width = 5 }(10), 1e-12)
    local cos = S.lr.cosine { learning_rate = 1, warmup_steps = 10, total_steps = 110, min_learning_rate = 0 }
    assert.near(0.1, cos(0), 1e-12)
    assert.near(0.5, cos(60), 1e-12)
    assert.near(0, cos(110), 1e-12)
    assert.equal(3e-4, S.lr.constant { learning_rate = 3e-4 }(9))
    -- a user's own function
    local mine = S.from_config(mv.Model.config("tiny", { beta_schedule = function(step) return step * 2 end }))
    assert.equal(8, mine.beta(4))
    assert.has_error(function() S.from_config(mv.Model.config("tiny", { lr_schedule = "nope" })) end)
  end)
end)

describe("training", function()
  local dir, data
  before_each(function()
    dir = H.tmpdir()
    data = dir .. "/d.mvd"
    assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", data, {}))
  end)
  after_each(function() H.rmtree(dir) end)

  local micro = { enc = { 16 }, cond = { 8 }, dec = { 16 }, z = 8, batch_size = 2, free_bits = 0,
    sampling_schedule = "constant", sampling_rate = 0.3, learning_rate = 3e-3 }

  it("a tiny model's loss falls", function()
    local tr = assert(T.new { data = data, config = micro, out = dir .. "/run", seed = 3 })
    local first
    local res = assert(tr:run { steps = 100, log_every = 10, val_every = 0,
      on_line = function(row) first = first or row.loss end })
    local log = H.readfile(dir .. "/run/log.csv")
    assert.matches("^step,epoch,seconds,seq_per_s,loss,recon,kl,beta,p_sample,lr,grad_norm,skipped,val_loss," ..
      "val_tf_accuracy,val_sampled_accuracy\n", log)
    local last
    for line in log:gmatch("[^\n]+") do
      local loss = line:match("^%d+,%d+,[^,]*,[^,]*,([^,]+),")
      if loss then last = tonumber(loss) end
    end
    assert.is_true(last < 0.6 * first, ("loss %g -> %g"):format(first, last))
    assert.equal(100, res.steps)
    assert.truthy(mv.Model.load(res.checkpoint))
    assert.truthy(mv.Model.load(dir .. "/run/best.safetensors"))
  end)

  it("an interrupted and resumed run ends bit-identical to an uninterrupted one", function()
    local a = assert(T.new { data = data, config = micro, out = dir .. "/a", seed = 5 })
    assert(a:run { steps = 24, val_every = 10 })
    local b = assert(T.new { data = data, config = micro, out = dir .. "/b", seed = 5 })
    assert(b:run { steps = 11, val_every = 10 })   -- stops mid-epoch, with a checkpoint
    b.model:close()
    local bad, berr = T.new { data = data, out = dir .. "/b", resume = true, set = { z = 4 } }
    assert.is_nil(bad)
    assert.matches("cannot change z", berr)
    local b2 = assert(T.new { data = data, out = dir .. "/b", resume = true })
    assert.equal(11, b2.step)
    assert(b2:run { until_step = 24, val_every = 10 })
    assert.equal(a.model.vae:flat():tobytes(), b2.model.vae:flat():tobytes())
    local ta, ma, va = a.model.vae:adam_state()
    local tb, mb, vb = b2.model.vae:adam_state()
    assert.equal(ta, tb)
    assert.equal(ma:tobytes(), mb:tobytes())
    assert.equal(va:tobytes(), vb:tobytes())
    assert.equal(a.rng_z:state(), b2.rng_z:state())
    -- a different seed gives different weights
    local c = assert(T.new { data = data, config = micro, out = dir .. "/c", seed = 6 })
    assert(c:run { steps = 24, val_every = 0 })
    assert.are_not.equal(a.model.vae:flat():tobytes(), c.model.vae:flat():tobytes())
  end)

  it("refuses to overwrite a run without --resume and reports bad configs", function()
    local a = assert(T.new { data = data, config = micro, out = dir .. "/a", seed = 5 })
    assert(a:run { steps = 2, val_every = 0 })
    local tr, err = T.new { data = data, config = micro, out = dir .. "/a" }
    assert.is_nil(tr)
    assert.matches("%-%-resume", err)
    tr, err = T.new { data = data, config = "nope", out = dir .. "/x" }
    assert.is_nil(tr)
    assert.matches("unknown config", err)
    tr, err = T.new { data = dir .. "/missing.mvd", config = micro, out = dir .. "/y" }
    assert.is_nil(tr)
    assert.matches("missing.mvd", err)
  end)

  it("--init starts from the given weights with Adam fresh, the schedules at the model's step and a warm-up", function()
    local a = assert(T.new { data = data, config = micro, out = dir .. "/a", seed = 5 })
    assert(a:run { steps = 30, val_every = 0 })
    local src = dir .. "/a/best.safetensors"
    local src_model = assert(mv.Model.load(src))
    local tr = assert(T.new { data = data, init = src, out = dir .. "/i", seed = 9, set = { free_bits = 4 } })
    assert.equal(src_model.vae:flat():tobytes(), tr.model.vae:flat():tobytes())
    assert.equal(30, tr.step)
    assert.equal(4, tr.cfg.free_bits)
    assert.equal(src, tr.cfg.init_from)
    local t, m, v = tr.model.vae:adam_state()
    assert.equal(0, t)
    assert.equal(0, H.maxdiff(m:totable(), core.zeros(m:numel()):totable()))
    assert.equal(0, H.maxdiff(v:totable(), core.zeros(v:numel()):totable()))
    assert.near(tr.sched.lr(30) / 200, tr:lr_at(tr.step), 1e-15)
    assert.near(tr.sched.lr(129) * 100 / 200, tr:lr_at(129), 1e-15)
    assert.equal(tr.sched.lr(230), tr:lr_at(230))
    assert(tr:run { steps = 3, val_every = 0 })
    assert.equal(33, tr.step)
    assert.are_not.equal(src_model.vae:flat():tobytes(), tr.model.vae:flat():tobytes())
    -- the run resumes like any other, warm-up and all
    tr.model:close()
    local r = assert(T.new { data = data, out = dir .. "/i", resume = true })
    assert.equal(33, r.step)
    assert.equal(30, r.cfg.init_step)
    -- another architecture, a changed architecture key, or a missing model are refused
    local other = { enc = { 8 }, cond = { 8 }, dec = { 16 }, z = 8, batch_size = 2 }
    local bad, err = T.new { data = data, init = src, config = other, out = dir .. "/j" }
    assert.is_nil(bad)
    assert.matches("another architecture", err)
    bad, err = T.new { data = data, init = src, out = dir .. "/k", set = { z = 4 } }
    assert.is_nil(bad)
    assert.matches("cannot change z with %-%-init", err)
    bad, err = T.new { data = data, init = dir .. "/none.safetensors", out = dir .. "/l" }
    assert.is_nil(bad)
    assert.matches("^%-%-init: .*none%.safetensors", err)
    local _, cerr, code = H.cli("train --data " .. data .. " --init " .. src .. " --resume --out " .. dir .. "/m --steps 1")
    assert.equal(2, code)
    assert.matches("not both", cerr)
  end)

  it("note dropout drops hits from the encoder's input only", function()
    local m = mv.Model.new(mv.Model.config(micro, { note_dropout = 1 }), 1)
    local ds = assert(mv.data.load(data))
    local labels = ds.splits.train.labels:narrow(1, 1, 4):contiguous()
    local noisy = m:label_input(labels, core.rng(1, "dropout"))
    local a, b = labels:view(-1):totable(), noisy:view(-1):totable()
    local dropped, total = 0, 0
    for k = 1, #a do
      local x, y = math.tointeger(a[k]), math.tointeger(b[k])
      assert.equal(y, x & y) -- only hits taken away
      total = total + F.popcount(x)
      dropped = dropped + F.popcount(x) - F.popcount(y)
    end
    assert.is_true(dropped > 0 and dropped < total, dropped .. " of " .. total)
    -- without the rng (inference) or with note_dropout 0: the labels themselves
    assert.equal(labels, m:label_input(labels))
    -- the encoder reads enc_labels; the loss still scores the whole target
    m.vae:forward(labels, { enc_labels = noisy })
    local mu1 = m.vae:latents():clone()
    local mu2 = m.vae:encode(noisy)
    assert.is_true(H.maxdiff(mu1:view(-1):totable(), mu2:view(-1):totable()) < 1e-5)
    local st_clean = m.vae:forward(labels, {})
    local st_self = m.vae:forward(noisy, {})
    local st_mix = m.vae:forward(labels, { enc_labels = noisy })
    assert.are_not.equal(st_clean.recon, st_mix.recon)
    assert.are_not.equal(st_self.recon, st_mix.recon)
    assert.has_error(function() m.vae:forward(labels, { enc_labels = noisy:narrow(1, 1, 2):contiguous() }) end,
      "enc_labels and labels have different batch sizes")
  end)

  it("SIGINT saves a loadable checkpoint and exits cleanly", function()
    local run = dir .. "/sig"
    -- start training in the background, then interrupt it once it has logged a line
    local cmd = ("cd %s && (LUA_CPATH=%s LUA_PATH=%s lua5.4 bin/musicvae train --data %s --config tiny --out %s " ..
      "--set batch_size=2 --steps 100000 --log-every 1 --val-every 0 > %s/out.txt 2> %s/err.txt & echo $! > %s/pid)"):format(
      H.shell_quote(H.root), H.shell_quote(H.root .. "/" .. H.build_dir() .. "/?.so;;"),
      H.shell_quote(H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"), H.shell_quote(data),
      H.shell_quote(run), dir, dir, dir)
    assert(os.execute(cmd))
    local pid = H.readfile(dir .. "/pid"):match("%d+")
    local started = false
    for _ = 1, 600 do
      local f = io.open(run .. "/log.csv")
      if f then
        local n = select(2, f:read("a"):gsub("\n", ""))
        f:close()
        if n >= 3 then started = true break end
      end
      os.execute("sleep 0.1")
    end
    assert.is_true(started, "training did not start: " .. (io.open(dir .. "/err.txt") and H.readfile(dir .. "/err.txt") or ""))
    os.execute("kill -INT " .. pid)
    for _ = 1, 300 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      os.execute("sleep 0.1")
    end
    assert.falsy(os.execute("kill -0 " .. pid .. " 2>/dev/null"), "still running after SIGINT")
    assert.matches("stopped after step", H.readfile(dir .. "/out.txt"))
    assert.equal("", H.readfile(dir .. "/err.txt"))
    local ck = T.checkpoints(run)
    assert.is_true(#ck >= 1)
    assert.truthy(mv.Model.load(ck[1].path))
    local tr = assert(T.new { data = data, out = run, resume = true })
    assert.equal(ck[1].step, tr.step)
  end)
end)
