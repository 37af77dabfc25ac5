--- Reading and writing safetensors files (the checkpoint format).
-- Data and file problems return nil, err; bad arguments raise.
local core = require "musicvae.core"

local S = {}

local DTYPES = { F32 = "F32", F16 = "F16", BF16 = "BF16", f32 = "F32", f16 = "F16", bf16 = "BF16" }

--- S.load(path) -> tensors {name = Tensor}, metadata {key = value}, names (file order), dtypes {name = "F16"}
-- or nil, err.
function S.load(path)
  if type(path) ~= "string" then error("safetensors.load: path must be a string", 2) end
  return core.st_load(path)
end

--- S.decode(bytes) -> as S.load, from a string holding a whole file.
function S.decode(bytes)
  if type(bytes) ~= "string" then error("safetensors.decode: expected a string", 2) end
  return core.st_loads(bytes)
end

-- tensors: a map {name = Tensor} (written in name order) or an array of
-- {name, tensor[, dtype]} / {name = , tensor = , dtype = } (written in that order).
local function entries(tensors, opts, level)
  if type(tensors) ~= "table" then error("safetensors: tensors must be a table", level) end
  opts = opts or {}
  local default = DTYPES[opts.dtype or "F32"]
  if not default then error("safetensors: dtype must be F32, F16 or BF16", level) end
  local list = {}
  if #tensors > 0 then
    for i, e in ipairs(tensors) do
      local name, t, dt = e.name or e[1], e.tensor or e[2], e.dtype or e[3]
      if type(name) ~= "string" or not core.istensor(t) then
        error(("safetensors: entry %d must be {name, tensor[, dtype]}"):format(i), level)
      end
      list[i] = { name = name, tensor = t, dtype = dt and DTYPES[dt] or default }
      if dt and not DTYPES[dt] then error("safetensors: unknown dtype " .. tostring(dt), level) end
    end
  else
    local names = {}
    for k, v in pairs(tensors) do
      if type(k) ~= "string" or not core.istensor(v) then
        error("safetensors: expected a map of names to tensors", level)
      end
      names[#names + 1] = k
    end
    table.sort(names)
    local per = opts.dtypes or {}
    for i, k in ipairs(names) do
      list[i] = { name = k, tensor = tensors[k], dtype = DTYPES[per[k] or ""] or default }
    end
  end
  return list
end

--- S.save(path, tensors[, {metadata = {k = v}, dtype = "F32"|"F16"|"BF16", dtypes = {name = dtype}}])
-- Atomic (temporary file, fsync, rename). -> true, or nil, err.
function S.save(path, tensors, opts)
  if type(path) ~= "string" then error("safetensors.save: path must be a string", 2) end
  local list = entries(tensors, opts, 3)
  return core.st_save(path, list, opts and opts.metadata)
end

--- S.encode(tensors[, opts]) -> the file's bytes as a string.
function S.encode(tensors, opts)
  local list = entries(tensors, opts, 3)
  return core.st_dumps(list, opts and opts.metadata)
end

return S
