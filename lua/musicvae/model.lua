--- The model from Lua: checkpoints (safetensors with Magenta's variable names), encoding and
-- decoding of patterns, the generation verbs and the live generator. Configurations are in
-- musicvae.config (re-exported here).
local core = require "musicvae.core"
local json = require "musicvae.json"
local st = require "musicvae.safetensors"
local drums = require "musicvae.drums"
local P = require "musicvae.pattern"

local Model = {}
Model.__index = Model

Model.FORMAT = "musicvae-model"
Model.FORMAT_VERSION = "1.0"

local Config = require "musicvae.config"
Model.config, Model.configs, Model.GROOVE_MODES = Config.config, Config.configs, Config.GROOVE_MODES
Model.ARCH, Model.KEYS, Model.check_key = Config.ARCH, Config.KEYS, Config.check_key


-- The core's network description: the architecture keys (steps_per_bar is the core's steps).
local function arch(cfg)
  local a = {}
  for _, k in ipairs(Model.ARCH) do a[k] = cfg[k] end
  a.steps, a.steps_per_bar, a.mode = a.steps_per_bar, nil, nil
  if cfg.groove then a.cond = nil end
  return a
end

--- Model.new(config[, seed]) -> model with magenta's initialisation from (seed, "init")
function Model.new(cfg, seed, lenient)
  cfg = Model.config(cfg, nil, lenient)
  local ok, vae = pcall(core.vae_new, arch(cfg))
  if not ok then error(vae, 2) end
  local m = setmetatable({ vae = vae, config = cfg }, Model)
  m.steps = cfg.bars * cfg.steps_per_bar
  if seed then vae:init(core.rng(seed, "init")) end
  return m
end

function Model:params() return self.vae:params() end
function Model:grads() return self.vae:grads() end
function Model:numel() return self.vae:numel() end
function Model:close() self.vae:close() end

-- Checkpoints ------------------------------------------------------------------
local function meta_of(self, extra)
  local meta = {
    format = Model.FORMAT,
    format_version = Model.FORMAT_VERSION,
    created_by = "musicvae " .. core._VERSION,
    config = json.encode(self.config),
  }
  for k, v in pairs(extra or {}) do meta[k] = tostring(v) end
  return meta
end

--- m:save(path[, {dtype = "F32"|"F16", metadata = {...}}]) -> true or nil, err
function Model:save(path, opts)
  opts = opts or {}
  local list = {}
  local P_ = self.vae:params()
  for i, p in ipairs(self.vae:param_list()) do list[i] = { p.name, P_[p.name], opts.dtype or "F32" } end
  return st.save(path, list, { metadata = meta_of(self, opts.metadata) })
end

local function check_version(meta, what, path)
  if meta.format ~= Model.FORMAT then return nil, ("%s: not a musicvae %s (format %q)"):format(path, what, tostring(meta.format)) end
  local major = tonumber((meta.format_version or ""):match("^(%d+)"))
  local mine = tonumber(Model.FORMAT_VERSION:match("^(%d+)"))
  if not major then return nil, path .. ": no format_version in the header" end
  if major > mine then
    return nil, ("%s: written by a newer musicvae (format %s); this one reads %d.x"):format(path, meta.format_version, mine)
  end
  return true
end

