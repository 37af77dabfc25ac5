-- Sample drum patterns from a model and write them as MIDI files.
--   lua5.4 examples/sample.lua [MODEL] [N] [SEED]
-- From a checkout, after scripts/setup (paths below find lua/ and build/).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"

local model_path = arg[1] or "models/gmd-4bar-small.safetensors"
local n, seed = tonumber(arg[2] or 4), tonumber(arg[3] or 1)
local model = assert(mv.Model.load(model_path))
local patterns = model:sample { n = n, temperature = 0.5, seed = seed }
os.execute("mkdir -p out")
for i, p in ipairs(patterns) do
  local path = ("out/example-sample-%d.mid"):format(i)
  assert(mv.midi.write(path, p))
  print(path)
  print(p)
end
