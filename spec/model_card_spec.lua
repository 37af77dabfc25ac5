-- docs/model-card.md's numbers, re-measured: every "# Model card: NAME" section's Metrics table is
-- parsed (whatever its rows), models/NAME.safetensors is evaluated on ../shared's Groove validation
-- split as the card says (`musicvae eval ... --json`), and each printed number must be the measured
-- one to its printed precision. Columns: "shipped" (the model as shipped), "baseline" (the metric's
-- _baseline), "f32" (the f32 checkpoint: the card's claim is that f16 changed no metric beyond the
-- fourth decimal, so the shipped model's measurement must be within 1e-3 of it). #full: it prepares
-- the Groove folder and evaluates each model on about 1,900 windows (a minute or two each).
local mv = require "musicvae"
local H = require "spec.helpers"
local json = require "musicvae.json"

-- the card's row names that are not eval's key spelled with underscores
local ALIAS = { recon_loss = "recon_nll" }

local function cells(line)
  local out = {}
  for c in line:gmatch("|([^|]*)") do out[#out + 1] = (c:gsub("%*", ""):match("^%s*(.-)%s*$")) end
  if out[#out] == "" then out[#out] = nil end
  return out
end

--- {name = ..., rows = {{key, column, text}...}} for each model card section
local function parse_card(text)
  local cards, card, state = {}, nil, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local name = line:match("^# Model card: (%S+)")
    if name then
      card = { name = name, rows = {} }
      cards[#cards + 1] = card
      state = nil
    elseif card and line:match("^## ") then
      state = line:match("^## Metrics") and "before" or nil
    elseif card and state == "before" and line:match("^|") then
      card.header, state = cells(line), "sep"
    elseif card and state == "sep" then
      state = "rows"
    elseif card and state == "rows" then
      if not line:match("^|") then
        state = nil
      else
        local c = cells(line)
        local key = c[1]:gsub("%b()", ""):match("^%s*(.-)%s*$"):gsub("%s+", "_")
        key = ALIAS[key] or key
        for j = 2, #card.header do
          local h = card.header[j]:lower()
          local col = h:match("shipped") and "shipped" or h:match("baseline") and "baseline" or h:match("f32") and "f32"
          if col and c[j] and c[j] ~= "" then card.rows[#card.rows + 1] = { key, col, c[j] } end
        end
      end
    end
  end
  return cards
end

local function number(text)
  local s = text:gsub(",", "")
  local v = tonumber(s)
  assert(v, "not a number in the card: " .. text)
  local decimals = #(s:match("%.(%d+)$") or "")
  return v, 0.5 * 10 ^ -decimals
end

describe("docs/model-card.md #full", function()
  it("parses every model card's metrics table", function()
    local cards = parse_card(H.readfile(H.root .. "/docs/model-card.md"))
    assert.is_true(#cards >= 2)
    for _, card in ipairs(cards) do
      assert.is_true(#card.rows >= 4, card.name .. ": no metrics table found")
    end
  end)

  it("prints the numbers that eval measures on each shipped model", function()
    local shared, why = H.shared()
    if not shared or not mv.core.isdir(shared .. "/data/groove") then
      pending(why or (shared .. " has no data/groove folder"))
      return
    end
    local cards = parse_card(H.readfile(H.root .. "/docs/model-card.md"))
    local dir = H.tmpdir()
    local data = {}
    local function dataset(groove)
      local k = groove and "groove" or "drums"
      if not data[k] then
        data[k] = dir .. "/" .. k .. ".mvd"
        assert(mv.data.prepare(shared .. "/data/groove", data[k],
          { info = shared .. "/data/groove/info.csv", groove = groove }))
      end
      return data[k]
    end
    -- the release build when there is one: these are the model's numbers, not a sanitizer check
    local build = mv.core.isfile(H.root .. "/build/musicvae/core.so") and "build" or H.build_dir()
    local env = { LD_PRELOAD = "", LUA_CPATH = H.root .. "/" .. build .. "/?.so;;",
      LUA_PATH = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;" }
    for _, card in ipairs(cards) do
      local path = H.root .. "/models/" .. card.name .. ".safetensors"
      assert.is_true(mv.core.isfile(path), "the card describes " .. card.name .. " but " .. path .. " is missing")
      local m = assert(mv.Model.load(path))
      local groove = m.config.groove
      m:close()
      local out, err, code = H.run("lua5.4 " .. H.shell_quote(H.root .. "/bin/musicvae") .. " eval --model " ..
        H.shell_quote(path) .. " " .. H.shell_quote(dataset(groove)) .. " --split validation --json", env)
      assert.equal(0, code, err)
      local r = assert(json.decode(out:match("([^\n]+)\n?$")))
      for _, row in ipairs(card.rows) do
        local key, col, text = row[1], row[2], row[3]
        local printed, half = number(text)
        local measured = r[col == "baseline" and key .. "_baseline" or key]
        assert.is_number(measured, ("%s: the card prints %s (%s) but eval reports no such metric"):format(card.name,
          key, col))
        local tol = col == "f32" and half + 1e-3 or half + 1e-12
        assert.is_true(math.abs(measured - printed) <= tol, ("%s %s (%s): the card prints %s, eval measures %.6f")
          :format(card.name, key, col, text, measured))
      end
    end
    H.rmtree(dir)
  end)
end)
