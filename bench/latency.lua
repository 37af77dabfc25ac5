-- Live-host latency: duration of g:step(1) and of g:run_for(2) over many calls,
-- single-threaded. Prints JSON lines (a benchmark, not a test).
--   lua5.4 bench/latency.lua [MODEL] [CALLS]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./" .. (os.getenv("MUSICVAE_BUILD") or "build") .. "/?.so;" .. package.cpath
local mv = require "musicvae"
local json = require "musicvae.json"

local model_path = arg[1] or "models/gmd-4bar-small.safetensors"
local calls = tonumber(arg[2] or 10000)
mv.set_num_threads(1)
local model = assert(mv.Model.load(model_path))

local function measure(what, fn)
  local t = {}
  local index = 0
  local g
  for i = 1, calls do
    if not g or g:done() then
      index = index + 1
      g = model:generator { seed = 7, index = index, temperature = 0.9 }
    end
    local t0 = mv.clock()
    local made = fn(g)
    t[i] = { (mv.clock() - t0) * 1000, made }
  end
  table.sort(t, function(a, b) return a[1] < b[1] end)
  local steps = 0
  for _, x in ipairs(t) do steps = steps + x[2] end
  print(json.encode(json.ordered {
    { "impl", "musicvae" }, { "what", what }, { "model", model_path }, { "threads", 1 }, { "calls", calls },
    { "median_ms", t[calls // 2 + 1][1] }, { "p99_ms", t[math.ceil(calls * 0.99)][1] }, { "max_ms", t[calls][1] },
    { "steps_per_call", steps / calls }, { "blas_core", mv.blas_info().core },
  }))
end

measure("generator_step1", function(g) return #g:step(1) end)
measure("generator_run_for_2ms", function(g) return g:run_for(2) end)
