--- The training loop: seeded data order, Adam with clipping, the schedules,
-- validation, log.csv, atomic checkpoints (last K and the best), exact resume
-- and a clean stop on SIGINT.
--
-- Random streams (see the conventions): data order of epoch e from
-- (seed, "data", e); z draws from (seed, "z"); scheduled-sampling coins and
-- draws from (seed, "sampling"); their states and the data cursor are saved in
-- the training state, so a resumed run continues bit for bit.
local core = require "musicvae.core"
local json = require "musicvae.json"
local Data = require "musicvae.data"
local Model = require "musicvae.model"
local Schedules = require "musicvae.schedules"
local Eval = require "musicvae.evaluate"
local drums = require "musicvae.drums"

local T = {}

T.LOG_COLUMNS = { "step", "epoch", "seconds", "seq_per_s", "loss", "recon", "kl", "beta", "p_sample", "lr",
  "grad_norm", "skipped", "val_loss", "val_tf_accuracy", "val_sampled_accuracy" }

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

local function mkdir_p(path) return core.mkdir_p(path) end

local function state_path(path) return (path:gsub("%.safetensors$", ".state.safetensors")) end

--- Complete checkpoint pairs in a run folder, newest first: {{step = n, path = ...}}, and the
-- incomplete ones (weights without their state, or a state without its weights: a run killed
-- or a disk filled between the two writes), newest first. A pair is written state first and
-- weights last, each atomically, so weights on disk mean the pair is complete.
function T.checkpoints(dir)
  local entries = core.listdir(dir) or {}
  local weights, states = {}, {}
  for _, e in ipairs(entries) do
    local w = e.name:match("^ckpt%-(%d+)%.safetensors$")
    local s = e.name:match("^ckpt%-(%d+)%.state%.safetensors$")
    if w then weights[e.name:sub(1, -13)] = tonumber(w) end
    if s then states[e.name:sub(1, -19)] = tonumber(s) end
  end
  local out, partial = {}, {}
  for stem, step in pairs(weights) do
    local c = { step = step, path = dir .. "/" .. stem .. ".safetensors" }
    if states[stem] then out[#out + 1] = c else partial[#partial + 1] = c end
  end
  for stem, step in pairs(states) do
    if not weights[stem] then partial[#partial + 1] = { step = step, path = dir .. "/" .. stem .. ".safetensors" } end
  end
  table.sort(out, function(a, b) return a.step > b.step end)
  table.sort(partial, function(a, b) return a.step > b.step end)
  return out, partial
end

--- Removes what a killed run leaves in its folder: temporary files of the atomic writes
-- (NAME.tmp.PID) and training states without their weights (a kill between the two writes).
-- Weights without a state (written by older versions, weights first) are kept: they are a
-- usable model, though not a point to resume from.
function T.clean(dir)
  for _, e in ipairs(core.listdir(dir) or {}) do
    if e.name:match("^ckpt%-%d+%.[%w.]-safetensors%.tmp%.%d+$") or e.name:match("^best%.safetensors%.tmp%.%d+$") then
      os.remove(dir .. "/" .. e.name)
    end
  end
  local _, partial = T.checkpoints(dir)
  for _, c in ipairs(partial) do
    if not core.isfile(c.path) then os.remove(state_path(c.path)) end
  end
end

--- The config keys that make up the model's architecture (fixed on resume and --init), as a set:
-- Model.ARCH is the list.
T.ARCH = {}
for _, k in ipairs(Model.ARCH) do T.ARCH[k] = true end

-- an unknown --set key: the message names the closest known one
local function check_sets(set)
  for k in pairs(set or {}) do
    local ok, why = Model.check_key(k)
    if not ok then return nil, why end
  end
  return true
end

local Trainer = {}
Trainer.__index = Trainer

--- T.new{data = path|dataset, config = name|table, out = dir, seed = 1, resume = bool,
--        set = {key = value}, log = function(line) | nil, progress = bool}
-- -> trainer, or nil, err
function T.new(o)
  local sok, serr = check_sets(o.set)
  if not sok then return nil, serr end
  if o.resume then
    local complete, partial = T.checkpoints(o.out)
    -- with --data and an empty folder, --resume starts the run; otherwise say what is missing
    if not complete[1] and partial[1] then
      local w, sp = partial[1].path:match("[^/]*$"), state_path(partial[1].path):match("[^/]*$")
      if not core.isfile(partial[1].path) then w, sp = sp, w end
      return nil, ("%s: no complete checkpoint to resume from (%s has no %s beside it)"):format(o.out, w, sp)
    elseif not complete[1] and o.data == nil then
      if not core.isdir(o.out) then return nil, o.out .. ": no such run folder to resume; give --data to start one" end
      return nil, o.out .. ": no checkpoint to resume from; give --data to start a run there"
    end
  end
  if o.data == nil and o.resume then
    -- the dataset file the run was started with
    local ck = T.checkpoints(o.out)[1]
    local st = require "musicvae.safetensors"
    local _, meta = st.load(state_path(ck.path))
    if type(meta) ~= "table" then return nil, meta end
    if not meta.data_path or meta.data_path == "" then
      return nil, state_path(ck.path) .. ": the training state does not name its dataset; give --data"
    end
    if not core.isfile(meta.data_path) then
      return nil, ("%s: the run's dataset %s (named by its training state) is missing; give --data"):format(o.out,
        meta.data_path)
    end
    o.data = meta.data_path
  end
  local ds = o.data
  if type(ds) == "string" then
    local err
    ds, err = Data.load(ds)
    if not ds then return nil, err end
  end
  if ds:size("train") == 0 then return nil, "the dataset has no training windows" end
  local ok, err = mkdir_p(o.out)
  if not ok then return nil, err end
  local data_path = type(o.data) == "string" and o.data or nil
  if data_path and data_path:sub(1, 1) ~= "/" and os.getenv("PWD") then data_path = os.getenv("PWD") .. "/" .. data_path end
  local tr = setmetatable({ ds = ds, data_path = data_path, out = o.out, log_fn = o.log, progress = o.progress, dist = o.dist,
    rank = o.dist and o.dist.rank() or 0, nranks = o.dist and o.dist.size() or 1 }, Trainer)
  local ckpts = T.checkpoints(o.out)
  if tr.rank == 0 and (o.resume or #ckpts == 0 or o.force) then T.clean(o.out) end
  if o.resume and #ckpts > 0 then
    local m, merr = Model.load(ckpts[1].path)
    if not m then return nil, merr end
    local meta, serr = m:load_state(state_path(ckpts[1].path))
    if not meta then return nil, serr end
    tr.model, tr.cfg = m, m.config
    -- training settings may change on resume (--set sampling_rate=...); the architecture may not
    for k, v in pairs(o.set or {}) do
      if T.ARCH[k] then return nil, ("cannot change %s when resuming (it is part of the model)"):format(k) end
      tr.cfg[k] = v
    end
    tr.seed = tonumber(meta.seed)
    tr.step, tr.epoch, tr.cursor = tonumber(meta.step), tonumber(meta.epoch), tonumber(meta.cursor)
    tr.seconds = tonumber(meta.seconds)
    tr.best = tonumber(meta.best_val_loss)
    tr.skipped = tonumber(meta.skipped) or 0
    tr.rng_z = core.rng(0)
    tr.rng_s = core.rng(0)
    tr.rng_d = core.rng(tr.seed, "dropout")
    assert(tr.rng_z:set_state(unhex(meta.rng_z)))
    assert(tr.rng_s:set_state(unhex(meta.rng_sampling)))
    if meta.rng_dropout and meta.rng_dropout ~= "" then assert(tr.rng_d:set_state(unhex(meta.rng_dropout))) end
    tr.resumed_from = ckpts[1].path
  elseif not o.resume and #ckpts > 0 and not o.force then
    return nil, o.out .. " already holds checkpoints; use --resume to continue or another --out"
  elseif o.init then
    -- a warm start: the weights (and config) of a trained model, Adam fresh, the schedules going on
    -- from the model's step, and a linear learning-rate warm-up over init_warmup_steps (default 200)
    local path, rerr = require("musicvae.models").resolve(o.init)
    if not path then return nil, "--init: " .. rerr end
    local m, merr = Model.load(path)
    if not m then return nil, "--init: " .. merr end
    if o.config then
      local cok, want = pcall(Model.config, o.config)
      if not cok then return nil, tostring(want):gsub("^.-:%d+: ", "") end
      for k in pairs(T.ARCH) do
        if json.encode(want[k]) ~= json.encode(m.config[k]) then
          m:close()
          return nil, ("--init: %s has another architecture than config %s (%s %s, not %s)"):format(path, o.config, k,
            json.encode(m.config[k]), json.encode(want[k]))
        end
      end
    end
    for k, v in pairs(o.set or {}) do
      if T.ARCH[k] then
        m:close()
        return nil, ("cannot change %s with --init (it is part of the model)"):format(k)
      end
    end
    local cfgok, cfg = pcall(Model.config, m.config, o.set, true)
    if not cfgok then return nil, tostring(cfg):gsub("^.-:%d+: ", "") end
    m.config = cfg
    local from = math.tointeger(tonumber(m.metadata and m.metadata.step or "")) or 0
    cfg.init_from = path
    cfg.init_step = from
    if not (o.set and o.set.init_warmup_steps) then cfg.init_warmup_steps = 200 end
    tr.seed = o.seed or 1
    tr.model, tr.cfg = m, cfg
    tr.step, tr.epoch, tr.cursor, tr.seconds, tr.skipped = from, 0, 1, 0, 0
    tr.rng_z = core.rng(tr.seed, "z")
    tr.rng_s = core.rng(tr.seed, "sampling")
    tr.rng_d = core.rng(tr.seed, "dropout")
  else
    local cfgok, cfg = pcall(Model.config, o.config or "small", o.set)
    if not cfgok then return nil, tostring(cfg):gsub("^.-:%d+: ", "") end
    tr.seed = o.seed or 1
    local mok, m = pcall(Model.new, cfg, tr.seed)
    if not mok then return nil, tostring(m):gsub("^.-:%d+: ", "") end
    tr.model, tr.cfg = m, cfg
    tr.step, tr.epoch, tr.cursor, tr.seconds, tr.skipped = 0, 0, 1, 0, 0
    tr.rng_z = core.rng(tr.seed, "z")
    tr.rng_s = core.rng(tr.seed, "sampling")
    tr.rng_d = core.rng(tr.seed, "dropout")
  end
  local cfg = tr.cfg
  tr.model.config = cfg -- one table: what the trainer sets below is saved with the model
  -- the drum map of the data, recorded in the model: its commands read and write MIDI with it
  local dmap = ds.meta.map and json.decode(ds.meta.map)
  if type(dmap) == "table" then
    if cfg.drum_map and json.encode(drums.map(cfg.drum_map)) ~= json.encode(dmap) then
      return nil, "the dataset was prepared with another drum map than the model's (drum_map)"
    end
    cfg.drum_map = dmap
  end
  if cfg.groove and not ds.groove then
    return nil, "a groove model needs a dataset with groove data (musicvae prepare --groove)"
  end
  if cfg.groove and not cfg.mean_velocity then
    -- the training set's mean velocity on hit cells: the velocity baseline of the metrics
    local flat = ds.splits.train.groove:contiguous():view(-1):totable()
    local tot, cnt = 0, 0
    for i = 0, #flat // 27 - 1 do
      for c = 1, 9 do
        if flat[i * 27 + c] > 0.5 then tot, cnt = tot + flat[i * 27 + 9 + c] * 127, cnt + 1 end
      end
    end
    cfg.mean_velocity = cnt > 0 and tot / cnt or 0
  end
  if cfg.batch_size % tr.nranks ~= 0 then
    return nil, ("the batch size %d does not split into %d equal parts (one per rank)"):format(cfg.batch_size, tr.nranks)
  end
  if tr.dist then
    -- rank 0's weights (and, on resume, Adam state) everywhere: all ranks start identical
    tr.dist.broadcast(tr.model.vae:flat("params"), 0)
    local _, mm, vv = tr.model.vae:adam_state()
    tr.dist.broadcast(mm, 0)
    tr.dist.broadcast(vv, 0)
  end
  if tr.ds.bars ~= cfg.bars then
    return nil, ("the dataset has %d-bar windows, the config %d bars"):format(tr.ds.bars, cfg.bars)
  end
  local sok, sched = pcall(Schedules.from_config, cfg)
  if not sok then return nil, tostring(sched):gsub("^.-:%d+: ", "") end
  tr.sched = sched
  tr.free_nats = (cfg.free_bits or 0) * math.log(2)
  tr.order = ds:order("train", tr.seed, tr.epoch)
  tr.log_path = o.out .. "/log.csv"
  if not (o.resume and tr.resumed_from) and tr.rank == 0 then
    local f = io.open(tr.log_path, "w")
    if not f then return nil, tr.log_path .. ": cannot write" end
    f:write(table.concat(T.LOG_COLUMNS, ","), "\n")
    f:close()
    local cf = io.open(o.out .. "/config.json", "w")
    if cf then
      cf:write(json.encode(cfg), "\n")
      cf:close()
    end
  end
  return tr
end

--- The learning rate of a step: the schedule's, times a linear warm-up after --init.
function Trainer:lr_at(step)
  local lr = self.sched.lr(step)
  local w, from = self.cfg.init_warmup_steps, self.cfg.init_step
  if w and w > 0 and from and step - from < w then lr = lr * (step - from + 1) / w end
  return lr
end

-- The next batch of the epoch order; a new epoch (and order) when fewer than B remain.
function Trainer:next_batch()
  local B = self.cfg.batch_size
  if self.cursor + B - 1 > #self.order then
    self.epoch = self.epoch + 1
    self.order = self.ds:order("train", self.seed, self.epoch)
    self.cursor = 1
    if B > #self.order then error("batch size is larger than the training split", 0) end
  end
  local labels = self.cfg.groove and self.ds.splits.train.groove or self.ds.splits.train.labels
  local b = self.cfg.groove and core.zeros(B, labels:size(2), 27) or core.zeros(B, labels:size(2))
  for k = 0, B - 1 do b:select(1, k + 1):copy(labels:select(1, self.order[self.cursor + k])) end
  self.cursor = self.cursor + B
  return b
end

--- One optimisation step -> stats (loss, recon, kl, beta, p_sample, lr, grad_norm, skipped).
-- With N ranks every rank draws the same global batch and random numbers and works on its
-- own 1/N of the rows; the gradients are averaged before clipping and Adam.
function Trainer:step_once()
  local cfg = self.cfg
  local B = cfg.batch_size
  local part, first = B // self.nranks, self.rank * (B // self.nranks) + 1
  local function mine(t) return self.nranks > 1 and t:narrow(1, first, part):contiguous() or t end
  local batch = mine(self:next_batch())
  local beta = self.sched.beta(self.step)
  local p = self.sched.sampling(self.step)
  local lr = self:lr_at(self.step)
  local eps = mine(core.randn(self.rng_z, { B, cfg.z }))
  local opts = { eps = eps, beta = beta, free_nats = self.free_nats, p_sample = p, backward = true }
  if p > 0 then
    opts.coins = mine(core.rand(self.rng_s, { B, cfg.bars, cfg.steps_per_bar }))
    opts.draws = mine(core.rand(self.rng_s, { B, cfg.bars, cfg.steps_per_bar }))
  end
  local vae = self.model.vae
  vae:zero_grad()
  local st
  if cfg.groove then
    -- dropout masks from (seed, "dropout"); with N ranks every rank draws its rows' masks from the
    -- same stream state, so a distributed groove run is not bit-identical to a single-process one
    opts.keep_prob, opts.dropout = cfg.keep_prob or 1, self.rng_d
    -- note dropout (config note_dropout, magenta's max_note_dropout_probability) draws from the
    -- same stream, before the masks, only when it is on
    st = vae:forward(self.model:groove_input(batch, self.rng_d), batch, opts)
  else
    -- note dropout on the encoder's input only (config note_dropout): from the dropout stream
    if (cfg.note_dropout or 0) > 0 then opts.enc_labels = self.model:label_input(batch, self.rng_d) end
    st = vae:forward(batch, opts)
  end
  if self.dist then
    self.dist.allreduce_mean(vae:flat("grads"))
    local s = core.tensor { st.loss, st.recon, st.kl, st.accuracy }
    self.dist.allreduce_mean(s)
    st = { loss = s:get(1), recon = s:get(2), kl = s:get(3), accuracy = s:get(4) }
  end
  local norm, skipped = vae:adam_step { lr = lr, clip_norm = cfg.grad_clip, zero_above = cfg.grad_norm_clip_to_zero }
  self.step = self.step + 1
  if skipped then self.skipped = self.skipped + 1 end
  return { loss = st.loss, recon = st.recon, kl = st.kl, beta = beta, p_sample = p, lr = lr, grad_norm = norm,
    skipped = skipped, accuracy = st.accuracy }
end

--- Validation metrics on the validation split (z = mu), or nil without one.
function Trainer:validate()
  if self.rank ~= 0 then return nil end
  local v = self.ds.splits.validation
  if not v or v.labels:size(1) == 0 then return nil end
  if self.cfg.groove then
    if not v.groove then return nil end
    return Eval.groove_metrics(self.model, v.groove, { batch_size = 64, beta = self.sched.beta(self.step),
      free_nats = self.free_nats })
  end
  return Eval.metrics(self.model, v.labels, { batch_size = 64, beta = self.sched.beta(self.step),
    free_nats = self.free_nats })
end

local function ckpt_meta(self)
  return { dataset = self.ds.meta.root or "", dataset_checksum = self.ds.meta.checksum or "",
    step = tostring(self.step), license = "Groove MIDI Dataset: CC BY 4.0 (Magenta)" }
end

--- best.safetensors whenever the validation loss improves (the weights of that moment).
function Trainer:save_best(val)
  if self.rank ~= 0 then return true end
  if not val or (self.best and val.loss >= self.best) then return true end
  self.best = val.loss
  local meta = ckpt_meta(self)
  meta.val_loss = ("%.6g"):format(val.loss)
  meta.val_tf_accuracy = ("%.6g"):format(val.tf_accuracy)
  meta.val_sampled_accuracy = ("%.6g"):format(val.sampled_accuracy)
  for _, k in ipairs { "hit_f1", "velocity_mae", "velocity_mae_baseline", "velocity_mae_raw", "offset_mae",
    "offset_mae_baseline" } do
    if val[k] then meta["val_" .. k] = ("%.6g"):format(val[k]) end
  end
  return self.model:save(self.out .. "/best.safetensors", { metadata = meta })
end

--- Writes ckpt-<step> (+ .state) and keeps the newest `keep`.
function Trainer:checkpoint(keep)
  if self.rank ~= 0 then return "" end
  local name = ("%s/ckpt-%08d"):format(self.out, self.step)
  local meta = ckpt_meta(self)
  -- the state first, the weights last: a kill or a full disk in between leaves no weights, so
  -- the previous pair stays the newest complete one
  local ok, err = self.model:save_state(name .. ".state.safetensors", { extra = {
    seed = tostring(self.seed), step = tostring(self.step), epoch = tostring(self.epoch),
    cursor = tostring(self.cursor), seconds = ("%.17g"):format(self.seconds),
    best_val_loss = self.best and ("%.17g"):format(self.best) or "",
    skipped = tostring(self.skipped), data_path = self.data_path or "",
    rng_z = hex(self.rng_z:state()), rng_sampling = hex(self.rng_s:state()), rng_dropout = hex(self.rng_d:state()),
  } })
  if not ok then
    os.remove(name .. ".state.safetensors")
    return nil, err
  end
  ok, err = self.model:save(name .. ".safetensors", { metadata = meta })
  if not ok then
    os.remove(name .. ".state.safetensors")
    return nil, err
  end
  for i, c in ipairs(T.checkpoints(self.out)) do
    if i > (keep or 3) then
      os.remove(c.path)
      os.remove(state_path(c.path))
    end
  end
  return name .. ".safetensors"
end

local function fmt(x)
  if x == nil then return "" end
  if type(x) == "boolean" then return x and "1" or "0" end
  if math.type(x) == "integer" then return tostring(x) end
  return ("%.6g"):format(x)
end

function Trainer:append_log(row)
  if self.rank ~= 0 then return end
  local f = io.open(self.log_path, "a")
  if not f then return end
  local vals = {}
  for i, c in ipairs(T.LOG_COLUMNS) do vals[i] = fmt(row[c]) end
  f:write(table.concat(vals, ","), "\n")
  f:close()
end

--- tr:run{steps = n | minutes = m, log_every = 50, val_every = 1000, checkpoint_minutes = 10, keep = 3,
--         on_line = function(text), interrupt = function() -> bool}
-- -> summary {steps, seconds, interrupted, last_val, checkpoint}
function Trainer:run(o)
  local t_start = core.clock()
  local base_seconds = self.seconds
  local target_step = o.steps and (self.step + o.steps) or nil
  if o.until_step then target_step = o.until_step end
  local deadline = o.minutes and (t_start + o.minutes * 60) or nil
  local log_every, val_every = o.log_every or 50, o.val_every or 1000
  local ck_every = (o.checkpoint_minutes or 10) * 60
  local last_ck = core.clock()
  local acc = { n = 0, loss = 0, recon = 0, kl = 0, grad_norm = 0 }
  local win_t, win_seqs = core.clock(), 0
  local last_val, interrupted
  local B = self.cfg.batch_size
  local flag = core.zeros(2)
  while true do
    -- rank 0 decides when to stop (and when to checkpoint); the others follow
    local stop, intr = false, false
    if target_step and self.step >= target_step then stop = true end
    if deadline and core.clock() >= deadline then stop = true end
    if o.interrupt and o.interrupt() then stop, intr = true, true end
    if self.dist then
      flag:set(stop and 1 or 0, 1)
      flag:set(intr and 1 or 0, 2)
      self.dist.broadcast(flag, 0)
      stop, intr = flag:get(1) ~= 0, flag:get(2) ~= 0
    end
    if intr then interrupted = true end
    if stop then break end
    local s = self:step_once()
    self.seconds = base_seconds + (core.clock() - t_start)
    win_seqs = win_seqs + B
    acc.n = acc.n + 1
    for _, k in ipairs { "loss", "recon", "kl", "grad_norm" } do acc[k] = acc[k] + s[k] end
    local val
    if val_every > 0 and self.step % val_every == 0 then
      local tv = core.clock()
      val = self:validate()
      win_t = win_t + (core.clock() - tv) -- seq/s counts training time only
      last_val = val or last_val
      local ok, err = self:save_best(val)
      if not ok then return nil, err end
    end
    if self.step % log_every == 0 or val then
      local now = core.clock()
      local row = { step = self.step, epoch = self.epoch, seconds = self.seconds,
        seq_per_s = win_seqs / math.max(1e-9, now - win_t),
        loss = acc.loss / acc.n, recon = acc.recon / acc.n, kl = acc.kl / acc.n, beta = s.beta,
        p_sample = s.p_sample, lr = s.lr, grad_norm = acc.grad_norm / acc.n, skipped = self.skipped }
      if val then
        row.val_loss, row.val_tf_accuracy, row.val_sampled_accuracy = val.loss, val.tf_accuracy, val.sampled_accuracy
        row.val = val -- every metric, for the console (log.csv keeps the fixed columns)
      end
      self:append_log(row)
      if o.on_line and self.rank == 0 then o.on_line(row, target_step, deadline) end
      acc = { n = 0, loss = 0, recon = 0, kl = 0, grad_norm = 0 }
      win_t, win_seqs = now, 0
    end
    if core.clock() - last_ck >= ck_every then
      local _, err = self:checkpoint(o.keep)
      if err then return nil, err end
      last_ck = core.clock()
    end
  end
  local val = self:validate()
  last_val = val or last_val
  local bok, berr = self:save_best(val)
  if not bok then return nil, berr end
  if val then
    self:append_log { step = self.step, epoch = self.epoch, seconds = self.seconds, val_loss = val.loss,
      val_tf_accuracy = val.tf_accuracy, val_sampled_accuracy = val.sampled_accuracy, skipped = self.skipped }
  end
  local path, err = self:checkpoint(o.keep)
  if not path then return nil, err end
  return { steps = self.step, seconds = self.seconds, interrupted = interrupted, last_val = last_val, checkpoint = path }
end

T.Trainer = Trainer
return T
