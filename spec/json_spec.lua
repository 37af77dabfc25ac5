-- musicvae.json: lua-cjson decodes; the project's encoder keeps the sidecars' stable output.
local json = require "musicvae.json"

describe("json", function()
  it("decodes as the project expects: integers, nil for null, arrays that encode as arrays", function()
    local v = assert(json.decode('{"a":[1,2.5,3],"n":null,"e":1e3,"s":"x\\/y\\u00e9\\ud83e\\udd41","o":{"k":true}}'))
    assert.equal("integer", math.type(v.a[1]))
    assert.equal("float", math.type(v.a[2]))
    assert.equal("integer", math.type(v.e))
    assert.is_nil(v.n)
    assert.equal("x/y\u{e9}\u{1f941}", v.s)
    assert.equal('{"a":[1,2.5,3],"e":1000,"o":{"k":true},"s":"x/y\u{e9}\u{1f941}"}', json.encode(v))
  end)

  it("returns nil and a message for malformed text, NaN, hex numbers and trailing text", function()
    for _, s in ipairs { "[1,", "nan", "0x10", "{} x", '{"a" 1}', '"\\ud800"', "" } do
      local v, err = json.decode(s)
      assert.is_nil(v, s)
      assert.matches("^json: ", err)
    end
  end)

  it("encodes with sorted or listed keys, [] for empty arrays and the shortest exact digits", function()
    assert.equal('{"b":1,"a":[]}', json.encode(json.ordered { { "b", 1 }, { "a", json.array {} } }))
    assert.equal('{"a":0.1,"b":[1,2],"c":"a/b"}', json.encode { c = "a/b", b = { 1, 2 }, a = 0.1 })
    assert.equal("0.30000000000000004", json.encode(0.1 + 0.2))
    assert.equal(0.1 + 0.2, json.decode(json.encode(0.1 + 0.2)))
  end)
end)
