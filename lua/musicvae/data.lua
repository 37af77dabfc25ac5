--- The drum data pipeline (as Magenta's DrumsConverter) and dataset files.
--   windows: every distinct window of `bars` bars at a 1-bar hop inside each
--   extracted drum track (tracks come from the C pipeline: time-change split,
--   meter filter, quantization, gap rule); de-duplicated per file.
--   dataset files: safetensors with per-split label and source tensors and a
--   versioned, checksummed __metadata__ header.
local core = require "musicvae.core"
local json = require "musicvae.json"
local midi = require "musicvae.midi"
local st = require "musicvae.safetensors"

local Data = {}

Data.FORMAT = "musicvae-dataset"
Data.FORMAT_VERSION = "1.1" -- 1.1: file_styles (the primary style of each file)
Data.SPLITS = { "train", "validation", "test" }

--- The groove rows of one window: magenta's 27 floats per step, [hits | vel/127 |
-- offsets (2 x steps, positive = early)], flat (step-major). first: the window's first
-- step counted from the file start (0-based). nil, reason when the file's groove view
-- disagrees with the track's hits (a step that is not on the file's grid).
local function groove_rows(labels, first, gv)
  local row = {}
  for s = 1, #labels do
    local l, v, o = labels[s], gv.vel[first + s], gv.off[first + s]
    local base = (s - 1) * 27
    for c = 1, 9 do
      local hit = (l >> (c - 1)) & 1
      local vel = v and v[c] or 0
      if (hit == 1) ~= (vel > 0) then return nil, "groove mismatch" end
      row[base + c] = hit
      row[base + 9 + c] = vel / 127
      row[base + 18 + c] = hit == 1 and o[c] or 0
    end
  end
  return row
end
Data.groove_rows = groove_rows

