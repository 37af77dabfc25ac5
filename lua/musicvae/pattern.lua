--- The pattern value users pass around (see the conventions):
--   musicvae.pattern{labels = {...}, qpm = 120, bars = 4, steps_per_bar = 16}
--   musicvae.pattern{grid = {[class] = {[step] = bool}}}
-- labels are 512-class labels, bit c-1 = class c (class 1 = kick ... 9 = ride).
-- Groove patterns add velocities[step][class] (0-127) and offsets[step][class]
-- (in steps, positive = early).
local D = require "musicvae.drums"

local P = {}
P.__index = P
P.__name = "musicvae.Pattern"

local function is_int(x) return math.type(x) == "integer" or (type(x) == "number" and x == math.floor(x)) end

--- P.new(t) -> pattern; raises on malformed input (a programmer error).
function P.new(t)
  if getmetatable(t) == P then return t end
  if type(t) ~= "table" then error("pattern: expected a table", 2) end
  local spb = t.steps_per_bar or 16
  if not is_int(spb) or spb < 1 then error("pattern: steps_per_bar must be a positive integer", 2) end
  local labels = {}
  if t.labels then
    for i, l in ipairs(t.labels) do
      if not is_int(l) or l < 0 or l > 511 then
        error(("pattern: label %d is %s (labels are integers 0-511)"):format(i, tostring(l)), 2)
      end
      labels[i] = math.tointeger(l)
    end
  elseif t.grid then
    local n = 0
    for c = 1, D.NUM_CLASSES do
      local row = t.grid[c]
      if row then n = math.max(n, #row) end
    end
    for s = 1, n do
      local l = 0
      for c = 1, D.NUM_CLASSES do
        local row = t.grid[c]
        if row and row[s] and row[s] ~= 0 then l = l | (1 << (c - 1)) end
      end
      labels[s] = l
    end
  else
    error("pattern: give labels or grid", 2)
  end
  local bars = t.bars or math.max(1, math.ceil(#labels / spb))
  if not is_int(bars) or bars < 1 then error("pattern: bars must be a positive integer", 2) end
  local steps = bars * spb
  if #labels > steps then error(("pattern: %d labels do not fit %d bars of %d steps"):format(#labels, bars, spb), 2) end
  for s = #labels + 1, steps do labels[s] = 0 end
  local qpm = t.qpm or 120
  if type(qpm) ~= "number" or not (qpm > 0) then error("pattern: qpm must be a positive number", 2) end
  local p = setmetatable({ labels = labels, bars = math.tointeger(bars), steps_per_bar = math.tointeger(spb),
    qpm = qpm }, P)
  if t.velocities then p.velocities = t.velocities end
  if t.offsets then p.offsets = t.offsets end
  return p
end

function P.is(x) return getmetatable(x) == P end

function P:steps() return #self.labels end

--- p:grid() -> [class][step] booleans
function P:grid()
  local g = {}
  for c = 1, D.NUM_CLASSES do
    local row = {}
    local bit = 1 << (c - 1)
    for s, l in ipairs(self.labels) do row[s] = l & bit ~= 0 end
    g[c] = row
  end
  return g
end

--- p:totable() -> a plain table (no metatable), safe to serialise
function P:totable()
  local t = { labels = table.move(self.labels, 1, #self.labels, 1, {}), bars = self.bars,
    steps_per_bar = self.steps_per_bar, qpm = self.qpm }
  if self.velocities then t.velocities = self.velocities end
  if self.offsets then t.offsets = self.offsets end
  return t
end

--- p:hits() -> number of (step, class) hits
function P:hits()
  local n = 0
  for _, l in ipairs(self.labels) do
    while l > 0 do
      n = n + (l & 1)
      l = l >> 1
    end
  end
  return n
end

--- The terminal grid: one row per instrument, "x" per hit, "|" between bars; with
-- velocities, soft hits (below P.SOFT) are "o" and loud ones (P.LOUD and up) "X".
P.SOFT, P.LOUD = 50, 100
function P:__tostring()
  local rows = {}
  local vel = self.velocities
  local head = { "   " }
  for s = 1, #self.labels do
    if (s - 1) % self.steps_per_bar == 0 then head[#head + 1] = "|" end
    head[#head + 1] = ((s - 1) % self.steps_per_bar) % 4 == 0 and tostring(((s - 1) % self.steps_per_bar) // 4 + 1) or " "
  end
  rows[1] = table.concat(head)
  for c = D.NUM_CLASSES, 1, -1 do
    local line = { D.SHORT[c], " " }
    local bit = 1 << (c - 1)
    for s, l in ipairs(self.labels) do
      if (s - 1) % self.steps_per_bar == 0 then line[#line + 1] = "|" end
      local v = vel and vel[s] and vel[s][c]
      line[#line + 1] = l & bit == 0 and ((s - 1) % 4 == 0 and "." or "-")
        or (v and v < P.SOFT and "o") or (v and v >= P.LOUD and "X") or "x"
    end
    rows[#rows + 1] = table.concat(line)
  end
  return table.concat(rows, "\n")
end

function P.__eq(a, b)
  if #a.labels ~= #b.labels or a.steps_per_bar ~= b.steps_per_bar then return false end
  for i, l in ipairs(a.labels) do
    if b.labels[i] ~= l then return false end
  end
  return true
end

return P
