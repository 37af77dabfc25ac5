--[[ mvdrums: MusicVAE drums as a Pure Data object (pdlua built for Lua 5.4).

  [mvdrums MODEL SEED BUDGET]   MODEL a name in the models folder or a path (default: the shipped
                                gmd-4bar-small); SEED (default 1); BUDGET in ms (default 1). A number
                                as the first argument is the seed: [mvdrums 7].

  Inlet messages:
    tick               play the current step (send it from a [metro]), then spend at most BUDGET ms
                       of g:run_for on the pattern being generated ahead
    bang               the next pattern (index + 1 of the seed); it starts at the next bar line
                       once generated
    seed N             pattern 1 of seed N, from the next bar line once generated
    temperature T      the playing pattern's seed and index again at temperature T
    model NAME         load another model (blocks Pd while it loads: tens of ms), same pattern index
    vary AMOUNT        a variation of the playing pattern: z = mu + AMOUNT * eps (encoding it blocks
                       for a few ms)
    attr NAME AMOUNT   from the next pattern on, shift z by AMOUNT times the model's attribute
                       vector NAME (density, kick, syncopation16, ...; 0 removes it)
    style NAME         from the next pattern on, shift z by the model's style vector NAME
                       (funk, jazz, ...); "style" alone or "style none" removes it
    reset              the next tick plays step 1 of the pattern

  Outlets 1-9: the velocity of each hit per instrument (kick, snare, closed hi-hat, open hi-hat,
  low, mid and high tom, crash, ride): the model's for groove models, else 80. Outlet 10: one
  "pitch velocity" list per hit (GM drum pitches) for [noteout 10]. Outlet 11: "step label" on every
  tick (step 1-based in the pattern, label the 9-bit drum label).

  Categorical models generate step by step within the tick budget: a new pattern is ready within a
  few ticks and no tick computes a whole pattern. The library has no incremental generator for groove
  models yet, so with one each new pattern is decoded whole when it is asked for (a few ms, in the
  message, never in a tick). Errors go to Pd's console and never stop Pd.
]]

local pd = pd -- pdlua's table, kept for the methods
local mvdrums = pd.Class:new():register("mvdrums")

