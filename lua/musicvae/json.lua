--- JSON: the project's own small encoder, and lua-cjson's decoder.
-- The encoder stays because the sidecars, configs and dataset headers need output that
-- lua-cjson 2.1.0 (Debian's) cannot give: a stable key order (sorted, or as listed with
-- J.ordered), an empty array written as [] (J.array), the shortest digits that read back
-- exactly (cjson keeps 14) and '/' unescaped.
local J = {}

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t" }

local function str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  if math.type(x) == "integer" then return tostring(x) end
  if x == math.floor(x) and math.abs(x) < 2 ^ 53 then return ("%d"):format(x) end
  for _, fmt in ipairs { "%.15g", "%.16g" } do -- shortest text that reads back exactly
    local t = fmt:format(x)
    if tonumber(t) == x then return t end
  end
  return ("%.17g"):format(x)
end

--- J.array(t): marks a table to encode as an array even when empty.
local array_mt = {}
function J.array(t)
  return setmetatable(t or {}, array_mt)
end

--- J.ordered{{key, value}, ...}: an object whose keys keep this order.
local ordered_mt = {}
function J.ordered(pairs_list)
  return setmetatable({ pairs = pairs_list }, ordered_mt)
end

local function isarray(t)
  if getmetatable(t) == array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function enc(v, out, depth)
  if depth > 64 then error("json: nesting too deep", 0) end
  local tv = type(v)
  if tv == "nil" then out[#out + 1] = "null"
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "number" then out[#out + 1] = num(v)
  elseif tv == "string" then out[#out + 1] = str(v)
  elseif tv == "table" and getmetatable(v) == ordered_mt then
    out[#out + 1] = "{"
    for i, kv in ipairs(v.pairs) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = str(kv[1])
      out[#out + 1] = ":"
      enc(kv[2], out, depth + 1)
    end
    out[#out + 1] = "}"
  elseif tv == "table" then
    if isarray(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        enc(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("json: object keys must be strings", 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = str(k)
        out[#out + 1] = ":"
        enc(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

--- J.encode(value) -> string
function J.encode(v)
  local out = {}
  enc(v, out, 0)
  return table.concat(out)
end

-- Decoder -------------------------------------------------------------------
-- Debian's lua-cjson (C, maintained) parses; one walk then gives what the project's own decoder
-- gave: integral numbers as integers (cjson reads every number as a float), JSON null as nil (a
-- null array element is left out, as before), and arrays marked with J.array so they encode as
-- arrays again, even empty. NaN, Infinity and hex numbers are refused (cjson accepts them by default).
local cjson = require("cjson.safe").new()
cjson.decode_invalid_numbers(false)
local null = cjson.null

local function fix(v)
  local tv = type(v)
  if tv == "number" then return math.tointeger(v) or v end
  if tv ~= "table" then
    if v == null then return nil end
    return v
  end
  local n = #v
  local count = 0
  for _ in pairs(v) do count = count + 1 end
  if n > 0 and count == n then -- an array
    local out = J.array {}
    for i = 1, n do
      local x = fix(v[i])
      if x ~= nil then out[#out + 1] = x end
    end
    return out
  end
  for k, x in pairs(v) do v[k] = fix(x) end
  return v
end

--- J.decode(s) -> value, or nil, err for malformed text.
function J.decode(s)
  if type(s) ~= "string" then return nil, "json: expected a string" end
  local v, err = cjson.decode(s)
  if v == nil and err then return nil, "json: " .. tostring(err) end
  return fix(v)
end

return J
