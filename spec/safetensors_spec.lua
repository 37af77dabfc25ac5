local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"
local st = mv.safetensors

local function file(header, data, hl)
  return string.pack("<I8", hl or #header) .. header .. (data or "")
end

local T1 = '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
local Z8 = string.rep("\0", 8)

-- Each malformed file, with a word its error message must contain.
local MALFORMED = {
  { "empty file", "", "shorter" },
  { "7 bytes", "\1\0\0\0\0\0\0", "shorter" },
  { "huge header length", file("{}", "", 1 << 40), "limit" },
  { "header length past the end", file("{}", "", 4096), "truncated" },
  { "header length zero", file("", "", 0), "not a JSON object" },
  { "truncated data", file("{" .. T1 .. "}", "\0\0\0\0"), "past the data" },
  { "bad JSON", file('{"a":{"dtype":"F32",', ""), "header" },
  { "trailing comma", file("{" .. T1 .. ",}", Z8), "header" },
  { "junk after the object", file("{" .. T1 .. "} junk", Z8), "trailing" },
  { "unknown dtype", file('{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}', Z8), "unknown dtype" },
  { "unsupported dtype", file('{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}', Z8), "I32" },
  { "shape x dtype != bytes", file('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', Z8), "needs" },
  { "offsets past the end", file('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', Z8), "past the data" },
  { "overlapping tensors",
    file("{" .. T1 .. ',"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', Z8 .. "\0\0\0\0"), "overlaps" },
  { "negative shape", file('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', Z8), "negative" },
  { "overflowing shape",
    file('{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}', Z8), "too large" },
  { "overflowing offset", file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999]}}', Z8),
    "too large" },
  { "end before begin", file('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', Z8), "end before" },
  { "duplicate name", file("{" .. T1 .. "," .. T1 .. "}", Z8 .. Z8), "twice" },
  { "missing field", file('{"a":{"dtype":"F32","shape":[2]}}', Z8), "missing" },
  { "non-string metadata", file('{"__metadata__":{"k":1},' .. T1 .. "}", Z8), "strings" },
  { "gap between tensors",
    file("{" .. T1 .. ',"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}', Z8 .. Z8), "gap" },
  { "bytes after the last tensor", file("{" .. T1 .. "}", Z8 .. "\0\0\0\0"), "not described" },
  { "fractional shape", file('{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}', Z8), "integer" },
  { "too many dimensions", file('{"a":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}}', "\0\0\0\0"),
    "dimensions" },
  { "bad escape", file('{"a\\q":{}}', ""), "escape" },
  { "not an object", file("[1,2]", ""), "not a JSON object" },
}

