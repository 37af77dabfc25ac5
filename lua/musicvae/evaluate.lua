--- Evaluation metrics, as the conventions define them:
--   tf_accuracy       z = mu, true previous labels as inputs (zeros at step 0), argmax vs target
--   sampled_accuracy  z = mu, argmax fed back at every step, across bars too
--   recon_nll         teacher-forced cross-entropy summed over a window's steps, mean over windows
--   kl                KL(q(z|x) || N(0, I)) in nats, mean over windows
local core = require "musicvae.core"

local E = {}

--- E.metrics(model, labels [n, steps], {batch_size = 64, beta = 0, free_nats = 0})
function E.metrics(model, labels, opts)
  opts = opts or {}
  local n = labels:size(1)
  local bs = opts.batch_size or 64
  if math.type(bs) ~= "integer" or bs < 1 then error("batch_size must be a positive integer", 2) end
  local L = labels:size(2)
  local tf_correct, s_correct, nll, kl, loss = 0, 0, 0, 0, 0
  for first = 1, n, bs do
    local b = math.min(bs, n - first + 1)
    local batch = labels:narrow(1, first, b):contiguous()
    local st = model.vae:forward(batch, { beta = opts.beta or 0, free_nats = opts.free_nats or 0 })
    tf_correct = tf_correct + st.accuracy * b * L
    nll = nll + st.recon * b
    kl = kl + st.kl * b
    loss = loss + st.loss * b
    local mu = model.vae:latents()
    local out = model.vae:decode(mu, { temperature = 0 })
    local diff = out:sub(batch)
    local flat = diff:view(-1)
    local wrong = 0
    for i = 1, flat:numel() do
      if flat:get(i) ~= 0 then wrong = wrong + 1 end
    end
    s_correct = s_correct + b * L - wrong
  end
  if n == 0 then return { windows = 0 } end
  return {
    windows = n,
    tf_accuracy = tf_correct / (n * L),
    sampled_accuracy = s_correct / (n * L),
    recon_nll = nll / n,
    kl = kl / n,
    loss = loss / n,
  }
end

