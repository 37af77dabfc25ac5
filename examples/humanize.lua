-- Give a programmed beat a drummer's feel with the shipped humanize model, from Lua.
--   lua5.4 examples/humanize.lua [IN.mid] [OUT.mid]
-- Without IN.mid it humanizes a flat 8th-note rock beat. From a checkout, after scripts/setup.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"

local model = assert(mv.load("gmd-4bar-humanize"))
local input
if arg[1] then
  input = assert(mv.midi.labels(arg[1])) -- the first 4 bars are used
else
  local labels = {}
  for s = 0, 63 do -- classes: bit 0 kick, bit 1 snare, bit 2 closed hi-hat
    labels[s + 1] = (s % 2 == 0 and 4 or 0) | (s % 8 == 0 and 1 or 0) | (s % 8 == 4 and 2 or 0)
  end
  input = mv.pattern { labels = labels, qpm = 100 }
end
local out = model:humanize(input)
local path = arg[2] or "out/example-humanized.mid"
os.execute("mkdir -p " .. path:match("^(.*)/") or ".")
assert(mv.midi.write(path, out))
print(path)
print(out) -- o soft, x, X loud
-- every hit's velocity (1-127) and offset from the grid (in 16ths, positive = early)
for s = 1, 16 do
  for c, v in pairs(out.velocities[s] or {}) do
    print(("step %2d %-2s velocity %3d offset %+.3f"):format(s, mv.drums.SHORT[c], v, out.offsets[s][c]))
  end
end
