--- `musicvae quality`: what users hear, as numbers with a place. For a categorical model and a
-- reference set of real windows (a validation split):
--   realism          Yang & Lerch (2020): for each pattern feature (musicvae.features), the
--                    overlap area (OA) and KL divergence between the reference set's intra-set
--                    distance distribution and the sample-to-reference distance distribution, for
--                    the model's samples, a bar-position 4-gram baseline and real train windows;
--                    the model's position (model - baseline) / (real - baseline) on OA
--   reconstruction   from mu: accuracies (as eval), bars exactly right, distinct bars per window
--                    (reconstruction vs input), hit F1 over the step x class cells
--   interpolation    random reference pairs, 11 slerp points: path length / endpoint distance,
--                    monotone paths, endpoints reproduced
--   latent           KL per dimension, active units (Burda et al. 2016), dimensions holding half the KL
--   memorisation     samples and interpolation points equal to a training window (exact; within
--                    2 steps)
local core = require "musicvae.core"
local F = require "musicvae.features"
local Eval = require "musicvae.evaluate"

local Q = {}

Q.BINS = 200          -- density estimate: bins of the distance histogram
Q.MAX_PAIRS = 100000  -- distances per distribution (pairs drawn at random beyond that)
Q.POINTS = 11         -- interpolation points, endpoints included

-- Rows of a [n, L] label tensor as Lua arrays of integers.
function Q.rows(t)
  local out = {}
  local n = t:size(1)
  local flat = t:contiguous():view(-1):totable()
  local L = t:size(2)
  for i = 1, n do
    local r = {}
    for s = 1, L do r[s] = math.tointeger(flat[(i - 1) * L + s]) end
    out[i] = r
  end
  return out
end

function Q.tensor(rows)
  return core.tensor(rows)
end

-- A seeded choice of k of n indices (all of them, in order, when k >= n).
function Q.choose(n, k, rng)
  local idx = {}
  for i = 1, n do idx[i] = i end
  if k >= n then return idx end
  for i = 1, k do
    local j = i + math.floor(rng:uniform() * (n - i + 1))
    if j > n then j = n end
    idx[i], idx[j] = idx[j], idx[i]
  end
  local out = {}
  for i = 1, k do out[i] = idx[i] end
  return out
end

-- Statistics ----------------------------------------------------------------------

local function euclid(a, b)
  local s = 0
  for i = 1, #a do
    local d = a[i] - b[i]
    s = s + d * d
  end
  return math.sqrt(s)
end

