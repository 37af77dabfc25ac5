local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"
local Model = require "musicvae.model"

local function close_rel(a, b, rel, abs)
  local A, B = H.flatten(a:totable()), H.flatten(b:totable())
  assert.equal(#B, #A)
  local worst, at = 0, 0
  for i = 1, #A do
    local e = math.abs(A[i] - B[i]) / (abs + rel * math.abs(B[i]))
    if e > worst then worst, at = e, i end
  end
  return worst <= 1, ("worst element %d: %g vs %g"):format(at, A[at] or 0, B[at] or 0)
end

describe("the model against the PyTorch reference (spec/fixtures/reference-tiny.safetensors)", function()
  local t, meta = assert(mv.safetensors.load(H.root .. "/spec/fixtures/reference-tiny.safetensors"))

  local function build()
    local cfg = json.decode(meta.config)
    local m = Model.new { input_depth = cfg.input_depth, vocab = cfg.vocab, z = cfg.z, bars = cfg.bars,
      steps_per_bar = cfg.steps, enc = cfg.enc, cond = cfg.cond, dec = cfg.dec }
    local P = m:params()
    for _, p in ipairs(m.vae:param_list()) do
      local src = assert(t["param/" .. p.name], "fixture lacks " .. p.name)
      P[p.name]:copy(src)
    end
    return m
  end

  it("matches mu, sigma, logits, losses and every gradient to 1e-4 relative", function()
    local m = build()
    m.vae:zero_grad()
    local st = m.vae:forward(t["input/labels"], { eps = t["input/eps"], beta = tonumber(meta.beta),
      free_nats = tonumber(meta.free_nats), backward = true })
    local mu, sigma = m.vae:latents()
    for name, got in pairs { mu = mu, sigma = sigma, logits = m.vae:logits(), recon = st.recon_per_seq,
      kl = st.kl_per_seq } do
      local ok, why = close_rel(got, t["expected/" .. name], 1e-4, 1e-6)
      assert.is_true(ok, name .. ": " .. why)
    end
    assert.near(t["expected/loss"]:get(1), st.loss, 1e-4 * math.abs(t["expected/loss"]:get(1)))
    assert.near(t["expected/accuracy"]:get(1), st.accuracy, 1e-9)
    local G = m:grads()
    local n = 0
    for _, p in ipairs(m.vae:param_list()) do
      local ok, why = close_rel(G[p.name], t["grad/" .. p.name], 1e-4, 1e-6)
      assert.is_true(ok, p.name .. ": " .. why)
      n = n + 1
    end
    assert.is_true(n >= 20)
  end)

  it("loses the match if the gate order is wrong (the fixture can tell)", function()
    local m = build()
    -- swap the j and f blocks of one LSTM: logits must move away from the reference
    local cfgd = json.decode(meta.config).dec[1]
    local k = m:params()["core_decoder/decoder/multi_rnn_cell/cell_0/lstm_cell/kernel"]
    local j, f = k:narrow(2, cfgd + 1, cfgd):clone(), k:narrow(2, 2 * cfgd + 1, cfgd):clone()
    k:narrow(2, cfgd + 1, cfgd):copy(f)
    k:narrow(2, 2 * cfgd + 1, cfgd):copy(j)
    m.vae:forward(t["input/labels"], { eps = t["input/eps"] })
    local ok = close_rel(m.vae:logits(), t["expected/logits"], 1e-4, 1e-6)
    assert.is_false(ok)
  end)
end)

describe("training steps", function()
  local function tiny(seed)
    return Model.new({ enc = { 8 }, cond = { 6 }, dec = { 8 }, z = 4, bars = 2, steps_per_bar = 4 }, seed or 1)
  end

  it("Adam matches hand-computed numbers", function()
    local m = tiny()
    local flat, g = m.vae:flat("params"), m.vae:flat("grads")
    local p0 = flat:get(1)
    local gs = { 0.1, -0.2, 0.05 }
    local mm, vv, p = 0, 0, p0
    for step, gv in ipairs(gs) do
      g:fill(0)
      g:set(gv, 1)
      local norm, skipped = m.vae:adam_step { lr = 0.01, clip_norm = 1e9 }
      assert.near(math.abs(gv), norm, 1e-7)
      assert.is_false(skipped)
      mm = 0.9 * mm + 0.1 * gv
      vv = 0.999 * vv + 0.001 * gv * gv
      local lr_t = 0.01 * math.sqrt(1 - 0.999 ^ step) / (1 - 0.9 ^ step)
      p = p - lr_t * mm / (math.sqrt(vv) + 1e-8)
      assert.near(p, flat:get(1), 1e-6)
    end
    local t = m.vae:adam_state()
    assert.equal(3, t)
  end)

  it("clips to the global norm, and zeroes the step at 1e4 or on NaN (Adam still steps)", function()
    local m = tiny()
    local g = m.vae:flat("grads")
    g:fill(0)
    g:set(3, 1)
    g:set(4, 2) -- norm 5
    local norm, skipped = m.vae:adam_step { lr = 0.001, clip_norm = 1.0 }
    assert.near(5, norm, 1e-6)
    assert.is_false(skipped)
    local t, mom = m.vae:adam_state()
    assert.near(0.1 * 3 / 5, mom:get(1), 1e-7)
    assert.near(0.1 * 4 / 5, mom:get(2), 1e-7)
    g:set(20000, 1)
    local p_before = m.vae:flat("params"):clone()
    norm, skipped = m.vae:adam_step { lr = 0.001 }
    assert.is_true(norm >= 10000)
    assert.is_true(skipped)
    t, mom = m.vae:adam_state()
    assert.equal(2, t)
    assert.near(0.9 * 0.1 * 3 / 5, mom:get(1), 1e-7) -- decayed, no new gradient
    assert.is_true(m.vae:flat("params"):sub(p_before):sum() ~= 0) -- moments still move the weights
    g:set(0 / 0, 1)
    norm, skipped = m.vae:adam_step { lr = 0.001 }
    assert.is_true(skipped)
    assert.is_true(m.vae:flat("params"):sum() == m.vae:flat("params"):sum()) -- no NaN got in
  end)

  it("p = 1 feeds, inside each bar, draws from the model's own softmax with the given draws", function()
    local m = tiny(3)
    local r = mv.rng(5, "test")
    local B, U, T = 3, 2, 4
    local lab = mv.zeros(B, U * T)
    for b = 1, B do for s = 1, U * T do lab:set(r:integer(0, 511), b, s) end end
    local coins = mv.zeros(B, U, T) -- every coin < 1
    local draws = mv.rand(r, { B, U, T })
    local st = m.vae:forward(lab, { p_sample = 1, coins = coins, draws = draws, eps = mv.zeros(B, 4) })
    assert.equal(B * U * (T - 1), st.sampled)
    local logits, inputs = m.vae:logits(), m.vae:inputs()
    for b = 1, B do
      for u = 1, U do
        for t = 1, T do
          local s = (u - 1) * T + t
          local want
          if t == 1 then
            want = s == 1 and -1 or lab:get(b, s - 1) -- the true previous label starts every bar
          else
            local row = logits:select(1, b):select(1, s - 1):totable()
            local mx = math.max(table.unpack(row))
            local sum = 0
            for k = 1, #row do row[k] = math.exp(row[k] - mx) sum = sum + row[k] end
            local x, acc = draws:get(b, u, t) * sum, 0
            for k = 1, #row do
              acc = acc + row[k]
              if x < acc then want = k - 1 break end
            end
          end
          assert.equal(want, inputs:get(b, s), ("b %d bar %d step %d"):format(b, u, t))
        end
      end
    end
  end)

  it("a small model trains on random data without NaNs and its loss falls #full", function()
    local m = Model.new("small", 1)
    local r = mv.rng(2, "data")
    local B = 8
    local lab = mv.zeros(B, 64)
    for b = 1, B do for s = 1, 64 do lab:set(r:integer(0, 3) * (s % 2), b, s) end end
    local first, last
    for step = 1, 25 do
      m.vae:zero_grad()
      local st = m.vae:forward(lab, { eps = mv.randn(r, { B, 256 }), beta = 0.2, free_nats = 48 * math.log(2),
        backward = true })
      assert.is_true(st.loss == st.loss, "NaN at step " .. step)
      m.vae:adam_step { lr = 1e-3 }
      first = first or st.loss
      last = st.loss
    end
    assert.is_true(last < 0.5 * first, ("loss %g -> %g"):format(first, last))
  end)
end)

describe("inference", function()
  local m = Model.new({ enc = { 8 }, cond = { 6 }, dec = { 8 }, z = 4 }, 7)

  it("decodes deterministically by seed, per example whatever n", function()
    local z = m:sample_z(5, 42)
    local a = m:decode(z, { temperature = 1.0, seed = 9 })
    local b = m:decode(z, { temperature = 1.0, seed = 9 })
    local c = m:decode(z, { temperature = 1.0, seed = 10 })
    for i = 1, 5 do assert.same(a[i].labels, b[i].labels) end
    local differ = false
    for i = 1, 5 do if table.concat(a[i].labels, ",") ~= table.concat(c[i].labels, ",") then differ = true end end
    assert.is_true(differ)
    -- example 3 alone, as index 3, equals example 3 of the batch
    local z3 = m:sample_z(1, 42, 3)
    assert.same(z:select(1, 3):totable(), z3:select(1, 1):totable())
    local one = m:decode(z3, { temperature = 1.0, seed = 9, first_index = 3 })
    assert.same(a[3].labels, one[1].labels)
    -- argmax needs no seed and is stable
    local g1, g2 = m:decode(z, { temperature = 0 }), m:decode(z, { temperature = 0 })
    for i = 1, 5 do assert.same(g1[i].labels, g2[i].labels) end
    assert.equal(64, #a[1].labels)
  end)

  it("encodes patterns to mu and sigma", function()
    local p = mv.pattern { labels = { 1, 0, 4, 0, 2, 0, 4, 0 }, bars = 4 }
    local mu, sigma = m:encode { p, p }
    assert.same({ 2, 4 }, mu:size())
    assert.same(mu:select(1, 1):totable(), mu:select(1, 2):totable())
    for _, s in ipairs(sigma:select(1, 1):totable()) do assert.is_true(s > 0) end
    -- the same bits alone, in any batch and on 1 or 2 threads; close to the training forward's mu
    local q = mv.pattern { labels = { 3, 1, 0, 2 }, bars = 4 }
    local alone = m:encode({ p }):totable()[1]
    local threads = mv.get_num_threads and mv.get_num_threads() or 1
    for _, t in ipairs { 1, 2 } do
      mv.set_num_threads(t)
      assert.same(alone, m:encode({ q, p, q }):totable()[2])
    end
    mv.set_num_threads(threads)
    m.vae:forward(m:labels_tensor { p }, {})
    local ref = m.vae:latents():totable()[1]
    for k = 1, #alone do assert.near(ref[k], alone[k], 1e-5 * (1 + math.abs(ref[k]))) end
  end)
end)

describe("checkpoints", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)
  local cfg = { enc = { 8 }, cond = { 6, 5 }, dec = { 8 }, z = 4, bars = 2, steps_per_bar = 4 }

  it("save -> load gives identical logits, with magenta's names in the file", function()
    local m = Model.new(cfg, 3)
    local path = dir .. "/m.safetensors"
    assert.is_true(m:save(path, { metadata = { dataset = "test" } }))
    local m2 = assert(Model.load(path))
    assert.equal("test", m2.metadata.dataset)
    local lab = mv.zeros(2, 8)
    lab:set(5, 1, 2)
    m.vae:forward(lab, {})
    m2.vae:forward(lab, {})
    assert.same(m.vae:logits():totable(), m2.vae:logits():totable())
    local t = mv.safetensors.load(path)
    assert.truthy(t["encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel"])
    assert.truthy(t["decoder/hierarchical_level_0/cell_1/lstm_cell/kernel"])
    assert.truthy(t["core_decoder/decoder/output_projection/bias"])
    -- f16
    assert.is_true(m:save(dir .. "/h.safetensors", { dtype = "F16" }))
    local _, _, _, dt = mv.safetensors.load(dir .. "/h.safetensors")
    assert.equal("F16", dt["encoder/mu/kernel"])
    assert.truthy(Model.load(dir .. "/h.safetensors"))
  end)

  it("keeps the Adam state beside the checkpoint", function()
    local m = Model.new(cfg, 3)
    m.vae:flat("grads"):fill(0.01)
    m.vae:adam_step { lr = 1e-3 }
    assert.is_true(m:save_state(dir .. "/m.state.safetensors", { extra = { step = "1" } }))
    local m2 = Model.new(cfg, 3)
    local meta = assert(m2:load_state(dir .. "/m.state.safetensors"))
    assert.equal("1", meta.step)
    local t1, a1, b1 = m.vae:adam_state()
    local t2, a2, b2 = m2.vae:adam_state()
    assert.equal(t1, t2)
    assert.same(a1:totable(), a2:totable())
    assert.same(b1:totable(), b2:totable())
  end)

  it("refuses 20+ malformed or mismatched checkpoints with nil, err", function()
    local m = Model.new(cfg, 3)
    local good = dir .. "/good.safetensors"
    assert.is_true(m:save(good))
    local t, meta = mv.safetensors.load(good)
    local function variant(name, edit)
      local tt, mm = {}, {}
      for k, v in pairs(t) do tt[k] = v end
      for k, v in pairs(meta) do mm[k] = v end
      edit(tt, mm)
      local p = dir .. "/" .. name .. ".safetensors"
      assert.is_true(mv.safetensors.save(p, tt, { metadata = mm }))
      return p
    end
    local K = "encoder/mu/kernel"
    local cases = {
      { "missing tensor", variant("missing", function(tt) tt[K] = nil end), "missing tensor " .. K },
      { "extra tensor", variant("extra", function(tt) tt["x/y"] = mv.ones(1) end), "unexpected tensor x/y" },
      { "wrong shape", variant("shape", function(tt) tt[K] = mv.zeros(3, 3) end), "has shape %[3,3%]" },
      { "transposed", variant("transposed", function(tt) tt[K] = t[K]:t():contiguous() end), "has shape" },
      { "1-d for 2-d", variant("rank", function(tt) tt[K] = t[K]:view(-1):contiguous() end), "has shape" },
      { "no format", variant("noformat", function(_, mm) mm.format = nil end), "not a musicvae model" },
      { "other format", variant("otherformat", function(_, mm) mm.format = "pytorch" end), "not a musicvae model" },
      { "newer version", variant("newer", function(_, mm) mm.format_version = "2.0" end), "newer musicvae" },
      { "no version", variant("nover", function(_, mm) mm.format_version = nil end), "format_version" },
      { "no config", variant("nocfg", function(_, mm) mm.config = nil end), "config" },
      { "bad config JSON", variant("badjson", function(_, mm) mm.config = "{oops" end), "config" },
      { "config not a table", variant("cfgnum", function(_, mm) mm.config = "42" end), "config" },
      { "config with 0 layers", variant("cfglayers", function(_, mm)
        local c = json.decode(mm.config) c.enc = json.array {} mm.config = json.encode(c) end), "bad config" },
      { "config size mismatch", variant("cfgz", function(_, mm)
        local c = json.decode(mm.config) c.z = 5 mm.config = json.encode(c) end), "has shape" },
      { "config vocab mismatch", variant("cfgv", function(_, mm)
        local c = json.decode(mm.config) c.vocab = 256 mm.config = json.encode(c) end), "has shape" },
      { "config negative size", variant("cfgneg", function(_, mm)
        local c = json.decode(mm.config) c.z = -1 mm.config = json.encode(c) end), "bad config" },
    }
    -- byte-level damage
    local bytes = H.readfile(good)
    local function raw(name, b)
      local p = dir .. "/" .. name .. ".safetensors"
      H.writefile(p, b)
      return p
    end
    cases[#cases + 1] = { "empty file", raw("empty", ""), "shorter" }
    cases[#cases + 1] = { "truncated", raw("trunc", bytes:sub(1, #bytes // 2)), "" }
    cases[#cases + 1] = { "header garbage", raw("garbage", bytes:sub(1, 8) .. ("x"):rep(#bytes - 8)), "" }
    cases[#cases + 1] = { "not safetensors", raw("text", "hello world, not a model"), "" }
    cases[#cases + 1] = { "missing file", dir .. "/nope.safetensors", "nope.safetensors" }
    cases[#cases + 1] = { "a folder", dir, "" }
    cases[#cases + 1] = { "a dataset file", (function()
      local p = dir .. "/ds.safetensors"
      assert(mv.safetensors.save(p, { a = mv.ones(1) }, { metadata = { format = "musicvae-dataset", format_version = "1.0" } }))
      return p
    end)(), "not a musicvae model" }
    assert.is_true(#cases >= 20)
    for _, c in ipairs(cases) do
      local ok, model, err = pcall(Model.load, c[2])
      assert.is_true(ok, c[1] .. ": raised " .. tostring(model))
      assert.is_nil(model, c[1] .. ": loaded")
      assert.is_string(err, c[1])
      assert.truthy(err:find(c[3]), ("%s: %q lacks %q"):format(c[1], err, c[3]))
    end
  end)

  it("writes a small checkpoint that the independent reader lists with magenta's names and shapes", function()
    if not H.have("/usr/bin/python3") then
      pending("python3 is not installed")
      return
    end
    local m = Model.new("small", 1)
    local path = dir .. "/small.safetensors"
    assert.is_true(m:save(path, { dtype = "F16" }))
    local out, err, code = H.run("/usr/bin/python3 " .. H.shell_quote(H.root .. "/tools/safetensors_ref.py") ..
      " list " .. H.shell_quote(path))
    assert.equal(0, code, err)
    local doc = assert(json.decode(out))
    local n = 0
    for _, p in ipairs(m.vae:param_list()) do
      local e = doc.tensors[p.name]
      assert.is_table(e, p.name)
      assert.same(p.shape, e.shape)
      assert.equal("F16", e.dtype)
      n = n + 1
    end
    assert.equal("musicvae-model", doc.metadata.format)
    local k = doc.tensors["core_decoder/decoder/multi_rnn_cell/cell_0/lstm_cell/kernel"]
    assert.same({ 512 + 256 + 256, 1024 }, k.shape)
    assert.same({ 10 + 512, 2048 }, doc.tensors["encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel"].shape)
    local numel = 0
    for _, p in ipairs(m.vae:param_list()) do numel = numel + p.shape[1] * (p.shape[2] or 1) end
    assert.equal(m:numel(), numel)
  end)
end)

describe("inference path", function()
  local function tiny()
    return Model.new({ enc = { 8 }, cond = { 6 }, dec = { 40 }, z = 4, bars = 2, steps_per_bar = 4 }, 3)
  end

  it("reports its kernel and re-packs after writes through parameter views", function()
    local m = tiny()
    assert.truthy(({ avx512 = true, avx2 = true, portable = true })[m.vae:infer_info().isa])
    local z = m:sample_z(3, 1)
    local a = m:decode(z)
    -- a large bias on one class makes it every step's argmax, through a view taken before
    local bias = m:params()["core_decoder/decoder/output_projection/bias"]
    bias:set(100, 7)
    local b = m:decode(z)
    for i = 1, 3 do for s = 1, 8 do assert.equal(6, b[i].labels[s]) end end
    -- the flat view too, and again after the first decode (views stay live)
    bias:set(0, 7)
    local flat = m.vae:flat("params")
    flat:copy(flat:clone())
    local c = m:decode(z)
    assert.same(a[1].labels, c[1].labels)
    -- the generator sees the same re-packed weights as decode
    bias:set(100, 7)
    local g = m:generator { z = z:select(1, 1), temperature = 0 }
    local got = g:step(8)
    for s = 1, 8 do assert.equal(6, got[s]) end
  end)

  it("decodes a row to the same labels alone or in any batch", function()
    local m = tiny()
    local z = m:sample_z(6, 9)
    local all = m:decode(z, { temperature = 1, seed = 4 })
    for i = 1, 6 do
      local one = m:decode(z:narrow(1, i, 1):clone(), { temperature = 1, seed = 4, first_index = i })
      assert.same(all[i].labels, one[1].labels)
    end
  end)
end)

describe("training with two threads", function()
  -- the encoder's two directions run side by side with two threads, and so do two halves of the
  -- decoder's rows (bars x batch): the same gradients, run to run, and (to float rounding of BLAS's
  -- own threading) the same as on one thread. Unequal decoder layers and scheduled sampling: each
  -- half keeps to its own rows of every buffer (a race here showed only now and then).
  local function grads(threads)
    local before = mv.get_num_threads()
    mv.set_num_threads(threads)
    local m = Model.new({ enc = { 24, 16 }, cond = { 12 }, dec = { 20, 14 }, z = 8 }, 1)
    local r = mv.rng(1, "two-threads")
    local labels = mv.zeros(6, 64)
    for b = 1, 6 do for s = 1, 64 do labels:set(r:integer(0, 511), b, s) end end
    local coins, draws = mv.zeros(6, 4, 16), mv.zeros(6, 4, 16)
    for b = 1, 6 do
      for u = 1, 4 do for t = 1, 16 do coins:set(r:uniform(), b, u, t); draws:set(r:uniform(), b, u, t) end end
    end
    m.vae:zero_grad()
    local st = m.vae:forward(labels, { eps = mv.randn(r, { 6, 8 }), beta = 0.2, free_nats = 0, backward = true,
      p_sample = 0.5, coins = coins, draws = draws })
    local g = m.vae:flat("grads"):clone():totable()
    mv.set_num_threads(before)
    return g, st
  end

  it("gives the same gradients run to run and as one thread", function()
    local one, st1 = grads(1)
    assert.is_true(st1.sampled > 0)
    local a, sta = grads(2)
    assert.equal(st1.sampled, sta.sampled)
    assert.equal(st1.loss, sta.loss)
    for _ = 1, 5 do assert.same(a, (grads(2))) end
    local worst = 0
    for i = 1, #a do worst = math.max(worst, math.abs(a[i] - one[i]) / (1e-3 + math.abs(one[i]))) end
    assert.is_true(worst < 1e-4, "relative difference " .. worst)
  end)
end)
