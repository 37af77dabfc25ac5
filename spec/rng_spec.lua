local mv = require "musicvae"

describe("random streams", function()
  it("give the same numbers for the same (seed, purpose, index)", function()
    local a, b = mv.rng(42, "z", 3), mv.rng(42, "z", 3)
    for _ = 1, 100 do assert.equal(a:normal(), b:normal()) end
  end)

  it("match the values of an independent model of the generator", function()
    -- xoshiro256** seeded by SplitMix64 from (seed, FNV-1a(purpose), index), uniform = top 53
    -- bits; values from tools/rng_reference.py, a Python transcription of docs/design.md.
    local r = mv.rng(42, "z", 3)
    assert.near(0.9359012952771946, r:uniform(), 1e-15)
    assert.near(0.9135296410546346, r:uniform(), 1e-15)
    assert.near(0.3621211383015356, r:uniform(), 1e-15)
  end)

  it("match tools/rng_reference.py run now (when python3 is installed)", function()
    local H = require "spec.helpers"
    if not H.have("python3") then
      pending("python3 is not installed")
      return
    end
    local out, err, code = H.run("python3 " .. H.shell_quote(H.root .. "/tools/rng_reference.py"))
    assert.equal(0, code, err)
    local g = require("musicvae.json").decode(out)
    local function top53(hex) return (math.tointeger(tonumber(hex)) >> 11) * 2.0 ^ -53 end
    assert.equal(math.tointeger(tonumber(g.fnv1a64_z)), mv.core.rng_purpose("z"))
    assert.equal(top53(g.first_draw_seed1_default_0), mv.rng(1):uniform())
    local r = mv.rng(42, "z", 3)
    for i = 1, 3 do assert.equal(g.uniforms_seed42_z_3[i], r:uniform(), "uniform " .. i) end
    r = mv.rng(7, "vary", 1)
    for i = 1, 4 do assert.near(g.normals_seed7_vary_1[i], r:normal(), 1e-12, "normal " .. i) end
    r = mv.rng(5, 99, 2)
    for i = 1, 3 do assert.equal(top53(g.words_seed5_purpose99_2[i]), r:uniform(), "word " .. i) end
  end)

  it("are independent across purposes and indices", function()
    local a, b, c = mv.rng(1, "z", 0), mv.rng(1, "z", 1), mv.rng(1, "data", 0)
    local same = 0
    for _ = 1, 1000 do
      local x, y, z = a:uniform(), b:uniform(), c:uniform()
      if x == y or x == z then same = same + 1 end
    end
    assert.equal(0, same)
    -- numeric purposes are accepted too, and differ from the seed alone
    assert.are_not.equal(mv.rng(1, 7):uniform(), mv.rng(1, 8):uniform())
  end)

  it("saves and restores state exactly", function()
    local r = mv.rng(9, "dropout")
    r:normal()
    local s = r:state()
    assert.equal(32, #s)
    local x = { r:uniform(), r:normal(), r:integer(10), r:categorical { 1, 2, 3 } }
    local q = mv.rng(0)
    assert.equal(q, q:set_state(s))
    assert.same(x, { q:uniform(), q:normal(), q:integer(10), q:categorical { 1, 2, 3 } })
    local c = r:clone()
    assert.equal(r:uniform(), c:uniform())
    -- malformed state strings are data errors
    local ok, err = q:set_state("short")
    assert.is_nil(ok)
    assert.matches("32 bytes", err)
    assert.is_nil((q:set_state(string.rep("\0", 32))))
  end)

  it("draws categorical indices (1-based) from tables and tensors", function()
    local r = mv.rng(3, "categorical")
    local counts = { 0, 0, 0 }
    for _ = 1, 6000 do
      local k = r:categorical { 1, 0, 2 }
      counts[k] = counts[k] + 1
    end
    assert.equal(0, counts[2])
    assert.near(2000, counts[1], 150)
    local w = mv.tensor { 0, 0, 5 }
    assert.equal(3, r:categorical(w))
    assert.has_error(function() r:categorical { -1, 1 } end)
    assert.has_error(function() r:categorical { 0, 0 } end)
  end)

  it("fills tensors: randn and rand", function()
    local r = mv.rng(11, "init")
    local n = mv.randn(r, { 100, 100 })
    assert.near(0, n:mean(), 0.03)
    local u = mv.rand(r, { 1000 }, -1, 1)
    local t = u:totable()
    for i = 1, #t do assert.is_true(t[i] >= -1 and t[i] < 1) end
    local s = mv.randn(mv.rng(11, "init"), { 5 }, 10, 0.5)
    local ref = mv.rng(11, "init")
    for i, v in ipairs(s:totable()) do
      assert.near(10 + 0.5 * ref:normal(), v, 1e-5, "element " .. i)
    end
  end)

  -- Pearson's chi-square over k equally likely cells; at a fixed seed the statistic is a fixed
  -- number, and 13.82 is the 0.999 quantile for 2 degrees of freedom (16.27 for 3)
  local function chi2(counts, n)
    local k, s = #counts, 0
    for _, c in ipairs(counts) do s = s + (c - n / k) ^ 2 / (n / k) end
    return s
  end

  it("draws integers without bias in range", function()
    local r = mv.rng(1, "integers")
    local counts, N = { 0, 0, 0 }, 30000
    for _ = 1, N do
      local k = r:integer(3, 5)
      assert.is_true(k >= 3 and k <= 5)
      counts[k - 2] = counts[k - 2] + 1
    end
    assert.is_true(chi2(counts, N) < 13.82, ("chi-square %g for %s"):format(chi2(counts, N), table.concat(counts, " ")))
    counts = { 0, 0, 0, 0 }
    for _ = 1, N do
      local k = r:integer(4)
      counts[k] = counts[k] + 1
    end
    assert.is_true(chi2(counts, N) < 16.27, ("chi-square %g for %s"):format(chi2(counts, N), table.concat(counts, " ")))
    -- a range of 3 * 2^61 values: reducing a 64-bit draw modulo it without rejecting the tail
    -- would make the first two thirds 3/8 likely each and the last 2/8
    local third = 1 << 61
    counts = { 0, 0, 0 }
    for _ = 1, 3000 do
      local v = r:integer(0, 3 * third - 1)
      assert.is_true(v >= 0 and v < 3 * third)
      counts[v // third + 1] = counts[v // third + 1] + 1
    end
    assert.is_true(chi2(counts, 3000) < 13.82, ("chi-square %g for %s"):format(chi2(counts, 3000),
      table.concat(counts, " ")))
    assert.has_error(function() r:integer(5, 3) end)
  end)
end)
