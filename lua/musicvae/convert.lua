--- Converting magenta.js checkpoint folders (weights_manifest.json, binary shards, config.json)
-- into the project's model file, keeping Magenta's variable names. Sizes come from the weight
-- shapes; config.json gives the model type and the data converter. Bad data returns nil, err.
local json = require "musicvae.json"
local core = require "musicvae.core"

local C = {}

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

local function decode_json(path)
  local s, err = read(path)
  if not s then return nil, err end
  local ok, v = pcall(json.decode, s)
  if not ok or type(v) ~= "table" then return nil, path .. ": not valid JSON" end
  return v
end

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do
    if math.type(d) ~= "integer" or d < 0 then return nil end
    n = n * d
  end
  return n
end

-- One weight's bytes (little-endian) -> float32 bytes, dequantizing q*scale + min as tfjs does.
local QSIZE = { uint8 = 1, uint16 = 2 }
local function to_f32(bytes, n, q)
  if not q then return bytes end
  local w, fmt = QSIZE[q.dtype], q.dtype == "uint8" and "B" or "<I2"
  local scale, min = q.scale, q.min
  local out, chunk = {}, {}
  for i = 0, n - 1 do
    local v = string.unpack(fmt, bytes, i * w + 1)
    chunk[#chunk + 1] = string.pack("<f", min + scale * v)
    if #chunk == 4096 then out[#out + 1] = table.concat(chunk); chunk = {} end
  end
  out[#out + 1] = table.concat(chunk)
  return table.concat(out)
end

--- C.read_weights(dir) -> {name = Tensor}, names (manifest order), or nil, err
function C.read_weights(dir)
  local man, err = decode_json(dir .. "/weights_manifest.json")
  if not man then return nil, err end
  if #man == 0 then return nil, "weights_manifest.json: expected a list of weight groups" end
  local weights, names = {}, {}
  for g, group in ipairs(man) do
    if type(group) ~= "table" or type(group.paths) ~= "table" or type(group.weights) ~= "table" then
      return nil, ("weights_manifest.json: group %d needs paths and weights"):format(g)
    end
    local parts = {}
    for _, p in ipairs(group.paths) do
      if type(p) ~= "string" or p:find("..", 1, true) or p:sub(1, 1) == "/" then
        return nil, ("weights_manifest.json: group %d: bad shard path %s"):format(g, tostring(p))
      end
      local s, e = read(dir .. "/" .. p)
      if not s then return nil, ("shard %s: %s"):format(p, e) end
      parts[#parts + 1] = s
    end
    local data, pos = table.concat(parts), 1
    for _, w in ipairs(group.weights) do
      local name, shape, q = w.name, w.shape, w.quantization
      local n = type(shape) == "table" and numel(shape)
      if type(name) ~= "string" or not n then return nil, "weights_manifest.json: a weight needs a name and a shape" end
      if w.dtype ~= "float32" then return nil, ("weight %s: dtype %s is not supported"):format(name, tostring(w.dtype)) end
      if q and (not QSIZE[q.dtype] or type(q.scale) ~= "number" or type(q.min) ~= "number") then
        return nil, ("weight %s: unsupported quantization %s"):format(name, tostring(q.dtype))
      end
      if weights[name] then return nil, ("weight %s appears twice"):format(name) end
      local len = n * (q and QSIZE[q.dtype] or 4)
      if pos + len - 1 > #data then return nil, ("weight %s: the shards of group %d are too short"):format(name, g) end
      local f32 = to_f32(data:sub(pos, pos + len - 1), n, q)
      pos = pos + len
      local sh = #shape > 0 and shape or { 1 }
      weights[name] = core.frombytes(f32, sh)
      names[#names + 1] = name
    end
    if pos - 1 ~= #data then return nil, ("group %d: %d bytes left over in its shards"):format(g, #data - pos + 1) end
  end
  return weights, names
end

local ENC = "encoder/cell_%d/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel"

local function layers(W, fmt)
  local sizes, k = {}, 0
  while W[fmt:format(k)] do
    sizes[#sizes + 1] = W[fmt:format(k)]:size(2) // 4
    k = k + 1
  end
  return sizes
end

--- C.infer(weights, cfgjson) -> config table for Model.new, notes {string}, or nil, err
function C.infer(W, mj)
  if type(mj) ~= "table" or mj.type ~= "MusicVAE" then
    return nil, "config.json: model type " .. tostring(mj and mj.type) .. " is not supported (MusicVAE only)"
  end
  local dc = mj.dataConverter or {}
  local args = dc.args or {}
  for name in pairs(W) do
    if name:find("nade", 1, true) then return nil, "NADE output is not supported (" .. name .. ")" end
    if name:find("^encoder/hierarchical") then
      return nil, "a hierarchical encoder (conductor checkpoint) is not supported"
    end
  end
  if dc.type ~= "DrumsConverter" and dc.type ~= "GrooveConverter" then
    return nil, "data converter " .. tostring(dc.type) .. " is not supported (drums and groove only)"
  end
  local steps = args.numSteps
  if math.type(steps) ~= "integer" or steps <= 0 or steps % 16 ~= 0 then
    return nil, "config.json: numSteps " .. tostring(steps) .. " is not a whole number of 16-step bars"
  end
  local cfg, notes = { bars = steps // 16, steps_per_bar = 16 }, {}
  cfg.enc = layers(W, ENC)
  if #cfg.enc == 0 then return nil, "no encoder weights (" .. ENC:format(0) .. ")" end
  cfg.input_depth = W[ENC:format(0)]:size(1) - cfg.enc[1]
  if not W["encoder/mu/kernel"] then return nil, "no encoder/mu/kernel" end
  cfg.z = W["encoder/mu/kernel"]:size(2)
  if not W["encoder/sigma/kernel"] then notes[#notes + 1] = "no encoder/sigma: encodes mu only" end
  if dc.type == "GrooveConverter" then
    if args.splitInstruments then return nil, "GrooveConverter splitInstruments is not supported" end
    cfg.groove = true
    cfg.mode = args.tapify and "tap" or args.humanize and "humanize" or "groove"
    cfg.dec = layers(W, "decoder/multi_rnn_cell/cell_%d/lstm_cell/kernel")
    if #cfg.dec == 0 then return nil, "no groove decoder weights (decoder/multi_rnn_cell/cell_0)" end
    cfg.vocab = W["decoder/output_projection/bias"] and W["decoder/output_projection/bias"]:size(1)
  else
    cfg.cond = layers(W, "decoder/hierarchical_level_0/cell_%d/lstm_cell/kernel")
    if #cfg.cond == 0 then
      return nil, "the flat categorical drum decoder (drums_2bar_*, drums_4bar_med_*) is not supported yet"
    end
    local seg = args.numSegments or cfg.bars
    if seg ~= cfg.bars then return nil, ("%d segments over %d bars is not supported"):format(seg, cfg.bars) end
    cfg.dec = layers(W, "core_decoder/decoder/multi_rnn_cell/cell_%d/lstm_cell/kernel")
    if #cfg.dec == 0 then return nil, "no core_decoder weights" end
    cfg.vocab = W["core_decoder/decoder/output_projection/bias"] and W["core_decoder/decoder/output_projection/bias"]:size(1)
    if args.pitchClasses then notes[#notes + 1] = "pitchClasses given: the drum map is not converted" end
  end
  if not cfg.vocab then return nil, "no output_projection bias" end
  return cfg, notes
end

--- C.convert(dir, out, {f16 = bool}) -> {config, notes, count}, or nil, err
function C.convert(dir, out, opts)
  opts = opts or {}
  local W, names = C.read_weights(dir)
  if not W then return nil, names end
  local mj, err = decode_json(dir .. "/config.json")
  if not mj then return nil, err end
  local cfg, notes = C.infer(W, mj)
  if not cfg then return nil, notes end
  local Model = require "musicvae.model"
  local ok, m = pcall(Model.new, cfg, nil, true)
  if not ok then return nil, "the weights do not make a supported model: " .. tostring(m) end
  local P, used = m:params(), 0
  for _, p in ipairs(m.vae:param_list()) do
    local src = W[p.name]
    if src then
      if src:numel() ~= P[p.name]:numel() then
        m:close()
        return nil, ("weight %s has %d values, the model needs %d"):format(p.name, src:numel(), P[p.name]:numel())
      end
      P[p.name]:copy(src:reshape(P[p.name]:size()))
      used = used + 1
    elseif p.name:find("^encoder/sigma/") then
      P[p.name]:fill(0)
    else
      m:close()
      return nil, "missing weight " .. p.name
    end
  end
  for _, n in ipairs(names) do
    if not P[n] then notes[#notes + 1] = "ignored weight " .. n end
  end
  local sv, e = m:save(out, { dtype = opts.f16 and "F16" or "F32", metadata = {
    converted_from = "magenta.js checkpoint", source_dir = dir,
    sigma = W["encoder/sigma/kernel"] and "present" or "absent",
    licence = "Apache-2.0 (Magenta checkpoints)" } })
  m:close()
  if not sv then return nil, e end
  return { config = cfg, notes = notes, count = used }
end

--- C.install(cli): registers `musicvae convert`.
function C.install(M)
  M.register {
    name = "convert",
    summary = "convert a magenta.js checkpoint folder into a model file",
    usage = "convert DIR -o OUT.safetensors [--f16]",
    options = { { name = "--output", short = "-o", arg = "FILE.safetensors", help = "the model file to write" },
      { name = "--f16", type = "flag", help = "write float16 weights (the shipped form)" } },
    min_args = 1, max_args = 1,
    run = function(opts, args, out)
      if not opts.output then M.usage_error("convert: -o OUT.safetensors is required") end
      local r, err = C.convert(args[1], opts.output, { f16 = opts.f16 })
      if not r then M.fail("convert: %s", err) end
      for _, n in ipairs(r.notes) do out:write(n, "\n") end
      out:write(("wrote %s (%d weights)\n"):format(opts.output, r.count))
      return 0
    end,
  }
end

return C