--- Model.load(path) -> model, or nil, err naming the first problem
function Model.load(path)
  local t, meta = st.load(path)
  if not t then return nil, meta end
  local ok, err = check_version(meta, "model", path)
  if not ok then return nil, err end
  local cfg = meta.config and json.decode(meta.config)
  if type(cfg) ~= "table" then return nil, path .. ": the header has no readable config" end
  -- lenient: a file may hold keys of a newer minor version
  local built, m = pcall(Model.new, cfg, nil, true)
  if not built then return nil, path .. ": bad config: " .. tostring(m):gsub("^.-:%d+: ", "") end
  local vectors, verr = require("musicvae.attributes").from_file(t, meta, m.config.z)
  if verr then
    m:close()
    return nil, path .. ": " .. verr
  end
  m.vectors = vectors
  local P_ = m.vae:params()
  local seen = {}
  for _, p in ipairs(m.vae:param_list()) do
    local src = t[p.name]
    if not src then
      m:close()
      return nil, ("%s: missing tensor %s"):format(path, p.name)
    end
    local want, got = p.shape, src:size()
    if #want ~= #got or want[1] ~= got[1] or want[2] ~= got[2] then
      m:close()
      return nil, ("%s: tensor %s has shape [%s], the config needs [%s]"):format(path, p.name,
        table.concat(got, ","), table.concat(want, ","))
    end
    -- the sum accumulates in double: NaN or +-Inf anywhere gives a non-finite sum, finite floats never do
    local sum = src:sum()
    if not (sum > -math.huge and sum < math.huge) then
      m:close()
      return nil, ("%s: tensor %s holds NaN or infinite values"):format(path, p.name)
    end
    P_[p.name]:copy(src)
    seen[p.name] = true
  end
  for name in pairs(t) do
    if not seen[name] then
      m:close()
      return nil, ("%s: unexpected tensor %s"):format(path, name)
    end
  end
  m.metadata = meta
  m.path = path
  return m
end

--- m:save_state(path, {step = n, extra = {key = string}}) -> true or nil, err.
-- The Adam moments and step (training state beside a checkpoint).
function Model:save_state(path, opts)
  opts = opts or {}
  local t, mm, vv = self.vae:adam_state()
  local meta = { format = Model.FORMAT, format_version = Model.FORMAT_VERSION, kind = "training-state",
    adam_t = tostring(t), numel = tostring(self.vae:numel()) }
  for k, v in pairs(opts.extra or {}) do meta[k] = v end
  return st.save(path, { { "adam/m", mm }, { "adam/v", vv } }, { metadata = meta })
end

--- m:load_state(path) -> metadata table, or nil, err
function Model:load_state(path)
  local t, meta = st.load(path)
  if not t then return nil, meta end
  local ok, err = check_version(meta, "training state", path)
  if not ok then return nil, err end
  if meta.kind ~= "training-state" then return nil, path .. ": not a training-state file" end
  local _, mm, vv = self.vae:adam_state()
  for name, dst in pairs { ["adam/m"] = mm, ["adam/v"] = vv } do
    local src = t[name]
    if not src or src:numel() ~= dst:numel() then
      return nil, ("%s: %s is missing or does not fit this model"):format(path, name)
    end
    local sum = src:sum()
    if not (sum > -math.huge and sum < math.huge) then
      return nil, ("%s: tensor %s holds NaN or infinite values"):format(path, name)
    end
    dst:copy(src:view(-1))
  end
  self.vae:set_adam_t(math.tointeger(tonumber(meta.adam_t)) or 0)
  return meta
end

-- Patterns <-> tensors ------------------------------------------------------------
local function as_list(x)
  if P.is(x) or (type(x) == "table" and (x.labels or x.grid)) then return { x }, true end
  return x, false
end

