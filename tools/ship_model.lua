#!/usr/bin/env lua5.4
--- Turns a training checkpoint into a shipped model: f16 weights with the
-- dataset, licence and training facts in __metadata__.
--   lua5.4 tools/ship_model.lua CHECKPOINT OUT.safetensors key=value ...
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"

local src, dst = assert(arg[1], "checkpoint"), assert(arg[2], "output path")
local m = assert(mv.Model.load(src))
local meta = {
  dataset = "Groove MIDI Dataset (Gillick et al., 2019; Magenta), train split",
  license = "Weights trained on the Groove MIDI Dataset, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/); credit Magenta",
  source_checkpoint = src:match("[^/]+$"),
}
for k, v in pairs(m.metadata or {}) do
  if k:match("^val_") or k == "step" or k == "dataset_checksum" then meta[k] = v end
end
for i = 3, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if k then meta[k] = v end
end
assert(m:save(dst, { dtype = "F16", metadata = meta }))
local back = assert(mv.Model.load(dst))
print(("wrote %s (%d parameters, f16)"):format(dst, back:numel()))
