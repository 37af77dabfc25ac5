-- The benchmark scripts run and print what they promise (no timings are checked: they are
-- not tests of speed, only of the tools).
local H = require "spec.helpers"
local json = require "musicvae.json"

local function bench(args)
  local out, err, code = H.run("cd " .. H.shell_quote(H.root) .. " && lua5.4 bench/bench.lua " .. args,
    { MUSICVAE_BUILD = H.build_dir() })
  assert.equal(0, code, err)
  local rows = {}
  for line in out:gmatch("[^\n]+") do rows[#rows + 1] = assert(json.decode(line), line) end
  return rows
end

describe("bench/bench.lua", function()
  it("prints JSON lines with the PyTorch script's fields", function()
    local rows = bench("--config tiny --batch 4 --threads 1 --steps 1 --quick")
    local seen = {}
    for _, r in ipairs(rows) do
      assert.equal("musicvae", r.impl)
      assert.equal("tiny", r.config)
      assert.is_string(r.blas_core)
      seen[r.what] = r
    end
    assert.is_true(seen.train_step.median_s > 0)
    assert.near(4 / seen.train_step.median_s, seen.train_step.sequences_per_s, 1e-6)
    assert.is_true(seen.train_step_flops.extra.gflop_per_sequence > 0)
    assert.is_true(seen.sample_4bar_batch1.median_s > 0)
    assert.is_true(seen.peak_rss.extra.vmhwm_kb > 0)
  end)

  it("measures sampling by length and training memory", function()
    local s = bench("--config tiny --only sample --bars 8 --threads 1 --steps 1")
    assert.equal("sample_8bar_batch1", s[1].what)
    assert.equal(8, s[1].bars)
    local m = bench("--config tiny --only rss --batch 4 --threads 1 --steps 2")
    assert.equal("train_rss", m[1].what)
    assert.is_true(m[1].extra.rss_kb_after_3_steps > 0 and m[1].extra.rss_kb_after_5_steps > 0)
  end)

  it("times prepare on a folder (the Groove folder's timing lives here, not in a test)", function()
    local r = bench("--only prepare --data " .. H.shell_quote(H.root .. "/spec/fixtures/midi"))
    assert.equal(1, #r)
    assert.equal("prepare_folder", r[1].what)
    assert.is_true(r[1].median_s > 0)
    assert.is_true(r[1].extra.files > 0 and r[1].extra.kept > 0 and r[1].extra.windows_train > 0)
  end)
end)

describe("bench/readme.lua", function()
  it("rewrites only the README's bench block, from a report", function()
    local dir = H.tmpdir()
    local rep, readme = dir .. "/r.jsonl", dir .. "/README.md"
    local lines = {
      { what = "machine", date = "2026-01-02", cpu = "Test CPU", cores = 2, openblas_coretype = "SkylakeX" },
      { impl = "musicvae", what = "train_step", batch = 64, threads = 2, median_s = 0.5, sequences_per_s = 128,
        blas_core = "SkylakeX", decode_kernel = "avx512" },
      { impl = "pytorch", torch = "2.0", what = "train_step", batch = 64, threads = 2, median_s = 2, sequences_per_s = 32 },
      { impl = "musicvae", what = "sample_4bar_batch1", batch = 1, threads = 2, median_s = 0.001 },
      { impl = "pytorch", what = "sample_4bar_batch1", threads = 2, median_s = 0.025 },
      { what = "ratios", train_speedup = 4, sample_speedup = 25 },
      { impl = "musicvae", what = "train_step", batch = 16, threads = 1, median_s = 0.2, sequences_per_s = 80 },
      { impl = "musicvae", what = "sample_16bar_batch1", batch = 1, threads = 2, bars = 16, median_s = 0.004 },
      { impl = "musicvae", what = "generator_step1", threads = 1, median_ms = 0.03, p99_ms = 0.05, max_ms = 1.5,
        steps_per_call = 1 },
    }
    local f = assert(io.open(rep, "w"))
    for _, l in ipairs(lines) do f:write(json.encode(l), "\n") end
    f:close()
    H.writefile(readme, "# x\n\nbefore\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nafter\n")
    local _, err, code = H.run("cd " .. H.shell_quote(H.root) .. " && lua5.4 bench/readme.lua " .. rep .. " " .. readme)
    assert.equal(0, code, err)
    local text = H.readfile(readme)
    assert.matches("^# x\n\nbefore\n<!%-%- bench:begin %-%->\nMeasured 2026%-01%-02 on a 2%-core Test CPU", text)
    assert.matches("| training, batch 64 (sequences/s) | 128 | 32 | 4.0× |", text, 1, true)
    assert.matches("| sampling one 4-bar pattern, batch 1 (median) | 1.00 ms | 25.00 ms | 25.0× faster |", text, 1, true)
    assert.matches("| 1 thread | 80 | – | – |", text, 1, true)
    assert.matches("4.00 ms |\n", text, 1, true)
    assert.matches("| `g:step(1)` | 0.030 ms | 0.050 ms | 1.500 ms | 1.0 |", text, 1, true)
    assert.equal("<!-- bench:end -->\nafter\n", text:sub(-#"<!-- bench:end -->\nafter\n"))
    assert.is_nil(text:find("old", 1, true))
    H.rmtree(dir)
  end)
end)
