local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"
local Data = mv.data

describe("datasets", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  local fixtures = H.root .. "/spec/fixtures/midi"

  it("prepares a folder: windows per split, a report by reason, a drop list", function()
    local out = dir .. "/d.mvd"
    local rep = assert(Data.prepare(fixtures, out, {}))
    assert.equal(5, rep.files)
    assert.equal(4, rep.kept)            -- the 3/4 file is dropped
    assert.equal(1, rep.dropped.meter)
    local total = rep.windows.train + rep.windows.validation + rep.windows.test
    assert.is_true(total > 0)
    local drops = H.readfile(out .. ".drops.tsv")
    assert.matches("waltz%-3%-4%.mid\tmeter\t", drops)
    local ds = assert(Data.load(out))
    assert.equal(total, ds:size("train") + ds:size("validation") + ds:size("test"))
    assert.equal(4, ds.bars)
    -- every window is 64 labels in 0..511 and names its source
    for _, split in ipairs { "train", "validation", "test" } do
      for i = 1, ds:size(split) do
        local w, file, bar = ds:window(split, i)
        assert.equal(64, #w)
        for _, l in ipairs(w) do assert.is_true(l >= 0 and l <= 511) end
        assert.matches("%.mid$", file)
        assert.is_true(bar >= 1)
      end
    end
  end)

  it("caps windows per file deterministically", function()
    local a = assert(Data.prepare(fixtures, dir .. "/a.mvd", { max_per_file = 1 }))
    local b = assert(Data.prepare(fixtures, dir .. "/b.mvd", { max_per_file = 1 }))
    assert.equal(4, a.windows.train + a.windows.validation + a.windows.test)
    assert.equal(H.readfile(dir .. "/a.mvd"), H.readfile(dir .. "/b.mvd"))
    assert.same({ 1, 4, 7 }, Data.cap({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 3))
  end)

  it("uses info.csv splits and drops files it does not list", function()
    local csv = dir .. "/info.csv"
    H.writefile(csv, 'drummer,midi_filename,split\nx,rock-8bars-120.mid,validation\ny,"cut-time-2-2.mid",train\n')
    local rep = assert(Data.prepare(fixtures, dir .. "/i.mvd", { info = csv }))
    assert.equal(2, rep.kept)
    assert.equal(3, rep.dropped["not in info.csv"])
    assert.is_true(rep.windows.validation > 0 and rep.windows.train > 0)
    assert.equal(0, rep.windows.test)
    H.writefile(csv, "a,b\n1,2\n")
    local ok, err = Data.prepare(fixtures, dir .. "/j.mvd", { info = csv })
    assert.is_nil(ok)
    assert.matches("midi_filename and split", err)
  end)

  it("refuses corrupt, foreign and newer dataset files", function()
    local out = dir .. "/d.mvd"
    assert(Data.prepare(fixtures, out, {}))
    local bytes = H.readfile(out)
    -- flip a byte in the data block
    local bad = bytes:sub(1, #bytes - 10) .. string.char((bytes:byte(#bytes - 9) + 1) % 256) .. bytes:sub(#bytes - 8)
    H.writefile(dir .. "/bad.mvd", bad)
    local ds, err = Data.load(dir .. "/bad.mvd")
    assert.is_nil(ds)
    assert.matches("checksum", err)
    -- a newer major version
    local t, meta = mv.safetensors.load(out)
    meta.format_version = "2.0"
    assert(mv.safetensors.save(dir .. "/new.mvd", t, { metadata = meta }))
    ds, err = Data.load(dir .. "/new.mvd")
    assert.is_nil(ds)
    assert.matches("needs a newer musicvae", err)
    -- any other safetensors file
    assert(mv.safetensors.save(dir .. "/other.mvd", { x = mv.ones(1) }))
    ds, err = Data.load(dir .. "/other.mvd")
    assert.is_nil(ds)
    assert.matches("not a musicvae dataset", err)
  end)

  it("shuffles by seed and batches into tensors", function()
    local out = dir .. "/d.mvd"
    assert(Data.prepare(fixtures, out, {}))
    local ds = assert(Data.load(out))
    local split = ds:size("train") > 0 and "train" or "validation"
    local n = ds:size(split)
    local o1, o2, o3 = ds:order(split, 7, 0), ds:order(split, 7, 0), ds:order(split, 7, 1)
    assert.same(o1, o2)
    if n > 3 then assert.are_not.same(o1, o3) end
    local seen, count = {}, 0
    for b, idx in ds:batches(split, { batch_size = 3, seed = 7 }) do
      assert.equal(64, b:size(2))
      assert.equal(#idx, b:size(1))
      for k, i in ipairs(idx) do
        seen[i] = true
        count = count + 1
        local w = ds:window(split, i)
        assert.same(w, (function()
          local row = b:select(1, k):totable()
          for j = 1, #row do row[j] = math.tointeger(row[j]) end
          return row
        end)())
      end
    end
    assert.equal(n, count)
    for i = 1, n do assert.is_true(seen[i]) end
  end)

  it("parses CSV fields with quotes", function()
    assert.same({ "a", "b,c", 'say "hi"', "" }, Data.csv_fields('a,"b,c","say ""hi""",'))
    assert.is_nil(Data.csv_fields('"open'))
  end)
end)

describe("the labels and prepare commands", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("labels --json prints the oracle's fields", function()
    local out, err, code = H.cli("labels --json " .. H.shell_quote(H.root .. "/spec/fixtures/midi/rock-8bars-120.mid"))
    assert.equal(0, code, err)
    assert.matches('^{"file":".-","qpm":120,"ts":%["4/4"%],"ppq":480,"steps":128,"labels":%[', out)
    local o = json.decode(out)
    assert.equal(128, #o.labels)
    assert.equal(5, o.labels[1])
  end)

  it("labels prints a grid and reports bad files in one line", function()
    local out, err, code = H.cli("labels " .. H.shell_quote(H.root .. "/spec/fixtures/midi/rock-8bars-120.mid"))
    assert.equal(0, code, err)
    assert.matches("BD |x", out)
    out, err, code = H.cli("labels " .. H.shell_quote(H.root .. "/spec/fixtures/hostile/05-format-2.mid"))
    assert.equal(1, code)
    assert.matches("^musicvae: .-format 2[^\n]*\n$", err)
    _, err, code = H.cli("labels --drum-channel 17 x.mid")
    assert.equal(2, code)
    assert.matches("^musicvae: [^\n]+\n$", err)
  end)

  it("prepare writes the dataset and a report, and refuses to overwrite without --force", function()
    local out = dir .. "/d.mvd"
    local o, err, code = H.cli("prepare " .. H.shell_quote(H.root .. "/spec/fixtures/midi") .. " -o " .. H.shell_quote(out))
    assert.equal(0, code, err)
    assert.matches("read 5 MIDI files", o)
    assert.matches("dropped %(meter%): 1", o)
    assert.truthy(Data.load(out))
    _, err, code = H.cli("prepare " .. H.shell_quote(H.root .. "/spec/fixtures/midi") .. " -o " .. H.shell_quote(out))
    assert.equal(1, code)
    assert.matches("%-%-force", err)
    _, err, code = H.cli("prepare " .. H.shell_quote(H.root .. "/spec/fixtures/midi"))
    assert.equal(2, code)
    _, err, code = H.cli("prepare /nonexistent -o " .. H.shell_quote(out))
    assert.equal(1, code)
    assert.matches("not a folder", err)
  end)
end)
