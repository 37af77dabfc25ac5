--- Where models are found: --model PATH_OR_NAME, else $MUSICVAE_MODEL, else the command's default.
-- A NAME is a file stem in the models folder: the checkout's models/ when running from
-- one, else the folder LuaRocks installed beside the Lua modules.
local core = require "musicvae.core"

local M = {}

M.DEFAULT = "gmd-4bar-small"

--- Commands whose default is not M.DEFAULT: those that encode a user's own pattern use the
-- reconstruction (high-KL) model, which gives a beat back; sampling keeps the low-KL model.
M.COMMAND_DEFAULTS = {
  reconstruct = "gmd-4bar-hikl",
  interpolate = "gmd-4bar-hikl",
  similar = "gmd-4bar-hikl",
  shift = "gmd-4bar-hikl",
}

--- M.default_for(command) -> the model name a command uses when neither --model nor
-- $MUSICVAE_MODEL names one.
function M.default_for(command)
  return command and M.COMMAND_DEFAULTS[command] or M.DEFAULT
end

-- "bin/../lua/../models" -> "models": the name sidecars and messages show (textual, so callers
-- check that the result exists: a symlinked folder's ".." is not its parent's)
local function tidy(path)
  local abs, parts = path:sub(1, 1) == "/", {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  local s = table.concat(parts, "/")
  if abs then return "/" .. s end
  return s ~= "" and s or "."
end
M.tidy = tidy

function M.dir()
  local src = package.searchpath("musicvae.models", package.path)
  if src then
    local lua_dir = src:match("^(.*)/musicvae/models%.lua$")
    if lua_dir then
      local up = lua_dir .. "/../models"
      if core.isdir(up) then return core.isdir(tidy(up)) and tidy(up) or up end
      if core.isdir(lua_dir .. "/musicvae/models") then return lua_dir .. "/musicvae/models" end
    end
  end
  return nil
end

--- M.resolve(spec[, command]) -> path, or nil, err
function M.resolve(spec, command)
  spec = spec or os.getenv("MUSICVAE_MODEL") or M.default_for(command)
  if core.isfile(spec) then return spec end
  if not spec:find("/") and not spec:match("%.safetensors$") then
    local dir = M.dir()
    if dir and core.isfile(dir .. "/" .. spec .. ".safetensors") then return dir .. "/" .. spec .. ".safetensors" end
    return nil, ("no model named '%s' (looked in %s); pass a path"):format(spec, dir or "the models folder")
  end
  return nil, spec .. ": no such model file"
end

--- M.load([path_or_name[, command]]) -> model, or nil, err
function M.load(spec, command)
  local path, err = M.resolve(spec, command)
  if not path then return nil, err end
  return require("musicvae.model").load(path)
end

return M
