-- examples/pd/mvdrums.pd_lua: the object's logic under a fake `pd` table (what pdlua gives a
-- .pd_lua file), and the help patch in a real Pd when pd and a pdlua built for Lua 5.4 are found.
local mv = require "musicvae"
local H = require "spec.helpers"

local OBJECT = H.root .. "/examples/pd/mvdrums.pd_lua"
local HELP = H.root .. "/examples/pd/mvdrums-help.pd"

--- A fake of what pdlua gives a .pd_lua file: pd.Class with register/new/outlet/error, pd.post and
-- pd._loadpath. Returns the class the file registered and the fake (posts, errors, outlets).
local function load_object()
  local fake = { posts = {}, errors = {}, classes = {} }
  local Class = {}
  Class.__index = Class
  function Class:new()
    local o = setmetatable({}, self)
    self.__index = self
    return o
  end
  function Class:register(name)
    fake.classes[name] = self
    self._name = name
    return self
  end
  function Class:outlet(n, sel, atoms)
    assert(math.type(n) == "integer" and n >= 1 and n <= self.outlets, "outlet out of range: " .. tostring(n))
    self.sent[#self.sent + 1] = { n = n, sel = sel, atoms = atoms }
  end
  function Class:error(msg) fake.errors[#fake.errors + 1] = msg end
  local pd = { Class = Class, _loadpath = H.root .. "/examples/pd/" }
  function pd.post(msg) fake.posts[#fake.posts + 1] = msg end
  fake.pd = pd
  local saved = _G.pd
  _G.pd = pd
  local ok, err = pcall(dofile, OBJECT)
  _G.pd = saved
  assert(ok, err)
  return assert(fake.classes.mvdrums, "the file registers the class mvdrums"), fake
end

--- Creates an object as pdlua does (new, then initialize with the creation atoms).
local function create(cls, atoms, clock)
  cls.clock = clock
  local o = cls:new()
  o.sent = {}
  o._canvaspath = H.root .. "/examples/pd/"
  assert.is_true(o:initialize("mvdrums", atoms or {}))
  return o
end

--- Sends a message the way pdlua dispatches it (bang: no argument; others: the atom list).
local function send(o, sel, ...)
  local m = o["in_1_" .. sel]
  assert(type(m) == "function", "no method for " .. sel)
  if sel == "bang" then return m(o) end
  return m(o, { ... })
end

--- One tick; returns {step, label, notes = {{pitch, vel}}, drums = {[class] = vel}}, or nil if silent.
local function tick(o)
  o.sent = {}
  send(o, "tick")
  local r
  for _, m in ipairs(o.sent) do
    if m.n == 11 then
      r = r or { notes = {}, drums = {} }
      r.step, r.label = m.atoms[1], m.atoms[2]
    elseif m.n == 10 then
      r.notes[#r.notes + 1] = m.atoms
    else
      assert.equal("float", m.sel)
      r.drums[m.n] = m.atoms[1]
    end
  end
  return r
end

--- Ticks until a new pattern starts; checks it starts at step 1 and returns its labels, played out.
local function next_pattern(o)
  local before = o.current
  local r, prev
  repeat
    prev = o.pos
    r = tick(o)
  until o.current ~= before
  assert.equal(1, r.step)
  assert.equal(0, prev % o.spb, "the old pattern was at a bar line")
  local labels = { r.label }
  for s = 2, #o.current.labels do labels[s] = tick(o).label end
  return labels
end

--- A clock where every read costs 2^-12 s (0.244 ms): run_for(1) then starts exactly 4 steps.
local function stepping_clock(cost)
  local t = 0
  cost = cost or 2 ^ -12
  return function()
    t = t + cost
    return t
  end
end

describe("pd object mvdrums (fake pd)", function()
  local dir = H.tmpdir()
  local model = mv.Model.new({ enc = { 16 }, cond = { 12 }, dec = { 16 }, z = 8 }, 11)
  local path = dir .. "/tiny.safetensors"
  assert(model:save(path))
  model = assert(mv.Model.load(path))
  local cls = load_object()
  teardown(function() H.rmtree(dir) end)
  -- the object puts the checkout's paths on package.path/cpath; the tier's build must stay first
  local saved_path, saved_cpath
  before_each(function() saved_path, saved_cpath = package.path, package.cpath end)
  after_each(function() package.path, package.cpath = saved_path, saved_cpath end)

  it("spends at most the budget per tick, starts the first pattern once ready, and plays it", function()
    local want = model:sample { n = 1, seed = 5, temperature = 0.5 }[1].labels
    local o = create(cls, { path, 5, 1 }, stepping_clock())
    assert.equal(11, o.outlets)
    -- 4 steps per tick at 1 ms: ticks 1-16 generate, nothing plays; pattern 1 starts on tick 17
    for k = 1, 16 do
      assert.is_nil(tick(o), "tick " .. k .. " is silent")
      assert.equal(k < 16 and 4 * k or nil, o.ahead.gen and o.ahead.gen:position())
    end
    for s = 1, 64 do
      local r = tick(o)
      assert.equal(s, r.step)
      assert.equal(want[s], r.label)
    end
    assert.equal(1, tick(o).step) -- it loops
  end)

  it("the budget argument scales the work per tick, so a pattern takes several ticks", function()
    local o = create(cls, { path, 5, 2 }, stepping_clock())
    tick(o)
    assert.equal(8, o.ahead.gen:position())
    local ticks = 1
    while not o.current do
      tick(o)
      ticks = ticks + 1
    end
    assert.equal(9, ticks) -- 8 ticks of 8 steps, played on the 9th
  end)

  it("outlets: one per instrument (fixed velocity), pitch-velocity pairs, right to left", function()
    local want = model:sample { n = 1, seed = 9, temperature = 1 }[1]
    local o = create(cls, { path, 9 }, stepping_clock())
    send(o, "temperature", 1)
    while not o.current do tick(o) end
    o.pos = 0
    local pitches = mv.drums.exemplars(mv.drums.map())
    local hits = 0
    for s = 1, 64 do
      o.sent = {}
      send(o, "tick")
      local classes = mv.drums.classes_of(want.labels[s])
      local seen_drums = {}
      assert.equal(11, o.sent[1].n, "the step outlet comes first (rightmost)")
      for i, m in ipairs(o.sent) do
        if m.n <= 9 then
          seen_drums[#seen_drums + 1] = m.n
          assert.same({ 80 }, m.atoms)
          assert.is_true(i == 1 or o.sent[i - 1].n > m.n, "instrument outlets go right to left")
        elseif m.n == 10 then
          assert.equal("list", m.sel)
        end
      end
      table.sort(seen_drums)
      assert.same(classes, seen_drums, "step " .. s)
      local notes = {}
      for _, m in ipairs(o.sent) do if m.n == 10 then notes[#notes + 1] = m.atoms end end
      assert.equal(#classes, #notes)
      for k, c in ipairs(classes) do assert.same({ pitches[c], 80 }, notes[k]) end
      hits = hits + #classes
    end
    assert.is_true(hits > 0, "temperature 1 plays something")
  end)

  it("bang: a new pattern starts at a bar line once generated, never mid-bar", function()
    local p = model:sample { n = 3, seed = 2, temperature = 0.5 }
    local o = create(cls, { path, 2 }, stepping_clock(2 ^ -11)) -- 2 steps per tick
    local ticks = 0
    while not o.current do
      tick(o)
      ticks = ticks + 1
    end
    assert.equal(33, ticks)
    for _ = 1, 4 do tick(o) end -- steps 2-5; pattern 2 is 10 steps along
    send(o, "bang")
    assert.equal(10, o.ahead.gen:position())
    send(o, "bang") -- a second bang while one waits changes nothing
    assert.equal(10, o.ahead.gen:position())
    local got = {}
    for _ = 1, 27 + 16 do got[#got + 1] = tick(o) end
    -- pattern 2 is ready after step 32: the bar line at step 17 passes, the one at 33 swaps
    for k = 1, 27 do
      assert.equal(5 + k, got[k].step)
      assert.equal(p[1].labels[5 + k], got[k].label, "pattern 1 plays on until pattern 2 is ready")
    end
    for k = 1, 16 do
      assert.equal(k, got[27 + k].step)
      assert.equal(p[2].labels[k], got[27 + k].label, "pattern 2 from the bar line")
    end
    -- pattern 3 is generated ahead while pattern 2 plays: a bang at step 40 swaps at step 49
    for _ = 17, 40 do tick(o) end
    assert.is_true(o.ahead.ready)
    send(o, "bang")
    for s = 41, 48 do assert.equal(p[2].labels[s], tick(o).label) end
    for s = 1, 16 do
      local r = tick(o)
      assert.equal(s, r.step)
      assert.equal(p[3].labels[s], r.label)
    end
  end)

  it("seed, temperature and vary start new patterns at a bar line; reset rewinds", function()
    local o = create(cls, { path, 1 }, stepping_clock())
    while not o.current do tick(o) end
    for _ = 1, 6 do tick(o) end
    send(o, "seed", 7)
    assert.equal(7, o.seed)
    local t05 = model:sample { n = 1, seed = 7, temperature = 0.5 }[1].labels
    assert.same(t05, next_pattern(o))
    send(o, "temperature", 2)
    local t2 = model:sample { n = 1, seed = 7, temperature = 2 }[1].labels
    assert.are_not.same(t05, t2)
    assert.same(t2, next_pattern(o))
    local playing = o.current.labels
    send(o, "vary", 0.5)
    local g = model:vary(mv.pattern { labels = playing }, { amount = 0.5, seed = 8 })
    g:run_for(1e9)
    assert.same(g:pattern().labels, next_pattern(o))
    for _ = 1, 5 do tick(o) end
    send(o, "reset")
    assert.equal(1, tick(o).step)
  end)

  it("a model name resolves in the models folder, and model NAME switches models at a bar line", function()
    local o = create(cls, { "gmd-4bar-small", 3 }, stepping_clock())
    assert.is_true(o.model.config.enc[1] > 16, "the shipped model, not the tiny one")
    while not o.current do tick(o) end
    send(o, "model", path)
    assert.equal(path, o.model_name)
    assert.same(model:sample { n = 1, seed = 3, temperature = 0.5 }[1].labels, next_pattern(o))
    -- a relative path is found beside the patch (the canvas folder), not in Pd's working folder
    send(o, "model", "../../models/gmd-4bar-small.safetensors")
    assert.equal(o._canvaspath .. "../../models/gmd-4bar-small.safetensors", o.model.path)
    assert.is_true(o.model.config.enc[1] > 16)
  end)

  it("groove models: velocities from the model, decoded when asked, never in a tick", function()
    local gm = mv.load("gmd-4bar-humanize")
    if not gm then
      pending("the shipped humanize model is absent")
      return
    end
    local want = gm:sample { n = 1, seed = 4, temperature = 0.5 }[1]
    local gcls, fake = load_object()
    local o = create(gcls, { "gmd-4bar-humanize", 4 }, stepping_clock())
    assert.is_true(o.groove)
    local r = tick(o)
    assert.equal(1, r.step)
    local loud, n = {}, 0
    for s = 1, 64 do
      if s > 1 then r = tick(o) end
      assert.equal(want.labels[s], r.label)
      for c, v in pairs(r.drums) do
        local expect = math.min(127, math.max(1, math.floor(want.velocities[s][c] + 0.5)))
        assert.equal(expect, v)
        loud[v] = true
        n = n + 1
      end
    end
    local distinct = 0
    for _ in pairs(loud) do distinct = distinct + 1 end
    assert.is_true(n > 0 and distinct > 1, "velocities vary")
    assert.is_nil(o.ahead, "nothing is generated in ticks")
    send(o, "bang")
    assert.is_true(o.ahead.ready)
    send(o, "vary", 0.5)
    assert.is_true(o.ahead.ready)
    assert.same({}, fake.errors)
  end)

  it("attr and style shift the next patterns by the model's vectors; unknown names go to the console", function()
    local A = require "musicvae.attributes"
    local r = mv.rng(3, "pd-spec")
    local rows = {}
    for i = 1, 24 do
      rows[i] = {}
      for s = 1, 64 do rows[i][s] = r:uniform() < (i % 6 + 1) / 8 and (1 | (s % 2 == 0 and 4 or 0)) or 0 end
    end
    local styles = {}
    for i = 1, 24 do styles[i] = i % 2 == 0 and "funk" or "rock" end
    local saved = A.MIN_STYLE_WINDOWS
    A.MIN_STYLE_WINDOWS = 4
    local vec = A.compute(model, mv.tensor(rows), { styles = styles })
    A.MIN_STYLE_WINDOWS = saved
    local vpath = dir .. "/tiny-vec.safetensors"
    assert(A.write(path, vpath, vec))
    local vm = assert(mv.Model.load(vpath))
    local scls, fake = load_object()
    local o = create(scls, { vpath, 1 }, stepping_clock())
    while not o.current do tick(o) end
    send(o, "attr", "density", 2)
    local want = vm:sample { n = 1, seed = 1, first_index = 2, temperature = 0.5, attributes = { density = 2 } }[1]
    assert.same(want.labels, next_pattern(o))
    send(o, "style", "funk")
    want = vm:sample { n = 1, seed = 1, first_index = 3, temperature = 0.5, attributes = { density = 2 },
      style = "funk" }[1]
    assert.same(want.labels, next_pattern(o))
    local n = #fake.errors
    send(o, "attr", "densty", 1)
    assert.matches("mvdrums: attr: unknown attribute 'densty'; this model has: ", fake.errors[n + 1])
    send(o, "style", "polka")
    assert.matches("mvdrums: style: unknown style 'polka'", fake.errors[n + 2])
    send(o, "attr", "density", 0 / 0)
    assert.matches("finite amount", fake.errors[n + 3])
    assert.same({ density = 2 }, o.attrs) -- a refused message changes nothing
    assert.equal("funk", o.style)
  end)

  it("errors go to the console and never raise: bad model, bad messages, a broken generator", function()
    local ecls, fake = load_object()
    local o = create(ecls, { "no-such-model", 1 }, stepping_clock())
    assert.is_nil(o.model)
    assert.matches("mvdrums: loading the model: no model named 'no%-such%-model'", fake.errors[1])
    for _ = 1, 3 do assert.is_nil(tick(o)) end
    send(o, "bang")
    assert.matches("no model loaded", fake.errors[#fake.errors])
    send(o, "vary", 0.2)
    assert.matches("no model loaded", fake.errors[#fake.errors])
    send(o, "model", path) -- fixes it
    while not o.current do tick(o) end
    local n = #fake.errors
    send(o, "seed", 1.5)
    assert.matches("seed must be an integer", fake.errors[n + 1])
    send(o, "seed")
    assert.matches("seed must be an integer", fake.errors[n + 2])
    send(o, "temperature", -1)
    assert.matches("temperature must be a number >= 0", fake.errors[n + 3])
    send(o, "model")
    assert.matches("model needs a name", fake.errors[n + 4])
    local ahead = o.ahead
    send(o, "model", "no-such-model")
    assert.matches("no model named", fake.errors[n + 5])
    assert.equal(path, o.model_name, "a failed model message keeps the old model")
    assert.equal(ahead, o.ahead, "and what it generates ahead")
    send(o, "vary", -1)
    assert.matches("amount must be", fake.errors[n + 6])
    assert.equal(n + 6, #fake.errors)
    -- the generator fails (its model closed under it): one message, ticks go on playing
    send(o, "bang")
    o.model:close()
    assert.not_nil(tick(o))
    assert.equal(n + 7, #fake.errors)
    assert.matches("mvdrums: generating: ", fake.errors[n + 7])
    for _ = 1, 5 do assert.not_nil(tick(o)) end
    assert.equal(n + 7, #fake.errors, "reported once, not on every tick")
    send(o, "model", path)
    assert.equal(n + 7, #fake.errors)
    next_pattern(o)
    assert.equal(n + 7, #fake.errors)
    -- a failure inside a tick (here a broken playing pattern) is reported once, and Pd goes on
    o.current.labels = { "not a label" }
    o.pos = 0
    tick(o)
    tick(o)
    assert.equal(n + 8, #fake.errors)
    assert.matches("mvdrums: tick: ", fake.errors[n + 8])
    local bad = create(ecls, { path, 1, -2 }, stepping_clock())
    assert.matches("budget", fake.errors[#fake.errors])
    assert.equal(1, bad.budget)
  end)
end)

-- The help patch in Pd itself: pd -batch runs its metro in logical time as fast as it can, a second
-- patch quits after 20 s of it (160 ticks), and [print mvdrums-step] shows what played.
describe("pd object mvdrums in Pd", function()
  local function why_not()
    if not H.have("pd") then return "pd is not installed (apt-get install puredata-core)" end
    local dir = os.getenv("MUSICVAE_PDLUA")
    if not dir or dir == "" then
      return "MUSICVAE_PDLUA is not set: point it at the folder of a pdlua built for Lua 5.4 "
        .. "(examples/pd/README.md says how to build one)"
    end
    local out = H.run("ls " .. H.shell_quote(dir) .. " 2>/dev/null")
    if not out:find("pdlua%.pd_") and not out:find("pdlua%.l_") then
      return "MUSICVAE_PDLUA=" .. dir .. " holds no pdlua binary (pdlua.pd_linux)"
    end
    local f = io.open(H.root .. "/build/musicvae/core.so", "rb")
    if not f then return "build/musicvae/core.so is missing (Pd is not instrumented, so it needs build/)" end
    f:close()
    return nil, dir
  end

  it("plays the help patch's pattern on the metro's ticks", function()
    local reason, pdlua = why_not()
    if reason then
      pending(reason)
      return
    end
    local help = H.readfile(HELP)
    local name, seed = help:match("#X obj %d+ %d+ mvdrums (%S+) (%-?%d+)")
    assert(name, "the help patch creates [mvdrums MODEL SEED ...]")
    local dir = H.tmpdir()
    H.writefile(dir .. "/quit.pd", table.concat({ "#N canvas 0 0 300 200 12;", "#X obj 10 10 loadbang;",
      "#X obj 10 40 delay 20000;", "#X msg 10 70 \\; pd quit;", "#X connect 0 0 1 0;", "#X connect 1 0 2 0;" }, "\n") .. "\n")
    local out, err, code = H.run(("cd %s && timeout 120 pd -nogui -nosound -nomidi -batch -path %s -lib pdlua "
      .. "-open mvdrums-help.pd -open %s -send 'mvdrums-help-print 1' -send 'mvdrums-help-play 1' 2>&1")
      :format(H.shell_quote(H.root .. "/examples/pd"), H.shell_quote(pdlua), H.shell_quote(dir .. "/quit.pd")))
    H.rmtree(dir)
    local log = out .. err
    assert.equal(0, code, log)
    local version = log:match("Using lua version (%d+%.%d+)")
    if version and version ~= "5.4" then
      pending("the pdlua in MUSICVAE_PDLUA is built for Lua " .. version .. ", not 5.4")
      return
    end
    assert.is_nil(log:match("[^\n]*error[^\n]*"), log)
    local steps, labels = {}, {}
    for s, l in log:gmatch("mvdrums%-step: (%d+) (%d+)") do
      steps[#steps + 1], labels[#labels + 1] = tonumber(s), math.tointeger(tonumber(l))
    end
    assert.is_true(#steps >= 80, ("at least 80 of the 160 ticks played (%d did)\n%s"):format(#steps, log))
    for k = 1, #steps do assert.equal((k - 1) % 64 + 1, steps[k], "steps count 1-64 and loop") end
    local want = assert(mv.load(name)):sample { n = 1, seed = tonumber(seed), temperature = 0.5 }[1].labels
    assert.same(want, table.move(labels, 1, 64, 1, {}))
    for k = 65, #labels do assert.equal(want[(k - 1) % 64 + 1], labels[k], "the loop, step " .. k) end
  end)
end)