--- E.groove_metrics(model, groove [n, steps, 27], {batch_size = 64, beta = 0, free_nats = 0,
--   mean_velocity = the training set's mean velocity on hit cells (0-127)})
-- Teacher-forced: recon_nll, kl, loss, tf_accuracy (hit cells). From z = mu at temperature 0:
-- hit_accuracy and hit_f1 of the free-running decoder (= sampled_accuracy); velocity_mae
-- (0-127) and offset_mae (steps) over the target's hit cells, predicted with the target's hits
-- fixed for humanize models (what `musicvae humanize` does) and free-running otherwise; and
-- their baselines: the mean velocity, and zero offset. Velocities are what the model writes
-- (Model:groove_decode's expected velocity given a hit); velocity_mae_raw is the MAE of
-- magenta's raw velocity output on the same cells.
function E.groove_metrics(model, groove, opts)
  opts = opts or {}
  local n, L = groove:size(1), groove:size(2)
  if n == 0 then return { windows = 0 } end
  local bs = opts.batch_size or 64
  if math.type(bs) ~= "integer" or bs < 1 then error("batch_size must be a positive integer", 2) end
  local humanize = model.config.mode == "humanize"
  local tf_hits, nll, kl, loss = 0, 0, 0, 0
  local right, tp, fp, fn = 0, 0, 0, 0
  local vsum, vraw, osum, vbase, obase, cells = 0, 0, 0, 0, 0, 0
  local mean_v = opts.mean_velocity or model.config.mean_velocity
  if not mean_v then -- the evaluated data's own mean
    local tot, cnt = 0, 0
    local flat = groove:contiguous():view(-1):totable()
    for i = 0, #flat // 27 - 1 do
      for c = 1, 9 do
        if flat[i * 27 + c] > 0.5 then tot, cnt = tot + flat[i * 27 + 9 + c] * 127, cnt + 1 end
      end
    end
    mean_v = cnt > 0 and tot / cnt or 0
  end
  for first = 1, n, bs do
    local b = math.min(bs, n - first + 1)
    local target = groove:narrow(1, first, b):contiguous()
    local st = model.vae:forward(model:groove_input(target), target,
      { beta = opts.beta or 0, free_nats = opts.free_nats or 0 })
    tf_hits = tf_hits + st.accuracy * b * L * 9
    nll, kl, loss = nll + st.recon * b, kl + st.kl * b, loss + st.loss * b
    local mu = model.vae:latents()
    local free, free_raw = model:groove_decode(mu, { temperature = 0 })
    local pred, raw = free, free_raw
    if humanize then pred, raw = model:groove_decode(mu, { temperature = 0, hits = target:narrow(3, 1, 9):contiguous() }) end
    local t, f, q, qr = target:view(-1):totable(), free:view(-1):totable(), pred:view(-1):totable(), raw:view(-1):totable()
    for i = 0, b * L - 1 do
      local base = i * 27
      for c = 1, 9 do
        local h, g = t[base + c] > 0.5, f[base + c] > 0.5
        if h == g then right = right + 1 end
        if h and g then tp = tp + 1 elseif g then fp = fp + 1 elseif h then fn = fn + 1 end
        if h then
          local v = t[base + 9 + c] * 127
          vsum = vsum + math.abs(q[base + 9 + c] * 127 - v)
          vraw = vraw + math.abs(qr[base + 9 + c] * 127 - v)
          vbase = vbase + math.abs(mean_v - v)
          osum = osum + math.abs(q[base + 18 + c] - t[base + 18 + c]) / 2
          obase = obase + math.abs(t[base + 18 + c]) / 2
          cells = cells + 1
        end
      end
    end
  end
  local all = n * L * 9
  local f1 = tp > 0 and 2 * tp / (2 * tp + fp + fn) or 0
  return {
    windows = n,
    tf_accuracy = tf_hits / all,
    sampled_accuracy = right / all,
    hit_accuracy = right / all,
    hit_f1 = f1,
    velocity_mae = cells > 0 and vsum / cells or 0,
    velocity_mae_baseline = cells > 0 and vbase / cells or 0,
    velocity_mae_raw = cells > 0 and vraw / cells or 0,
    offset_mae = cells > 0 and osum / cells or 0,
    offset_mae_baseline = cells > 0 and obase / cells or 0,
    mean_velocity = mean_v,
    recon_nll = nll / n,
    kl = kl / n,
    loss = loss / n,
  }
end

--- Labels of every window of a MIDI file or folder, through prepare's pipeline; with
-- opts.groove, their groove rows as a tensor [n, steps, 27]. opts: Data.file_windows' (a model's
-- m:window_options() gives its bars, steps per bar, drum map and kind).
function E.windows_from_midi(path, opts)
  local Data = require "musicvae.data"
  local files
  if core.isdir(path) then
    local rel, err = Data.find_midi(path)
    if not rel then return nil, err end
    files = {}
    for i, r in ipairs(rel) do files[i] = path .. "/" .. r end
  else
    files = { path }
  end
  local rows = {}
  for _, f in ipairs(files) do
    local res = Data.file_windows(f, opts or {})
    if #files == 1 and res.drop then return nil, ("%s: no %d-bar drum window (%s%s)"):format(f, opts and opts.bars or 4, res.drop,
      res.detail and res.detail ~= "" and (": " .. res.detail) or "") end
    for _, w in ipairs(res.windows) do rows[#rows + 1] = opts and opts.groove and w.groove or w.labels end
  end
  if #rows == 0 then return nil, ("%s: no %d-bar drum windows found"):format(path, opts and opts.bars or 4) end
  if opts and opts.groove then return core.tensor(rows):view(#rows, -1, 27) end
  return core.tensor(rows)
end

return E
