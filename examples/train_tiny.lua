-- Train a tiny model for about a minute on the committed fixture MIDI files
-- (or a folder given as the first argument), then sample from it.
--   lua5.4 examples/train_tiny.lua [MIDI_FOLDER]
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"
local T = require "musicvae.train"

local folder = arg[1] or "spec/fixtures/midi"
os.execute("rm -rf runs/example-tiny && mkdir -p runs")
local report = assert(mv.data.prepare(folder, "runs/example-tiny.mvd", {}))
print(("dataset: %d train / %d validation windows"):format(report.windows.train, report.windows.validation))
local batch = math.max(1, math.min(16, report.windows.train))
local tr = assert(T.new { data = "runs/example-tiny.mvd", config = "tiny", out = "runs/example-tiny", seed = 1,
  set = { batch_size = batch } })
local first, last
local res = assert(tr:run { minutes = 0.5, log_every = 20, val_every = 0,
  on_line = function(row)
    first = first or row.loss
    last = row.loss
    print(("step %4d  loss %.2f  kl %.2f  %.0f seq/s"):format(row.step, row.loss, row.kl, row.seq_per_s))
  end })
print(("loss %.2f -> %.2f in %d steps; checkpoint %s"):format(first or 0, last or 0, res.steps, res.checkpoint))
local model = assert(mv.Model.load(res.checkpoint))
print(model:sample { n = 1, temperature = 0.5, seed = 1 }[1])
