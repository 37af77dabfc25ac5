#!/usr/bin/env lua5.4
--- Measures a model's attribute and style vectors (docs/process.md, "Control"):
--   lua5.4 tools/attributes_report.lua MODEL DATA.mvd OUT_PREFIX [n_windows] [n_samples]
-- writes OUT_PREFIX.json (the attribute table and the style report) and OUT_PREFIX.svg (the matrix).
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local mv = require "musicvae"
local A = require "musicvae.attributes"
local Data = require "musicvae.data"
local Q = require "musicvae.quality"
local json = require "musicvae.json"
local svg = require "musicvae.svg"
local core = require "musicvae.core"

local model_path, data_path, prefix = assert(arg[1], "model"), assert(arg[2], "data"), assert(arg[3], "out prefix")
local nwin, nsamp = tonumber(arg[4] or "1911"), tonumber(arg[5] or "500")
local m = assert(mv.Model.load(model_path))
local ds = assert(Data.load(data_path))
local t0 = core.clock()
local val = ds.splits.validation.labels
local idx = Q.choose(val:size(1), nwin, core.rng(1, "attributes-report"))
local rows = {}
local all_rows = Q.rows(val)
for i, k in ipairs(idx) do rows[i] = all_rows[k] end
local rep = A.measure(m, Q.tensor(rows))
io.stderr:write(("attribute table: %d windows, %.1f s\n"):format(rep.windows, core.clock() - t0))
local style
if m.vectors and next(m.vectors.styles) then
  local t1 = core.clock()
  style = A.style_eval(m, { rows = Q.rows(ds.splits.train.labels), styles = ds:styles("train") },
    { rows = all_rows, styles = ds:styles("validation") }, { n = nsamp, seed = 1 })
  io.stderr:write(("style report: %.1f s\n"):format(core.clock() - t1))
end
local out = { model = model_path, data = data_path:match("[^/]*$"), attributes = rep, styles = style }
local f = assert(io.open(prefix .. ".json", "w"))
f:write(json.encode(out), "\n")
f:close()
f = assert(io.open(prefix .. ".svg", "w"))
f:write(svg.matrix(rep))
f:close()
-- a readable summary
for _, v in ipairs(rep.attributes) do
  local e = rep.vectors[v]
  if e then
    print(("%-14s +1 raises %.3f  -1 lowers %.3f  own %+.2f sd  others %.2f  ratio %.1f  %s"):format(v,
      e.raised, e.lowered, e.own, e.others, e.selectivity, e.target and "met" or "NOT met"))
  end
end
if style then
  print(("style classifier: validation accuracy %.3f over %d classes"):format(style.classifier_accuracy, style.classes))
  for _, s in ipairs(style.styles) do
    print(("%-12s P(s | without) %.3f  P(s | with) %.3f  target %.3f  %s"):format(s.style, s.without, s.with,
      s.target, s.met and "met" or "NOT met"))
  end
end
