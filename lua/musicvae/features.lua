--- Musical features of categorical drum patterns: the per-pattern features of `musicvae quality`
-- (Yang & Lerch 2020's approach) and the named attributes of attribute vectors. One place for
-- both, so what the report measures and what a vector steers are the same numbers.
--
-- Every function takes a label sequence (a 1-based array of 512-class labels, bit c-1 = drum class
-- c, as the conventions) and steps_per_bar; the number of bars is #labels // steps_per_bar.
local F = {}

F.CLASSES = 9

local function bit(l, c) return (l >> (c - 1)) & 1 end

local function popcount9(x)
  local n = 0
  while x ~= 0 do
    n = n + (x & 1)
    x = x >> 1
  end
  return n
end
F.popcount = popcount9

--- Hamming distance over the step x class cells of two label sequences (or their first n steps).
function F.hamming(a, b, n)
  local d = 0
  for s = 1, n or #a do d = d + popcount9(a[s] ~ b[s]) end
  return d
end

--- Steps whose labels differ.
function F.steps_differing(a, b)
  local d = 0
  for s = 1, #a do
    if a[s] ~= b[s] then d = d + 1 end
  end
  return d
end

local function bar_key(labels, first, spb) return table.concat(labels, ",", first, first + spb - 1) end

--- Mean Hamming distance (cells) between consecutive bars, and the number of distinct bars.
function F.bar_stats(labels, spb)
  local bars = #labels // spb
  local ham, seen, distinct = 0, {}, 0
  for u = 0, bars - 1 do
    local k = bar_key(labels, u * spb + 1, spb)
    if not seen[k] then seen[k], distinct = true, distinct + 1 end
    if u > 0 then
      for t = 1, spb do ham = ham + popcount9(labels[(u - 1) * spb + t] ~ labels[u * spb + t]) end
    end
  end
  return bars > 1 and ham / (bars - 1) or 0, distinct
end

--- The per-pattern features of the realism report, each a list of numbers (a scalar is a list of
-- one), in F.FEATURES order:
--   hits            hits per class (9 counts)
--   empty_steps     steps with no hit
--   distinct_labels distinct labels among the steps
--   bar_hamming     mean Hamming distance (cells) between consecutive bars
--   distinct_bars   distinct bars
--   off_8th         share of hits on odd 16th positions (off the 8th-note grid); 0 without hits
--   kick_quarters   share of quarter beats (positions 1, 5, 9, 13 of a 16-step bar) with a kick
--   snare_backbeat  share of beats 2 and 4 (positions 5 and 13) with a snare
--   ioi_hist        inter-onset intervals between steps with any hit: share of 1, 2, ..., spb and
--                   longer (spb + 1 bins)
--   onset_hist      share of onsets (steps with any hit) at each position of the bar (spb bins)
F.FEATURES = { "hits", "empty_steps", "distinct_labels", "bar_hamming", "distinct_bars", "off_8th", "kick_quarters",
  "snare_backbeat", "ioi_hist", "onset_hist" }

function F.features(labels, spb)
  local L = #labels
  local hits = {}
  for c = 1, F.CLASSES do hits[c] = 0 end
  local empty, seen, distinct = 0, {}, 0
  local total, off8 = 0, 0
  local q, kq, bb, sb = 0, 0, 0, 0
  local ioi, onset = {}, {}
  for k = 1, spb + 1 do ioi[k] = 0 end
  for k = 1, spb do onset[k] = 0 end
  local last, n_on, n_ioi = nil, 0, 0
  local quarter = spb // 4
  for s = 1, L do
    local l = labels[s]
    local pos = (s - 1) % spb -- 0-based position in the bar
    if not seen[l] then seen[l], distinct = true, distinct + 1 end
    if l == 0 then
      empty = empty + 1
    else
      local n = popcount9(l)
      total = total + n
      if pos % 2 == 1 then off8 = off8 + n end
      for c = 1, F.CLASSES do hits[c] = hits[c] + bit(l, c) end
      onset[pos + 1] = onset[pos + 1] + 1
      n_on = n_on + 1
      if last then
        local d = s - last
        ioi[math.min(d, spb + 1)] = ioi[math.min(d, spb + 1)] + 1
        n_ioi = n_ioi + 1
      end
      last = s
    end
    if quarter > 0 and pos % quarter == 0 then
      q = q + 1
      kq = kq + bit(l, 1)
      local beat = pos // quarter -- 0..3
      if beat == 1 or beat == 3 then
        bb = bb + 1
        sb = sb + bit(l, 2)
      end
    end
  end
  for k = 1, #ioi do ioi[k] = n_ioi > 0 and ioi[k] / n_ioi or 0 end
  for k = 1, #onset do onset[k] = n_on > 0 and onset[k] / n_on or 0 end
  local ham, dbars = F.bar_stats(labels, spb)
  return {
    hits = hits,
    empty_steps = { empty },
    distinct_labels = { distinct },
    bar_hamming = { ham },
    distinct_bars = { dbars },
    off_8th = { total > 0 and off8 / total or 0 },
    kick_quarters = { q > 0 and kq / q or 0 },
    snare_backbeat = { bb > 0 and sb / bb or 0 },
    ioi_hist = ioi,
    onset_hist = onset,
  }
end

--- The named attributes of attribute vectors (one number each), in F.ATTRIBUTES order:
--   density        hits (step x class cells) per bar
--   kick, snare    hits per bar of that instrument
--   hihat          closed and open hi-hat hits per bar
--   toms           low, mid and high tom hits per bar
--   cymbals        crash and ride hits per bar
--   syncopation16  share of hits off the 8th-note grid (odd 16th positions)
--   syncopation8   share of hits off the quarter-note grid
--   variation      mean Hamming distance (cells) between consecutive bars
--   empty_steps    share of steps with no hit (the space in a groove)
F.ATTRIBUTES = { "density", "kick", "snare", "hihat", "toms", "cymbals", "syncopation16", "syncopation8", "variation",
  "empty_steps" }

F.GROUPS = { kick = { 1 }, snare = { 2 }, hihat = { 3, 4 }, toms = { 5, 6, 7 }, cymbals = { 8, 9 } }

function F.attributes(labels, spb)
  local bars = math.max(1, #labels // spb)
  local per = {}
  for c = 1, F.CLASSES do per[c] = 0 end
  local total, off16, off8, empty = 0, 0, 0, 0
  local quarter = math.max(1, spb // 4)
  for s = 1, #labels do
    local l = labels[s]
    local pos = (s - 1) % spb
    if l == 0 then empty = empty + 1 end
    for c = 1, F.CLASSES do
      if bit(l, c) == 1 then
        per[c] = per[c] + 1
        total = total + 1
        if pos % 2 == 1 then off16 = off16 + 1 end
        if pos % quarter ~= 0 then off8 = off8 + 1 end
      end
    end
  end
  local out = {
    density = total / bars,
    syncopation16 = total > 0 and off16 / total or 0,
    syncopation8 = total > 0 and off8 / total or 0,
    variation = (F.bar_stats(labels, spb)),
    empty_steps = #labels > 0 and empty / #labels or 0,
  }
  for name, cs in pairs(F.GROUPS) do
    local n = 0
    for _, c in ipairs(cs) do n = n + per[c] end
    out[name] = n / bars
  end
  return out
end

--- F.columns(rows, spb, fn, names) -> {name = {value of row 1, row 2, ...}}: fn (F.features or
-- F.attributes) applied to every row, one column per name.
function F.columns(rows, spb, fn, names)
  local out = {}
  for _, name in ipairs(names) do out[name] = {} end
  for i, r in ipairs(rows) do
    local v = fn(r, spb)
    for _, name in ipairs(names) do out[name][i] = v[name] end
  end
  return out
end

return F