local NUM_CLASSES = 9
local NAMES = { "kick", "snare", "closed hi-hat", "open hi-hat", "low tom", "mid tom", "high tom", "crash", "ride" }
mvdrums.velocity = 80 -- what categorical hits play at (the conventions' MIDI velocity)
mvdrums.clock = nil -- the generators' clock; nil = musicvae's (tests put a fake one here)

-- Where musicvae is found: a checkout around this file (examples/pd/../../lua and build/), a
-- musicvae folder beside it (the LuaRocks layout: musicvae/*.lua, musicvae/core.so,
-- musicvae/models/), then Lua's own paths (LUA_PATH_5_4 and LUA_CPATH_5_4, e.g. from `luarocks
-- path`). pdlua puts this file's folder on the paths only while it loads the file, and musicvae
-- looks for its models through package.path later, so the entries are added for good.
local HERE = (pd._loadpath and pd._loadpath ~= "") and (pd._loadpath:gsub("/*$", "/")) or "./"
local function add_paths()
  local function prepend(field, entry)
    if not package[field]:find(entry, 1, true) then package[field] = entry .. ";" .. package[field] end
  end
  prepend("path", HERE .. "?.lua")
  prepend("path", HERE .. "?/init.lua")
  prepend("cpath", HERE .. "?.so")
  local root = HERE .. "../../"
  local f = io.open(root .. "lua/musicvae/init.lua", "r")
  if f then
    f:close()
    prepend("cpath", root .. "build/?.so")
    prepend("path", root .. "lua/?/init.lua")
    prepend("path", root .. "lua/?.lua")
  end
end

-- "…/model.lua:562: live generation needs …" -> "live generation needs …"
local function clean(err)
  return (tostring(err):gsub("^[^\n:]*lua:%d+: ", ""))
end

--- Runs f(self, ...) and sends any error to Pd's console; returns f's results or nil.
local function guard(self, what, f, ...)
  local res = table.pack(pcall(f, self, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  self:error(("mvdrums: %s: %s"):format(what, clean(res[2])))
  return nil
end

local function integer_arg(v, what)
  if type(v) ~= "number" or v ~= v or v ~= math.floor(v) or math.abs(v) >= 2 ^ 53 then
    error(what .. " must be an integer", 0)
  end
  return math.tointeger(v)
end

-- Models ----------------------------------------------------------------------------------------

--- Loads a model by name or path (a relative path is tried beside the patch first).
function mvdrums:load_model(name)
  add_paths()
  local mv = require "musicvae"
  self.mv = mv
  mv.set_num_threads(1) -- no BLAS threads beside Pd's audio thread
  local spec = name
  if spec and spec:find("/") and spec:sub(1, 1) ~= "/" and self._canvaspath then
    local f = io.open(self._canvaspath .. spec, "rb")
    if f then
      f:close()
      spec = self._canvaspath .. spec
    end
  end
  local m, err = mv.load(spec)
  if not m then error(err, 0) end
  self:drop_ahead() -- its generator belongs to the old model
  if self.model then pcall(self.model.close, self.model) end
  self.model, self.model_name = m, name or os.getenv("MUSICVAE_MODEL") or require("musicvae.models").DEFAULT
  self.groove = m.config.groove and true or false
  self.spb = m.config.steps_per_bar
  self.pitches = mv.drums.exemplars(mv.drums.map())
  if self.groove then
    pd.post(("mvdrums: %s is a groove model: each new pattern is decoded whole when it is asked for "
      .. "(no incremental groove generator yet)"):format(self.model_name))
  end
end

-- Patterns generated ahead ----------------------------------------------------------------------
-- self.ahead = {gen, index, labels, velocities, ready}: the pattern that plays from the next bar line
-- once it is ready and asked for (self.want).

function mvdrums:drop_ahead()
  if self.ahead and self.ahead.gen then pcall(self.ahead.gen.close, self.ahead.gen) end
  self.ahead = nil
end

local function groove_take(p, index)
  local vel = {}
  for s = 1, #p.labels do
    vel[s] = {}
    for c = 1, NUM_CLASSES do vel[s][c] = p.velocities and p.velocities[s] and p.velocities[s][c] or 0 end
  end
  return { index = index, labels = p.labels, velocities = vel, ready = true }
end

--- Starts pattern `index` of the current seed and temperature (ready at once for groove models).
function mvdrums:prepare(index)
  self:drop_ahead()
  if not self.model then error("no model loaded (send: model NAME)", 0) end
  if self.groove then
    local p = self.model:sample { n = 1, seed = self.seed, first_index = index, temperature = self.temperature,
      attributes = self:shift_attributes(), style = self.style }[1]
    self.ahead = groove_take(p, index)
  else
    local g = self.model:generator { seed = self.seed, index = index, temperature = self.temperature, clock = self.clock,
      attributes = self:shift_attributes(), style = self.style }
    self.ahead = { gen = g, index = index }
  end
end

--- One tick's share of generating ahead: at most self.budget ms of g:run_for.
function mvdrums:generate()
  local a = self.ahead
  if not a or a.ready then return end
  local ok, err = pcall(function()
    a.gen:run_for(self.budget)
    if a.gen:done() then
      a.labels = a.gen:pattern().labels
      a.ready = true
      a.gen:close()
      a.gen = nil
    end
  end)
  if not ok then
    self:drop_ahead() -- one message, not one per tick
    self.want = false
    self:error("mvdrums: generating: " .. clean(err))
  end
end

function mvdrums:swap()
  local a = self.ahead
  self.current = { index = a.index, labels = a.labels, velocities = a.velocities }
  self.ahead, self.want, self.pos = nil, false, 0
  if self.groove then return end -- groove patterns are decoded when asked for, not ahead
  local ok, err = pcall(self.prepare, self, a.index + 1) -- the next one, so that bang is instant
  if not ok then self:error("mvdrums: generating: " .. clean(err)) end
end

-- Pd methods ------------------------------------------------------------------------------------

function mvdrums:initialize(_, atoms)
  self.inlets, self.outlets = 1, NUM_CLASSES + 2
  local name, k = nil, 1
  if type(atoms[1]) == "string" then
    name, k = atoms[1], 2
    if name == "-" or name == "default" then name = nil end
  end
  self.seed, self.temperature, self.budget, self.pos, self.varies = 1, 0.5, 1, 0, 0
  guard(self, "arguments", function()
    if atoms[k] ~= nil then self.seed = integer_arg(atoms[k], "the seed (argument " .. k .. ")") end
    if atoms[k + 1] ~= nil then
      local b = atoms[k + 1]
      if type(b) ~= "number" or b <= 0 or b ~= b then error("the budget (ms) must be a number > 0", 0) end
      self.budget = b
    end
  end)
  guard(self, "loading the model", self.load_model, name)
  if self.model then
    self.want = true
    guard(self, "generating", self.prepare, 1)
  end
  return true -- the object exists even without a model: `model NAME` can fix it, connections stay
end

--- A tick's error is reported once, not on every tick after it.
function mvdrums:in_1_tick()
  local ok, err = pcall(self.play, self)
  if ok then
    self.tick_error = nil
  elseif clean(err) ~= self.tick_error then
    self.tick_error = clean(err)
    self:error("mvdrums: tick: " .. self.tick_error)
  end
end

function mvdrums:play()
  local c = self.current
  -- A new pattern starts at a bar line; the first one as soon as it is ready.
  if self.want and self.ahead and self.ahead.ready and (not c or self.pos % self.spb == 0) then
    self:swap()
    c = self.current
  end
  if c then
    local s = self.pos + 1
    local label = c.labels[s]
    self:outlet(NUM_CLASSES + 2, "list", { s, label })
    local hits = {}
    for cls = 1, NUM_CLASSES do
      if label & (1 << (cls - 1)) ~= 0 then
        local v = c.velocities and math.max(1, math.floor(c.velocities[s][cls] + 0.5)) or self.velocity
        hits[#hits + 1] = { cls, math.min(127, v) }
      end
    end
    for _, h in ipairs(hits) do self:outlet(NUM_CLASSES + 1, "list", { self.pitches[h[1]], h[2] }) end
    for i = #hits, 1, -1 do self:outlet(hits[i][1], "float", { hits[i][2] }) end -- right to left
    self.pos = s % #c.labels
  end
  self:generate()
end

function mvdrums:in_1_bang()
  guard(self, "bang", function()
    if not self.model then error("no model loaded (send: model NAME)", 0) end
    local next_index = (self.current and self.current.index or 0) + 1
    if not (self.ahead and self.ahead.index == next_index) then self:prepare(next_index) end
    self.want = true
  end)
end

function mvdrums:in_1_seed(atoms)
  guard(self, "seed", function()
    self.seed = integer_arg(atoms[1], "seed")
    self:prepare(1)
    self.want = true
  end)
end

function mvdrums:in_1_temperature(atoms)
  guard(self, "temperature", function()
    local t = atoms[1]
    if type(t) ~= "number" or t < 0 or t ~= t then error("temperature must be a number >= 0", 0) end
    self.temperature = t
    self:prepare(self.current and self.current.index or 1)
    self.want = true
  end)
end

function mvdrums:in_1_model(atoms)
  guard(self, "model", function()
    if type(atoms[1]) ~= "string" then error("model needs a name or a path", 0) end
    self:load_model(atoms[1]) -- on failure the old model and what it generates ahead stay
    self:prepare(self.current and self.current.index or 1)
    self.want = true
  end)
end

function mvdrums:in_1_vary(atoms)
  guard(self, "vary", function()
    local amount = atoms[1] == nil and 0.3 or atoms[1]
    if type(amount) ~= "number" or amount < 0 or amount ~= amount then error("vary: amount must be a number >= 0", 0) end
    if not self.model then error("no model loaded (send: model NAME)", 0) end
    local c = self.current
    if not c then error("nothing is playing yet to vary", 0) end
    self.varies = self.varies + 1
    local seed = self.seed + self.varies -- each vary a new step from the playing pattern
    local p = { labels = c.labels, bars = #c.labels // self.spb, steps_per_bar = self.spb }
    local ahead
    if self.groove then
      p.velocities, p.offsets = c.velocities, {}
      for s = 1, #c.labels do p.offsets[s] = { 0, 0, 0, 0, 0, 0, 0, 0, 0 } end
      local mu = self.model:encode { self.mv.pattern(p) }
      local r = self.mv.rng(seed, "vary", 1)
      for k = 1, self.model.config.z do mu:set(mu:get(1, k) + amount * r:normal(), 1, k) end
      local q = self.model:decode(mu, { temperature = 0, seed = seed })[1]
      ahead = groove_take(q, c.index)
    else
      local g = self.model:vary(self.mv.pattern(p), { amount = amount, seed = seed, clock = self.clock })
      ahead = { gen = g, index = c.index }
    end
    self:drop_ahead()
    self.ahead, self.want = ahead, true
  end)
end

--- The attribute amounts in force (nil when none).
function mvdrums:shift_attributes()
  return self.attrs and next(self.attrs) and self.attrs or nil
end

-- Checks a shift against the model's vectors (the library's error names what the model has).
function mvdrums:check_shift(attrs, style)
  if not self.model then error("no model loaded (send: model NAME)", 0) end
  local ok, err = pcall(require("musicvae.attributes").offset, self.model,
    { attributes = attrs and next(attrs) and attrs or nil, style = style })
  if not ok then error(err, 0) end
end

function mvdrums:in_1_attr(atoms)
  guard(self, "attr", function()
    local name, amount = atoms[1], atoms[2]
    if type(name) ~= "string" or type(amount) ~= "number" or amount ~= amount or math.abs(amount) == math.huge then
      error("attr needs a name and a finite amount (attr density 1)", 0)
    end
    local attrs = {}
    for k, v in pairs(self.attrs or {}) do attrs[k] = v end
    attrs[name] = amount ~= 0 and amount or nil
    self:check_shift(attrs, self.style)
    self.attrs = attrs
    self:prepare((self.current and self.current.index or 0) + 1)
    self.want = true
  end)
end

function mvdrums:in_1_style(atoms)
  guard(self, "style", function()
    local name = atoms[1]
    if name ~= nil and type(name) ~= "string" then error("style needs a name (style funk), or none", 0) end
    if name == "none" then name = nil end
    self:check_shift(self.attrs, name)
    self.style = name
    self:prepare((self.current and self.current.index or 0) + 1)
    self.want = true
  end)
end

function mvdrums:in_1_reset()
  self.pos = 0
end

function mvdrums:finalize()
  self:drop_ahead()
  if self.model then pcall(self.model.close, self.model) end
  self.model = nil
end

mvdrums.NAMES = NAMES
