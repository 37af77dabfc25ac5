local mv = require "musicvae"
local H = require "spec.helpers"

describe("tensors", function()
  it("builds from shapes, values and nested tables", function()
    local z = mv.zeros(2, 3)
    assert.same({ 2, 3 }, z:size())
    assert.equal(6, z:numel())
    assert.equal(0, z:sum())
    assert.same({ 4 }, mv.zeros { 4 }:size())
    assert.same({ { 1, 1 }, { 1, 1 } }, mv.ones(2, 2):totable())
    assert.same({ 7.5, 7.5, 7.5 }, mv.full({ 3 }, 7.5):totable())
    local t = mv.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
    assert.same({ { 1, 2, 3 }, { 4, 5, 6 } }, t:totable())
    assert.equal(2, t:dim())
    assert.same({ 3, 1 }, t:stride())
    assert.equal(0, mv.tensor(3.5):dim())
    assert.equal(3.5, mv.tensor(3.5):sum())
    assert.same({ 0 }, mv.tensor {}:size())
  end)

  it("refuses ragged tables, bad shapes and non-numbers", function()
    assert.has_error(function() mv.tensor { { 1, 2 }, { 3 } } end)
    assert.has_error(function() mv.tensor { "a" } end)
    assert.has_error(function() mv.zeros(2, -1) end)
    assert.has_error(function() mv.zeros(1, 1, 1, 1, 1) end)
    assert.has_error(function() mv.zeros(2 ^ 40, 2 ^ 40) end)
  end)

  it("round-trips packed float32 strings", function()
    local t = mv.tensor { { 1.5, -2 }, { 0.25, 1e-3 } }
    local s = t:tobytes()
    assert.equal(16, #s)
    assert.equal(string.pack("<ffff", 1.5, -2, 0.25, 1e-3), s)
    assert.same(t:totable(), mv.frombytes(s, { 2, 2 }):totable())
    assert.has_error(function() mv.frombytes(s, { 3 }) end)
    -- a non-contiguous tensor packs in logical order
    assert.equal(string.pack("<ffff", 1.5, 0.25, -2, 1e-3), t:t():tobytes())
  end)

  it("does elementwise arithmetic with hand-checked values", function()
    local a = mv.tensor { 1, 2, 3 }
    local b = mv.tensor { 10, 20, 30 }
    assert.same({ 11, 22, 33 }, a:add(b):totable())
    assert.same({ 6, 12, 18 }, a:add(b, 0.5):totable())
    assert.same({ -9, -18, -27 }, a:sub(b):totable())
    assert.same({ 10, 40, 90 }, a:mul(b):totable())
    assert.same({ -2, -4, -6 }, a:scale(-2):totable())
    assert.same({ 11, 22, 33 }, (a + b):totable())
    assert.same({ 9, 18, 27 }, (b - a):totable())
    assert.same({ 10, 40, 90 }, (a * b):totable())
    assert.same({ 3, 6, 9 }, (3 * a):totable())
    assert.same({ 2, 4, 6 }, (a * 2):totable())
    assert.same({ -1, -2, -3 }, (-a):totable())
    -- in place, chaining
    local c = mv.tensor { 1, 1, 1 }
    assert.equal(c, c:add_(a):scale_(2))
    assert.same({ 4, 6, 8 }, c:totable())
    assert.same({ 0, 0, 0 }, c:fill(0):totable())
  end)

  it("names both shapes when they do not match", function()
    local a, b = mv.zeros(2, 3), mv.zeros(3, 2)
    local ok, err = pcall(function() return a + b end)
    assert.is_false(ok)
    assert.matches("%[2,3%]", err)
    assert.matches("%[3,2%]", err)
    ok, err = pcall(function() return a:matmul(a) end)
    assert.is_false(ok)
    assert.matches("%[2,3%] and %[2,3%]", err)
    ok, err = pcall(function() return a:copy(b) end)
    assert.matches("%[2,3%] and %[3,2%]", err)
  end)

  it("reduces: sum, mean, argmax", function()
    local t = mv.tensor { { 1, 9, 3 }, { 7, 5, 7 } }
    assert.equal(32, t:sum())
    assert.near(32 / 6, t:mean(), 1e-12)
    assert.same({ 8, 14, 10 }, t:sum(1):totable())
    assert.same({ 13, 19 }, t:sum(2):totable())
    local m = t:mean(2):totable()
    assert.near(13 / 3, m[1], 1e-6)
    assert.near(19 / 3, m[2], 1e-6)
    assert.same({ 2, 1 }, t:argmax(2):totable()) -- 1-based, first maximum wins
    assert.same({ 2, 1, 2 }, t:argmax(1):totable())
    assert.equal(2, t:argmax())
    assert.has_error(function() t:sum(3) end)
  end)

  it("indexes with get and set (1-based)", function()
    local t = mv.zeros(2, 3)
    t:set(5, 2, 3)
    assert.equal(5, t:get(2, 3))
    assert.equal(5, t:sum())
    assert.has_error(function() t:get(3, 1) end)
    assert.has_error(function() t:get(1) end)
  end)

  it("has __len, __tostring and a method table", function()
    local t = mv.zeros(4, 2)
    assert.equal(4, #t)
    assert.equal(1, #mv.tensor(2))
    assert.matches("^musicvae%.Tensor%[4,2%]", tostring(t))
    assert.matches("%(view%)", tostring(t:t()))
    assert.equal(mv.Tensor.sum, t.sum)
    assert.is_true(mv.istensor(t))
    assert.is_false(mv.istensor({}))
  end)
end)

describe("views", function()
  it("share memory with their parent", function()
    local t = mv.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
    local row = t:select(1, 2)
    row:fill(0)
    assert.same({ { 1, 2, 3 }, { 0, 0, 0 } }, t:totable())
    local col = t:narrow(2, 2, 2)
    assert.same({ { 2, 3 }, { 0, 0 } }, col:totable())
    col:set(9, 1, 1)
    assert.equal(9, t:get(1, 2))
    local tr = t:t()
    assert.same({ 3, 2 }, tr:size())
    assert.same({ 1, 3 }, tr:stride())
    tr:set(-1, 3, 1)
    assert.equal(-1, t:get(1, 3))
    assert.is_true(tr:isview())
    assert.is_false(tr:is_contiguous())
    local flat = t:view(-1)
    assert.same({ 6 }, flat:size())
    flat:set(42, 6)
    assert.equal(42, t:get(2, 3))
    assert.same({ 3, 2 }, t:view(3, -1):size())
  end)

  it("outlive the Lua references to their parents", function()
    local v
    do
      local t = mv.tensor { 1, 2, 3, 4 }
      v = t:narrow(1, 2, 2):view(2, 1):select(2, 1)
    end
    for _ = 1, 3 do collectgarbage("collect") end
    -- allocate to reuse any freed memory
    local junk = {}
    for i = 1, 100 do junk[i] = mv.full({ 4 }, 99) end
    assert.same({ 2, 3 }, v:totable())
  end)

  it("copy where views are impossible", function()
    local t = mv.tensor { { 1, 2 }, { 3, 4 } }
    assert.has_error(function() t:t():view(4) end)
    local r = t:t():reshape(4)
    assert.same({ 1, 3, 2, 4 }, r:totable())
    assert.is_false(r:isview())
    assert.is_true(t:reshape(4):isview())
    local c = t:t():contiguous()
    assert.same({ { 1, 3 }, { 2, 4 } }, c:totable())
    assert.is_true(c:is_contiguous())
    local k = t:clone()
    k:fill(0)
    assert.equal(10, t:sum())
    -- copying a transposed view onto its own storage is safe
    t:copy(t:t())
    assert.same({ { 1, 3 }, { 2, 4 } }, t:totable())
  end)

  it("reject out-of-range arguments", function()
    local t = mv.zeros(2, 3)
    assert.has_error(function() t:narrow(2, 3, 2) end)
    assert.has_error(function() t:narrow(3, 1, 1) end)
    assert.has_error(function() t:select(1, 0) end)
    assert.has_error(function() t:view(4, 2) end)
    assert.has_error(function() t:view(-1, -1) end)
  end)
end)

describe("closing", function()
  it("frees once and raises on later use", function()
    local t = mv.zeros(3)
    local v = t:narrow(1, 1, 2)
    t:close()
    t:close() -- idempotent
    assert.is_true(t:isclosed())
    assert.is_true(v:isclosed())
    assert.has_error(function() t:sum() end, "tensor is closed")
    assert.has_error(function() v:sum() end, "tensor is closed")
    assert.has_error(function() return t + t end, "tensor is closed")
    assert.equal("musicvae.Tensor (closed)", tostring(t))
  end)

  it("works with <close>", function()
    local keep
    do
      local t <close> = mv.ones(2)
      keep = t
      assert.equal(2, t:sum())
    end
    assert.is_true(keep:isclosed())
  end)

  it("closing a view leaves its owner open", function()
    local t = mv.ones(2)
    local v = t:view(2)
    v:close()
    assert.has_error(function() v:sum() end, "tensor is closed")
    assert.equal(2, t:sum())
  end)
end)

describe("matmul", function()
  local function naive(a, b, ta, tb)
    local A, B = a:totable(), b:totable()
    local function ga(i, k) return ta and A[k][i] or A[i][k] end
    local function gb(k, j) return tb and B[j][k] or B[k][j] end
    local m = ta and #A[1] or #A
    local k = ta and #A or #A[1]
    local n = tb and #B or #B[1]
    local out = {}
    for i = 1, m do
      out[i] = {}
      for j = 1, n do
        local s = 0
        for p = 1, k do s = s + ga(i, p) * gb(p, j) end
        out[i][j] = s
      end
    end
    return out
  end

  it("matches a naive product on odd shapes, every transpose", function()
    local r = mv.rng(5, "test")
    for _, s in ipairs { { 1, 1, 1 }, { 7, 13, 5 }, { 33, 17, 65 } } do
      local m, n, k = s[1], s[2], s[3]
      for ta = 0, 1 do
        for tb = 0, 1 do
          local a = ta == 1 and mv.randn(r, { k, m }) or mv.randn(r, { m, k })
          local b = tb == 1 and mv.randn(r, { n, k }) or mv.randn(r, { k, n })
          local c = a:matmul(b, { ta = ta == 1, tb = tb == 1 })
          assert.same({ m, n }, c:size())
          local want = H.flatten(naive(a, b, ta == 1, tb == 1))
          assert.is_true(H.maxdiff(H.flatten(c:totable()), want) < 1e-4 * math.sqrt(k))
        end
      end
    end
  end)

  it("takes transposed views without copying and writes in place with gemm", function()
    local a = mv.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
    assert.same({ { 14, 32 }, { 32, 77 } }, a:matmul(a:t()):totable())
    assert.same({ { 17, 22, 27 }, { 22, 29, 36 }, { 27, 36, 45 } }, mv.matmul(a:t(), a):totable())
    local c = mv.ones(2, 2)
    assert.equal(c, mv.gemm(c, a, a, { tb = true, alpha = 2, beta = 1 }))
    assert.same({ { 29, 65 }, { 65, 155 } }, c:totable())
  end)
end)
