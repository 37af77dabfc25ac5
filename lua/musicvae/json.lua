--- A small JSON encoder (deterministic: object keys sorted) and decoder.
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
local function decode_error(s, i, what)
  error(("json: %s at byte %d"):format(what, i), 0)
end

local function skip(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local parse

local function parse_string(s, i)
  local out, j = {}, i + 1
  while true do
    local c = s:sub(j, j)
    if c == "" then decode_error(s, j, "unterminated string") end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
      if map[e] then
        out[#out + 1] = map[e]
        j = j + 2
      elseif e == "u" then
        local hex = s:sub(j + 2, j + 5)
        if not hex:match("^%x%x%x%x$") then decode_error(s, j, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = s:match("^\\u(%x%x%x%x)", j)
          if not lo then decode_error(s, j, "lone surrogate") end
          cp = 0x10000 + ((cp - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00)
          j = j + 6
        end
        out[#out + 1] = utf8.char(cp)
      else
        decode_error(s, j, "bad escape")
      end
    else
      local k = s:find('["\\]', j) or #s + 1
      out[#out + 1] = s:sub(j, k - 1)
      j = k
    end
  end
end

function parse(s, i)
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return t, i + 1 end
    while true do
      if s:sub(i, i) ~= '"' then decode_error(s, i, "expected a key") end
      local k
      k, i = parse_string(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then decode_error(s, i, "expected ':'") end
      t[k], i = parse(s, i + 1)
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return t, i + 1 end
      if d ~= "," then decode_error(s, i, "expected ',' or '}'") end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local t = J.array {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      t[#t + 1], i = parse(s, i)
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return t, i + 1 end
      if d ~= "," then decode_error(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return parse_string(s, i)
  elseif s:find("^true", i) then return true, i + 4
  elseif s:find("^false", i) then return false, i + 5
  elseif s:find("^null", i) then return nil, i + 4
  else
    local n = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not n or n == "" or n == "-" then decode_error(s, i, "unexpected character") end
    local v = math.tointeger(tonumber(n)) or tonumber(n)
    if v == nil then decode_error(s, i, "bad number") end
    return v, i + #n
  end
end

--- J.decode(s) -> value, or nil, err for malformed text.
function J.decode(s)
  local ok, v, i = pcall(parse, s, 1)
  if not ok then return nil, v end
  if skip(s, i) <= #s then return nil, ("json: trailing text at byte %d"):format(i) end
  return v
end

return J
