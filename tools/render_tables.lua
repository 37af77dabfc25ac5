-- Prints the markdown tables for the README and docs from the measurement files that
-- tools/finish_run.sh writes in docs/figures/.
--   lua5.4 tools/render_tables.lua [MODEL_NAME]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local json = require "musicvae.json"
local name = arg[1] or "gmd-4bar-small"
local fig = "docs/figures/"

local function lines(path)
  local out = {}
  local f = io.open(path)
  if not f then return out end
  for l in f:lines() do
    local v = json.decode(l)
    if v then out[#out + 1] = v end
  end
  f:close()
  return out
end

local ev = lines(fig .. name .. "-eval-validation.json")[1]
local ev32 = lines(fig .. name .. "-eval-validation-f32.json")[1]
if ev then
  print("### metrics")
  print("| metric | shipped (f16) | f32 checkpoint | target |")
  print("|---|---|---|---|")
  print(("| windows | %d | %d | |"):format(ev.windows, ev32 and ev32.windows or 0))
  print(("| tf_accuracy | %.4f | %.4f | > 0.563 |"):format(ev.tf_accuracy, ev32 and ev32.tf_accuracy or 0))
  print(("| sampled_accuracy | %.4f | %.4f | > 0.492 |"):format(ev.sampled_accuracy, ev32 and ev32.sampled_accuracy or 0))
  print(("| recon_nll (nats per window) | %.2f | %.2f | |"):format(ev.recon_nll, ev32 and ev32.recon_nll or 0))
  print(("| kl (nats) | %.2f | %.2f | |"):format(ev.kl, ev32 and ev32.kl or 0))
end
local lat = lines(fig .. "latency.jsonl")
if #lat > 0 then
  print("\n### latency")
  print("| call | calls | median | 99th percentile | worst | steps per call |")
  print("|---|---|---|---|---|---|")
  for _, r in ipairs(lat) do
    print(("| `%s` | %d | %.3f ms | %.3f ms | %.3f ms | %.2f |"):format(
      r.what == "generator_step1" and "g:step(1)" or "g:run_for(2)", r.calls, r.median_ms, r.p99_ms, r.max_ms,
      r.steps_per_call))
  end
end
local sc = lines(fig .. "scaling.jsonl")
if #sc > 0 then
  print("\n### scaling")
  print("| setup | sequences/s | allreduce payload per rank |")
  print("|---|---|---|")
  for _, r in ipairs(sc) do
    print(("| %s | %.1f | %s MB |"):format(r.setup, r.sequences_per_s, tostring(r.allreduce_mb_per_rank)))
  end
end
