-- Benchmarks, printed as JSON lines with the fields of ../shared/bench/torch_musicvae.py
-- (impl, what, config, batch, threads, median_s, sequences_per_s on training lines).
--   lua5.4 bench/bench.lua [--config small] [--batch 64] [--threads 2] [--steps 5] [--quick]
-- Run from the project root after scripts/setup. Timings are for comparing implementations
-- side by side on one machine, not absolute figures.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"
local json = require "musicvae.json"

local opts = { config = "small", batch = 64, threads = 2, steps = 5 }
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

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s+(%d+)"))
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
  for _, k in ipairs { "what", "config", "batch", "threads", "median_s", "sequences_per_s", "extra" } do
    if fields[k] ~= nil then pairs_[#pairs_ + 1] = { k, fields[k] } end
  end
  pairs_[#pairs_ + 1] = { "blas_core", mv.blas_info().core }
  print(json.encode(json.ordered(pairs_)))
end

local model = mv.Model.new(opts.config, 1)
local r = mv.rng(1, "bench")

local function train_step(B, p)
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

local B = opts.batch
local med = median(train_step(B), opts.steps)
emit { what = "train_step", config = opts.config, batch = B, threads = opts.threads, median_s = med,
  sequences_per_s = B / med }
-- FLOPs: per LSTM layer and direction 2 * steps * (in + H) * 4H (one-hot part gathered), + projections; x3 for backward
local cfg = model.config
local function lstm_flops(T, in_, H) return 2 * T * (in_ + H) * 4 * H end
local f = 0
f = f + 2 * lstm_flops(64, 10, cfg.enc[1])
f = f + 2 * 2 * cfg.enc[1] * cfg.z * 2
local cin = 1
for _, H in ipairs(cfg.cond) do f = f + lstm_flops(4, cin, H); cin = H end
local din = cfg.cond[#cfg.cond]
for _, H in ipairs(cfg.dec) do f = f + lstm_flops(64, din, H); din = H end
f = f + 2 * 64 * cfg.dec[#cfg.dec] * 512
f = 3 * f
local rate = (function()
  local n = 1024
  local a, b2, c = mv.rand(r, { n, n }), mv.rand(r, { n, n }), mv.zeros(n, n)
  local m = median(function() mv.gemm(c, a, b2) end, 5)
  return 2 * n ^ 3 / m / 1e9
end)()
emit { what = "train_step_flops", config = opts.config, batch = B, threads = opts.threads,
  extra = json.ordered { { "gflop_per_sequence", f / 1e9 }, { "achieved_gflops", f * B / med / 1e9 },
    { "sgemm_gflops", rate }, { "fraction_of_sgemm", f * B / med / 1e9 / rate } } }
if not opts.quick then
  med = median(train_step(B, 0.5), opts.steps)
  emit { what = "train_step_sampling_p0.5", config = opts.config, batch = B, threads = opts.threads, median_s = med,
    sequences_per_s = B / med }
end

local function sample_time(n, bars_mult)
  local z = model:sample_z(n, 1)
  return median(function() model:decode(z, { temperature = 0.5, seed = 1 }) end, math.max(opts.steps, 5))
end
emit { what = "sample_4bar_batch1", config = opts.config, batch = 1, threads = opts.threads, median_s = sample_time(1) }
if not opts.quick then
  emit { what = "sample_4bar_batch256", config = opts.config, batch = 256, threads = opts.threads,
    median_s = sample_time(256) }
  mv.set_num_threads(1)
  emit { what = "sample_4bar_batch1", config = opts.config, batch = 1, threads = 1, median_s = sample_time(1) }
  mv.set_num_threads(opts.threads)
end
emit { what = "peak_rss", config = opts.config, batch = B, threads = opts.threads,
  extra = json.ordered { { "vmhwm_kb", rss_kb() } } }
