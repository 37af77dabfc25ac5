-- magenta.js checkpoint conversion: random-weight checkpoints written in tfjs's format (several
-- groups and shards, float32, uint8 and uint16 quantized as q*scale + min) convert to models whose
-- weights equal the dequantized originals; bad manifests give errors.
local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"
local Conv = require "musicvae.convert"
local Model = require "musicvae.model"

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end

-- Writes dir as a magenta.js checkpoint of model m's weights; returns the expected values by name.
local function checkpoint(dir, m, converter, drop)
  local P, want = m:params(), {}
  local groups = { {}, {} }
  for i, p in ipairs(m.vae:param_list()) do
    if p.name ~= drop then table.insert(groups[i % 2 + 1], p.name) end
  end
  local manifest = {}
  for g, names in ipairs(groups) do
    local data, weights = {}, {}
    for k, name in ipairs(names) do
      local t = P[name]:contiguous()
      local vals, shape = {}, {}
      for d = 1, t:dim() do shape[d] = t:size(d) end
      local flat = t:reshape(t:numel()):totable()
      local qd = g == 2 and (k % 2 == 0 and "uint8" or "uint16") or nil
      local w = { name = name, shape = shape, dtype = "float32" }
      if qd then
        local lo, hi = math.huge, -math.huge
        for _, v in ipairs(flat) do lo, hi = math.min(lo, v), math.max(hi, v) end
        local levels = qd == "uint8" and 255 or 65535
        local scale = (hi - lo) / levels
        if scale == 0 then scale = 1 end
        w.quantization = { dtype = qd, scale = scale, min = lo }
        for j, v in ipairs(flat) do
          local q = math.floor((v - lo) / scale + 0.5)
          vals[j] = lo + scale * q
          data[#data + 1] = string.pack(qd == "uint8" and "B" or "<I2", q)
        end
      else
        for j, v in ipairs(flat) do vals[j] = v; data[#data + 1] = string.pack("<f", v) end
      end
      want[name] = vals
      weights[#weights + 1] = w
    end
    local bytes = table.concat(data)
    local cut = #bytes // 3 -- three shards per group, cut mid-weight
    local paths = {}
    for s = 1, 3 do
      local p = ("group%d-shard%dof3"):format(g, s)
      write(dir .. "/" .. p, bytes:sub((s - 1) * cut + 1, s == 3 and #bytes or s * cut))
      paths[s] = p
    end
    manifest[g] = { paths = paths, weights = weights }
  end
  write(dir .. "/weights_manifest.json", json.encode(manifest))
  write(dir .. "/config.json", json.encode { type = "MusicVAE", dataConverter = converter })
  return want
end

local function check_equal(out, want)
  local m = assert(Model.load(out))
  local P = m:params()
  local n = 0
  for name, vals in pairs(want) do
    local got = P[name]:contiguous():reshape(P[name]:numel()):totable()
    assert.are.equal(#vals, #got)
    for j = 1, #vals do
      local f32 = string.unpack("<f", string.pack("<f", vals[j]))
      if got[j] ~= f32 then error(("%s[%d]: %.9g ~= %.9g"):format(name, j, got[j], f32)) end
    end
    n = n + 1
  end
  return m, n
end

describe("convert #convert", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("hierarchical 2-bar drums: weights equal after dequantization", function()
    local m = Model.new({ enc = { 8 }, cond = { 6 }, dec = { 7, 5 }, z = 4, bars = 2 }, 1, true)
    local want = checkpoint(dir, m, { type = "DrumsConverter", args = { numSteps = 32, numSegments = 2 } })
    m:close()
    local r = assert(Conv.convert(dir, dir .. "/out.safetensors"))
    assert.are.same({ 8 }, r.config.enc)
    assert.are.same({ 7, 5 }, r.config.dec)
    local c, n = check_equal(dir .. "/out.safetensors", want)
    assert.is_true(n > 10)
    assert.are.equal(2, c.config.bars)
    c:close()
  end)

  it("groove 1-bar tap without encoder/sigma: mu only, said so", function()
    local m = Model.new({ groove = true, mode = "tap", input_depth = 27, vocab = 27, enc = { 6 }, dec = { 5 },
      z = 3, bars = 1 }, 2, true)
    local want = checkpoint(dir, m, { type = "GrooveConverter", args = { numSteps = 16, tapify = true } },
      "encoder/sigma/kernel")
    want["encoder/sigma/bias"] = nil
    m:close()
    local r = assert(Conv.convert(dir, dir .. "/out.safetensors"))
    assert.are.equal("tap", r.config.mode)
    assert.truthy(table.concat(r.notes, "\n"):find("mu only", 1, true))
    local c = check_equal(dir .. "/out.safetensors", want)
    c:close()
  end)

  it("refuses bad manifests and unsupported checkpoints with one line naming the problem", function()
    local m = Model.new({ enc = { 4 }, cond = { 3 }, dec = { 3 }, z = 2, bars = 1 }, 3, true)
    checkpoint(dir, m, { type = "DrumsConverter", args = { numSteps = 16 } })
    m:close()
    local function err() local ok, e = Conv.convert(dir, dir .. "/o.safetensors"); assert.is_nil(ok); return e end
    write(dir .. "/config.json", json.encode { type = "MusicVAE", dataConverter = { type = "MelodyConverter" } })
    assert.truthy(err():find("MelodyConverter", 1, true))
    write(dir .. "/config.json", json.encode { type = "MusicVAE", dataConverter = { type = "DrumsConverter", args = { numSteps = 16 } } })
    local f = io.open(dir .. "/group1-shard3of3", "ab"); f:write("xx"); f:close()
    assert.truthy(err():find("left over", 1, true))
    os.remove(dir .. "/group1-shard3of3")
    assert.truthy(err():find("group1-shard3of3", 1, true))
    write(dir .. "/weights_manifest.json", "{")
    assert.truthy(err():find("JSON", 1, true))
    write(dir .. "/weights_manifest.json", '[{"paths":[],"weights":[{"name":"a","shape":[2],"dtype":"int32"}]}]')
    assert.truthy(err():find("int32", 1, true))
  end)
end)
