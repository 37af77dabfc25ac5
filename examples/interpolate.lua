-- Interpolate between two MIDI drum files (their first 4-bar windows).
--   lua5.4 examples/interpolate.lua A.mid B.mid [MODEL] [STEPS]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"

local a_path, b_path = assert(arg[1], "give two MIDI files"), assert(arg[2], "give two MIDI files")
local model = assert(mv.Model.load(arg[3] or "models/gmd-4bar-small.safetensors"))
local function first_window(path)
  local r = mv.data.file_windows(path, {})
  assert(#r.windows > 0, path .. ": no 4-bar drum window (" .. tostring(r.drop) .. ")")
  return mv.pattern { labels = r.windows[1].labels }
end
local points = model:interpolate(first_window(a_path), first_window(b_path), { steps = tonumber(arg[4] or 5) })
os.execute("mkdir -p out")
for i, p in ipairs(points) do
  local path = ("out/example-interp-%d.mid"):format(i)
  assert(mv.midi.write(path, p))
  print(path)
  print(p)
end
