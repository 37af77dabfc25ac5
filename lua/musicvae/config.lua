--- Model configurations: the named configs, the one list of architecture keys, every key a
-- config may hold (an unknown one is an error naming the closest), and the defaults, each written
-- once. musicvae.model re-exports them as Model.config, Model.configs, Model.ARCH, Model.KEYS.
local core = require "musicvae.core"
local drums = require "musicvae.drums"

local C = {}

local function copy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = copy(v) end
  return o
end

-- Training hyper-parameters shared by the configs (magenta's defaults and
-- cat-drums values; see docs/design.md). Architecture keys go to the core. The learning rate and
-- the clipping come from the core's Adam defaults (MV_ADAM_DEFAULTS, the one place they are written).
local ADAM = core.adam_defaults()
local TRAIN = {
  batch_size = 64,
  learning_rate = ADAM.lr, decay_rate = 0.9999, min_learning_rate = 1e-5,
  grad_clip = ADAM.clip_norm, grad_norm_clip_to_zero = math.tointeger(ADAM.zero_above),
  free_bits = 48, max_beta = 0.2, beta_rate = 0.0,
  beta_schedule = "magenta",
  sampling_schedule = "inverse_sigmoid", sampling_rate = 1000,
  lr_schedule = "magenta",
}

--- Named configurations. `small` has magenta's cat-drums_2bar_small sizes;
-- `paper` the paper's hierarchical sizes; `tiny` is for tests and examples.
-- The groove configs are magenta's groovae_4bar (flat decoder, 27-float steps,
-- dropout keep 0.3, no scheduled sampling); `humanize` encodes the hits only; `tap` encodes one
-- rhythm (magenta's tapify + fixed_velocities: tap2drum).
local GROOVE = { groove = true, input_depth = 27, vocab = 27, keep_prob = 0.3, sampling_schedule = "constant",
  sampling_rate = 0, note_dropout = 0 }
local function groove(t)
  local o = copy(GROOVE)
  for k, v in pairs(t) do o[k] = v end
  return o
end
C.configs = {
  tiny = { enc = { 32 }, cond = { 16 }, dec = { 32 }, z = 16, batch_size = 16 },
  small = { enc = { 512 }, cond = { 256, 256 }, dec = { 256, 256 }, z = 256 },
  paper = { enc = { 2048, 2048 }, cond = { 1024, 1024 }, dec = { 1024, 1024 }, z = 512 },
  groove = groove { mode = "groove", enc = { 512 }, dec = { 256, 256 }, z = 256 },
  humanize = groove { mode = "humanize", enc = { 512 }, dec = { 256, 256 }, z = 256 },
  ["groove-tiny"] = groove { mode = "groove", enc = { 32 }, dec = { 32 }, z = 16, batch_size = 16, keep_prob = 0.7 },
  ["humanize-tiny"] = groove { mode = "humanize", enc = { 32 }, dec = { 32 }, z = 16, batch_size = 16, keep_prob = 0.7 },
  tap = groove { mode = "tap", enc = { 512 }, dec = { 256, 256 }, z = 256 },
  ["tap-tiny"] = groove { mode = "tap", enc = { 32 }, dec = { 32 }, z = 16, batch_size = 16, keep_prob = 0.7 },
}
C.GROOVE_MODES = { groove = true, humanize = true, tap = true }

--- The config keys that make up the model's architecture, the one list: the core builds the
-- network from them (arch below), and they are fixed on resume and --init (train.lua).
C.ARCH = { "groove", "mode", "input_depth", "vocab", "z", "bars", "steps_per_bar", "enc", "cond", "dec" }

--- Every key a config may hold, and what reads it (an unknown key is an error naming the closest).
local KEYS = {
  -- the training loop and Adam (train.lua)
  "batch_size", "learning_rate", "decay_rate", "min_learning_rate", "grad_clip", "grad_norm_clip_to_zero",
  "free_bits", "max_beta", "init_from", "init_step", "init_warmup_steps",
  -- schedules.lua
  "beta_schedule", "beta_rate", "beta_warmup_steps", "beta_total_steps", "beta_cycles", "beta_ratio",
  "beta_midpoint", "beta_width", "sampling_schedule", "sampling_rate", "sampling_steps", "sampling_max",
  "lr_schedule", "warmup_steps", "total_steps",
  -- groove training inputs and metrics
  "keep_prob", "note_dropout", "mean_velocity",
  -- the model's name and the drum map of its data (class -> pitches, recorded by train)
  "name", "drum_map",
}
C.KEYS = {}
for _, list in ipairs { C.ARCH, KEYS } do
  for _, k in ipairs(list) do C.KEYS[k] = true end
end

local function distance(a, b) -- Levenshtein, for "did you mean"
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a:byte(i) == b:byte(j) and 0 or 1))
    end
    prev = cur
  end
  return prev[#b]
end

--- C.check_key(k) -> true, or nil, "unknown config key 'k' (did you mean ...?)"
function C.check_key(k)
  if C.KEYS[k] then return true end
  -- the closest by edit distance; a known key that holds the typed one ("lr" in lr_schedule) first
  local best, bd
  k = tostring(k)
  for known in pairs(C.KEYS) do
    local d = distance(k, known)
    if #k >= 2 and known:find(k, 1, true) then d = d - 100 end
    if not bd or d < bd or (d == bd and known < best) then best, bd = known, d end
  end
  return nil, ("unknown config key '%s' (did you mean %s?)"):format(tostring(k), best)
end

local function check_keys(t)
  for k in pairs(t or {}) do
    local ok, why = C.check_key(k)
    if not ok then error("config: " .. why, 3) end
  end
end

--- C.config(name_or_table[, overrides]) -> a complete config table. An unknown key raises
-- (naming the closest known one). The defaults of every key live here (the core has none).
function C.config(c, overrides, lenient)
  local base
  if type(c) == "string" then
    base = C.configs[c]
    if not base then
      error(("unknown config '%s' (tiny, small, paper, groove, humanize, tap, groove-tiny, humanize-tiny, tap-tiny)")
        :format(c), 2)
    end
    base = copy(base)
    base.name = c
  elseif type(c) == "table" then
    base = copy(c)
  else
    error("config: a name or a table", 2)
  end
  if not lenient then check_keys(base) end
  check_keys(overrides)
  local out = copy(TRAIN)
  out.input_depth, out.vocab, out.z, out.bars, out.steps_per_bar = 10, 512, 256, 4, 16
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(overrides or {}) do out[k] = v end
  if out.groove and not C.GROOVE_MODES[out.mode or "groove"] then
    error(("config: mode must be groove, humanize or tap, not %s"):format(tostring(out.mode)), 2)
  end
  local nd = out.note_dropout
  if nd ~= nil and (type(nd) ~= "number" or nd < 0 or nd > 1) then
    error(("config: note_dropout (magenta's max_note_dropout_probability) is a number in 0-1, not %s")
      :format(tostring(nd)), 2)
  end
  if out.drum_map ~= nil then
    local ok, why = pcall(drums.map, out.drum_map)
    if not ok then error("config: drum_map: " .. tostring(why):gsub("^.-:%d+: ", ""), 2) end
  end
  return out
end

return C
