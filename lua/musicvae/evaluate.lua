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

--- Labels of every window of a MIDI file or folder, through prepare's pipeline.
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
    if #files == 1 and res.drop then return nil, ("%s: no windows (%s%s)"):format(f, res.drop,
      res.detail and res.detail ~= "" and (": " .. res.detail) or "") end
    for _, w in ipairs(res.windows) do rows[#rows + 1] = w.labels end
  end
  if #rows == 0 then return nil, path .. ": no 4-bar drum windows found" end
  return core.tensor(rows)
end

return E
