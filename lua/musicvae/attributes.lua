--- Attribute and style vectors in latent space: the MusicVAE paper's attribute arithmetic.
--
-- An attribute vector is the mean mu of the windows with the most of an attribute (the top quartile
-- over a dataset's train split) minus the mean mu of those with the least (the bottom quartile);
-- a style vector is the mean mu of one style's windows minus the mean mu of all windows with a
-- style. Adding `amount` times a vector to a z and decoding moves the pattern along it. The
-- attributes are musicvae.features' (the numbers `musicvae quality` measures).
--
-- The vectors live in the model file as extra tensors, `attribute/<name>` and `style/<name>` (F32,
-- [z]), with their provenance as JSON in the `vectors` metadata key; the weights are untouched.
local core = require "musicvae.core"
local json = require "musicvae.json"
local st = require "musicvae.safetensors"
local F = require "musicvae.features"

local A = {}

A.ATTR_PREFIX = "attribute/"
A.STYLE_PREFIX = "style/"
--- Styles with fewer train windows than this get no vector (their mean would be mostly noise).
A.MIN_STYLE_WINDOWS = 40
--- Encoding batch (bounds the encoder's activation memory).
A.BATCH = 512

-- musicvae.quality's helpers (required when measuring, not when a model loads its vectors)
local function Q() return require "musicvae.quality" end

--- A.encode_rows(model, labels [n, T]) -> mu as an array of n arrays of z numbers
function A.encode_rows(model, labels)
  local n, Z = labels:size(1), model.config.z
  local out = {}
  for first = 1, n, A.BATCH do
    local k = math.min(A.BATCH, n - first + 1)
    local mu = model.vae:encode(labels:narrow(1, first, k):contiguous())
    local flat = mu:contiguous():view(-1):totable()
    for i = 1, k do
      local r = {}
      for d = 1, Z do r[d] = flat[(i - 1) * Z + d] end
      out[first + i - 1] = r
    end
  end
  return out
end

local function mean_of(mu, idx, Z)
  local m = {}
  for d = 1, Z do m[d] = 0 end
  for _, i in ipairs(idx) do
    local r = mu[i]
    for d = 1, Z do m[d] = m[d] + r[d] end
  end
  for d = 1, Z do m[d] = m[d] / math.max(1, #idx) end
  return m
end

local function sub(a, b)
  local o = {}
  for d = 1, #a do o[d] = a[d] - b[d] end
  return o
end

--- A.quartiles(values) -> bottom, top: the indices of the lowest and the highest quarter of values
-- (ranked by value, ties by index, so the split is deterministic).
function A.quartiles(values)
  local idx = {}
  for i = 1, #values do idx[i] = i end
  table.sort(idx, function(a, b)
    if values[a] ~= values[b] then return values[a] < values[b] end
    return a < b
  end)
  local q = #values // 4
  local bottom, top = {}, {}
  for i = 1, q do
    bottom[i] = idx[i]
    top[i] = idx[#idx - q + i]
  end
  return bottom, top
end

--- A.compute(model, labels [n, T], {styles = {per-window style}, source = "what the windows are"})
-- -> vectors {attributes = {name = {z numbers}}, styles = {name = {...}}, info = {...}}
function A.compute(model, labels, o)
  o = o or {}
  if model.config.groove then error("attribute vectors need a categorical model", 2) end
  local n = labels:size(1)
  if n < 8 then error("attribute vectors need at least 8 windows", 2) end
  local Z, spb = model.config.z, model.config.steps_per_bar
  local rows = Q().rows(labels)
  local mu = A.encode_rows(model, labels)
  local vals = F.columns(rows, spb, F.attributes, F.ATTRIBUTES)
  local vec = { attributes = {}, styles = {} }
  local info = { attributes = {}, styles = {}, windows = n, source = o.source, quartile = 0.25,
    created_by = "musicvae " .. core._VERSION }
  for _, name in ipairs(F.ATTRIBUTES) do
    local bottom, top = A.quartiles(vals[name])
    local lo, hi = vals[name][bottom[#bottom]], vals[name][top[1]]
    if hi > lo then -- an attribute that does not vary across the windows gives no direction
      vec.attributes[name] = sub(mean_of(mu, top, Z), mean_of(mu, bottom, Z))
      info.attributes[#info.attributes + 1] = name
    end
  end
  if o.styles then
    local by, known = {}, {}
    for i, s in ipairs(o.styles) do
      if s and s ~= "" then
        by[s] = by[s] or {}
        by[s][#by[s] + 1] = i
        known[#known + 1] = i
      end
    end
    local all = mean_of(mu, known, Z)
    local names = {}
    for s, idx in pairs(by) do
      if #idx >= A.MIN_STYLE_WINDOWS then names[#names + 1] = s end
    end
    table.sort(names)
    info.style_windows = {}
    for _, s in ipairs(names) do
      vec.styles[s] = sub(mean_of(mu, by[s], Z), all)
      info.styles[#info.styles + 1] = s
      info.style_windows[s] = #by[s]
    end
  end
  vec.info = info
  return vec
end

local function tensor_of(v)
  local t = core.zeros(#v)
  for d = 1, #v do t:set(v[d], d) end
  return t
end

--- A.write(in_path, out_path, vectors) -> true, or nil, err. Copies the model file at in_path with
-- its tensors and metadata unchanged, replacing any vectors it had by these. Never in place.
function A.write(in_path, out_path, vec)
  if type(in_path) ~= "string" or type(out_path) ~= "string" or out_path == "" then
    error("attributes.write: paths must be strings", 2)
  end
  local models = require "musicvae.models"
  if models.tidy(in_path) == models.tidy(out_path) then
    return nil, out_path .. ": is the input model; write the vectors to a new file"
  end
  local t, meta, names, dtypes = st.load(in_path)
  if not t then return nil, meta end
  local list = {}
  for _, name in ipairs(names) do
    if not name:find("^" .. A.ATTR_PREFIX) and not name:find("^" .. A.STYLE_PREFIX) then
      list[#list + 1] = { name, t[name], dtypes[name] }
    end
  end
  for _, name in ipairs(vec.info.attributes) do
    list[#list + 1] = { A.ATTR_PREFIX .. name, tensor_of(vec.attributes[name]), "F32" }
  end
  for _, name in ipairs(vec.info.styles) do
    list[#list + 1] = { A.STYLE_PREFIX .. name, tensor_of(vec.styles[name]), "F32" }
  end
  local m2 = {}
  for k, v in pairs(meta) do m2[k] = v end
  m2.vectors = json.encode(vec.info)
  return st.save(out_path, list, { metadata = m2 })
end

--- A.from_file(tensors, meta, z) -> vectors (as A.compute's) or nil when the file has none; the
-- second result is an error for vectors of the wrong size. Removes them from tensors.
function A.from_file(t, meta, Z)
  local vec = { attributes = {}, styles = {} }
  local any = false
  for name, x in pairs(t) do
    local kind, key
    if name:find("^" .. A.ATTR_PREFIX) then
      kind, key = "attributes", name:sub(#A.ATTR_PREFIX + 1)
    elseif name:find("^" .. A.STYLE_PREFIX) then
      kind, key = "styles", name:sub(#A.STYLE_PREFIX + 1)
    end
    if kind then
      if x:dim() ~= 1 or x:size(1) ~= Z then
        return nil, ("vector %s has shape [%s], the model's z is %d"):format(name, table.concat(x:size(), ","), Z)
      end
      local v = x:totable()
      for d = 1, Z do
        if v[d] ~= v[d] or v[d] == math.huge or v[d] == -math.huge then
          return nil, ("vector %s holds a NaN or infinite number"):format(name)
        end
      end
      vec[kind][key] = v
      any = true
    end
  end
  if not any then return nil end
  for name in pairs(vec.attributes) do t[A.ATTR_PREFIX .. name] = nil end
  for name in pairs(vec.styles) do t[A.STYLE_PREFIX .. name] = nil end
  local info = meta.vectors and json.decode(meta.vectors)
  vec.info = type(info) == "table" and info or {}
  return vec
end

local function sorted_keys(t)
  local k = {}
  for name in pairs(t or {}) do k[#k + 1] = name end
  table.sort(k)
  return k
end
A.sorted_keys = sorted_keys

local function finite(x) return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge end

--- A.offset(model, {attributes = {name = amount}, style = name | {name = amount}}) -> an array of z
-- numbers to add to z, or nil when the options ask for no shift. Unknown names and non-finite
-- amounts raise (a misuse), naming what the model offers.
function A.offset(model, o, level)
  level = (level or 1) + 1
  if o.attributes == nil and o.style == nil then return nil end
  local vec = model.vectors
  if not vec then
    error(("%s has no attribute or style vectors (musicvae attributes writes them)"):format(
      model.path or "this model"), level)
  end
  local Z = model.config.z
  local off = {}
  for d = 1, Z do off[d] = 0 end
  local function add(kind, name, amount)
    local v = vec[kind][name]
    if not v then
      local known = sorted_keys(vec[kind])
      error(("unknown %s '%s'; this model has: %s"):format(kind == "styles" and "style" or "attribute",
        tostring(name), #known > 0 and table.concat(known, ", ") or "none"), level + 1)
    end
    if not finite(amount) then
      error(("the amount of %s must be a finite number (got %s)"):format(name, tostring(amount)), level + 1)
    end
    for d = 1, Z do off[d] = off[d] + amount * v[d] end
  end
  if o.attributes ~= nil then
    if type(o.attributes) ~= "table" then error("attributes must be a table {name = amount}", level) end
    for _, name in ipairs(sorted_keys(o.attributes)) do add("attributes", name, o.attributes[name]) end
  end
  if o.style ~= nil then
    if type(o.style) == "string" then
      add("styles", o.style, 1)
    elseif type(o.style) == "table" then
      for _, name in ipairs(sorted_keys(o.style)) do add("styles", name, o.style[name]) end
    else
      error("style must be a name or a table {name = amount}", level)
    end
  end
  return off
end

--- A.add(z [n, Z] tensor, offset) -> z with the offset added to every row (in place)
function A.add(z, off)
  if not off then return z end
  local n, Z = z:size(1), z:size(2)
  for i = 1, n do
    for d = 1, Z do z:set(z:get(i, d) + off[d], i, d) end
  end
  return z
end

-- Measuring the vectors (docs/process.md) ---------------------------------------------------

local function z_tensor(mu, off, amount)
  local n, Z = #mu, #mu[1]
  local z = core.zeros(n, Z)
  for i = 1, n do
    local r = z:select(1, i)
    for d = 1, Z do r:set(mu[i][d] + (off and amount * off[d] or 0), d) end
  end
  return z
end

local function attr_table(rows, spb) return F.columns(rows, spb, F.attributes, F.ATTRIBUTES) end

--- A.measure(model, labels [n, T], {amounts = {-2, -1, 1, 2}}) -> report: for each of the model's
-- attribute vectors and amounts, the mean change of every attribute against the reconstruction at
-- amount 0, in standard deviations of that attribute over the input windows; and per vector the
-- share of windows whose own attribute rises at +1 and falls at -1 (where it is above its minimum,
-- 0), and the ratio of its own standardised change at +1 to the mean absolute change of the others.
function A.measure(model, labels, o)
  o = o or {}
  local vec = model.vectors
  if not vec then error("the model has no attribute vectors", 2) end
  local amounts = o.amounts or { -2, -1, 1, 2 }
  local spb = model.config.steps_per_bar
  local Qm = Q()
  local mu = A.encode_rows(model, labels)
  local input = attr_table(Qm.rows(labels), spb)
  local sd = {}
  for _, name in ipairs(F.ATTRIBUTES) do sd[name] = select(2, Qm.mean_sd(input[name])) end
  local base = attr_table(Qm.decode_rows(model, z_tensor(mu)), spb)
  local n = #mu
  local rep = { windows = n, amounts = amounts, attributes = F.ATTRIBUTES, sd = sd, vectors = {} }
  for _, vname in ipairs(F.ATTRIBUTES) do
    local v = vec.attributes[vname]
    if v then
      local entry = { change = {} }
      for _, a in ipairs(amounts) do
        local got = attr_table(Qm.decode_rows(model, z_tensor(mu, v, a)), spb)
        local row = {}
        for _, name in ipairs(F.ATTRIBUTES) do
          local d = 0
          for i = 1, n do d = d + (got[name][i] - base[name][i]) / n end
          row[name] = sd[name] > 0 and d / sd[name] or 0
        end
        entry.change[tostring(a)] = row
        if a == 1 or a == -1 then
          local moved, can = 0, 0
          for i = 1, n do
            if a == 1 then
              can = can + 1
              if got[vname][i] > base[vname][i] then moved = moved + 1 end
            elseif base[vname][i] > 0 then
              can = can + 1
              if got[vname][i] < base[vname][i] then moved = moved + 1 end
            end
          end
          entry[a == 1 and "raised" or "lowered"] = can > 0 and moved / can or 0
        end
      end
      local plus = entry.change["1"]
      if plus then
        local others, k = 0, 0
        for _, name in ipairs(F.ATTRIBUTES) do
          if name ~= vname then others, k = others + math.abs(plus[name]), k + 1 end
        end
        entry.own = plus[vname]
        entry.others = others / k
        entry.selectivity = others > 0 and plus[vname] / (others / k) or math.huge
      end
      entry.target = (entry.raised or 0) >= 0.9 and (entry.lowered or 0) >= 0.9 and (entry.selectivity or 0) >= 2
      rep.vectors[vname] = entry
    end
  end
  return rep
end

--- A.feature_vector(labels, spb) -> the realism features of musicvae quality, flattened (one list)
function A.feature_vector(labels, spb)
  local f = F.features(labels, spb)
  local out = {}
  for _, name in ipairs(F.FEATURES) do
    for _, x in ipairs(f[name]) do out[#out + 1] = x end
  end
  return out
end

--- A.classifier(rows, styles, spb, {iterations = 300, rate = 0.5, l2 = 1e-3, classes = {...}})
-- -> a multinomial logistic regression of style on the standardised pattern features, fitted by
-- full-batch gradient descent: {classes, mean, sd, w, predict = function(labels) -> style}.
function A.classifier(rows, styles, spb, o)
  o = o or {}
  local classes, ci = o.classes, {}
  if not classes then
    local seen = {}
    classes = {}
    for _, s in ipairs(styles) do
      if s ~= "" and not seen[s] then seen[s], classes[#classes + 1] = true, s end
    end
    table.sort(classes)
  end
  for i, c in ipairs(classes) do ci[c] = i end
  local X, Y = {}, {}
  for i, r in ipairs(rows) do
    if ci[styles[i]] then
      X[#X + 1] = A.feature_vector(r, spb)
      Y[#Y + 1] = ci[styles[i]]
    end
  end
  local n, D, K = #X, #X[1], #classes
  local mean, sd = {}, {}
  for d = 1, D do
    local m, v = 0, 0
    for i = 1, n do m = m + X[i][d] / n end
    for i = 1, n do v = v + (X[i][d] - m) ^ 2 / n end
    mean[d], sd[d] = m, math.sqrt(v) > 1e-9 and math.sqrt(v) or 1
  end
  local Xt = core.zeros(n, D + 1)
  for i = 1, n do
    local row = Xt:select(1, i)
    for d = 1, D do row:set((X[i][d] - mean[d]) / sd[d], d) end
    row:set(1, D + 1)
  end
  local W = core.zeros(D + 1, K)
  local rate, l2 = o.rate or 0.5, o.l2 or 1e-3
  local XT = Xt:t():contiguous()
  for _ = 1, o.iterations or 300 do
    local logits = Xt:matmul(W):contiguous():view(-1):totable()
    local G = core.zeros(n, K)
    for i = 1, n do
      local mx = -math.huge
      for k = 1, K do mx = math.max(mx, logits[(i - 1) * K + k]) end
      local z = 0
      for k = 1, K do z = z + math.exp(logits[(i - 1) * K + k] - mx) end
      local g = G:select(1, i)
      for k = 1, K do
        local p = math.exp(logits[(i - 1) * K + k] - mx) / z
        g:set((p - (Y[i] == k and 1 or 0)) / n, k)
      end
    end
    local grad = XT:matmul(G)
    W = W:sub(grad:add(W:scale(l2)):scale(rate))
  end
  local w = W:contiguous():view(-1):totable()
  local model = { classes = classes, mean = mean, sd = sd, w = w }
  function model.predict(labels)
    local x = A.feature_vector(labels, spb)
    local best, bk = -math.huge, 1
    for k = 1, K do
      local s = w[D * K + k]
      for d = 1, D do s = s + (x[d] - mean[d]) / sd[d] * w[(d - 1) * K + k] end
      if s > best then best, bk = s, k end
    end
    return classes[bk]
  end
  return model
end

--- A.style_eval(model, train {rows, styles}, validation {rows, styles}, {n = 500, seed = 1,
-- temperature = 0.5, top = 5}) -> report: the classifier's validation accuracy, and for each of the
-- `top` largest styles s, P(classified s | sampled with s's vector) against P(classified s | sampled
-- without), and the target min(2 p, (1 + p) / 2).
function A.style_eval(model, train, val, o)
  o = o or {}
  local spb = model.config.steps_per_bar
  local vec = model.vectors
  if not vec or not next(vec.styles) then error("the model has no style vectors", 2) end
  local classes = sorted_keys(vec.styles)
  local clf = A.classifier(train.rows, train.styles, spb, { classes = classes, iterations = o.iterations })
  local right, total = 0, 0
  for i, r in ipairs(val.rows) do
    if vec.styles[val.styles[i]] then
      total = total + 1
      if clf.predict(r) == val.styles[i] then right = right + 1 end
    end
  end
  local counts = {}
  for _, s in ipairs(train.styles) do if vec.styles[s] then counts[s] = (counts[s] or 0) + 1 end end
  table.sort(classes, function(a, b)
    local ca, cb = counts[a] or 0, counts[b] or 0
    if ca ~= cb then return ca > cb end
    return a < b
  end)
  local n, seed, t = o.n or 500, o.seed or 1, o.temperature or 0.5
  local function shares(style)
    local pats = model:sample { n = n, seed = seed, temperature = t, style = style }
    local c = {}
    for _, p in ipairs(pats) do
      local k = clf.predict(p.labels)
      c[k] = (c[k] or 0) + 1
    end
    return c
  end
  local without = shares(nil)
  local rep = { classifier_accuracy = total > 0 and right / total or 0, validation_windows = total,
    classes = #classes, samples = n, temperature = t, styles = {} }
  for i = 1, math.min(o.top or 5, #classes) do
    local s = classes[i]
    local p0 = (without[s] or 0) / n
    local p1 = ((shares(s))[s] or 0) / n
    local target = math.min(2 * p0, (1 + p0) / 2)
    rep.styles[#rep.styles + 1] = { style = s, train_windows = counts[s], without = p0, with = p1,
      target = target, met = p1 >= target }
  end
  return rep
end

return A
