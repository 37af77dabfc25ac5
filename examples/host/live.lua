-- The script mv_host runs: one new bar per beat, generated within a 2 ms budget
-- per call. The same functions work in any host that embeds Lua 5.4 and can
-- call a Lua function on each beat (see examples/host/README.md).
local root, model_path = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local mv = require "musicvae"

mv.set_num_threads(1) -- no BLAS threads spinning beside the host's audio thread
local model = assert(mv.Model.load(model_path))
local steps_per_bar = model.config.steps_per_bar
local seed, index = 2026, 1
local gen = model:generator { seed = seed, index = index, temperature = 0.9 }
local ready, handed, song = {}, 0, {}

-- Called on every beat with a time budget: generate ahead, hand out the next finished bar.
function on_beat(budget_ms)
  local start = mv.clock()
  while (mv.clock() - start) * 1000 < budget_ms do
    if gen:done() then
      index = index + 1
      gen = model:generator { seed = seed, index = index, temperature = 0.9 }
    end
    local left = budget_ms - (mv.clock() - start) * 1000
    if left <= 0 then break end
    for _, l in ipairs(gen:step(1)) do ready[#ready + 1] = l end
    if #ready - handed >= 2 * steps_per_bar then break end -- two bars ahead is enough
  end
  if #ready - handed >= steps_per_bar then
    local bar = table.move(ready, handed + 1, handed + steps_per_bar, 1, {})
    handed = handed + steps_per_bar
    for _, l in ipairs(bar) do song[#song + 1] = l end
    return tostring(mv.pattern { labels = bar, steps_per_bar = steps_per_bar })
  end
  return nil
end

-- Writes everything handed out as MIDI, and as audio when wav_path is given.
function finish(path, wav_path)
  if #song == 0 then return "no complete bar yet" end
  local p = mv.pattern { labels = song, steps_per_bar = steps_per_bar }
  assert(mv.midi.write(path, p))
  local msg = ("wrote %d bars to %s"):format(#song // steps_per_bar, path)
  if wav_path then
    local info = assert(mv.audio.render_to(wav_path, p))
    msg = msg .. (" and %.2f s of audio to %s"):format(info.seconds, wav_path)
  end
  return msg
end
