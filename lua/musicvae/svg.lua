--- Small SVG drawings: a drum grid and training curves.
local D = require "musicvae.drums"

local S = {}

local function esc(s) return (tostring(s):gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;"):gsub('"', "&quot;")) end

--- S.grid(pattern[, title]) -> SVG text: rows = the 9 instruments (kick at the bottom), columns = steps.
-- Groove patterns shade cells by velocity and mark early (<) or late (>) hits.
function S.grid(p, title)
  local cell, left, top = 14, 110, title and 34 or 10
  local n = #p.labels
  local w, h = left + n * cell + 10, top + 9 * cell + 24
  local out = { ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'):format(w, h),
    ('<rect width="%d" height="%d" fill="white"/>'):format(w, h) }
  if title then out[#out + 1] = ('<text x="10" y="20" font-size="14">%s</text>'):format(esc(title)) end
  for row = 1, 9 do
    local c = 10 - row
    local y = top + (row - 1) * cell
    out[#out + 1] = ('<text x="%d" y="%d" text-anchor="end">%s</text>'):format(left - 6, y + cell - 3, esc(D.NAMES[c]))
    for s = 1, n do
      local x = left + (s - 1) * cell
      local beat = ((s - 1) // 4) % 2 == 0
      local fill = beat and "#f2f2f2" or "#e4e4e4"
      local hit = p.labels[s] & (1 << (c - 1)) ~= 0
      if hit then
        local v = p.velocities and p.velocities[s] and p.velocities[s][c]
        local shade = v and math.floor(220 - 200 * math.min(127, v) / 127) or 30
        fill = ("rgb(%d,%d,%d)"):format(shade, shade, math.min(255, shade + 60))
      end
      out[#out + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="white"/>'):format(x, y, cell, cell, fill)
      local off = hit and p.offsets and p.offsets[s] and p.offsets[s][c]
      if off and math.abs(off) > 0.05 then
        out[#out + 1] = ('<text x="%d" y="%d" fill="white" font-size="9" text-anchor="middle">%s</text>'):format(
          x + cell // 2, y + cell - 4, off > 0 and "&lt;" or "&gt;")
      end
    end
  end
  for s = 1, n + 1, p.steps_per_bar do
    local x = left + (s - 1) * cell
    out[#out + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'):format(x, top, x, top + 9 * cell)
    if s <= n then
      out[#out + 1] = ('<text x="%d" y="%d">bar %d</text>'):format(x + 2, top + 9 * cell + 14, (s - 1) // p.steps_per_bar + 1)
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

--- S.curves(columns, panels) -> SVG text. columns: {name = {values...}} with a "step" column;
-- panels: {{title, {series names}}, ...}; missing values (nil) are skipped.
function S.curves(cols, panels, title)
  local pw, ph, pad = 420, 200, 50
  local ncol = 2
  local nrow = math.ceil(#panels / ncol)
  local W, Hh = ncol * (pw + pad) + pad, nrow * (ph + pad + 20) + 40
  local colors = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e" }
  local out = { ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'):format(W, Hh),
    ('<rect width="%d" height="%d" fill="white"/>'):format(W, Hh) }
  if title then out[#out + 1] = ('<text x="%d" y="24" font-size="15">%s</text>'):format(pad, esc(title)) end
  local steps = cols.step or {}
  for pi, panel in ipairs(panels) do
    local ox = pad + ((pi - 1) % ncol) * (pw + pad)
    local oy = 50 + ((pi - 1) // ncol) * (ph + pad + 20)
    local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
    for _, name in ipairs(panel[2]) do
      for i, v in pairs(cols[name] or {}) do
        if v == v and steps[i] then
          xmin, xmax = math.min(xmin, steps[i]), math.max(xmax, steps[i])
          ymin, ymax = math.min(ymin, v), math.max(ymax, v)
        end
      end
    end
    out[#out + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>'):format(ox, oy, pw, ph)
    out[#out + 1] = ('<text x="%d" y="%d" font-size="13">%s</text>'):format(ox, oy - 8, esc(panel[1]))
    if xmin < xmax then
      if ymax == ymin then ymax = ymin + 1 end
      local function X(x) return ox + (x - xmin) / (xmax - xmin) * pw end
      local function Y(y) return oy + ph - (y - ymin) / (ymax - ymin) * ph end
      out[#out + 1] = ('<text x="%d" y="%d">%.4g</text><text x="%d" y="%d">%.4g</text>'):format(ox - 45, oy + 10,
        ymax, ox - 45, oy + ph, ymin)
      out[#out + 1] = ('<text x="%d" y="%d">step %d</text><text x="%d" y="%d" text-anchor="end">%d</text>'):format(
        ox, oy + ph + 14, math.floor(xmin), ox + pw, oy + ph + 14, math.floor(xmax))
      for si, name in ipairs(panel[2]) do
        local pts = {}
        for i = 1, #steps do
          local v = (cols[name] or {})[i]
          if v and v == v then pts[#pts + 1] = ("%.1f,%.1f"):format(X(steps[i]), Y(v)) end
        end
        local color = colors[(si - 1) % #colors + 1]
        if #pts > 0 then
          out[#out + 1] = ('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>'):format(color,
            table.concat(pts, " "))
        end
        out[#out + 1] = ('<text x="%d" y="%d" fill="%s">%s</text>'):format(ox + pw - 150, oy + 14 * si, color, esc(name))
      end
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

--- S.matrix(report) -> SVG text: musicvae.attributes.measure's table, one panel per amount; rows =
-- the vector added, columns = the attribute measured, cells = the mean change in standard deviations
-- (blue up, red down), against the reconstruction at amount 0.
function S.matrix(rep)
  local names = {}
  for _, v in ipairs(rep.attributes) do if rep.vectors[v] then names[#names + 1] = v end end
  local cols = rep.attributes
  local cell, left, top, gap = 30, 100, 60, 30
  local pw = #cols * cell
  local w = left + #rep.amounts * (pw + gap)
  local h = top + #names * cell + 90
  local out = { ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="10">'):format(w, h),
    ('<rect width="%d" height="%d" fill="white"/>'):format(w, h),
    ('<text x="10" y="18" font-size="13">mean change of each attribute (columns, in SD over %d validation windows) when a vector (rows) is added</text>'):format(rep.windows) }
  for r, v in ipairs(names) do
    out[#out + 1] = ('<text x="%d" y="%d" text-anchor="end">%s</text>'):format(left - 4, top + (r - 1) * cell + 19, esc(v))
  end
  for p, a in ipairs(rep.amounts) do
    local x0 = left + (p - 1) * (pw + gap)
    out[#out + 1] = ('<text x="%d" y="%d" font-size="12">amount %+g</text>'):format(x0, top - 30, a)
    for c, name in ipairs(cols) do
      out[#out + 1] = ('<text transform="translate(%d,%d) rotate(-45)" font-size="9">%s</text>'):format(
        x0 + (c - 1) * cell + 12, top + #names * cell + 12, esc(name))
      for r, v in ipairs(names) do
        local d = rep.vectors[v].change[tostring(a)][name]
        local k = math.min(1, math.abs(d) / 2)
        local shade = math.floor(255 - 200 * k)
        local fill = d >= 0 and ("rgb(%d,%d,255)"):format(shade, shade) or ("rgb(255,%d,%d)"):format(shade, shade)
        local x, y = x0 + (c - 1) * cell, top + (r - 1) * cell
        out[#out + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="%s" stroke="%s"/>'):format(x, y, cell,
          cell, fill, v == name and "black" or "white")
        out[#out + 1] = ('<text x="%d" y="%d" text-anchor="middle" font-size="8">%.1f</text>'):format(x + cell // 2,
          y + 18, d)
      end
    end
  end
  out[#out + 1] = "</svg>"
  return table.concat(out, "\n") .. "\n"
end

return S
