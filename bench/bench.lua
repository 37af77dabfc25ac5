-- Benchmarks, printed as JSON lines with the fields of ../shared/bench/torch_musicvae.py
-- (impl, what, config, batch, threads, median_s, sequences_per_s on training lines).
--   lua5.4 bench/bench.lua [--config small] [--batch 64] [--threads 2] [--steps 5] [--quick]
--                          [--only train|sample|encode|rss] [--bars 4]
-- Run from the project root after scripts/setup. Timings are for comparing implementations
-- side by side on one machine, not absolute figures.
--   (default)       train_step, train_step_flops, train_step_sampling_p0.5, sample_4bar_batch1 (2 and
--                   1 threads), sample_4bar_batch256, peak_rss; --quick keeps the first, second and fourth
--   --only train    train_step (+ flops) at --batch and --threads
--   --only sample   sampling latency at batch 1 of a --bars-bar model (sample_<bars>bar_batch1)
--   --only encode   encoding one 4-bar pattern (encode_4bar_batch1), the first half of reconstruct,
--                   similar, interpolate and humanize
--   --only rss      memory of training at --batch: VmRSS after 3 and after 3 + --steps steps, VmHWM
--   --only audio    FluidSynth: soundfont_load (a fresh synth with the SoundFont, median of 3) and
--                   render_4bar (a 4-bar pattern at 120 qpm, 44.1 kHz, no tail; extra.realtime_factor
--                   = 8 s / median), SoundFont loading excluded
-- Sampling runs on f16 weights, as the shipped models are (the decoder converts them in registers).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./" .. (os.getenv("MUSICVAE_BUILD") or "build") .. "/?.so;" .. package.cpath
local mv = require "musicvae"
local json = require "musicvae.json"

local opts = { config = "small", batch = 64, threads = 2, steps = 5, bars = 4 }
local i = 1
while i <= #arg do
  local k = arg[i]:match("^%-%-(.+)$")
  if k == "quick" then opts.quick = true
  elseif k then
    opts[k] = tonumber(arg[i + 1]) or arg[i + 1]
    i = i + 1
  end
  i = i + 1
end
mv.set_num_threads(opts.threads)

local function status(field)
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s+(%d+)"))
end

