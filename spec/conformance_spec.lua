-- Conformance with Magenta on the Groove MIDI Dataset (../shared/oracle).
-- Fast tier: every 17th file; full tier (#full): all 1021 files, and prepare's exact counts.
-- Each test skips with a message when ../shared, its oracle/ or its Groove folder is missing.
-- (prepare's timing on the folder is a benchmark: lua5.4 bench/bench.lua --only prepare.)
local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"

local function groove_dir()
  local shared, why = H.shared()
  if not shared then return nil, why end
  if not mv.core.isdir(shared .. "/data/groove") then return nil, shared .. " has no data/groove folder" end
  return shared
end

local function oracle_lines()
  local shared, why = groove_dir()
  if not shared then return nil, why end
  local f = io.open(shared .. "/oracle/groove-magenta.jsonl", "r")
  if not f then return nil, shared .. " has no oracle/groove-magenta.jsonl (magenta's reference output)" end
  f:close()
  local lines = {}
  for l in io.lines(shared .. "/oracle/groove-magenta.jsonl") do lines[#lines + 1] = l end
  return lines, shared
end

local function check(lines, shared, every)
  local bad, n = {}, 0
  for i = 1, #lines, every do
    local o = assert(json.decode(lines[i]))
    local r, err = mv.midi.labels(shared .. "/data/groove/" .. o.file)
    n = n + 1
    if not r then
      bad[#bad + 1] = o.file .. ": " .. err
    else
      local same = r.steps == o.steps and #r.labels == #o.labels and math.abs(r.qpm - o.qpm) <= 1e-6
      if same then
        for k = 1, #r.labels do
          if r.labels[k] ~= o.labels[k] then
            same = false
            break
          end
        end
      end
      if not same then bad[#bad + 1] = ("%s: steps %d vs %d"):format(o.file, r.steps, o.steps) end
    end
  end
  return n, bad
end

-- GrooVAE's view: velocities and offsets of the loudest note per (step, class).
-- magenta.js reports velocities as floor(v * 128 / 127) (its MIDI_VELOCITIES is 128), so 127 reads 128.
local function check_groove(lines, shared, every)
  local bad, n = {}, 0
  for i = 1, #lines, every do
    local o = assert(json.decode(lines[i]))
    local p = assert(mv.midi.groove(shared .. "/data/groove/" .. o.file))
    local exp = {}
    for _, nt in ipairs(o.notes) do
      local s, c, v, off = nt[1] + 1, nt[2] + 1, nt[3], nt[4]
      exp[s] = exp[s] or {}
      if not exp[s][c] or v > exp[s][c][1] then exp[s][c] = { v, off } end
    end
    local ok = true
    for s, row in pairs(exp) do
      for c, e in pairs(row) do
        local v = p.velocities[s] and p.velocities[s][c]
        local off = p.offsets[s] and p.offsets[s][c]
        if not v or v * 128 // 127 ~= e[1] or math.abs(2 * off - e[2]) > 1e-5 then ok = false end
      end
    end
    for s, row in pairs(p.velocities) do
      for c in pairs(row) do if not (exp[s] and exp[s][c]) then ok = false end end
    end
    n = n + 1
    if not ok then bad[#bad + 1] = o.file end
  end
  return n, bad
end

-- The same two tests for each checker: every 17th file (fast tier) and all of them (full tier).
local function conformance_tests(check_fn)
  it("agrees on a sample of the Groove files", function()
    local lines, shared = oracle_lines()
    if not lines then
      pending(shared)
      return
    end
    local n, bad = check_fn(lines, shared, 17)
    assert.is_true(n >= 60)
    assert.same({}, bad)
  end)

  it("agrees on every Groove file #full", function()
    local lines, shared = oracle_lines()
    if not lines then
      pending(shared)
      return
    end
    local n, bad = check_fn(lines, shared, 1)
    assert.equal(1021, n)
    assert.same({}, bad)
  end)
end

describe("conformance with magenta's velocities and offsets", function()
  conformance_tests(check_groove)
end)

describe("conformance with magenta's labels", function()
  conformance_tests(check)

  it("prepares the whole Groove folder, accounting for every file, with the README's counts #full", function()
    local shared, why = groove_dir()
    if not shared then
      pending(why)
      return
    end
    local dir = H.tmpdir()
    local rep = assert(mv.data.prepare(shared .. "/data/groove", dir .. "/g.mvd",
      { info = shared .. "/data/groove/info.csv" }))
    assert.equal(1021, rep.files)
    local dropped = 0
    for _, v in pairs(rep.dropped) do dropped = dropped + v end
    assert.equal(rep.files, rep.kept + dropped)
    assert.equal(dropped, #rep.drops)
    -- the numbers README.md, docs/process.md and the model card print
    assert.equal(378, rep.kept)
    assert.same({ ["too short"] = 631, meter = 12 }, rep.dropped)
    assert.equal(15611, rep.windows.train)
    assert.equal(1911, rep.windows.validation)
    H.rmtree(dir)
  end)
end)
