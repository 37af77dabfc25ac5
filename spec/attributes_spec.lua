local mv = require "musicvae"
local H = require "spec.helpers"
local core = require "musicvae.core"
local F = require "musicvae.features"
local A = require "musicvae.attributes"

-- A seeded random label tensor: n windows of 64 steps, each with its own density.
local function random_windows(n, seed)
  local r = core.rng(seed, "attributes-spec")
  local rows = {}
  for i = 1, n do
    local p = (i % 8 + 1) / 16
    local row = {}
    for s = 1, 64 do
      local l = 0
      for c = 1, 9 do
        if r:uniform() < p * (c <= 3 and 2 or 0.5) then l = l | (1 << (c - 1)) end
      end
      row[s] = l
    end
    rows[i] = row
  end
  return core.tensor(rows), rows
end

describe("attribute vectors", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmtree(dir) end)

  it("split the ranked values into quartiles, ties by index", function()
    local bottom, top = A.quartiles { 5, 1, 3, 3, 9, 0, 7, 3 }
    assert.same({ 6, 2 }, bottom)
    assert.same({ 7, 5 }, top)
  end)

  it("are the mean mu of the top quartile minus the bottom one, stored beside the weights", function()
    local m = mv.Model.new("tiny", 1)
    local path = dir .. "/tiny.safetensors"
    assert(m:save(path))
    local labels, rows = random_windows(40, 7)
    local styles = {}
    for i = 1, 40 do styles[i] = i <= 30 and (i % 2 == 0 and "funk" or "rock") or "" end
    local saved = A.MIN_STYLE_WINDOWS
    A.MIN_STYLE_WINDOWS = 10
    local vec = A.compute(m, labels, { styles = styles, source = "spec" })
    A.MIN_STYLE_WINDOWS = saved
    local out = dir .. "/tiny-vec.safetensors"
    assert(A.write(path, out, vec))
    local m2 = assert(mv.Model.load(out))
    -- recompute independently: mu, the attribute, sort, means
    local mu = m:encode(rows and (function()
      local ps = {}
      for i, r in ipairs(rows) do ps[i] = mv.pattern { labels = r } end
      return ps
    end)())
    local dens = {}
    for i, r in ipairs(rows) do dens[i] = { F.attributes(r, 16).density, i } end
    table.sort(dens, function(a, b) return a[1] ~= b[1] and a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    local want = {}
    for d = 1, 16 do
      local lo, hi = 0, 0
      for k = 1, 10 do
        lo = lo + mu:get(dens[k][2], d) / 10
        hi = hi + mu:get(dens[30 + k][2], d) / 10
      end
      want[d] = hi - lo
    end
    assert.is_true(H.maxdiff(want, m2.vectors.attributes.density) < 1e-5)
    -- styles: the mean of a style minus the mean of all windows with a style
    local funk, all = {}, {}
    for d = 1, 16 do
      funk[d], all[d] = 0, 0
      for i = 1, 30 do
        all[d] = all[d] + mu:get(i, d) / 30
        if i % 2 == 0 then funk[d] = funk[d] + mu:get(i, d) / 15 end
      end
      funk[d] = funk[d] - all[d]
    end
    assert.is_true(H.maxdiff(funk, m2.vectors.styles.funk) < 1e-5)
    assert.same({ "funk", "rock" }, m2.vectors.info.styles)
    -- the weights are the input's
    local p1, p2 = m:params(), m2:params()
    for name, t in pairs(p1) do assert.equal(t:tobytes(), p2[name]:tobytes(), name) end
    -- never in place
    local ok, err = A.write(out, out, vec)
    assert.is_nil(ok)
    assert.matches("input model", err)
  end)

  it("shift by 0 is the reconstruction; unknown names and bad amounts raise", function()
    local m = mv.Model.new("tiny", 2)
    local labels, rows = random_windows(16, 3)
    local saved = A.MIN_STYLE_WINDOWS
    A.MIN_STYLE_WINDOWS = 4
    local styles = {}
    for i = 1, 16 do styles[i] = i % 2 == 0 and "funk" or "rock" end
    local vec = A.compute(m, labels, { styles = styles })
    A.MIN_STYLE_WINDOWS = saved
    local path, out = dir .. "/t2.safetensors", dir .. "/t2v.safetensors"
    assert(m:save(path))
    assert(A.write(path, out, vec))
    m = assert(mv.Model.load(out))
    local p = mv.pattern { labels = rows[1] }
    local rec = m:reconstruct(p)
    local sh = m:shift(p, { attributes = { density = 0 } })
    assert.same(rec.labels, sh.labels)
    local moved = m:shift(p, { attributes = { density = 3 }, style = "funk" })
    assert.equal(64, #moved.labels)
    assert.has_error(function() m:shift(p, { attributes = { densty = 1 } }) end,
      "unknown attribute 'densty'; this model has: " .. table.concat(A.sorted_keys(m.vectors.attributes), ", "))
    assert.has_error(function() m:shift(p, { style = "polka" }) end)
    assert.has_error(function() m:shift(p, { attributes = { density = 0 / 0 } }) end)
    assert.has_error(function() m:sample { attributes = { density = math.huge } } end)
    assert.has_error(function() mv.Model.new("tiny", 1):sample { style = "funk" } end) -- no vectors
    -- sample with a style is seed-deterministic and differs from the unshifted sample's z
    local a, za = m:sample { n = 3, seed = 5, style = "funk" }
    local b, zb = m:sample { n = 3, seed = 5, style = "funk" }
    local _, z0 = m:sample { n = 3, seed = 5 }
    for i = 1, 3 do assert.same(a[i].labels, b[i].labels) end
    assert.equal(za:tobytes(), zb:tobytes())
    assert.is_true(math.abs(za:get(1, 1) - z0:get(1, 1) - m.vectors.styles.funk[1]) < 1e-5)
    -- the generator shifts the same way: its steps equal sample's pattern
    local g = m:generator { seed = 5, index = 2, style = "funk" }
    local steps = g:step(64)
    assert.same(a[2].labels, steps)
  end)

  it("refuse vectors of the wrong size when loading", function()
    local m = mv.Model.new("tiny", 1)
    local path = dir .. "/bad.safetensors"
    local list = {}
    local P_ = m:params()
    for i, p in ipairs(m.vae:param_list()) do list[i] = { p.name, P_[p.name] } end
    list[#list + 1] = { "attribute/density", core.zeros(7) }
    local meta = { format = "musicvae-model", format_version = "1.0", config = require("musicvae.json").encode(m.config) }
    assert(mv.safetensors.save(path, list, { metadata = meta }))
    local ok, err = mv.Model.load(path)
    assert.is_nil(ok)
    assert.matches("attribute/density has shape %[7%]", err)
  end)
end)

-- Prepares the MIDI fixtures into dir/d.mvd with an info.csv giving file i the style style_of(i).
local function styled_fixtures(dir, style_of)
  local files = {}
  for f in io.popen("ls " .. H.shell_quote(H.root .. "/spec/fixtures/midi")):lines() do
    if f:match("%.mid$") then files[#files + 1] = f end
  end
  local csv = { "midi_filename,style,split" }
  for i, f in ipairs(files) do csv[#csv + 1] = ("%s,%s,train"):format(f, style_of(i)) end
  H.writefile(dir .. "/info.csv", table.concat(csv, "\n") .. "\n")
  return assert(mv.data.prepare(H.root .. "/spec/fixtures/midi", dir .. "/d.mvd", { info = dir .. "/info.csv" }))
end

describe("prepare", function()
  it("records each window's primary style from info.csv", function()
    local dir = H.tmpdir()
    local rep = styled_fixtures(dir, function(i) return i % 2 == 0 and "jazz/funk" or "rock" end)
    local ds = assert(mv.data.load(dir .. "/d.mvd"))
    local st = ds:styles("train")
    assert.equal(ds:size("train"), #st)
    for i, s in ipairs(st) do
      local fi = math.tointeger(ds.splits.train.source:get(i, 1))
      assert.equal(fi % 2 == 0 and "jazz" or "rock", s)
    end
    assert.is_true(rep.kept > 0)
    H.rmtree(dir)
  end)
end)

describe("the attributes and shift commands", function()
  it("write, list and use a model's vectors, with one-line errors", function()
    local dir = H.tmpdir()
    styled_fixtures(dir, function() return "rock" end)
    local model = dir .. "/tiny.safetensors"
    assert(mv.Model.new("tiny", 1):save(model))
    local q = H.shell_quote
    local out, err, code = H.cli("attributes --model " .. q(model) .. " --data " .. q(dir .. "/d.mvd") .. " -o " ..
      q(dir .. "/v.safetensors"))
    assert.equal(0, code, err)
    assert.matches("attribute vectors %(density", out)
    out, err, code = H.cli("attributes --model " .. q(dir .. "/v.safetensors") .. " --list --json")
    assert.equal(0, code, err)
    local j = require("musicvae.json").decode(out:match("([^\n]+)\n$"))
    -- every attribute that varies across the windows (kick does not in these fixtures)
    assert.same(A.sorted_keys(assert(mv.Model.load(dir .. "/v.safetensors")).vectors.attributes), j.attributes)
    assert.is_true(#j.attributes >= 8)
    assert.same({}, j.styles) -- fewer windows than A.MIN_STYLE_WINDOWS
    -- the input is never overwritten, an existing output needs --force
    _, err, code = H.cli("attributes --model " .. q(model) .. " --data " .. q(dir .. "/d.mvd") .. " -o " .. q(model))
    assert.equal(1, code)
    assert.matches("^musicvae: .*exists; use %-%-force", err)
    local midi = q(H.root .. "/spec/fixtures/midi/rock-8bars-120.mid")
    out, err, code = H.cli("shift --model " .. q(dir .. "/v.safetensors") .. " " .. midi ..
      " --attr density=+1 --attr snare=-0.5 -q -o " .. q(dir .. "/out"))
    assert.equal(0, code, err)
    assert.matches("shift%-s0%-t0%-001%.mid", out)
    _, err, code = H.cli("shift --model " .. q(dir .. "/v.safetensors") .. " " .. midi .. " --attr dens=1 -o " ..
      q(dir .. "/out"))
    assert.equal(2, code)
    assert.equal(1, select(2, err:gsub("\n", "")))
    assert.matches("^musicvae: unknown attribute 'dens'; this model has: cymbals, density", err)
    _, err, code = H.cli("shift --model " .. q(dir .. "/v.safetensors") .. " " .. midi .. " --attr density=nan -o " ..
      q(dir .. "/out"))
    assert.equal(2, code)
    _, err, code = H.cli("sample --model " .. q(model) .. " --style rock -n 1 --seed 1 -o " .. q(dir .. "/s"))
    assert.equal(1, code)
    assert.matches("has no attribute or style vectors", err)
    _, err, code = H.cli("sample --model " .. q(dir .. "/v.safetensors") .. " --style rock -n 1 --seed 1 -o " ..
      q(dir .. "/s"))
    assert.equal(2, code)
    assert.matches("^musicvae: unknown style 'rock'; this model has: none\n$", err)
    out, err, code = H.cli("sample --model " .. q(dir .. "/v.safetensors") .. " --attr density=1 -n 2 --seed 1 -q -o " ..
      q(dir .. "/s"))
    assert.equal(0, code, err)
    H.rmtree(dir)
  end)
end)

describe("the shipped sampling model's vectors", function()
  it("add hits to a hand-made sparse pattern with density and remove them with -density", function()
    local m = assert(mv.load("gmd-4bar-small"))
    assert.is_table(m.vectors, "models/gmd-4bar-small.safetensors carries no vectors")
    local labels = {}
    for s = 1, 64 do labels[s] = 0 end
    for bar = 0, 3 do
      labels[bar * 16 + 1] = 1 -- kick on 1
      labels[bar * 16 + 9] = 2 -- snare on 3
    end
    local function hits(p)
      local n = 0
      for _, l in ipairs(p.labels) do n = n + F.popcount(l) end
      return n
    end
    local p = mv.pattern { labels = labels }
    local base = hits(m:shift(p, { attributes = { density = 0 } }))
    local more = hits(m:shift(p, { attributes = { density = 2 } }))
    assert.is_true(more > base + 8, ("%d hits at +2 vs %d at 0"):format(more, base))
    for _, s in ipairs { "rock", "funk", "jazz", "latin", "afrobeat" } do assert.is_table(m.vectors.styles[s], s) end
  end)
end)

describe("default models per command", function()
  local models = require "musicvae.models"
  it("encoding commands use the reconstruction model, sample the sampling model; --model and $MUSICVAE_MODEL win", function()
    assert.equal("gmd-4bar-small", models.default_for("sample"))
    for _, c in ipairs { "reconstruct", "interpolate", "similar", "shift" } do
      assert.equal("gmd-4bar-hikl", models.default_for(c), c)
    end
    local midi = H.shell_quote(H.root .. "/spec/fixtures/midi/rock-8bars-120.mid")
    local dir = H.tmpdir()
    local function sidecar_model(cmd, env)
      local out, err, code = H.cli(cmd .. " -q --force -o " .. H.shell_quote(dir), env)
      assert.equal(0, code, err)
      local mid = out:match("([^\n]+%.mid)\n")
      return require("musicvae.json").decode(H.readfile((mid:gsub("%.mid$", ".json")))).model
    end
    assert.matches("gmd%-4bar%-hikl%.safetensors$", sidecar_model("reconstruct --bar 1 " .. midi))
    assert.matches("gmd%-4bar%-hikl%.safetensors$", sidecar_model("similar --bar 1 -n 1 --seed 1 " .. midi))
    assert.matches("gmd%-4bar%-small%.safetensors$", sidecar_model("sample -n 1 --seed 1"))
    assert.matches("gmd%-4bar%-small%.safetensors$",
      sidecar_model("reconstruct --bar 1 " .. midi, { MUSICVAE_MODEL = "gmd-4bar-small" }))
    assert.matches("gmd%-4bar%-small%.safetensors$",
      sidecar_model("reconstruct --model gmd-4bar-small --bar 1 " .. midi, { MUSICVAE_MODEL = "gmd-4bar-hikl" }))
    H.rmtree(dir)
  end)
end)
