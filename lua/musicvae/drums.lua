--- Drum maps (as data) and 512-class labels.
-- Classes are numbered 1..9 at the Lua edge (1 = kick ... 9 = ride); in a
-- label, bit c-1 is class c (bit 0 = kick), as Magenta's MultiDrumOneHotEncoding.
local D = {}

D.NAMES = { "kick", "snare", "closed hi-hat", "open hi-hat", "low tom", "mid tom", "high tom", "crash", "ride" }
D.SHORT = { "BD", "SD", "HH", "OH", "LT", "MT", "HT", "CR", "RD" }
D.NUM_CLASSES = 9
D.NUM_LABELS = 512

--- The maps: class -> list of pitches; the first pitch is the exemplar written back.
D.maps = {
  -- magenta's current Python map (note_seq DEFAULT_DRUM_TYPE_PITCHES): the default
  magenta = {
    { 36, 35 },
    { 38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85 },
    { 42, 44, 54, 68, 69, 70, 71, 73, 78, 80, 22 },
    { 46, 67, 72, 74, 79, 81, 26 },
    { 45, 29, 41, 43, 61, 64, 84 },
    { 48, 47, 60, 63, 77, 86, 87 },
    { 50, 30, 62, 76, 83 },
    { 49, 52, 55, 57, 58 },
    { 51, 53, 59, 82 },
  },
  -- the 2018 map magenta-js still uses (probably what the released checkpoints saw)
  ["magenta-js-2018"] = {
    { 36, 35 },
    { 38, 27, 28, 31, 32, 33, 34, 37, 39, 40, 56, 65, 66, 75, 85 },
    { 42, 44, 54, 68, 69, 70, 71, 73, 78, 80 },
    { 46, 67, 72, 74, 79, 81 },
    { 45, 29, 41, 61, 64, 84 },
    { 48, 47, 60, 63, 77, 86, 87 },
    { 50, 30, 43, 62, 76, 83 },
    { 49, 55, 57, 58 },
    { 51, 52, 53, 59, 82 },
  },
  -- the Roland TD-11 map GrooVAE was trained with
  roland = {
    { 36 },
    { 38, 37, 40 },
    { 42, 22, 44 },
    { 46, 26 },
    { 43, 58 },
    { 47, 45 },
    { 50, 48 },
    { 49, 52, 55, 57 },
    { 51, 53, 59 },
  },
}
D.DEFAULT_MAP = "magenta"

--- D.map(spec) -> a validated map (class -> pitches). spec: a name, a map table, or nil.
--- A map that keeps every pitch (for reading taps: any note is a hit; classes 2-9 get one top
-- pitch each, class 1 the rest). Tap models collapse the classes anyway.
function D.tap_map()
  local m = { {} }
  for p = 0, 119 do m[1][#m[1] + 1] = p end
  for c = 2, D.NUM_CLASSES do m[c] = { 118 + c } end
  return m
end

function D.map(spec)
  if spec == nil then spec = D.DEFAULT_MAP end
  local m = spec
  if type(spec) == "string" then
    m = D.maps[spec]
    if not m then
      local names = {}
      for k in pairs(D.maps) do names[#names + 1] = k end
      table.sort(names)
      error(("unknown drum map '%s' (known: %s)"):format(spec, table.concat(names, ", ")), 2)
    end
  end
  if type(m) ~= "table" or #m ~= D.NUM_CLASSES then error("a drum map lists pitches for 9 classes", 2) end
  local seen = {}
  for c = 1, D.NUM_CLASSES do
    if type(m[c]) ~= "table" or #m[c] == 0 then error(("drum map: class %d has no pitches"):format(c), 2) end
    for _, p in ipairs(m[c]) do
      if math.type(p) ~= "integer" or p < 0 or p > 127 then error("drum map: pitches are integers 0-127", 2) end
      if seen[p] then error(("drum map: pitch %d is in two classes"):format(p), 2) end
      seen[p] = c
    end
  end
  return m
end

--- The 128-byte class string the C pipeline takes (byte = class, 0 = not kept).
function D.class_bytes(map)
  local b = {}
  for p = 0, 127 do b[p + 1] = 0 end
  for c, ps in ipairs(map) do
    for _, p in ipairs(ps) do b[p + 1] = c end
  end
  return string.char(table.unpack(b))
end

--- The exemplar pitch of each class.
function D.exemplars(map)
  local e = {}
  for c, ps in ipairs(map) do e[c] = ps[1] end
  return e
end

--- label -> sorted list of classes (1-based).
function D.classes_of(label)
  local out = {}
  for c = 1, D.NUM_CLASSES do
    if label & (1 << (c - 1)) ~= 0 then out[#out + 1] = c end
  end
  return out
end

--- list of classes -> label
function D.label_of(classes)
  local l = 0
  for _, c in ipairs(classes) do l = l | (1 << (c - 1)) end
  return l
end

--- The encoder's 10-dim roll of a label: 9 class bits then "nothing hit".
function D.roll(label)
  local r = {}
  for c = 1, D.NUM_CLASSES do r[c] = (label >> (c - 1)) & 1 end
  r[10] = label == 0 and 1 or 0
  return r
end

return D