describe("safetensors", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("round-trips f32 exactly and f16 to half precision, with metadata", function()
    local r = mv.rng(1, "st")
    local w = mv.randn(r, { 3, 5 })
    local b = mv.tensor { 0.1, -65504, 1e-8, 3.14159 }
    local path = dir .. "/m.safetensors"
    assert.is_true(st.save(path, { ["enc/w"] = w, ["enc/b"] = b },
      { metadata = { config = '{"z":256}', format_version = "1" }, dtypes = { ["enc/b"] = "F16" } }))
    local t, meta, names, dtypes = st.load(path)
    assert.same({ "enc/b", "enc/w" }, names)
    assert.equal("F16", dtypes["enc/b"])
    assert.equal("F32", dtypes["enc/w"])
    assert.same(w:totable(), t["enc/w"]:totable())
    local got = t["enc/b"]:totable()
    for i, v in ipairs(b:totable()) do assert.equal(mv.core.round_f16(v), got[i]) end
    assert.equal(0, got[3]) -- below half's smallest subnormal
    assert.equal('{"z":256}', meta.config)
    -- all-f16 file of a transposed view
    assert.is_true(st.save(path, { x = w:t() }, { dtype = "f16" }))
    local t2 = st.load(path)
    assert.same({ 5, 3 }, t2.x:size())
    assert.near(w:get(2, 4), t2.x:get(4, 2), 2e-3)
  end)

  it("writes and reads in memory, deterministically", function()
    local a = mv.tensor { 1, 2 }
    local s1 = st.encode({ a = a, b = a }, { metadata = { x = "1", y = "2" } })
    local s2 = st.encode({ b = a, a = a }, { metadata = { y = "2", x = "1" } })
    assert.equal(s1, s2)
    assert.equal(0, (8 + string.unpack("<I8", s1)) % 8)
    local t = st.decode(s1)
    assert.same({ 1, 2 }, t.b:totable())
    -- arrays keep the caller's order
    local s3 = st.encode { { "z", a }, { "a", a, "BF16" } }
    local _, _, names, dt = st.decode(s3)
    assert.same({ "z", "a" }, names)
    assert.equal("BF16", dt.a)
  end)

  it("returns nil, err for every malformed file and never raises", function()
    assert.is_true(#MALFORMED >= 15)
    for _, case in ipairs(MALFORMED) do
      local name, bytes, word = case[1], case[2], case[3]
      local path = dir .. "/bad.safetensors"
      H.writefile(path, bytes)
      local ok, t, err = pcall(st.load, path)
      assert.is_true(ok, name .. ": raised " .. tostring(t))
      assert.is_nil(t, name .. ": accepted")
      assert.is_string(err, name)
      assert.truthy(err:find(word, 1, true), ("%s: message %q lacks %q"):format(name, err, word))
      assert.truthy(err:find(path, 1, true), name .. ": message does not name the file")
      local t2, err2 = st.decode(bytes)
      assert.is_nil(t2, name)
      assert.truthy(err2:find(word, 1, true), name)
    end
  end)

  it("refuses every truncation and random corruption of a valid file", function()
    local s = st.encode({ a = mv.ones(3, 3), b = mv.zeros(2) }, { metadata = { k = "v" } })
    for cut = 0, #s - 1 do
      assert.is_nil((st.decode(s:sub(1, cut))), "accepted a file cut at " .. cut)
    end
    local r = mv.rng(77, "fuzz")
    for _ = 1, 2000 do
      local pos = r:integer(#s)
      local b = string.char(r:integer(0, 255))
      local bad = s:sub(1, pos - 1) .. b .. s:sub(pos + 1)
      local ok = pcall(st.decode, bad) -- may load (data bytes), must not raise
      assert.is_true(ok)
    end
  end)

  it("reports missing files and unwritable paths as nil, err", function()
    local t, err = st.load(dir .. "/nope.safetensors")
    assert.is_nil(t)
    assert.matches("nope.safetensors", err)
    local ok, err2 = st.save(dir .. "/no/such/dir/x.safetensors", { a = mv.ones(1) })
    assert.is_nil(ok)
    assert.matches("no/such/dir", err2)
    local f = io.open(dir .. "/no/such/dir/x.safetensors")
    assert.is_nil(f)
  end)

  it("raises for programmer errors", function()
    assert.has_error(function() st.save(dir .. "/x", { a = 1 }) end)
    assert.has_error(function() st.save(dir .. "/x", { a = mv.ones(1) }, { dtype = "I8" }) end)
    assert.has_error(function() st.save(dir .. "/x", { a = mv.ones(1) }, { metadata = { k = 1 } }) end)
    assert.has_error(function() st.encode { { "a", mv.ones(1) }, { "a", mv.ones(1) } } end)
    assert.has_error(function() st.load(42) end)
  end)

  describe("interoperability with an independent implementation (tools/safetensors_ref.py)", function()
    local py = "/usr/bin/python3"
    local tool = H.root .. "/tools/safetensors_ref.py"

    it("reads files written here", function()
      if not H.have(py) then
        pending("python3 is not installed")
        return
      end
      local r = mv.rng(4, "interop")
      local w = mv.randn(r, { 4, 3 })
      local path = dir .. "/ours.safetensors"
      assert.is_true(st.save(path, { ["encoder/mu/kernel"] = w, ["encoder/mu/bias"] = mv.tensor { 0.5, -1 } },
        { metadata = { format_version = "1", note = 'quote " and ü' }, dtypes = { ["encoder/mu/bias"] = "F16" } }))
      local out, err, code = H.run(py .. " " .. H.shell_quote(tool) .. " read " .. H.shell_quote(path))
      assert.equal(0, code, err)
      local doc = assert(json.decode(out))
      assert.equal('quote " and ü', doc.metadata.note)
      local k = doc.tensors["encoder/mu/kernel"]
      assert.equal("F32", k.dtype)
      assert.same({ 4, 3 }, k.shape)
      assert.same(H.flatten(w:totable()), k.values)
      assert.same({ 0.5, -1 }, doc.tensors["encoder/mu/bias"].values)
    end)

    it("loads files written there", function()
      if not H.have(py) then
        pending("python3 is not installed")
        return
      end
      local spec = {
        metadata = { who = "python" },
        tensors = {
          a = { dtype = "F32", shape = { 2, 2 }, values = { 1.5, -2, 3.25, 1e-7 } },
          h = { dtype = "F16", shape = { 3 }, values = { 0.1, 65504, -0.5 } },
          b = { dtype = "BF16", shape = { 1, 2 }, values = { 1, -3.5 } },
          e = { dtype = "F32", shape = { 0 }, values = {} },
        },
      }
      spec.tensors.e.values = json.array {}
      local path = dir .. "/theirs.safetensors"
      local specf = dir .. "/spec.json"
      H.writefile(specf, json.encode(spec))
      local _, err, code = H.run(py .. " " .. H.shell_quote(tool) .. " write " .. H.shell_quote(path) .. " < " ..
        H.shell_quote(specf))
      assert.equal(0, code, err)
      local t, meta = st.load(path)
      assert.is_table(t, meta)
      assert.equal("python", meta.who)
      assert.same({ { 1.5, -2 }, { 3.25, (string.unpack("<f", string.pack("<f", 1e-7))) } }, t.a:totable())
      assert.same({ mv.core.round_f16(0.1), 65504, -0.5 }, t.h:totable())
      assert.same({ { 1, -3.5 } }, t.b:totable())
      assert.same({ 0 }, t.e:size())
    end)
  end)
end)