--- m:drum_map() -> the drum map of the model's data (class -> pitches): what its inputs are read
-- with and its outputs written with (magenta's for models from before the map was recorded).
function Model:drum_map() return drums.map(self.config.drum_map) end

--- m:window_options() -> the options of Data.file_windows for this model's inputs: its bars,
-- steps per bar, drum map and kind (groove rows or labels).
function Model:window_options()
  local c = self.config
  return { bars = c.bars, steps_per_bar = c.steps_per_bar, steps_per_quarter = c.steps_per_bar // 4,
    map = self:drum_map(), groove = c.groove and true or false }
end

-- A pattern the model can read: as many steps as the model has (a longer one gives its first
-- steps), in the model's steps per bar. Raises otherwise: never padding with silence.
local function fit(self, p)
  p = P.new(p)
  local c = self.config
  if p.steps_per_bar ~= c.steps_per_bar then
    error(("pattern has %d steps per bar, the model %d"):format(p.steps_per_bar, c.steps_per_bar), 3)
  end
  if #p.labels < self.steps then
    error(("pattern has %d bars, the model needs %d (a pattern made with bars = %d is padded with rests)")
      :format(#p.labels // c.steps_per_bar, c.bars, c.bars), 3)
  end
  return p
end

--- m:labels_tensor(patterns) -> [n, steps] tensor (each pattern's first steps)
function Model:labels_tensor(patterns)
  local list = as_list(patterns)
  local t = core.zeros(#list, self.steps)
  for i, p in ipairs(list) do
    p = fit(self, p)
    for s = 1, math.min(#p.labels, self.steps) do t:set(p.labels[s], i, s) end
  end
  return t
end

--- m:groove_tensor(patterns) -> [n, steps, 27]: magenta's [hits | vel/127 | offsets (2 x steps,
-- positive = early)] per step. A hit without a velocity gets 80 (the categorical default).
function Model:groove_tensor(patterns)
  local list = as_list(patterns)
  local L = self.steps
  local rows = {}
  for i, p in ipairs(list) do
    p = fit(self, p)
    local row, vel, off = {}, p.velocities or {}, p.offsets or {}
    for s = 1, L do
      local l, v, o = p.labels[s] or 0, vel[s] or {}, off[s] or {}
      local base = (s - 1) * 27
      for c = 1, 9 do
        local hit = (l >> (c - 1)) & 1
        row[base + c] = hit
        row[base + 9 + c] = hit == 1 and math.max(1, math.min(127, v[c] or 80)) / 127 or 0
        row[base + 18 + c] = hit == 1 and math.max(-1, math.min(1, 2 * (o[c] or 0))) or 0
      end
    end
    rows[i] = row
  end
  return core.tensor(rows):view(#rows, L, 27)
end

Model.TAP_CLASS = 4 -- magenta's tapify puts the rhythm in channel 3 (0-based): the open hi-hat slot

--- Magenta's note dropout (max_note_dropout_probability), on training inputs only: for each
-- window p ~ U(0, max), and each hit (step, class) is dropped, hit, velocity and offset, with
-- probability max(0.2, 1 - velocity) * p (velocity in 0-1): soft notes go first. rng draws p,
-- then one uniform per hit in (row, step, class) order.
local function drop_notes(target, max_p, rng)
  local n, L = target:size(1), target:size(2)
  local f = target:contiguous():view(-1):totable() -- a copy
  for r = 0, n - 1 do
    local p = rng:uniform() * max_p
    for s = 0, L - 1 do
      local b = (r * L + s) * 27
      for c = 1, 9 do
        if f[b + c] > 0.5 and rng:uniform() < math.max(0.2, 1 - f[b + 9 + c]) * p then
          f[b + c], f[b + 9 + c], f[b + 18 + c] = 0, 0, 0
        end
      end
    end
  end
  return core.tensor(f):view(n, L, 27)
end

--- The encoder's input for categorical labels [n, steps] in training (a denoising input: the
-- target stays whole): with the config's note_dropout > 0, for each window p ~ U(0, note_dropout)
-- and each hit (step, class) is dropped with probability p. rng draws p, then one uniform per hit
-- in (row, step, class) order. Without note dropout, the labels themselves.
function Model:label_input(labels, rng)
  local nd = self.config.note_dropout or 0
  if not rng or nd <= 0 then return labels end
  local n, L = labels:size(1), labels:size(2)
  local f = labels:contiguous():view(-1):totable() -- a copy
  for r = 0, n - 1 do
    local p = rng:uniform() * nd
    for s = 1, L do
      local l = math.tointeger(f[r * L + s])
      if l ~= 0 then
        for c = 0, 8 do
          if (l >> c) & 1 == 1 and rng:uniform() < p then l = l & ~(1 << c) end
        end
        f[r * L + s] = l
      end
    end
  end
  return core.tensor(f):view(n, L)
end

--- The encoder's input for groove targets [n, steps, 27] under the model's mode:
-- humanize sees the hits only (velocities and offsets zeroed), as magenta's converter;
-- tap sees one rhythm: at each step with any hit, a hit in the open hi-hat slot with the
-- offset of the step's loudest drum (the first of equals) and velocity 0 (magenta's tapify
-- followed by fixed_velocities), everything else zero. With rng (training) and the config's
-- note_dropout > 0, notes are dropped first (drop_notes), as magenta's converter does.
function Model:groove_input(target, rng)
  local mode = self.config.mode
  local nd = self.config.note_dropout or 0
  if rng and nd > 0 then target = drop_notes(target, nd, rng) end
  if mode == "humanize" then
    local x = target:clone()
    x:narrow(3, 10, 18):fill(0)
    return x
  elseif mode == "tap" then
    local n, L = target:size(1), target:size(2)
    local src, out = target:contiguous():view(-1):totable(), {}
    local T = Model.TAP_CLASS
    for r = 0, n * L - 1 do
      local b = r * 27
      for k = 1, 27 do out[b + k] = 0 end
      local best
      for c = 1, 9 do
        if src[b + c] > 0.5 and (not best or src[b + 9 + c] > src[b + 9 + best]) then best = c end
      end
      if best then out[b + T], out[b + 18 + T] = 1, src[b + 18 + best] end
    end
    return core.tensor(out):view(n, L, 27)
  end
  return target
end

--- m:tap(patterns, {temperature = 0, seed = 0, qpm}) -> drum patterns, mu: a tap model's drums
-- for the rhythm of each pattern (every hit of any class counts as a tap; the loudest hit of a
-- step gives its timing). Hits are decoded freely (sampled at temperature > 0), with the
-- model's velocities and offsets.
function Model:tap(patterns, o)
  o = o or {}
  if self.config.mode ~= "tap" then
    error("tap needs a tap model (mode \"tap\"; train one with musicvae train --config tap)", 2)
  end
  local list, single = as_list(patterns)
  local mu = self:encode(list)
  local out = self:decode(mu, { temperature = o.temperature or 0, seed = o.seed or 0,
    qpm = o.qpm or P.new(list[1]).qpm })
  return single and out[1] or out, mu
end

--- m:encode(patterns) -> mu, sigma ([n, z] tensors)
function Model:encode(patterns)
  if self.config.groove then return self.vae:encode(self:groove_input(self:groove_tensor(patterns))) end
  return self.vae:encode(self:labels_tensor(patterns))
end

--- Below this hit probability a hit's velocity is not scaled up further (see groove_decode).
Model.HIT_P_FLOOR = 0.05

--- m:groove_decode(z, {temperature, rngs, hits}) -> out [n, steps, 27], raw
-- Decodes as magenta (each step's input is the previous step's raw output) and then gives each
-- hit the model's expected velocity given that the step is hit: min(1, v / max(p, 0.05)), p the
-- step's hit probability. The velocity head is trained with an unmasked squared error (0 where
-- nothing is hit), so its raw output is the expected velocity *times* p, which is too quiet
-- wherever the model is unsure of the hit: forced hits (humanize) and sampled ones alike.
-- Offsets stay as predicted. raw is magenta's output, unchanged.
function Model:groove_decode(z, o)
  local out, hp = self.vae:decode(z:contiguous(), { temperature = o.temperature or 0, rngs = o.rngs, hits = o.hits,
    hit_probs = true })
  local raw = out:clone()
  local n, L = out:size(1), out:size(2)
  local flat, p = out:view(-1), hp:view(-1)
  local f, q = flat:totable(), p:totable()
  local floor = Model.HIT_P_FLOOR
  for i = 0, n * L - 1 do
    for c = 1, 9 do
      if f[i * 27 + c] > 0.5 then
        local k = i * 27 + 9 + c
        flat:set(math.min(1, f[k] / math.max(q[i * 9 + c], floor)), k)
      end
    end
  end
  return out, raw
end

--- Groove outputs [n, steps, 27] -> patterns (notes where hit; velocity round(v * 127)
-- in 1-127, offset o / 2 steps clipped to +-0.5, as magenta's from_tensors).
function Model:groove_patterns(out, qpm)
  local n, L = out:size(1), out:size(2)
  local res = {}
  for i = 1, n do
    local flat = out:select(1, i):contiguous():view(-1):totable()
    local labels, vel, off = {}, {}, {}
    for s = 1, L do
      local base, l = (s - 1) * 27, 0
      for c = 1, 9 do
        if flat[base + c] > 0.5 then
          l = l | (1 << (c - 1))
          vel[s] = vel[s] or {}
          off[s] = off[s] or {}
          vel[s][c] = math.max(1, math.min(127, math.floor(flat[base + 9 + c] * 127 + 0.5)))
          off[s][c] = math.max(-0.5, math.min(0.5, flat[base + 18 + c] / 2))
        end
      end
      labels[s] = l
    end
    res[i] = P.new { labels = labels, bars = self.config.bars, steps_per_bar = self.config.steps_per_bar,
      qpm = qpm or 120, velocities = vel, offsets = off }
  end
  return res
end

--- The per-example streams of the conventions: example i of a call with seed s
-- draws from (s, "categorical", i), whatever the batch.
function Model.streams(seed, first, n)
  local r = {}
  for i = 1, n do r[i] = core.rng(seed, "categorical", first + i - 1) end
  return r
end

local function check_temp(t)
  if type(t) ~= "number" or not (t >= 0 and t < math.huge) then error("temperature must be a finite number >= 0", 3) end
end

--- m:decode(z, {temperature = 0.5, seed = s, first_index = 1, qpm = 120}) -> list of patterns
function Model:decode(z, opts)
  opts = opts or {}
  local temp = opts.temperature or 0
  check_temp(temp)
  local n = z:size(1)
  local rngs = temp > 0 and Model.streams(opts.seed or 0, opts.first_index or 1, n) or nil
  if self.config.groove then
    return self:groove_patterns(self:groove_decode(z, { temperature = temp, rngs = rngs, hits = opts.hits }), opts.qpm)
  end
  local labels = self.vae:decode(z:contiguous(), { temperature = temp, rngs = rngs })
  local out = {}
  for i = 1, n do
    local row = labels:select(1, i):totable()
    for k = 1, #row do row[k] = math.tointeger(row[k]) end
    out[i] = P.new { labels = row, bars = self.config.bars, steps_per_bar = self.config.steps_per_bar,
      qpm = opts.qpm or 120 }
  end
  return out
end

--- z draws of the conventions: example i from (seed, "z", i).
function Model:sample_z(n, seed, first_index)
  local z = core.zeros(n, self.config.z)
  for i = 1, n do
    local r = core.rng(seed, "z", (first_index or 1) + i - 1)
    local row = z:select(1, i)
    for k = 1, self.config.z do row:set(r:normal(), k) end
  end
  return z
end

-- Generation -------------------------------------------------------------------

--- m:sample{n = 8, temperature = 0.5, seed = s, qpm = 120, first_index = 1, attributes = {name =
-- amount}, style = name} -> patterns, z. Pattern i uses z from (seed, "z", i) and draws from
-- (seed, "categorical", i), whatever n; attributes and style shift every z by the model's vectors
-- (amounts in units of the vector; see musicvae.attributes).
function Model:sample(o)
  o = o or {}
  local n = o.n or 1
  if math.type(n) ~= "integer" or n < 1 then error("sample: n must be a positive integer", 2) end
  local temp = o.temperature or 0.5
  check_temp(temp)
  local seed = o.seed or 0
  local A = require "musicvae.attributes"
  local z = A.add(self:sample_z(n, seed, o.first_index), A.offset(self, o, 2))
  return self:decode(z, { temperature = temp, seed = seed, first_index = o.first_index, qpm = o.qpm }), z
end

--- m:reconstruct(patterns, {temperature = 0, seed = 0}) -> patterns (decoded from each mu), mu
function Model:reconstruct(patterns, o)
  o = o or {}
  local list, single = as_list(patterns)
  local mu = self:encode(list)
  local out = self:decode(mu, { temperature = o.temperature or 0, seed = o.seed or 0, first_index = o.first_index,
    qpm = o.qpm or P.new(list[1]).qpm })
  return single and out[1] or out, mu
end

--- m:humanize(patterns, {qpm}) -> patterns with the same hits and the model's velocities
-- and offsets (z = mu of the hits; the decoder's hits are fixed to the input's). Needs a
-- groove model; the input's velocities and offsets are ignored in humanize mode.
function Model:humanize(patterns, o)
  o = o or {}
  if not self.config.groove then error("humanize needs a groove model (e.g. gmd-4bar-humanize)", 2) end
  local list, single = as_list(patterns)
  local target = self:groove_tensor(list)
  local mu = self.vae:encode(self:groove_input(target))
  local hits = target:narrow(3, 1, 9):contiguous()
  local out = self:decode(mu, { temperature = 0, hits = hits, qpm = o.qpm or P.new(list[1]).qpm })
  return single and out[1] or out, mu
end

--- Spherical interpolation between two vectors (magenta's slerp); lerp when parallel.
local function slerp(a, b, t)
  local na, nb, dot = 0, 0, 0
  for i = 1, #a do
    na, nb = na + a[i] * a[i], nb + b[i] * b[i]
  end
  na, nb = math.sqrt(na), math.sqrt(nb)
  for i = 1, #a do dot = dot + a[i] / na * b[i] / nb end
  dot = math.max(-1, math.min(1, dot))
  local omega = math.acos(dot)
  local out = {}
  if math.abs(math.sin(omega)) < 1e-8 then
    for i = 1, #a do out[i] = (1 - t) * a[i] + t * b[i] end
    return out
  end
  local so = math.sin(omega)
  local ca, cb = math.sin((1 - t) * omega) / so, math.sin(t * omega) / so
  for i = 1, #a do out[i] = ca * a[i] + cb * b[i] end
  return out
end
Model.slerp = slerp

--- m:interpolate(a, b, {steps = 8, lerp = false, temperature = 0, seed = 0})
-- -> patterns (steps of them, endpoints included), z. Slerp between the mu's, as magenta.
function Model:interpolate(a, b, o)
  o = o or {}
  local steps = o.steps or 8
  if math.type(steps) ~= "integer" or steps < 2 then error("interpolate: steps must be an integer >= 2", 2) end
  local mu = self:encode { a, b }
  local ma, mb = mu:select(1, 1):totable(), mu:select(1, 2):totable()
  local z = core.zeros(steps, self.config.z)
  for i = 1, steps do
    local t = (i - 1) / (steps - 1)
    local v
    if o.lerp then
      v = {}
      for k = 1, #ma do v[k] = (1 - t) * ma[k] + t * mb[k] end
    else
      v = slerp(ma, mb, t)
    end
    for k = 1, #v do z:set(v[k], i, k) end
  end
  return self:decode(z, { temperature = o.temperature or 0, seed = o.seed or 0, qpm = o.qpm or P.new(a).qpm }), z
end

--- m:similar(p, {similarity = 0.8, n = 4, temperature = 0.5, seed = 0})
-- -> patterns, z: z_i = s * mu + (1 - s) * noise_i (magenta.js), noise_i from (seed, "z", i).
function Model:similar(p, o)
  o = o or {}
  local s = o.similarity or 0.8
  if type(s) ~= "number" or not (s >= 0 and s <= 1) then error("similar: similarity must be in [0, 1]", 2) end
  local n = o.n or 4
  local mu = self:encode { p }
  local noise = self:sample_z(n, o.seed or 0)
  local z = core.zeros(n, self.config.z)
  for i = 1, n do
    for k = 1, self.config.z do z:set(s * mu:get(1, k) + (1 - s) * noise:get(i, k), i, k) end
  end
  return self:decode(z, { temperature = o.temperature or 0.5, seed = o.seed or 0, qpm = o.qpm or P.new(p).qpm }), z
end

--- m:shift(patterns_or_z, {attributes = {name = amount}, style = name | {name = amount},
-- temperature = 0, seed = 0, qpm}) -> patterns, z: each pattern's mu (or each row of a z tensor)
-- plus the named attribute and style vectors, decoded. Amounts are in units of the vector; with
-- no attributes and no style it is the reconstruction.
function Model:shift(x, o)
  o = o or {}
  if self.config.groove then error("shift needs a categorical model", 2) end
  local A = require "musicvae.attributes"
  local off = A.offset(self, o, 2)
  local temp = o.temperature or 0
  check_temp(temp)
  local z, single, qpm
  if core.istensor(x) then
    if x:dim() ~= 2 or x:size(2) ~= self.config.z then
      error(("shift: z must be a [n, %d] tensor"):format(self.config.z), 2)
    end
    z, qpm = x:clone(), o.qpm or 120
  else
    local list
    list, single = as_list(x)
    z = self:encode(list)
    qpm = o.qpm or P.new(list[1]).qpm
  end
  A.add(z, off)
  local out = self:decode(z, { temperature = temp, seed = o.seed or 0, first_index = o.first_index, qpm = qpm })
  return single and out[1] or out, z
end

-- Incremental generation (live hosts) ------------------------------------------------
local Generator = {}
Generator.__index = Generator

--- m:generator{temperature = 0.5, seed = s, index = 1, z = tensor | nil, qpm = 120, clock = fn,
-- attributes = {name = amount}, style = name}
-- z defaults to the prior draw of (seed, "z", index) and the categorical draws
-- come from (seed, "categorical", index): the steps equal m:sample's pattern
-- `index` with the same seed, temperature, attributes and style.
function Model:generator(o)
  o = o or {}
  if self.config.groove then error("live generation needs a categorical model (e.g. gmd-4bar-small)", 2) end
  local temp = o.temperature or 0.5
  check_temp(temp)
  local seed, index = o.seed or 0, o.index or 1
  local A = require "musicvae.attributes"
  local off = A.offset(self, o, 2)
  local z = o.z or self:sample_z(1, seed, index)
  if off then z = A.add(z:clone(), off) end
  local rng = temp > 0 and core.rng(seed, "categorical", index) or nil
  local g = setmetatable({ model = self, handle = self.vae:generator(z:contiguous(), temp, rng), z = z,
    qpm = o.qpm or 120, clock = o.clock or core.clock }, Generator)
  return g
end

--- g:step(n) -> the next n labels (fewer at the end; {} when done)
function Generator:step(n) return self.handle:step(n or 1) end

--- g:run_for(ms) -> how many steps it made: steps start while the budget lasts,
-- so it overruns by at most one step's work.
function Generator:run_for(ms)
  local t0 = self.clock()
  local budget = (ms or 0) / 1000
  local made = 0
  while not self:done() and self.clock() - t0 < budget do
    made = made + #self.handle:step(1)
  end
  return made
end

function Generator:done()
  local pos, total = self.handle:pos()
  return pos >= total
end

function Generator:position()
  return (self.handle:pos())
end

--- g:pattern() -> the steps made so far, as a pattern (padded with rests to whole bars)
function Generator:pattern()
  local cfg = self.model.config
  return P.new { labels = self.handle:labels(), bars = cfg.bars, steps_per_bar = cfg.steps_per_bar, qpm = self.qpm }
end

--- g:coroutine(k) -> a function to resume: each call makes k steps and yields them; nil when done
function Generator:coroutine(k)
  k = k or 1
  return coroutine.wrap(function()
    while not self:done() do coroutine.yield(self:step(k)) end
  end)
end

function Generator:close() self.handle:close() end

--- m:vary(pattern, {amount = 0.3, seed = s, temperature = 0, qpm}) -> generator
-- z = mu + amount * eps, eps from (seed, "vary", 1): a seeded step of that size from the pattern.
function Model:vary(p, o)
  o = o or {}
  local amount = o.amount or 0.3
  if type(amount) ~= "number" or not (amount >= 0 and amount < math.huge) then
    error("vary: amount must be a finite number >= 0", 2)
  end
  local mu = self:encode { p }
  local r = core.rng(o.seed or 0, "vary", 1)
  local z = core.zeros(1, self.config.z)
  for k = 1, self.config.z do z:set(mu:get(1, k) + amount * r:normal(), 1, k) end
  return self:generator { z = z, temperature = o.temperature or 0, seed = o.seed or 0, index = 1,
    qpm = o.qpm or P.new(p).qpm, clock = o.clock }
end

Model.Generator = Generator
return Model
