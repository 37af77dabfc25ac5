local mv = require "musicvae"
local H = require "spec.helpers"

local function info_in_subprocess(env)
  local out, err, code = H.lua([[
    local mv = require "musicvae"
    local i = mv.blas_info()
    local r = mv.rng(2, "t")
    local a, b = mv.randn(r, {67, 45}), mv.randn(r, {45, 31})
    local c = a:matmul(b)
    -- naive check in Lua
    local A, B, C = a:totable(), b:totable(), c:totable()
    local worst = 0
    for i2 = 1, 67 do for j = 1, 31 do
      local s = 0
      for k = 1, 45 do s = s + A[i2][k] * B[k][j] end
      worst = math.max(worst, math.abs(s - C[i2][j]))
    end end
    io.write(i.core, "\n", i.how, "\n", tostring(worst), "\n")
  ]], env)
  assert.equal(0, code, err)
  local core, how, worst = out:match("^(.-)\n(.-)\n(.-)\n$")
  return core, how, tonumber(worst)
end

describe("BLAS", function()
  it("reports its kernel and how it was chosen", function()
    local i = mv.blas_info()
    assert.is_string(i.core)
    assert.is_string(i.how)
    assert.is_true(i.threads >= 1)
    if i.cpu_avx512 or i.cpu_avx2 then
      -- on a CPU with AVX2/AVX-512 the project must end up on such a kernel
      local fast = { Haswell = true, Zen = true, SkylakeX = true, Cooperlake = true, SapphireRapids = true }
      if os.getenv("OPENBLAS_CORETYPE") == nil then
        assert.is_true(fast[i.core] == true, "slow kernel chosen: " .. i.core .. " (" .. i.how .. ")")
      end
    end
  end)

  it("lets the user's OPENBLAS_CORETYPE win", function()
    local core, how, worst = info_in_subprocess { OPENBLAS_CORETYPE = "Prescott" }
    assert.equal("Prescott", core)
    assert.matches("set by the user", how)
    assert.is_true(worst < 1e-3)
  end)

  it("loads OpenBLAS with a short idle-thread timeout, leaves the environment as it was, lets the user's win",
    function()
      -- idle OpenBLAS threads would spin for 2^28 cycles and starve musicvae's own worker thread
      local out, err, code = H.lua([[
        local mv = require "musicvae"
        io.write(mv.blas_info().how, "\n", tostring(os.getenv("OPENBLAS_THREAD_TIMEOUT")), "\n")
      ]], { OPENBLAS_THREAD_TIMEOUT = "" })
      assert.equal(0, code, err)
      local how, env = out:match("^(.-)\n(.-)\n$")
      if how:match("already loaded") then
        pending("OpenBLAS was already in the process: " .. how)
        return
      end
      assert.matches("OPENBLAS_THREAD_TIMEOUT=16", how, 1, true)
      assert.equal("", env) -- set to "" before: "" after
      local _, how2 = info_in_subprocess { OPENBLAS_THREAD_TIMEOUT = "20" }
      assert.matches("OPENBLAS_THREAD_TIMEOUT=20 set by the user", how2, 1, true)
    end)

  it("falls back to a correct built-in GEMM on request", function()
    local core, how, worst = info_in_subprocess { MUSICVAE_BLAS = "builtin" }
    assert.equal("builtin", core)
    assert.matches("MUSICVAE_BLAS", how)
    assert.is_true(worst < 1e-3)
  end)

  it("sets the number of threads", function()
    local before = mv.get_num_threads()
    mv.set_num_threads(1)
    assert.equal(1, mv.blas_info().threads)
    local a = mv.ones(50, 50)
    assert.equal(50 * 50 * 50, a:matmul(a):sum())
    mv.set_num_threads(before)
    assert.has_error(function() mv.set_num_threads(0) end)
  end)

  it("keeps an OpenBLAS that the host process already loaded", function()
    -- simulate a host that loaded OpenBLAS before musicvae
    local so
    for _, p in ipairs { "/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0" } do
      local f = io.open(p)
      if f then f:close() so = p break end
    end
    if not so then
      pending("no libopenblas.so.0 at the usual Debian path")
      return
    end
    -- a sanitizer runtime, if preloaded, must stay first
    local pre = os.getenv("LD_PRELOAD")
    local core, how = info_in_subprocess { LD_PRELOAD = (pre and pre ~= "" and (pre .. " ") or "") .. so }
    assert.matches("already loaded", how)
    assert.is_string(core)
  end)
end)