--- Distances within one set of feature vectors (every pair i < j, or MAX_PAIRS random pairs).
function Q.intra(vs, rng)
  local n, out = #vs, {}
  if n * (n - 1) // 2 <= Q.MAX_PAIRS then
    for i = 1, n - 1 do
      for j = i + 1, n do out[#out + 1] = euclid(vs[i], vs[j]) end
    end
  else
    for k = 1, Q.MAX_PAIRS do
      local i = 1 + math.floor(rng:uniform() * n)
      local j = 1 + math.floor(rng:uniform() * (n - 1))
      if j >= i then j = j + 1 end
      out[k] = euclid(vs[math.min(i, n)], vs[math.min(j, n)])
    end
  end
  return out
end

--- Distances between two sets (every pair, or MAX_PAIRS random pairs).
function Q.inter(as, bs, rng)
  local out = {}
  if #as * #bs <= Q.MAX_PAIRS then
    for i = 1, #as do
      for j = 1, #bs do out[#out + 1] = euclid(as[i], bs[j]) end
    end
  else
    for k = 1, Q.MAX_PAIRS do
      local i = math.min(#as, 1 + math.floor(rng:uniform() * #as))
      local j = math.min(#bs, 1 + math.floor(rng:uniform() * #bs))
      out[k] = euclid(as[i], bs[j])
    end
  end
  return out
end

--- Mean and sample standard deviation of a list of numbers.
local function mean_sd(xs)
  local m = 0
  for _, x in ipairs(xs) do m = m + x end
  m = m / math.max(1, #xs)
  local v = 0
  for _, x in ipairs(xs) do v = v + (x - m) ^ 2 end
  return m, math.sqrt(v / math.max(1, #xs - 1))
end
Q.mean_sd = mean_sd

-- A Gaussian kernel density estimate of xs on the bins of [lo, hi] (Silverman's bandwidth,
-- computed on a histogram of the samples: exact up to the bin width), as densities summing to 1/dx.
local function kde(xs, lo, hi, nb)
  local dx = (hi - lo) / nb
  local hist = {}
  for b = 1, nb do hist[b] = 0 end
  for _, x in ipairs(xs) do
    local b = math.floor((x - lo) / dx) + 1
    if b < 1 then b = 1 elseif b > nb then b = nb end
    hist[b] = hist[b] + 1
  end
  local _, sd = mean_sd(xs)
  local h = 1.06 * sd * (#xs) ^ (-0.2)
  if not (h > dx) then h = dx end -- a constant set: one bin's width
  local reach = math.ceil(4 * h / dx)
  local w = {}
  for k = -reach, reach do w[k] = math.exp(-0.5 * (k * dx / h) ^ 2) end
  local dens, total = {}, 0
  for b = 1, nb do
    local s = 0
    for k = -reach, reach do
      local j = b + k
      if j >= 1 and j <= nb then s = s + hist[j] * w[k] end
    end
    dens[b] = s
    total = total + s
  end
  for b = 1, nb do dens[b] = dens[b] / (total * dx) end
  return dens, dx
end

--- Overlap area and KL(p || q) of two samples' density estimates on a common grid.
-- Identical samples give OA 1 and KL 0; disjoint ones OA near 0.
function Q.oa_kl(p_samples, q_samples)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs { p_samples, q_samples } do
    for _, x in ipairs(s) do
      if x < lo then lo = x end
      if x > hi then hi = x end
    end
  end
  if #p_samples == 0 or #q_samples == 0 then return 0 / 0, 0 / 0 end
  local span = hi - lo
  if span <= 0 then span = 1 end
  lo, hi = lo - 0.1 * span, hi + 0.1 * span
  local p, dx = kde(p_samples, lo, hi, Q.BINS)
  local q = kde(q_samples, lo, hi, Q.BINS)
  local oa, kl = 0, 0
  for b = 1, Q.BINS do
    oa = oa + math.min(p[b], q[b]) * dx
    if p[b] > 0 then kl = kl + p[b] * math.log(p[b] / math.max(q[b], 1e-10)) * dx end
  end
  return math.min(1, oa), math.max(0, kl)
end

-- The n-gram baseline -----------------------------------------------------------------

local NGram = {}
NGram.__index = NGram
Q.NGram = NGram

local START = -1

local function hist_key(level, pos, seq, s)
  local k = tostring(pos)
  for j = 1, level do
    local v = s - j >= 1 and seq[s - j] or START
    k = k .. "," .. v
  end
  return k
end

--- NGram.train(rows, spb[, order = 4]) -> a bar-position n-gram over labels: P(label | the
-- previous order-1 labels, position in the bar), Witten-Bell interpolated down to the position's
-- unigram and then the uniform distribution over the 512 labels, so every label has a
-- probability and the distribution sums to 1.
function NGram.train(rows, spb, order, vocab)
  local g = setmetatable({ spb = spb, order = order or 4, vocab = vocab or 512, levels = {} }, NGram)
  for level = 0, g.order - 1 do g.levels[level] = {} end
  for _, seq in ipairs(rows) do
    for s = 1, #seq do
      local pos = (s - 1) % spb
      for level = 0, g.order - 1 do
        local k = hist_key(level, pos, seq, s)
        local h = g.levels[level][k]
        if not h then
          h = { total = 0, types = 0, counts = {}, list = {} }
          g.levels[level][k] = h
        end
        local w = seq[s]
        if not h.counts[w] then
          h.types = h.types + 1
          h.counts[w] = 0
          h.list[#h.list + 1] = w
        end
        h.counts[w] = h.counts[w] + 1
        h.total = h.total + 1
      end
    end
  end
  return g
end

--- P(w | the history before step s of seq, at step s's position).
function NGram:prob(seq, s, w)
  local pos = (s - 1) % self.spb
  local p = 1 / self.vocab
  for level = 0, self.order - 1 do
    local h = self.levels[level][hist_key(level, pos, seq, s)]
    if h then
      local lam = h.total / (h.total + h.types)
      p = lam * (h.counts[w] or 0) / h.total + (1 - lam) * p
    end
  end
  return p
end

-- One draw at step s: from the longest history's counts with weight lambda, else one level down.
function NGram:draw(seq, s, rng)
  local pos = (s - 1) % self.spb
  for level = self.order - 1, 0, -1 do
    local h = self.levels[level][hist_key(level, pos, seq, s)]
    if h and rng:uniform() < h.total / (h.total + h.types) then
      local r = rng:uniform() * h.total
      for _, w in ipairs(h.list) do
        r = r - h.counts[w]
        if r < 0 then return w end
      end
      return h.list[#h.list]
    end
  end
  return math.min(self.vocab - 1, math.floor(rng:uniform() * self.vocab))
end

--- g:sample(L, rng) -> a label sequence of L steps.
function NGram:sample(L, rng)
  local seq = {}
  for s = 1, L do seq[s] = self:draw(seq, s, rng) end
  return seq
end

-- The report's parts --------------------------------------------------------------------

local function feature_sets(rows, spb) return F.columns(rows, spb, F.features, F.FEATURES) end
Q.feature_sets = feature_sets

--- Q.realism(ref_rows, {name = rows, ...}, spb, rng) -> {features = {feature = {set = {oa, kl}}}, mean = {set = {oa, kl}}}
function Q.realism(ref_rows, sets, spb, rng)
  local ref = feature_sets(ref_rows, spb)
  local out = { features = {}, mean = {} }
  local order = {}
  for name in pairs(sets) do order[#order + 1] = name end
  table.sort(order)
  local fs = {}
  for _, name in ipairs(order) do fs[name] = feature_sets(sets[name], spb) end
  for _, name in ipairs(order) do out.mean[name] = { oa = 0, kl = 0 } end
  for _, feat in ipairs(F.FEATURES) do
    local intra = Q.intra(ref[feat], rng)
    out.features[feat] = {}
    for _, name in ipairs(order) do
      local oa, kl = Q.oa_kl(intra, Q.inter(fs[name][feat], ref[feat], rng))
      out.features[feat][name] = { oa = oa, kl = kl }
      out.mean[name].oa = out.mean[name].oa + oa / #F.FEATURES
      out.mean[name].kl = out.mean[name].kl + kl / #F.FEATURES
    end
  end
  return out
end

--- (model - baseline) / (real - baseline): 0 at the baseline, 1 at real data.
function Q.position(model, baseline, real)
  if real == baseline then return 0 / 0 end
  return (model - baseline) / (real - baseline)
end

--- The argmax decoding of each row of z, as label rows.
local function decode_rows(model, z)
  return Q.rows(model.vae:decode(z:contiguous(), { temperature = 0 }))
end
Q.decode_rows = decode_rows

local function bars_exact(a, b, spb)
  local right, bars = 0, #a // spb
  for u = 0, bars - 1 do
    local ok = true
    for t = 1, spb do
      if a[u * spb + t] ~= b[u * spb + t] then
        ok = false
        break
      end
    end
    if ok then right = right + 1 end
  end
  return right, bars
end

--- Q.reconstruction(model, ref_tensor) -> {tf_accuracy, sampled_accuracy, bars_exact, distinct_bars,
-- distinct_bars_input, hit_f1, windows}, mu, sigma
function Q.reconstruction(model, ref)
  local m = Eval.metrics(model, ref)
  local mu, sigma = model.vae:encode(ref:contiguous())
  local out = Q.compare(Q.rows(ref), decode_rows(model, mu), model.config.steps_per_bar)
  out.tf_accuracy, out.sampled_accuracy = m.tf_accuracy, m.sampled_accuracy
  return out, mu, sigma
end

--- Q.compare(inputs, reconstructions, spb) -> {windows, bars_exact, distinct_bars, distinct_bars_input, hit_f1}
function Q.compare(inputs, rec, spb)
  local right, bars, dr, di, tp, fp, fn = 0, 0, 0, 0, 0, 0, 0
  for i, x in ipairs(inputs) do
    local y = rec[i]
    local r, b = bars_exact(x, y, spb)
    right, bars = right + r, bars + b
    dr = dr + select(2, F.bar_stats(y, spb))
    di = di + select(2, F.bar_stats(x, spb))
    for s = 1, #x do
      local both = F.popcount(x[s] & y[s])
      tp = tp + both
      fn = fn + F.popcount(x[s]) - both
      fp = fp + F.popcount(y[s]) - both
    end
  end
  local n = #inputs
  return {
    windows = n,
    bars_exact = bars > 0 and right / bars or 0,
    distinct_bars = dr / n,
    distinct_bars_input = di / n,
    hit_f1 = tp > 0 and 2 * tp / (2 * tp + fp + fn) or 0,
  }
end

--- Q.interpolation(model, ref_rows, mu [n, z], pairs, rng) -> stats, interior points (rows)
function Q.interpolation(model, ref_rows, mu, pairs, rng)
  local n = #ref_rows
  local zdim = model.config.z
  local K = Q.POINTS
  local list = {}
  for p = 1, pairs do
    local a = math.min(n, 1 + math.floor(rng:uniform() * n))
    local b = math.min(n - 1, 1 + math.floor(rng:uniform() * (n - 1)))
    if b >= a then b = b + 1 end
    list[p] = { a, b }
  end
  local z = core.zeros(pairs * K, zdim)
  local slerp = require("musicvae.model").slerp
  for p, ab in ipairs(list) do
    local ma, mb = mu:select(1, ab[1]):totable(), mu:select(1, ab[2]):totable()
    for k = 1, K do
      local v = slerp(ma, mb, (k - 1) / (K - 1))
      local row = z:select(1, (p - 1) * K + k)
      for d = 1, zdim do row:set(v[d], d) end
    end
  end
  local dec = decode_rows(model, z)
  local ratios, mono, ends, ends_total, same_ends = {}, 0, 0, 0, 0
  local interior = {}
  for p, ab in ipairs(list) do
    local pts = {}
    for k = 1, K do pts[k] = dec[(p - 1) * K + k] end
    for k = 2, K - 1 do interior[#interior + 1] = pts[k] end
    local path = 0
    for k = 2, K do path = path + F.hamming(pts[k - 1], pts[k]) end
    local ends_d = F.hamming(pts[1], pts[K])
    if ends_d > 0 then ratios[#ratios + 1] = path / ends_d else same_ends = same_ends + 1 end
    local ok, prev = true, 0
    for k = 2, K do
      local d = F.hamming(pts[1], pts[k])
      if d < prev then ok = false end
      prev = d
    end
    if ok then mono = mono + 1 end
    if F.steps_differing(pts[1], ref_rows[ab[1]]) == 0 then ends = ends + 1 end
    if F.steps_differing(pts[K], ref_rows[ab[2]]) == 0 then ends = ends + 1 end
    ends_total = ends_total + 2
  end
  table.sort(ratios)
  local mean = 0
  for _, r in ipairs(ratios) do mean = mean + r / #ratios end
  return {
    pairs = pairs,
    points = K,
    path_ratio_mean = #ratios > 0 and mean or 0 / 0,
    path_ratio_median = #ratios > 0 and ratios[(#ratios + 1) // 2] or 0 / 0,
    monotone = pairs > 0 and mono / pairs or 0,
    endpoints_reproduced = ends_total > 0 and ends / ends_total or 0,
    same_endpoints = same_ends,
  }, interior
end

--- Q.latent(mu, sigma) -> {kl, kl_per_dim = {...}, active_units, half_kl_dims}
-- Active units: dimensions whose mu varies across windows, Var(mu_d) > 0.01 (Burda et al.).
function Q.latent(mu, sigma)
  local n, Z = mu:size(1), mu:size(2)
  local m, s = mu:contiguous():view(-1):totable(), sigma:contiguous():view(-1):totable()
  local kl, mean, sq = {}, {}, {}
  for d = 1, Z do kl[d], mean[d], sq[d] = 0, 0, 0 end
  for i = 0, n - 1 do
    for d = 1, Z do
      local u, v = m[i * Z + d], s[i * Z + d]
      kl[d] = kl[d] + 0.5 * (u * u + v * v - 1 - 2 * math.log(v)) / n
      mean[d] = mean[d] + u / n
      sq[d] = sq[d] + u * u / n
    end
  end
  local total, active = 0, 0
  for d = 1, Z do
    total = total + kl[d]
    if sq[d] - mean[d] ^ 2 > 0.01 then active = active + 1 end
  end
  local sorted = {}
  for d = 1, Z do sorted[d] = kl[d] end
  table.sort(sorted, function(a, b) return a > b end)
  local acc, half = 0, 0
  for d = 1, Z do
    acc = acc + sorted[d]
    half = d
    if acc >= total / 2 then break end
  end
  return { kl = total, kl_per_dim = kl, active_units = active, half_kl_dims = half, dims = Z }
end

--- An index of training windows: Q.index(rows) -> idx; idx:copies(row) -> exact, within2
-- (within 2 differing steps, pigeonhole over 3 blocks: a match within 2 differences agrees
-- exactly on at least one block).
local Index = {}
Index.__index = Index

function Q.index(rows)
  local L = #rows[1]
  local cut = { 1, L // 3 + 1, 2 * L // 3 + 1, L + 1 }
  local idx = setmetatable({ rows = rows, exact = {}, blocks = { {}, {}, {} }, cut = cut }, Index)
  for i, r in ipairs(rows) do
    idx.exact[table.concat(r, ",")] = true
    for b = 1, 3 do
      local k = table.concat(r, ",", cut[b], cut[b + 1] - 1)
      local t = idx.blocks[b][k]
      if not t then
        t = {}
        idx.blocks[b][k] = t
      end
      t[#t + 1] = i
    end
  end
  return idx
end

function Index:copies(r)
  if self.exact[table.concat(r, ",")] then return true, true end
  local cut = self.cut
  for b = 1, 3 do
    local cands = self.blocks[b][table.concat(r, ",", cut[b], cut[b + 1] - 1)]
    for _, i in ipairs(cands or {}) do
      if F.steps_differing(r, self.rows[i]) <= 2 then return false, true end
    end
  end
  return false, false
end

--- Q.memorisation(index, rows) -> {n, exact, within2}: shares of rows copying a training window.
function Q.memorisation(idx, rows)
  local e, w = 0, 0
  for _, r in ipairs(rows) do
    local ex, near = idx:copies(r)
    if ex then e = e + 1 end
    if near then w = w + 1 end
  end
  return { n = #rows, exact = #rows > 0 and e / #rows or 0, within2 = #rows > 0 and w / #rows or 0 }
end

--- Q.report(model, ref_tensor, {train = tensor | nil, n = 1000, temperature = 0.5, seed = 1,
-- pairs = 100}) -> the report table (what `musicvae quality --json` prints)
function Q.report(model, ref, o)
  o = o or {}
  if model.config.groove then
    return nil, "quality measures categorical drum models (a groove model decodes velocities and timing)"
  end
  local spb = model.config.steps_per_bar
  local n = o.n or 1000
  local seed = o.seed or 1
  local temp = o.temperature or 0.5
  local all_ref = Q.rows(ref)
  local pick = Q.choose(#all_ref, n, core.rng(seed, "quality-reference"))
  local ref_rows = {}
  for i, k in ipairs(pick) do ref_rows[i] = all_ref[k] end
  local ref_t = core.tensor(ref_rows)
  local rep = { model = model.path, seed = seed, temperature = temp, n = n, reference_windows = #ref_rows }

  local samples = model:sample { n = n, temperature = temp, seed = seed }
  local sample_rows = {}
  for i, p in ipairs(samples) do sample_rows[i] = p.labels end

  local sets = { model = sample_rows }
  local train_rows
  if o.train then
    train_rows = Q.rows(o.train)
    local g = NGram.train(train_rows, spb)
    local rng = core.rng(seed, "quality-ngram")
    local base = {}
    for i = 1, n do base[i] = g:sample(#ref_rows[1], rng) end
    sets.baseline = base
    local tp = Q.choose(#train_rows, n, core.rng(seed, "quality-train"))
    local real = {}
    for i, k in ipairs(tp) do real[i] = train_rows[k] end
    sets.real = real
  else
    rep.left_out = "the n-gram baseline, real train windows, the model's position and memorisation need a train split"
      .. " (pass --train DATA.mvd)"
  end
  rep.realism = Q.realism(ref_rows, sets, spb, core.rng(seed, "quality-distances"))
  if sets.baseline then
    local pos = {}
    for _, feat in ipairs(F.FEATURES) do
      local f = rep.realism.features[feat]
      pos[feat] = Q.position(f.model.oa, f.baseline.oa, f.real.oa)
    end
    local mr = rep.realism.mean
    rep.realism.position = Q.position(mr.model.oa, mr.baseline.oa, mr.real.oa)
    rep.realism.position_per_feature = pos
  end

  local rec, mu, sigma = Q.reconstruction(model, ref_t)
  rep.reconstruction = rec
  rep.latent = Q.latent(mu, sigma)
  local pairs = math.min(o.pairs or 100, math.max(0, #ref_rows * (#ref_rows - 1)))
  local interior
  if #ref_rows >= 2 and pairs > 0 then
    rep.interpolation, interior = Q.interpolation(model, ref_rows, mu, pairs, core.rng(seed, "quality-pairs"))
  end
  if train_rows then
    local idx = Q.index(train_rows)
    rep.memorisation = { samples = Q.memorisation(idx, sample_rows),
      interpolation = Q.memorisation(idx, interior or {}) }
  end
  return rep
end

local function f4(x) return x == nil and "-" or (x ~= x and "nan" or ("%.4f"):format(x)) end

--- Q.print(report, out): the report as text.
function Q.print(rep, out)
  out:write(("quality of %s: %d reference windows, %d samples at temperature %g, seed %d\n"):format(
    rep.model or "model", rep.reference_windows, rep.n, rep.temperature, rep.seed))
  local r = rep.realism
  local sets = { "model", "baseline", "real" }
  out:write("realism (OA: 1 = as close as real windows are to each other; KL: 0 = the same)\n")
  out:write(("  %-16s"):format("feature"))
  for _, k in ipairs(sets) do
    if r.mean[k] then out:write(("  %-8s OA   KL    "):format(k)) end
  end
  out:write(r.position and "  position\n" or "\n")
  local function row(name, t, pos)
    out:write(("  %-16s"):format(name))
    for _, k in ipairs(sets) do
      if t[k] then out:write(("  %7.4f %7.4f    "):format(t[k].oa, t[k].kl)) end
    end
    out:write(pos and ("  %s\n"):format(f4(pos)) or "\n")
  end
  for _, feat in ipairs(F.FEATURES) do row(feat, r.features[feat], r.position_per_feature and r.position_per_feature[feat]) end
  row("mean", r.mean, r.position)
  local c = rep.reconstruction
  out:write(("reconstruction from mu: tf_accuracy %s, sampled_accuracy %s, bars exactly right %s, distinct bars %.2f"
    .. " (inputs %.2f), hit F1 %s\n"):format(f4(c.tf_accuracy), f4(c.sampled_accuracy), f4(c.bars_exact), c.distinct_bars,
    c.distinct_bars_input, f4(c.hit_f1)))
  local i = rep.interpolation
  if i then
    out:write(("interpolation (%d pairs, %d points): path / endpoint distance mean %s, median %s; monotone %s;"
      .. " endpoints reproduced %s\n"):format(i.pairs, i.points, f4(i.path_ratio_mean), f4(i.path_ratio_median),
      f4(i.monotone), f4(i.endpoints_reproduced)))
  end
  local l = rep.latent
  out:write(("latent: KL %.2f nats, active units %d of %d, half the KL in %d dimensions\n"):format(l.kl, l.active_units,
    l.dims, l.half_kl_dims))
  local mm = rep.memorisation
  if mm then
    out:write(("memorisation: samples copying a train window %s exact, %s within 2 steps; interpolation points %s,"
      .. " %s\n"):format(f4(mm.samples.exact), f4(mm.samples.within2), f4(mm.interpolation.exact),
      f4(mm.interpolation.within2)))
  end
  if rep.left_out then out:write("left out: ", rep.left_out, "\n") end
end

return Q
