--- Shared helpers for the busted specs: paths, temporary folders, running
-- the CLI, and finding ../shared (tests that need it skip with a message).
local H = {}

H.root = (function()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/spec/helpers%.lua$") or "."
  if dir == "." or dir == "" then return os.getenv("PWD") or "." end
  return dir
end)()

--- The cpath busted was told to use (the build the tier tests).
function H.build_dir()
  return package.cpath:match("^%./(build[^/]*)/%?%.so") or "build"
end

function H.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local tmpcount = 0
--- A fresh temporary folder (removed at exit of the test process's os.tmpname cleanup is not
-- guaranteed; tests remove what they make with H.rmtree).
function H.tmpdir()
  tmpcount = tmpcount + 1
  local p = os.tmpname()
  os.remove(p)
  p = p .. "-mv" .. tmpcount
  assert(os.execute("mkdir -p " .. H.shell_quote(p)))
  return p
end

function H.rmtree(p)
  if p and p:match("^/tmp/") then os.execute("rm -rf " .. H.shell_quote(p)) end
end

function H.readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.writefile(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

--- Runs a shell command; returns stdout, stderr, exit status.
function H.run(cmd, env)
  local errf = os.tmpname()
  local prefix = ""
  for k, v in pairs(env or {}) do prefix = prefix .. "export " .. k .. "=" .. H.shell_quote(v) .. "; " end
  local p = io.popen("(" .. prefix .. cmd .. ") 2>" .. H.shell_quote(errf), "r")
  local out = p:read("a")
  local _, _, code = p:close()
  local err = H.readfile(errf)
  os.remove(errf)
  return out, err, code
end

--- Runs bin/musicvae with the tier's build on the module path.
function H.cli(args, env)
  env = env or {}
  env.LUA_CPATH = H.root .. "/" .. H.build_dir() .. "/?.so;;"
  env.LUA_PATH = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"
  return H.run("lua5.4 " .. H.shell_quote(H.root .. "/bin/musicvae") .. " " .. args, env)
end

--- Runs a Lua snippet in a fresh lua5.4 with the tier's build.
function H.lua(code, env)
  local f = os.tmpname()
  H.writefile(f, code)
  env = env or {}
  env.LUA_CPATH = env.LUA_CPATH or (H.root .. "/" .. H.build_dir() .. "/?.so;;")
  env.LUA_PATH = env.LUA_PATH or (H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;")
  local out, err, code_ = H.run("lua5.4 " .. H.shell_quote(f), env)
  os.remove(f)
  return out, err, code_
end

--- ../shared, or nil and the reason.
function H.shared()
  local p = os.getenv("MUSICVAE_SHARED") or (H.root .. "/../shared")
  local f = io.open(p .. "/README.md", "r")
  if not f then return nil, "../shared is absent (" .. p .. ")" end
  f:close()
  return p
end

function H.have(cmd)
  local _, _, code = H.run("command -v " .. cmd)
  return code == 0
end

--- Max absolute difference between two flat Lua arrays.
function H.maxdiff(a, b)
  assert(#a == #b, ("lengths differ: %d vs %d"):format(#a, #b))
  local m = 0
  for i = 1, #a do m = math.max(m, math.abs(a[i] - b[i])) end
  return m
end

function H.flatten(t, out)
  out = out or {}
  if type(t) == "number" then
    out[#out + 1] = t
  else
    for _, v in ipairs(t) do H.flatten(v, out) end
  end
  return out
end

return H
