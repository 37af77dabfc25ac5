local mv = require "musicvae"
local H = require "spec.helpers"

describe("incremental generation", function()
  local m = mv.Model.new({ enc = { 16 }, cond = { 12 }, dec = { 16 }, z = 8 }, 11)

  it("step() in pieces gives the pattern one whole sample gives with the same seed and index", function()
    for _, temp in ipairs { 0, 0.8 } do
      local whole = m:sample { n = 4, seed = 21, temperature = temp }
      for index = 1, 4 do
        local g = m:generator { seed = 21, index = index, temperature = temp }
        local got = {}
        local sizes = { 1, 3, 16, 7, 100 }
        local k = 1
        while not g:done() do
          for _, l in ipairs(g:step(sizes[k])) do got[#got + 1] = l end
          k = k % #sizes + 1
        end
        assert.same(whole[index].labels, got, ("index %d, temperature %g"):format(index, temp))
        assert.same(whole[index].labels, g:pattern().labels)
        assert.same({}, g:step(5))
      end
    end
  end)

  it("run_for overruns its budget by at most one step (counted with a stepping clock)", function()
    local fake = 0
    local g = m:generator { seed = 1, clock = function()
      fake = fake + 0.003 -- every look at the clock costs 3 ms
      return fake
    end }
    -- budget 10 ms from the first read (3 ms): checks at 6, 9 and 12 ms (3, 6, 9 ms in) start a
    -- step each; the check at 15 ms (12 ms in) stops. The last step began inside the budget.
    local made = g:run_for(10)
    assert.equal(3, made)
    assert.equal(3, g:position())
    assert.equal(0, g:run_for(0))
    local rest = g:run_for(1e9)
    assert.equal(61, rest)
    assert.is_true(g:done())
    assert.equal(0, g:run_for(5))
  end)

  it("generators with different seeds run side by side without interfering", function()
    local a1 = m:sample { n = 1, seed = 1, temperature = 1 }[1]
    local b1 = m:sample { n = 1, seed = 2, temperature = 1 }[1]
    local ga, gb = m:generator { seed = 1, temperature = 1 }, m:generator { seed = 2, temperature = 1 }
    local la, lb = {}, {}
    while not (ga:done() and gb:done()) do
      for _, l in ipairs(ga:step(3)) do la[#la + 1] = l end
      for _, l in ipairs(gb:step(5)) do lb[#lb + 1] = l end
    end
    assert.same(a1.labels, la)
    assert.same(b1.labels, lb)
  end)

  it("works as a coroutine that yields every k steps", function()
    local g = m:generator { seed = 4, temperature = 0.5 }
    local next_chunk = g:coroutine(16)
    local chunks = 0
    while true do
      local c = next_chunk()
      if not c then break end
      assert.equal(16, #c)
      chunks = chunks + 1
    end
    assert.equal(4, chunks)
    assert.same(m:sample { n = 1, seed = 4, temperature = 0.5 }[1].labels, g:pattern().labels)
  end)

  it("vary moves z by a seeded step of the given size and generates incrementally", function()
    local p = mv.pattern { labels = { 5, 0, 4, 0, 6, 0, 4, 0, 5, 0, 4, 0, 6, 0, 4, 0 }, bars = 4 }
    local g0 = m:vary(p, { amount = 0, seed = 3 })
    local mu = m:encode { p }
    assert.same(mu:totable(), g0.z:totable())
    local g1, g2 = m:vary(p, { amount = 0.5, seed = 3 }), m:vary(p, { amount = 0.5, seed = 3 })
    assert.same(g1.z:totable(), g2.z:totable())
    local d = 0
    for k = 1, 8 do d = d + (g1.z:get(1, k) - mu:get(1, k)) ^ 2 end
    assert.is_true(d > 0)
    g1:step(64)
    assert.is_true(g1:done())
  end)

  it("a generator made right after the parameters change decodes with the new ones, conductor included", function()
    local mm = mv.Model.new({ enc = { 16 }, cond = { 12 }, dec = { 16 }, z = 8 }, 5)
    local before = mm:sample { n = 1, seed = 2, temperature = 0.5 }[1].labels -- packs the decoder
    -- the conductor's initial state (it runs when the generator is made), changed through a view
    mm:params()["decoder/hierarchical_level_0/initial_state/kernel"]:fill(0.5)
    local g = mm:generator { seed = 2, temperature = 0.5 }
    g:step(64)
    local after = mm:sample { n = 1, seed = 2, temperature = 0.5 }[1].labels
    assert.are_not.same(before, after) -- the change matters
    assert.same(after, g:pattern().labels)
  end)

  it("closing the model stops its generators with a clear error", function()
    local mm = mv.Model.new({ enc = { 8 }, cond = { 6 }, dec = { 8 }, z = 4 }, 1)
    local g = mm:generator { seed = 1 }
    mm:close()
    assert.has_error(function() g:step(1) end, "the generator's model is closed")
  end)
end)

describe("the embedding host example", function()
  it("builds, runs a few beats and writes MIDI", function()
    local exe = H.root .. "/" .. H.build_dir() .. "/mv_host"
    local f = io.open(exe)
    if not f then
      pending("mv_host was not built (liblua5.4-dev missing?)")
      return
    end
    f:close()
    local dir = H.tmpdir()
    local model = dir .. "/m.safetensors"
    assert(mv.Model.new("tiny", 1):save(model))
    local out, err, code = H.run(H.shell_quote(exe) .. " " .. H.shell_quote(H.root .. "/examples/host/live.lua") .. " " ..
      H.shell_quote(model) .. " 8 " .. H.shell_quote(dir .. "/host.mid"), { MUSICVAE_ROOT = H.root })
    assert.equal(0, code, err)
    assert.matches("beat %d+: a new bar", out)
    assert.matches("wrote %d+ bars to", out)
    assert.truthy(mv.midi.read(dir .. "/host.mid"))
    H.rmtree(dir)
  end)
end)