--- Windows of one file's tracks. opts: bars (4), steps_per_bar (16), hop_bars (1).
-- -> list of {labels = {...}, first_bar = n (1-based, counted in 4-quarter bars from
--    the file start), groove = {64 x 27 floats} when gv (the file's groove view:
--    {vel = , off = } as midi's h:groove) is given}, de-duplicated in order of first
--    appearance; and the number of windows left out for a groove mismatch.
function Data.windows(tracks, ppq, opts, gv)
  local spb = opts.steps_per_bar or 16
  local spq = opts.steps_per_quarter or 4
  local size = (opts.bars or 4) * spb
  local hop = (opts.hop_bars or 1) * spb
  local seen, out, mismatched = {}, {}, 0
  for _, t in ipairs(tracks) do
    local l = t.labels
    for i = size, #l, hop do
      local w = table.move(l, i - size + 1, i, 1, {})
      local step = t.start_step + i - size
      local tick = t.piece_tick + step * ppq // spq
      local key = table.concat(w, ",")
      local g
      if gv then
        if (t.piece_tick * spq) % ppq ~= 0 then
          mismatched = mismatched + 1
          goto next
        end
        g = groove_rows(w, t.piece_tick * spq // ppq + step, gv)
        if not g then
          mismatched = mismatched + 1
          goto next
        end
        key = key .. "|" .. table.concat(g, ",")
      end
      if not seen[key] then
        seen[key] = true
        out[#out + 1] = { labels = w, first_bar = tick // (4 * ppq) + 1, groove = g }
      end
      ::next::
    end
  end
  return out, mismatched
end

--- Data.file_windows(path, opts) -> {windows, drop = reason|nil, detail, warnings, steps_truncated, qpm}
-- A file that cannot be read gives drop = "parse error" (never raises for bad data).
function Data.file_windows(path, opts)
  local copts = midi.drum_options(opts)
  local h, err = midi.open(path)
  if not h then return { windows = {}, drop = "parse error", detail = err, warnings = {} } end
  local info = h:info()
  local r, terr = h:tracks(copts)
  if not r then
    h:close()
    return { windows = {}, drop = "too long", detail = terr, warnings = info.warnings }
  end
  local gv
  if opts.groove and not r.drop then
    local vel, off = h:groove(copts)
    gv = { vel = vel, off = off }
  end
  h:close()
  local res = { windows = {}, warnings = info.warnings, steps_truncated = r.steps_truncated,
    qpm = info.tempos[1] and info.tempos[1].qpm or 120 }
  if r.drop then
    res.drop, res.detail = r.drop, r.detail
    return res
  end
  res.windows, res.groove_mismatch = Data.windows(r.tracks, info.ppq, opts, gv)
  if #res.windows == 0 then
    local longest = 0
    for _, t in ipairs(r.tracks) do longest = math.max(longest, #t.labels) end
    res.drop = "too short"
    res.detail = ("longest drum track %d bars, a window is %d"):format(longest // (opts.steps_per_bar or 16),
      opts.bars or 4)
  end
  return res
end

--- Evenly spaced choice of n of the list (deterministic cap).
function Data.cap(list, n)
  if not n or #list <= n then return list end
  local out = {}
  for k = 1, n do out[k] = list[(k - 1) * #list // n + 1] end
  return out
end

--- Data.find_midi(dir) -> sorted list of paths relative to dir (*.mid, *.midi, any case)
function Data.find_midi(dir)
  local out = {}
  local function walk(rel)
    local full = rel == "" and dir or (dir .. "/" .. rel)
    local entries, err = core.listdir(full)
    if not entries then return nil, err end
    table.sort(entries, function(a, b) return a.name < b.name end)
    for _, e in ipairs(entries) do
      local r = rel == "" and e.name or (rel .. "/" .. e.name)
      if e.dir then
        local ok, werr = walk(r)
        if not ok then return nil, werr end
      elseif e.name:lower():match("%.midi?$") then
        out[#out + 1] = r
      end
    end
    return true
  end
  local ok, err = walk("")
  if not ok then return nil, err end
  return out
end

local function csv_fields(line)
  line = line:gsub("\r$", "")
  local f, i, n = {}, 1, #line
  while true do
    if line:sub(i, i) == '"' then
      local buf, j = {}, i + 1
      while true do
        local q = line:find('"', j, true)
        if not q then return nil end
        buf[#buf + 1] = line:sub(j, q - 1)
        if line:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      f[#f + 1] = table.concat(buf)
    else
      local c = line:find(",", i, true) or n + 1
      f[#f + 1] = line:sub(i, c - 1)
      i = c
    end
    if i > n then return f end
    if line:sub(i, i) ~= "," then return nil end
    i = i + 1
    if i > n then
      f[#f + 1] = ""
      return f
    end
  end
end
Data.csv_fields = csv_fields

--- Data.read_info(path) -> {[midi_filename] = split}, {[midi_filename] = primary style} (empty
-- without a style column), or nil, err. Needs the columns midi_filename and split (the Groove MIDI
-- Dataset's info.csv). The primary style is the genre before the first "/" ("jazz/funk" -> "jazz").
function Data.read_info(path)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local header = f:read("l")
  local cols = header and csv_fields(header)
  if not cols then
    f:close()
    return nil, path .. ": empty or malformed header"
  end
  local ci, si, yi
  for i, c in ipairs(cols) do
    if c == "midi_filename" then ci = i end
    if c == "split" then si = i end
    if c == "style" then yi = i end
  end
  if not ci or not si then
    f:close()
    return nil, path .. ": needs the columns midi_filename and split"
  end
  local map, styles, n = {}, {}, 1
  for line in f:lines() do
    n = n + 1
    if line:match("%S") then
      local row = csv_fields(line)
      if not row or not row[ci] or not row[si] then
        f:close()
        return nil, ("%s:%d: malformed row"):format(path, n)
      end
      map[row[ci]] = row[si]
      local style = yi and row[yi] and row[yi]:match("^%s*([^/]*)"):match("^(.-)%s*$")
      if style and style ~= "" then styles[row[ci]] = style end
    end
  end
  f:close()
  return map, styles
end

--- Deterministic 80/10/10 split from the FNV-1a hash of the relative path.
function Data.hash_split(rel)
  local h = tonumber(core.fnv1a64(rel):sub(-8), 16) % 100
  if h < 80 then return "train" elseif h < 90 then return "validation" end
  return "test"
end

local function checksum(payload) return core.fnv1a64(payload) end

--- Data.prepare(dir, out_path, opts) -> report, or nil, err
-- opts: info (info.csv path), max_per_file, bars, map, drum_channel, max_bars, progress(i, n, file)
function Data.prepare(dir, out_path, opts)
  opts = opts or {}
  local t0 = core.clock()
  local files, err = Data.find_midi(dir)
  if not files then return nil, err end
  local info, styles
  if opts.info then
    info, styles = Data.read_info(opts.info)
    if not info then return nil, styles end
  end
  local wopts = { bars = opts.bars or 4, steps_per_bar = 16, steps_per_quarter = 4, map = opts.map,
    drum_channel = opts.drum_channel, max_bars = opts.max_bars, groove = opts.groove }
  local per = {}
  for _, s in ipairs(Data.SPLITS) do per[s] = { labels = {}, source = {}, groove = opts.groove and {} or nil } end
  local report = { files = #files, kept = 0, windows = {}, dropped = {}, drops = {}, warnings = 0,
    steps_truncated = 0, groove_mismatch = 0 }
  for i, rel in ipairs(files) do
    if opts.progress then opts.progress(i, #files, rel) end
    local split = info and info[rel] or (not info and Data.hash_split(rel)) or nil
    local res
    if not split then
      res = { windows = {}, drop = "not in info.csv", detail = "", warnings = {} }
    elseif not per[split] then
      res = { windows = {}, drop = "unknown split", detail = split, warnings = {} }
    else
      res = Data.file_windows(dir .. "/" .. rel, wopts)
    end
    report.warnings = report.warnings + #(res.warnings or {})
    if opts.on_warnings and res.warnings and #res.warnings > 0 then opts.on_warnings(rel, res.warnings) end
    report.steps_truncated = report.steps_truncated + (res.steps_truncated or 0)
    report.groove_mismatch = report.groove_mismatch + (res.groove_mismatch or 0)
    if res.drop then
      report.dropped[res.drop] = (report.dropped[res.drop] or 0) + 1
      report.drops[#report.drops + 1] = { file = rel, reason = res.drop, detail = res.detail or "" }
    else
      report.kept = report.kept + 1
      local ws = Data.cap(res.windows, opts.max_per_file)
      local p = per[split]
      for _, w in ipairs(ws) do
        p.labels[#p.labels + 1] = w.labels
        p.source[#p.source + 1] = { i, w.first_bar }
        if p.groove then p.groove[#p.groove + 1] = w.groove end
      end
    end
  end
  for _, sp in ipairs(Data.SPLITS) do report.windows[sp] = #per[sp].labels end
  local ok, werr = Data.save(out_path, per, {
    bars = opts.bars or 4,
    map = require("musicvae.drums").map(opts.map),
    drum_channel = opts.drum_channel or 10,
    max_bars = opts.max_bars or 0,
    max_per_file = opts.max_per_file or 0,
    groove = opts.groove,
    files = files,
    file_styles = styles and (function()
      local list = {}
      for i, rel in ipairs(files) do list[i] = styles[rel] or "" end
      return list
    end)() or nil,
    root = dir,
  })
  if not ok then return nil, werr end
  -- the full per-file drop list beside the dataset
  local lines = { "file\treason\tdetail" }
  for _, d in ipairs(report.drops) do
    lines[#lines + 1] = ("%s\t%s\t%s"):format(d.file, d.reason, (d.detail:gsub("[\t\n]", " ")))
  end
  report.drops_path = out_path .. ".drops.tsv"
  ok, werr = core.write_atomic(report.drops_path, table.concat(lines, "\n") .. "\n")
  if not ok then return nil, werr end
  report.seconds = core.clock() - t0
  return report
end

--- Data.save(path, splits, info) -> true or nil, err. splits: {train = {labels = {rows}, source = {rows}}
-- or {labels = tensor [n, T], source = tensor [n, 2]}, ...}, each with an optional groove
-- (rows of T x 27 floats, or a tensor [n, T, 27]); info: bars, map, files, root, options.
function Data.save(out_path, splits, info)
  info = info or {}
  local bars = info.bars or 4
  local T = bars * 16
  local tensors, parts, counts = {}, {}, {}
  for _, s in ipairs(Data.SPLITS) do
    local p = splits[s] or { labels = {}, source = {} }
    local labels, source = p.labels, p.source
    if not core.istensor(labels) then
      labels = #labels > 0 and core.tensor(labels) or core.zeros(0, T)
      source = p.source and #p.source > 0 and core.tensor(p.source) or core.zeros(labels:size(1), 2)
    end
    if labels:dim() ~= 2 or (labels:size(1) > 0 and labels:size(2) ~= T) then
      error(("Data.save: %s labels must be [n, %d]"):format(s, T), 2)
    end
    counts[s] = labels:size(1)
    tensors[#tensors + 1] = { s .. "/labels", labels }
    tensors[#tensors + 1] = { s .. "/source", source or core.zeros(labels:size(1), 2) }
    local g = p.groove
    if g then
      if not core.istensor(g) then g = #g > 0 and core.tensor(g):view(#g, T, 27) or core.zeros(0, T, 27) end
      if g:dim() ~= 3 or g:size(1) ~= labels:size(1) or (g:size(1) > 0 and (g:size(2) ~= T or g:size(3) ~= 27)) then
        error(("Data.save: %s groove must be [n, %d, 27]"):format(s, T), 2)
      end
      tensors[#tensors + 1] = { s .. "/groove", g }
    end
  end
  for _, e in ipairs(tensors) do parts[#parts + 1] = e[1] .. "=" .. checksum(e[2]:tobytes()) end
  local meta = {
    format = Data.FORMAT,
    format_version = Data.FORMAT_VERSION,
    created_by = "musicvae " .. core._VERSION,
    bars = tostring(bars),
    steps_per_bar = "16",
    steps_per_quarter = "4",
    map = json.encode(info.map or require("musicvae.drums").map()),
    drum_channel = tostring(info.drum_channel or 10),
    max_bars = tostring(info.max_bars or 0),
    max_per_file = tostring(info.max_per_file or 0),
    groove = info.groove and "1" or "0",
    splits = json.encode(counts),
    files = json.encode(json.array(info.files or {})),
    file_styles = info.file_styles and json.encode(json.array(info.file_styles)) or nil,
    root = info.root or "",
    checksum = table.concat(parts, ";"),
  }
  return st.save(out_path, tensors, { metadata = meta })
end

-- Datasets -------------------------------------------------------------------
local Dataset = {}
Dataset.__index = Dataset

--- Data.load(path) -> dataset, or nil, err. Checks format, version and checksums.
function Data.load(path)
  local t, meta = st.load(path)
  if not t then return nil, meta end
  if meta.format ~= Data.FORMAT then return nil, path .. ": not a musicvae dataset file" end
  local major = tonumber((meta.format_version or ""):match("^(%d+)"))
  local mine = tonumber(Data.FORMAT_VERSION:match("^(%d+)"))
  if not major then return nil, path .. ": dataset has no format_version" end
  if major > mine then
    return nil, ("%s: dataset format %s needs a newer musicvae (this one reads %d.x)"):format(path,
      meta.format_version, mine)
  end
  for part in (meta.checksum or ""):gmatch("[^;]+") do
    local name, sum = part:match("^(.-)=(%x+)$")
    if not name or not t[name] then return nil, path .. ": malformed checksum entry" end
    if checksum(t[name]:tobytes()) ~= sum then
      return nil, ("%s: checksum mismatch in %s (the file is corrupt)"):format(path, name)
    end
  end
  local files = json.decode(meta.files or "[]") or {}
  local file_styles = meta.file_styles and json.decode(meta.file_styles) or nil
  local ds = setmetatable({ path = path, meta = meta, files = files, file_styles = file_styles, splits = {},
    bars = tonumber(meta.bars), steps_per_bar = tonumber(meta.steps_per_bar) }, Dataset)
  for _, s in ipairs(Data.SPLITS) do
    if t[s .. "/labels"] then
      ds.splits[s] = { labels = t[s .. "/labels"], source = t[s .. "/source"], groove = t[s .. "/groove"] }
      if ds.splits[s].groove then ds.groove = true end
    end
  end
  return ds
end

--- ds:styles(split) -> an array with each window's primary style ("" where unknown), or nil when
-- the dataset records no styles (prepare without an info.csv that has a style column).
function Dataset:styles(split)
  local fs = self.file_styles
  local s = self.splits[split]
  if not fs or not s then return nil end
  local out, n = {}, s.labels:size(1)
  for i = 1, n do out[i] = fs[math.tointeger(s.source:get(i, 1))] or "" end
  return out
end

--- ds:size(split) -> number of windows
function Dataset:size(split)
  local s = self.splits[split or "train"]
  return s and s.labels:size(1) or 0
end

--- ds:window(split, i) -> labels (1-based array), source file, first bar
function Dataset:window(split, i)
  local s = self.splits[split]
  local row = s.labels:select(1, i):totable()
  for k = 1, #row do row[k] = math.tointeger(row[k]) end
  local src = s.source:select(1, i):totable()
  return row, self.files[math.tointeger(src[1])], math.tointeger(src[2])
end

--- ds:order(split, seed, epoch) -> a permutation of 1..n, Fisher-Yates on the
-- stream (seed, "data", epoch): the same for the same arguments everywhere.
function Dataset:order(split, seed, epoch)
  local n = self:size(split)
  local idx = {}
  for i = 1, n do idx[i] = i end
  if seed then
    local r = core.rng(seed, "data", epoch or 0)
    for i = n, 2, -1 do
      local j = r:integer(i)
      idx[i], idx[j] = idx[j], idx[i]
    end
  end
  return idx
end

--- ds:batches(split, {batch_size = 64, seed = s, epoch = 0, drop_last = false, start = 1, groove = false})
-- -> iterator of (labels tensor [B, T], indices), or with groove = true of (groove
-- tensor [B, T, 27], indices). Without seed: file order.
function Dataset:batches(split, opts)
  opts = opts or {}
  local bs = opts.batch_size or 64
  local s = self.splits[split]
  if not s then error("dataset has no split '" .. tostring(split) .. "'", 2) end
  local order = self:order(split, opts.seed, opts.epoch)
  local src = s.labels
  if opts.groove then
    src = s.groove
    if not src then error("dataset has no groove data (prepare it with --groove)", 2) end
  end
  local T = s.labels:size(2)
  local pos = opts.start or 1
  return function()
    if pos > #order then return nil end
    local last = math.min(#order, pos + bs - 1)
    if opts.drop_last and last - pos + 1 < bs then return nil end
    local b = opts.groove and core.zeros(last - pos + 1, T, 27) or core.zeros(last - pos + 1, T)
    local idx = {}
    for k = pos, last do
      b:select(1, k - pos + 1):copy(src:select(1, order[k]))
      idx[#idx + 1] = order[k]
    end
    pos = last + 1
    return b, idx
  end
end

return Data