local function median(fn, n)
  fn() -- warm-up
  local t = {}
  for k = 1, n do
    local t0 = mv.clock()
    fn()
    t[k] = mv.clock() - t0
  end
  table.sort(t)
  return t[n // 2 + 1]
end

local function emit(fields)
  local pairs_ = { { "impl", "musicvae" } }
  for _, k in ipairs { "what", "config", "batch", "threads", "bars", "median_s", "sequences_per_s", "extra" } do
    if fields[k] ~= nil then pairs_[#pairs_ + 1] = { k, fields[k] } end
  end
  pairs_[#pairs_ + 1] = { "blas_core", mv.blas_info().core }
  pairs_[#pairs_ + 1] = { "decode_kernel", mv.blas_info().decode_kernel }
  print(json.encode(json.ordered(pairs_)))
end

local r = mv.rng(1, "bench")

local function train_step(model, B, p)
  local labels = mv.zeros(B, 64)
  for b = 1, B do for s = 1, 64 do labels:set(r:integer(0, 511), b, s) end end
  local eps = mv.randn(r, { B, model.config.z })
  local o = { eps = eps, beta = 0.2, free_nats = 48 * math.log(2), backward = true, p_sample = p or 0 }
  if p and p > 0 then
    o.coins = mv.rand(r, { B, 4, 16 })
    o.draws = mv.rand(r, { B, 4, 16 })
  end
  return function()
    model.vae:zero_grad()
    model.vae:forward(labels, o)
    model.vae:adam_step { lr = 1e-3 }
  end
end

-- FLOPs per training sequence: per LSTM layer and direction 2 * steps * (in + H) * 4H (the one-hot
-- part is gathered, not multiplied), the heads and projections; x3 for forward + backward.
local function train_flops(cfg)
  local function lstm(T, in_, H) return 2 * T * (in_ + H) * 4 * H end
  local T = cfg.bars * cfg.steps_per_bar
  local f, ein = 0, cfg.input_depth or 10
  for _, H in ipairs(cfg.enc) do f = f + 2 * lstm(T, ein, H); ein = 2 * H end
  f = f + 2 * 2 * ein * cfg.z                                     -- mu and sigma heads
  local cs = 0
  for _, H in ipairs(cfg.cond) do cs = cs + 2 * H end
  f = f + 2 * cfg.z * cs                                           -- conductor's initial state
  local cin = 1
  for _, H in ipairs(cfg.cond) do f = f + lstm(cfg.bars, cin, H); cin = H end
  local ds = 0
  for _, H in ipairs(cfg.dec) do ds = ds + 2 * H end
  f = f + cfg.bars * 2 * cin * ds                                  -- decoder's initial states
  local din = cin                                                  -- the embedding half of layer 0's input
  for _, H in ipairs(cfg.dec) do f = f + lstm(T, din, H); din = H end
  f = f + 2 * T * din * 512                                        -- output projection
  return 3 * f
end

local function sgemm_rate()
  local n = 1024
  local a, b2, c = mv.rand(r, { n, n }), mv.rand(r, { n, n }), mv.zeros(n, n)
  local m = median(function() mv.gemm(c, a, b2) end, 5)
  return 2 * n ^ 3 / m / 1e9
end

-- a model whose weights are f16 values, as the shipped ones
local function f16_model(cfg)
  local m = mv.Model.new(cfg, 1)
  local tmp = os.tmpname()
  assert(m:save(tmp, { dtype = "F16" }))
  local back = assert(mv.load(tmp))
  os.remove(tmp)
  back:decode(back:sample_z(1, 1)) -- packs the decoder
  if back.vae.infer_info then assert(back.vae:infer_info().f16, "the decoder should have packed f16 weights") end
  return back
end

local function sample_time(model, n)
  local z = model:sample_z(n, 1)
  local reps = n > 1 and math.max(opts.steps, 3) or math.max(opts.steps, 21)
  return median(function() model:decode(z, { temperature = 0.5, seed = 1 }) end, reps)
end

local function encode_time(model)
  local p = model:sample { n = 1, seed = 3, temperature = 1 }[1]
  return median(function() model:encode { p } end, math.max(opts.steps, 21))
end

local function run_train(model, quick)
  local B = opts.batch
  local med = median(train_step(model, B), opts.steps)
  emit { what = "train_step", config = opts.config, batch = B, threads = opts.threads, median_s = med,
    sequences_per_s = B / med }
  local f, rate = train_flops(model.config), sgemm_rate()
  emit { what = "train_step_flops", config = opts.config, batch = B, threads = opts.threads,
    extra = json.ordered { { "gflop_per_sequence", f / 1e9 }, { "achieved_gflops", f * B / med / 1e9 },
      { "sgemm_gflops", rate }, { "fraction_of_sgemm", f * B / med / 1e9 / rate } } }
  if not quick then
    med = median(train_step(model, B, 0.5), opts.steps)
    emit { what = "train_step_sampling_p0.5", config = opts.config, batch = B, threads = opts.threads,
      median_s = med, sequences_per_s = B / med }
  end
end

if opts.only == "train" then
  run_train(mv.Model.new(opts.config, 1), true)
elseif opts.only == "sample" then
  local model = f16_model(mv.Model.config(opts.config, { bars = opts.bars }))
  emit { what = ("sample_%dbar_batch1"):format(opts.bars), config = opts.config, batch = 1, threads = opts.threads,
    bars = opts.bars, median_s = sample_time(model, 1) }
elseif opts.only == "encode" then
  emit { what = "encode_4bar_batch1", config = opts.config, batch = 1, threads = opts.threads,
    median_s = encode_time(f16_model(opts.config)) }
elseif opts.only == "audio" then
  local ok, why = mv.audio.available()
  local sf = mv.audio.find_soundfont()
  if not ok or not sf then
    io.stderr:write("bench: no audio: ", tostring(why or "no SoundFont"), "\n")
    os.exit(1)
  end
  local core = require "musicvae.core"
  local load = median(function() assert(core.synth_new(sf, 44100, 0.5)):close() end, 3)
  emit { what = "soundfont_load", extra = json.ordered { { "soundfont", sf } }, median_s = load }
  local labels = {}
  for s = 1, 64 do labels[s] = 4 | ((s - 1) % 8 == 0 and 1 or 0) | ((s - 1) % 8 == 4 and 2 or 0) end
  local p = mv.pattern { labels = labels, qpm = 120 }
  assert(mv.audio.render(p, { tail = 0 })) -- loads the synth (not timed)
  local t = median(function() assert(mv.audio.render(p, { tail = 0 })) end, opts.steps)
  emit { what = "render_4bar", bars = 4, median_s = t,
    extra = json.ordered { { "audio_s", 8.0 }, { "rate", 44100 }, { "realtime_factor", 8.0 / t } } }
elseif opts.only == "rss" then
  local model = mv.Model.new(opts.config, 1)
  local step = train_step(model, opts.batch)
  for _ = 1, 3 do step() end
  local before = status("VmRSS")
  for _ = 1, opts.steps do step() end
  emit { what = "train_rss", config = opts.config, batch = opts.batch, threads = opts.threads,
    extra = json.ordered { { "rss_kb_after_3_steps", before },
      { ("rss_kb_after_%d_steps"):format(3 + opts.steps), status("VmRSS") }, { "vmhwm_kb", status("VmHWM") } } }
else
  local model = mv.Model.new(opts.config, 1)
  run_train(model, opts.quick)
  model = f16_model(opts.config)
  emit { what = "sample_4bar_batch1", config = opts.config, batch = 1, threads = opts.threads,
    median_s = sample_time(model, 1) }
  if not opts.quick then
    emit { what = "sample_4bar_batch256", config = opts.config, batch = 256, threads = opts.threads,
      median_s = sample_time(model, 256) }
    emit { what = "encode_4bar_batch1", config = opts.config, batch = 1, threads = opts.threads,
      median_s = encode_time(model) }
    mv.set_num_threads(1)
    emit { what = "sample_4bar_batch1", config = opts.config, batch = 1, threads = 1,
      median_s = sample_time(model, 1) }
    mv.set_num_threads(opts.threads)
  end
  emit { what = "peak_rss", config = opts.config, batch = opts.batch, threads = opts.threads,
    extra = json.ordered { { "vmhwm_kb", status("VmHWM") } } }
end
