-- Formats bench/report's JSON lines as Markdown and puts them in the README between
-- "<!-- bench:begin -->" and "<!-- bench:end -->".
--   lua5.4 bench/readme.lua bench/last-report.jsonl README.md
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local json = require "musicvae.json"

local report, readme = arg[1], arg[2]
local rows = {}
for line in io.lines(report) do
  local r = json.decode(line)
  if r then rows[#rows + 1] = r end
end
local function find(pred)
  for _, r in ipairs(rows) do if pred(r) then return r end end
end
local function get(impl, what, batch, threads)
  return find(function(r)
    return r.impl == impl and r.what == what and (not batch or r.batch == batch) and (not threads or r.threads == threads)
  end)
end
local function ms(r) return r and ("%.2f ms"):format(r.median_s * 1e3) or "–" end
local function sps(r) return r and ("%.0f"):format(r.sequences_per_s) or "–" end

local m = find(function(r) return r.what == "machine" end) or {}
local ratios = find(function(r) return r.what == "ratios" end) or {}
local out = {}
local function add(s) out[#out + 1] = s end
local anyours = get("musicvae", "train_step") or {}
add(("Measured %s on a %d-core %s; OpenBLAS kernel %s for both implementations, musicvae's decoder on its %s"
  .. " kernels. Regenerate with `bench/report` (about 5 minutes; PyTorch from `apt-get install python3-torch`).")
  :format(m.date or "?", m.cores or 0, m.cpu or "?", m.openblas_coretype or anyours.blas_core or "?",
    anyours.decode_kernel or "?"))
add("")
-- PyTorch's line of what in a setting ("default": the issue's; older reports have no setting field).
-- bench/compare names the best setting of each measurement in its ratios_best line.
local function pt_get(what, setting)
  return find(function(r)
    return r.impl == "pytorch" and r.what == what and (r.pytorch_setting or "default") == setting
  end)
end
local ratios_best = find(function(r) return r.what == "ratios_best" end) or {}
local pt, ps = pt_get("train_step", "default"), pt_get("sample_4bar_batch1", "default")
local bt, bs = pt_get("train_step", ratios_best.pytorch_train_setting),
  pt_get("sample_4bar_batch1", ratios_best.pytorch_sample_setting)
local ot, os_ = get("musicvae", "train_step", 64, 2), get("musicvae", "sample_4bar_batch1", 1, 2)
local function x(v, suffix) return v and ("%.1f×%s"):format(v, suffix or "") or "–" end
local function setting(r) return r and ("`%s`"):format(r.pytorch_setting or "default") or "–" end
add("| `small`, 2 threads | musicvae | PyTorch " .. (pt and pt.torch or "") .. ", as issue 7 runs it | ratio"
  .. " | PyTorch in its best setting | ratio |")
add("|---|---|---|---|---|---|")
add(("| training, batch 64 (sequences/s) | %s | %s | %s | %s (%s) | %s |"):format(sps(ot), sps(pt),
  x(ratios.train_speedup), sps(bt), setting(bt), x(ratios_best.train_speedup)))
add(("| sampling one 4-bar pattern, batch 1 (median) | %s | %s | %s | %s (%s) | %s |"):format(ms(os_), ms(ps),
  x(ratios.sample_speedup, " faster"), ms(bs), setting(bs), x(ratios_best.sample_speedup, " faster")))
add("")
add("PyTorch runs in three settings on the same two cores: `default` is the script as issue 7 names it"
  .. " (`--threads 2`: two OpenMP threads of its own beside OpenBLAS's two); `omp-passive` adds"
  .. " `OMP_WAIT_POLICY=PASSIVE` (idle OpenMP threads sleep instead of spinning on the cores OpenBLAS"
  .. " computes on); `intraop1` is `--threads 1` with OpenBLAS on two threads. The best is the fair"
  .. " comparison; the default is what the issue's target was written against.")
add("")
local fl = get("musicvae", "train_step_flops", 64, 2)
local ss = get("musicvae", "train_step_sampling_p0.5", 64, 2)
local s256 = get("musicvae", "sample_4bar_batch256", 256, 2)
local s1 = get("musicvae", "sample_4bar_batch1", 1, 1)
if fl then
  add(("A training sequence is %.2f GFLOP (forward + backward); batch 64 runs at %.0f GFLOP/s, %.0f%% of this"
    .. " machine's SGEMM rate in the same run (%.0f GFLOP/s)."):format(fl.extra.gflop_per_sequence,
      fl.extra.achieved_gflops, 100 * fl.extra.fraction_of_sgemm, fl.extra.sgemm_gflops))
end
add(("Scheduled sampling (p = 0.5): %s sequences/s. Sampling 256 patterns at once: %s (%.3f ms each);"
  .. " one pattern on one thread: %s."):format(sps(ss), ms(s256), s256 and s256.median_s * 1e3 / 256 or 0, ms(s1)))
local enc = get("musicvae", "encode_4bar_batch1", 1, 2)
if enc then
  add(("Encoding one 4-bar pattern (the first half of `reconstruct`, `similar`, `interpolate`, `humanize`): %s.")
    :format(ms(enc)))
end
add("")
add("| training sequences/s | batch 16 | batch 64 | batch 256 |")
add("|---|---|---|---|")
for _, t in ipairs { 1, 2 } do
  local cells = {}
  for _, b in ipairs { 16, 64, 256 } do
    local r = find(function(x) return x.impl == "musicvae" and x.what == "train_step" and x.batch == b and x.threads == t end)
    cells[#cells + 1] = sps(r)
  end
  add(("| %d thread%s | %s |"):format(t, t > 1 and "s" or "", table.concat(cells, " | ")))
end
add("")
add("| sampling one pattern, batch 1, 2 threads | 4 bars | 8 bars | 16 bars |")
add("|---|---|---|---|")
local cells = {}
for _, bars in ipairs { 4, 8, 16 } do cells[#cells + 1] = ms(get("musicvae", ("sample_%dbar_batch1"):format(bars), 1, 2)) end
add("| median | " .. table.concat(cells, " | ") .. " |")
add("")
local l1, l2 = get("musicvae", "generator_step1"), get("musicvae", "generator_run_for_2ms")
if l1 or l2 then
  add("Live hosts: the incremental generator with the shipped model, single-threaded (`bench/latency.lua`,"
    .. " 10,000 calls each):")
  add("")
  add("| call | median | 99th percentile | worst | steps per call |")
  add("|---|---|---|---|---|")
  for _, r in ipairs { l1 or false, l2 or false } do
    if r then
      add(("| `%s` | %.3f ms | %.3f ms | %.3f ms | %.1f |"):format(r.what == "generator_step1" and "g:step(1)"
        or "g:run_for(2)", r.median_ms, r.p99_ms, r.max_ms, r.steps_per_call))
    end
  end
  add("")
end
local mem = {}
for _, b in ipairs { 64, 256 } do
  local r = get("musicvae", "train_rss", b)
  if r then
    local after
    for k, v in pairs(r.extra) do if k:match("^rss_kb_after_%d+_steps$") and k ~= "rss_kb_after_3_steps" then after = v end end
    mem[#mem + 1] = ("batch %d: %.0f MB after 3 steps, %.0f MB after 13, peak %.0f MB"):format(b,
      r.extra.rss_kb_after_3_steps / 1024, (after or 0) / 1024, r.extra.vmhwm_kb / 1024)
  end
end
if #mem > 0 then add("Training memory (resident): " .. table.concat(mem, "; ") .. ".") end

local f = assert(io.open(readme))
local text = f:read("a")
f:close()
local a, b = text:find("<!%-%- bench:begin %-%->\n"), (text:find("<!%-%- bench:end %-%->"))
if not a or not b then
  io.stderr:write("bench/readme.lua: README has no <!-- bench:begin --> ... <!-- bench:end --> block\n")
  os.exit(1)
end
local block = table.concat(out, "\n") .. "\n"
text = text:sub(1, select(2, text:find("<!%-%- bench:begin %-%->\n"))) .. block .. text:sub(b)
f = assert(io.open(readme, "w"))
f:write(text)
f:close()
io.write(block)
