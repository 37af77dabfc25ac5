--- The `musicvae` command-line tool. Every command has --help. Errors are
-- one line on stderr, "musicvae: ...", exit status 1 (data, file, model) or 2
-- (usage); --debug shows a traceback instead.
local mv = require "musicvae"
local json = require "musicvae.json"

local M = {}

-- A usage error carries exit status 2, any other raised error 1.
local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.msg end

local function usage_error(fmt, ...)
  error(setmetatable({ msg = fmt:format(...), status = 2 }, UsageError), 0)
end

local function fail(fmt, ...)
  error(setmetatable({ msg = fmt:format(...), status = 1 }, UsageError), 0)
end
M.fail, M.usage_error = fail, usage_error

-- Options: {name = "--threads", short = "-t", arg = "N", type = "integer"|"number"|"string"|"flag", help = ...}
local function parse_args(cmd, argv)
  local opts, pos = {}, {}
  local byname = {}
  for _, o in ipairs(cmd.options or {}) do
    byname[o.name] = o
    if o.short then byname[o.short] = o end
  end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i + 1, #argv do pos[#pos + 1] = argv[j] end
      break
    elseif a:sub(1, 1) == "-" and #a > 1 and not tonumber(a) then
      local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local o = byname[name]
      if not o then usage_error("%s: unknown option %s (see 'musicvae %s --help')", cmd.name, name, cmd.name) end
      local key = o.name:gsub("^%-+", ""):gsub("%-", "_")
      if o.type == "flag" then
        if inline then usage_error("%s: option %s takes no value", cmd.name, name) end
        opts[key] = true
      else
        local v = inline
        if not v then
          i = i + 1
          v = argv[i]
          if v == nil then usage_error("%s: option %s needs a value (%s)", cmd.name, name, o.arg or "VALUE") end
        end
        if o.type == "integer" then
          v = math.tointeger(tonumber(v))
          if not v then usage_error("%s: option %s needs an integer", cmd.name, name) end
        elseif o.type == "number" then
          local n = tonumber(v)
          if not n then usage_error("%s: option %s needs a number", cmd.name, name) end
          if not (n > -math.huge and n < math.huge) then usage_error("%s: option %s needs a finite number", cmd.name, name) end
          v = n
        end
        if o.check then
          local ok, why = o.check(v)
          if not ok then usage_error("%s: option %s %s", cmd.name, name, why) end
        end
        if o.many then
          opts[key] = opts[key] or {}
          table.insert(opts[key], v)
        else
          opts[key] = v
        end
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  local min, max = cmd.min_args or 0, cmd.max_args or 0
  if #pos < min then usage_error("%s: missing argument (usage: musicvae %s)", cmd.name, cmd.usage) end
  if max >= 0 and #pos > max then usage_error("%s: unexpected argument '%s'", cmd.name, pos[max + 1]) end
  return opts, pos
end

local function help_text(cmd)
  local lines = { "usage: musicvae " .. cmd.usage, "", cmd.summary }
  if cmd.details then lines[#lines + 1] = "" lines[#lines + 1] = cmd.details end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "options:"
  local all = {}
  for _, o in ipairs(cmd.options or {}) do all[#all + 1] = o end
  all[#all + 1] = { name = "--help", type = "flag", help = "show this help" }
  for _, o in ipairs(all) do
    local left = (o.short and (o.short .. ", ") or "") .. o.name .. (o.type ~= "flag" and (" " .. (o.arg or "VALUE")) or "")
    lines[#lines + 1] = ("  %-26s %s"):format(left, o.help or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Models --------------------------------------------------------------------
--- The model path from --model, $MUSICVAE_MODEL or the command's default (see musicvae.models).
function M.resolve_model(spec, command)
  local path, err = require("musicvae.models").resolve(spec, command)
  if not path then fail("%s", err:gsub("pass a path", "pass --model PATH")) end
  return path
end

function M.load_model(spec, command)
  local Model = require "musicvae.model"
  local path = M.resolve_model(spec, command)
  local m, err = Model.load(path)
  if not m then fail("%s", err) end
  return m
end

-- Commands ------------------------------------------------------------------
local commands, order = {}, {}

--- M.register(cmd): cmd = {name, summary, usage, options, min_args, max_args, run(opts, args, out)}
function M.register(cmd)
  commands[cmd.name] = cmd
  order[#order + 1] = cmd.name
end

local function sgemm_rate(n, seconds)
  local r = mv.rng(1, "doctor")
  local a, b, c = mv.rand(r, { n, n }), mv.rand(r, { n, n }), mv.zeros(n, n)
  mv.gemm(c, a, b) -- warm-up: thread start, first touch
  local flops = 2.0 * n * n * n
  local t0 = mv.clock()
  local reps = 0
  repeat
    mv.gemm(c, a, b)
    reps = reps + 1
  until mv.clock() - t0 >= seconds / 5
  local per = math.max(1, reps)
  local rates = {}
  for k = 1, 5 do
    local t = mv.clock()
    for _ = 1, per do mv.gemm(c, a, b) end
    rates[k] = flops * per / (mv.clock() - t) / 1e9
  end
  table.sort(rates)
  return rates[3], per
end

M.register {
  name = "doctor",
  summary = "Show what musicvae runs on: Lua, the BLAS kernel and how it was chosen, threads, and a measured SGEMM rate.",
  usage = "doctor [--json] [--threads N] [--size N]",
  options = {
    { name = "--json", type = "flag", help = "print one JSON object" },
    { name = "--threads", arg = "N", type = "integer", help = "BLAS threads for the measurement",
      check = function(v) return v >= 1, "must be at least 1" end },
    { name = "--size", arg = "N", type = "integer", help = "matrix size for the SGEMM measurement (default 1024)",
      check = function(v) return v >= 16 and v <= 8192, "must be between 16 and 8192" end },
    { name = "--seconds", arg = "S", type = "number", help = "time to spend measuring (default 1)",
      check = function(v) return v > 0 and v <= 60, "must be in (0, 60]" end },
  },
  run = function(opts, _, out)
    if opts.threads then mv.set_num_threads(opts.threads) end
    local info = mv.blas_info()
    local n = opts.size or 1024
    local gflops = sgemm_rate(n, opts.seconds or 1.0)
    local report = {
      musicvae = mv._VERSION,
      lua = _VERSION,
      module = package.searchpath("musicvae.core", package.cpath),
      blas_core = info.core,
      blas_how = info.how,
      blas_library = info.library,
      blas_config = info.config,
      threads = info.threads,
      cpu_avx2 = info.cpu_avx2,
      cpu_avx512 = info.cpu_avx512,
      decode_kernel = info.decode_kernel,
      sgemm_n = n,
      sgemm_gflops = math.floor(gflops * 10 + 0.5) / 10,
    }
    local sound = require("musicvae.cli_audio").doctor()
    for k, v in pairs(sound) do report[k] = v end
    if opts.json then
      out:write(json.encode(report), "\n")
      return 0
    end
    local function yn(b) return b and "yes" or "no" end
    out:write(("musicvae %s on %s\n"):format(report.musicvae, report.lua))
    out:write(("  module      %s\n"):format(report.module or "?"))
    out:write(("  CPU         AVX2+FMA %s, AVX-512 %s\n"):format(yn(info.cpu_avx2), yn(info.cpu_avx512)))
    out:write(("  BLAS core   %s\n"):format(info.core))
    out:write(("  chosen      %s\n"):format(info.how))
    out:write(("  library     %s\n"):format(info.library))
    out:write(("  decoding    %s kernels on packed weights (MUSICVAE_ISA=portable|avx2 to override)\n"):format(
      info.decode_kernel))
    out:write(("  threads     %d\n"):format(info.threads))
    out:write(("  SGEMM       %.1f GFLOP/s (%dx%dx%d, %d threads, median of 5)\n"):format(gflops, n, n, n,
      info.threads))
    out:write(require("musicvae.cli_audio").doctor_lines(sound))
    return 0
  end,
}

-- Shared option parsing for the drum pipeline ------------------------------------
local function drum_channel_opt(v)
  if v == nil then return nil end
  if v == "all" then return "all" end
  local n = math.tointeger(tonumber(v))
  if not n or n < 1 or n > 16 then usage_error("--drum-channel takes 1-16 or all, not '%s'", v) end
  return n
end

local function map_opt(v)
  if v == nil then return nil end
  local D = require "musicvae.drums"
  if D.maps[v] then return v end
  if v:match("%.lua$") then
    local chunk, err = loadfile(v, "t", {})
    if not chunk then fail("--map: %s", err) end
    local ok, m = pcall(chunk)
    if not ok then fail("--map %s: %s", v, tostring(m)) end
    local ok2, why = pcall(D.map, m)
    if not ok2 then fail("--map %s: %s", v, tostring(why):gsub("^.-:%d+: ", "")) end
    return m
  end
  usage_error("--map takes magenta, magenta-js-2018, roland or a .lua file, not '%s'", v)
end

local PIPELINE_OPTIONS = {
  { name = "--map", arg = "NAME|FILE.lua", help = "drum map: magenta (default), magenta-js-2018, roland, or a Lua file" },
  { name = "--drum-channel", arg = "N|all", help = "MIDI channel holding the drums (default 10)" },
}

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

M.register {
  name = "labels",
  summary = "Print the 512-class drum label of every step of a MIDI file (no windowing), as Magenta computes them.",
  usage = "labels FILE.mid [--json] [--map NAME] [--drum-channel N|all] [--verbose]",
  min_args = 1, max_args = 1,
  options = {
    { name = "--json", type = "flag", help = 'one JSON object: {"file","qpm","ts","ppq","steps","labels"}' },
    PIPELINE_OPTIONS[1], PIPELINE_OPTIONS[2],
    { name = "--verbose", short = "-v", type = "flag", help = "also list what the reader skipped or repaired (stderr)" },
  },
  run = function(opts, args, out, errout)
    local midi = require "musicvae.midi"
    local r, err = midi.labels(args[1], { map = map_opt(opts.map), drum_channel = drum_channel_opt(opts.drum_channel) })
    if not r then fail("%s", err) end
    if opts.verbose then
      for _, w in ipairs(r.warnings) do errout:write("musicvae: ", args[1], ": ", w, "\n") end
    end
    if opts.json then
      out:write(json.encode(json.ordered { { "file", r.file }, { "qpm", r.qpm }, { "ts", json.array(r.ts) },
        { "ppq", r.ppq }, { "steps", r.steps }, { "labels", json.array(r.labels) } }), "\n")
      return 0
    end
    local P = require "musicvae.pattern"
    out:write(("%s: %d steps, %.6g qpm, %s, %d ticks per quarter\n"):format(r.file, r.steps, r.qpm,
      #r.ts > 0 and table.concat(r.ts, " ") or "no time signature (4/4)", r.ppq))
    if r.steps > 0 then out:write(tostring(P.new { labels = r.labels, steps_per_bar = 16 }), "\n") end
    return 0
  end,
}

M.register {
  name = "prepare",
  summary = "Turn a folder of MIDI files into a dataset file of 4-bar drum windows, split into train/validation/test.",
  usage = "prepare DIR -o DATA.mvd [--info info.csv] [--max-per-file N] [--bars N] [--max-bars N] [--groove] [--map NAME] [--drum-channel N|all] [--force]",
  details = "Every distinct window of every drum track is kept unless --max-per-file caps it (evenly spaced).\n" ..
    "Without --info, files are split 80/10/10 by a hash of their path. A list of dropped files\n" ..
    "and why is written beside the dataset (DATA.mvd.drops.tsv). --groove also stores each window's\n" ..
    "velocities and micro-timing (GrooVAE's 27 floats per step) for groove models.",
  min_args = 1, max_args = 1,
  options = {
    { name = "--output", short = "-o", arg = "DATA.mvd", help = "the dataset file to write (required)" },
    { name = "--info", arg = "info.csv", help = "CSV with midi_filename and split columns (the Groove MIDI Dataset's)" },
    { name = "--max-per-file", arg = "N", type = "integer", help = "keep at most N windows per file",
      check = function(v) return v >= 1, "must be at least 1" end },
    { name = "--bars", arg = "N", type = "integer", help = "bars per window (default 4)",
      check = function(v) return v >= 1 and v <= 64, "must be 1-64" end },
    { name = "--max-bars", arg = "N", type = "integer", help = "cut drum tracks after N bars (magenta: 100; default 0 = no limit)",
      check = function(v) return v >= 0, "must be >= 0" end },
    { name = "--groove", type = "flag", help = "also store velocities and offsets (for groove models)" },
    PIPELINE_OPTIONS[1], PIPELINE_OPTIONS[2],
    { name = "--force", type = "flag", help = "overwrite an existing dataset file" },
    { name = "--verbose", short = "-v", type = "flag", help = "list what the reader skipped or repaired in each file (stderr)" },
  },
  run = function(opts, args, out, errout)
    local core = require "musicvae.core"
    local Data = require "musicvae.data"
    if not opts.output then usage_error("prepare: -o DATA.mvd is required") end
    if not core.isdir(args[1]) then fail("%s: not a folder", args[1]) end
    if exists(opts.output) and not opts.force then
      fail("%s exists; use --force to overwrite it", opts.output)
    end
    local tty = core.isatty(2)
    local last = -1
    local report, err = Data.prepare(args[1], opts.output, {
      info = opts.info, max_per_file = opts.max_per_file, bars = opts.bars, max_bars = opts.max_bars,
      groove = opts.groove, map = map_opt(opts.map), drum_channel = drum_channel_opt(opts.drum_channel),
      on_warnings = opts.verbose and function(file, ws)
        for _, w in ipairs(ws) do errout:write("musicvae: ", file, ": ", w, "\n") end
      end or nil,
      progress = tty and function(i, n)
        local pct = i * 100 // n
        if pct ~= last then
          last = pct
          local w = 40
          local fill = i * w // n
          errout:write(("\r[%s%s] %3d%% %d/%d files"):format(("#"):rep(fill), ("."):rep(w - fill), pct, i, n))
          if i == n then errout:write("\n") end
        end
      end or nil,
    })
    if not report then fail("%s", err) end
    out:write(("read %d MIDI files in %.1f s: %d kept, %d dropped\n"):format(report.files, report.seconds,
      report.kept, report.files - report.kept))
    out:write(("windows: train %d, validation %d, test %d\n"):format(report.windows.train,
      report.windows.validation, report.windows.test))
    local reasons = {}
    for k in pairs(report.dropped) do reasons[#reasons + 1] = k end
    table.sort(reasons)
    for _, k in ipairs(reasons) do out:write(("dropped (%s): %d\n"):format(k, report.dropped[k])) end
    if opts.groove and report.groove_mismatch > 0 then
      out:write(("windows left out of the groove data (hits off the file's grid): %d\n"):format(report.groove_mismatch))
    end
    if report.steps_truncated > 0 then
      out:write(("steps cut by --max-bars: %d\n"):format(report.steps_truncated))
    end
    out:write(("wrote %s (drop list: %s)\n"):format(opts.output, report.drops_path))
    return 0
  end,
}

-- --set key=value: numbers, booleans, lists ({256,256} or 256,256) or strings
local function parse_value(v)
  if v == "true" then return true elseif v == "false" then return false end
  local n = tonumber(v)
  if n then return math.tointeger(n) or n end
  local inner = v:match("^{(.*)}$") or (v:find(",") and v)
  if inner then
    local list = {}
    for item in inner:gmatch("[^,%s]+") do list[#list + 1] = parse_value(item) end
    return list
  end
  return v
end
M.parse_value = parse_value

local function parse_sets(sets)
  local out = {}
  for _, kv in ipairs(sets or {}) do
    local k, v = kv:match("^([%w_]+)=(.*)$")
    if not k then usage_error("--set takes key=value, not '%s'", kv) end
    local known, why = require("musicvae.model").check_key(k)
    if not known then usage_error("--set %s: %s", kv, why) end
    out[k] = parse_value(v)
  end
  return out
end

local function clock_str(s)
  s = math.max(0, math.floor(s + 0.5))
  return ("%d:%02d:%02d"):format(s // 3600, s % 3600 // 60, s % 60)
end

M.register {
  name = "train",
  summary = "Train a model on a dataset file, logging to runs/NAME/log.csv and writing checkpoints there.",
  usage = "train --data DATA.mvd [--config small] --out runs/NAME [--minutes M | --steps N] [--resume | --init MODEL] [--seed S] [--set key=value ...]",
  details = "Checkpoints (weights + training state) are written every --checkpoint-minutes and at the end;\n" ..
    "Ctrl-C saves one and stops cleanly; --resume continues the newest one exactly.",
  options = {
    { name = "--data", arg = "DATA.mvd", help = "the dataset file (musicvae prepare)" },
    { name = "--config", arg = "NAME", help = "tiny, small (default), paper; groove, humanize or tap (GrooVAE, needs prepare --groove)" },
    { name = "--out", arg = "DIR", help = "the run folder (runs/NAME)" },
    { name = "--minutes", arg = "M", type = "number", help = "train for this long",
      check = function(v) return v > 0, "must be positive" end },
    { name = "--steps", arg = "N", type = "integer", help = "train for this many more steps",
      check = function(v) return v > 0, "must be positive" end },
    { name = "--resume", type = "flag", help = "continue from the newest checkpoint in --out" },
    { name = "--init", arg = "MODEL", help = "start from a trained model's weights (path or name; Adam fresh, "
      .. "schedules from its step, a learning-rate warm-up of init_warmup_steps, default 200)" },
    { name = "--seed", arg = "S", type = "integer", help = "random seed (default 1)" },
    { name = "--set", arg = "key=value", many = true, help = "override a config key (repeatable)" },
    { name = "--log-every", arg = "N", type = "integer", help = "steps between log lines (default 50)" },
    { name = "--val-every", arg = "N", type = "integer", help = "steps between validations (default 1000)" },
    { name = "--checkpoint-minutes", arg = "M", type = "number", help = "minutes between checkpoints (default 10)" },
    { name = "--keep", arg = "K", type = "integer", help = "checkpoints to keep (default 3)" },
    { name = "--dist", type = "flag", help = "data-parallel over MPI ranks (run under mpirun)" },
  },
  run = function(opts, _, out, errout)
    local core = require "musicvae.core"
    local T = require "musicvae.train"
    if not opts.data and not opts.resume then usage_error("train: --data is required") end
    if not opts.out then usage_error("train: --out is required") end
    if not opts.minutes and not opts.steps then usage_error("train: give --minutes or --steps") end
    if opts.init and opts.resume then usage_error("train: --init starts a run, --resume continues one: not both") end
    if opts.init and not opts.data then usage_error("train: --init needs --data") end
    local dist
    if opts.dist then
      local ok, d = pcall(require, "musicvae.dist")
      if not ok then fail("--dist needs musicvae built with MPI (libopenmpi-dev): %s", tostring(d):match("^[^\n]*")) end
      dist = d
      dist.init()
    end
    local quiet = dist and dist.rank() ~= 0
    if quiet then out = { write = function() end, flush = function() end } end
    local tr, err = T.new { data = opts.data, config = opts.config, out = opts.out, seed = opts.seed,
      resume = opts.resume, init = opts.init, set = parse_sets(opts.set), dist = dist }
    if not tr and dist then
      errout:write("musicvae: rank ", dist.rank(), ": ", tostring(err), "\n")
      dist.finalize()
      return 1
    end
    if not tr and opts.resume and opts.data == nil then fail("%s", err) end
    if not tr then fail("%s", err) end
    if tr.resumed_from then out:write(("resuming %s at step %d\n"):format(tr.resumed_from, tr.step)) end
    out:write(("training %s (%d parameters) on %d windows, batch %d, seed %d -> %s%s\n"):format(
      tr.cfg.name or "custom", tr.model:numel(), tr.ds:size("train"), tr.cfg.batch_size, tr.seed, opts.out,
      dist and (" on %d ranks"):format(dist.size()) or ""))
    local tty = core.isatty(1)
    core.trap_sigint(true)
    local t0 = core.clock()
    local res, rerr = tr:run {
      minutes = opts.minutes, steps = opts.steps, log_every = opts.log_every, val_every = opts.val_every,
      checkpoint_minutes = opts.checkpoint_minutes, keep = opts.keep,
      interrupt = function() return core.sigint() end,
      on_line = function(row, target, deadline)
        local eta = ""
        if deadline then eta = clock_str(deadline - core.clock())
        elseif target then eta = clock_str((target - row.step) * (core.clock() - t0) / math.max(1, row.step - (tr.first_step or 0))) end
        local line = ("epoch %d step %d %.0f seq/s eta %s loss %.3f recon %.3f kl %.2f beta %.3g p %.3f lr %.3g"):format(
          row.epoch, row.step, row.seq_per_s or 0, eta, row.loss or 0, row.recon or 0, row.kl or 0, row.beta or 0,
          row.p_sample or 0, row.lr or 0)
        if row.val_loss then
          line = line .. (" | val loss %.3f tf %.4f sampled %.4f"):format(row.val_loss, row.val_tf_accuracy,
            row.val_sampled_accuracy)
          local v = row.val
          if v and v.velocity_mae then
            line = line .. (" | hit f1 %.3f vel mae %.2f (base %.2f) off mae %.4f (base %.4f)"):format(v.hit_f1,
              v.velocity_mae, v.velocity_mae_baseline, v.offset_mae, v.offset_mae_baseline)
          end
        end
        if tty and not row.val_loss then out:write("\r", line, "\27[K") else out:write(tty and "\r" or "", line, "\n") end
        out:flush()
      end,
    }
    core.trap_sigint(false)
    if dist then
      if res then
        out:write(("ranks %d, allreduce payload %.1f MB per rank\n"):format(dist.size(), dist.bytes() / 1e6))
      end
      dist.barrier()
      dist.finalize()
    end
    if not res then fail("%s", rerr) end
    if tty then out:write("\n") end
    local v = res.last_val
    out:write(("%s after step %d (%s): checkpoint %s\n"):format(res.interrupted and "stopped" or "done", res.steps,
      clock_str(res.seconds), res.checkpoint))
    if v then
      out:write(("validation: loss %.4f, tf_accuracy %.4f, sampled_accuracy %.4f\n"):format(v.loss, v.tf_accuracy,
        v.sampled_accuracy))
      if v.velocity_mae then
        out:write(("validation groove: hit_f1 %.4f, velocity_mae %.3f (baseline %.3f), offset_mae %.4f (baseline %.4f)\n")
          :format(v.hit_f1, v.velocity_mae, v.velocity_mae_baseline, v.offset_mae, v.offset_mae_baseline))
      end
    end
    return res.interrupted and 130 or 0
  end,
}

--- The windows a measuring command reads for model m: DATA is a dataset file (its split, default
-- validation), a folder of MIDI files or one MIDI file (prepare's pipeline, with the model's bars,
-- steps per bar and drum map). Labels [n, steps], or groove rows for a groove model.
function M.eval_windows(path, split, m)
  local core = require "musicvae.core"
  local groove = m.config.groove
  if core.isfile(path) and not path:lower():match("%.midi?$") then
    local Data = require "musicvae.data"
    local ds, err = Data.load(path)
    if not ds then fail("%s", err) end
    split = split or "validation"
    if not ds.splits[split] or ds:size(split) == 0 then fail("%s has no '%s' windows", path, split) end
    if ds.bars ~= m.config.bars then fail("%s has %d-bar windows, the model %d bars", path, ds.bars, m.config.bars) end
    if groove then
      local g = ds.splits[split].groove
      if not g then fail("%s has no groove data; a groove model needs musicvae prepare --groove", path) end
      return g, ds
    end
    return ds.splits[split].labels, ds
  end
  if not core.isfile(path) and not core.isdir(path) then fail("%s: no such file or folder", path) end
  local labels, err = require("musicvae.evaluate").windows_from_midi(path, m:window_options())
  if not labels then fail("%s", err) end
  return labels
end

M.register {
  name = "eval",
  summary = "Measure a model on a dataset split, a folder of MIDI files or one MIDI file.",
  usage = "eval [--model M] DATA [--split validation] [--json]",
  min_args = 1, max_args = 1,
  options = {
    { name = "--model", arg = "PATH|NAME", help = "model file or name (default: $MUSICVAE_MODEL or the shipped model)" },
    { name = "--split", arg = "NAME", help = "split of a dataset file (default validation)" },
    { name = "--json", type = "flag", help = "print one JSON object on the last line" },
    { name = "--batch", arg = "N", type = "integer", help = "batch size (default 64)",
      check = function(v) return v >= 1 and v <= 65536, "must be 1-65536" end },
  },
  run = function(opts, args, out)
    local Eval = require "musicvae.evaluate"
    local m = M.load_model(opts.model)
    local groove = m.config.groove
    local labels = M.eval_windows(args[1], opts.split, m)
    local r = groove and Eval.groove_metrics(m, labels, { batch_size = opts.batch or 64 })
      or Eval.metrics(m, labels, { batch_size = opts.batch or 64 })
    r.model = m.path
    if opts.json then
      out:write(json.encode(r), "\n")
    elseif groove then
      out:write(("%s on %d windows: hit_accuracy %.4f, hit_f1 %.4f, velocity_mae %.3f (baseline %.3f; " ..
        "magenta's raw output %.3f), offset_mae %.4f steps (baseline %.4f), tf_accuracy %.4f, recon_nll %.3f, " ..
        "kl %.3f\n"):format(m.path or "model", r.windows, r.hit_accuracy, r.hit_f1, r.velocity_mae,
        r.velocity_mae_baseline, r.velocity_mae_raw, r.offset_mae, r.offset_mae_baseline, r.tf_accuracy, r.recon_nll,
        r.kl))
    else
      out:write(("%s on %d windows: tf_accuracy %.4f, sampled_accuracy %.4f, recon_nll %.3f, kl %.3f\n"):format(
        m.path or "model", r.windows, r.tf_accuracy, r.sampled_accuracy, r.recon_nll, r.kl))
    end
    return 0
  end,
}

M.register {
  name = "quality",
  summary = "Report what users hear: realism of samples, reconstruction, interpolation, latent use, memorisation.",
  usage = "quality [--model M] DATA [--split validation] [-n 1000] [--temperature T] [--seed S] [--train DATA.mvd] [--json]",
  details = "DATA is a dataset file (its --split), a folder of MIDI files or one MIDI file, the reference set.\n" ..
    "Realism (Yang & Lerch 2020): per feature, the overlap area (OA, 1 = the same) and KL between the\n" ..
    "reference's intra-set distances and the sample-to-reference distances, for the model's samples, a\n" ..
    "bar-position 4-gram trained on the train split (the baseline) and real train windows; position =\n" ..
    "(model - baseline) / (real - baseline) on OA. The train split comes from DATA when it is a dataset\n" ..
    "file, else from --train. docs/process.md explains every number.",
  min_args = 1, max_args = 1,
  options = {
    { name = "--model", arg = "PATH|NAME", help = "model file or name (default: $MUSICVAE_MODEL or the shipped model)" },
    { name = "--split", arg = "NAME", help = "split of a dataset file (default validation)" },
    { name = "-n", arg = "N", type = "integer", help = "samples per set and reference windows (default 1000)",
      check = function(v) return v >= 2, "must be at least 2" end },
    { name = "--temperature", arg = "T", type = "number", help = "sampling temperature (default 0.5)",
      check = function(v) return v >= 0 and v <= 100, "must be between 0 and 100" end },
    { name = "--seed", arg = "S", type = "integer", help = "random seed of every draw in the report (default 1)" },
    { name = "--pairs", arg = "P", type = "integer", help = "interpolation pairs (default 100)",
      check = function(v) return v >= 1, "must be at least 1" end },
    { name = "--train", arg = "DATA.mvd", help = "dataset file whose train split gives the baseline and real data" },
    { name = "--json", type = "flag", help = "print one JSON object on the last line" },
  },
  run = function(opts, args, out)
    local Q = require "musicvae.quality"
    local m = M.load_model(opts.model)
    if m.config.groove then fail("%s is a groove model; quality measures categorical drum models", m.path or "model") end
    local ref, ds = M.eval_windows(args[1], opts.split, m)
    local train
    if opts.train then
      local Data = require "musicvae.data"
      local tds, err = Data.load(opts.train)
      if not tds then fail("%s", err) end
      ds = tds
    end
    if ds then
      if ds:size("train") > 0 then train = ds.splits.train.labels end
      if ds.bars ~= m.config.bars then
        fail("the dataset has %d-bar windows, the model %d bars", ds.bars, m.config.bars)
      end
    end
    local rep, err = Q.report(m, ref, { n = opts.n, temperature = opts.temperature, seed = opts.seed,
      pairs = opts.pairs, train = train })
    if not rep then fail("%s", err) end
    Q.print(rep, out)
    if opts.json then out:write(json.encode(rep), "\n") end
    return 0
  end,
}

-- Generation commands ------------------------------------------------------------
local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

local function temp_str(t) return ("%g"):format(t) end

local GEN_OPTIONS = {
  model = { name = "--model", arg = "PATH|NAME", help = "model file or name (default: $MUSICVAE_MODEL or gmd-4bar-small)" },
  enc_model = { name = "--model", arg = "PATH|NAME",
    help = "model file or name (default: $MUSICVAE_MODEL or " .. require("musicvae.models").default_for("reconstruct") .. ")" },
  out = { name = "--output", short = "-o", arg = "DIR", help = "folder for the MIDI files and .json sidecars (required)" },
  out_file = { name = "--output", short = "-o", arg = "OUT.mid|DIR", help = "the file (or folder) to write (required)" },
  temperature = { name = "--temperature", arg = "T", type = "number", help = "softmax temperature, 0 = argmax",
    check = function(v) return v >= 0 and v <= 100, "must be between 0 and 100" end },
  seed = { name = "--seed", arg = "S", type = "integer", help = "random seed (default: one is picked and printed)" },
  kit = { name = "--kit", arg = "FILE.lua", help = "class -> pitch map for the written files" },
  force = { name = "--force", type = "flag", help = "overwrite existing files" },
  attr = { name = "--attr", arg = "NAME=AMOUNT", many = true,
    help = "add AMOUNT times the model's attribute vector NAME to z (repeatable; musicvae attributes --list)" },
  style = { name = "--style", arg = "NAME", help = "add the model's style vector NAME to z (musicvae attributes --list)" },
  quiet = { name = "--quiet", short = "-q", type = "flag", help = "do not print the grids" },
  bar = { name = "--bar", arg = "K", type = "integer", help = "use the window starting at bar K of a longer input",
    check = function(v) return v >= 1, "must be at least 1" end },
  drum_channel = { name = "--drum-channel", arg = "N|all", help = "MIDI channel holding the drums (default 10)" },
  wav = require("musicvae.cli_audio").OPTIONS.wav,
  soundfont = require("musicvae.cli_audio").OPTIONS.soundfont,
}

local function pick_seed(opts, out)
  if opts.seed then return opts.seed end
  local core = require "musicvae.core"
  local s = math.floor((os.time() * 1000 + math.floor(core.clock() * 1000)) % 2147483647)
  out:write(("seed %d\n"):format(s))
  return s
end

-- The model, its path and its fingerprint.
local function gen_model(opts, command)
  local core = require "musicvae.core"
  local m = M.load_model(opts.model, command)
  local bytes = read_all(m.path)
  m.sha256 = bytes and core.sha256(bytes) or ""
  return m
end

--- Input windows of a MIDI file for model m: list of {labels, first_bar, groove, bars,
-- steps_per_bar}, and the file's qpm. The model gives the bars, steps per bar, drum map (opts.map
-- overrides it) and kind (groove models also read each window's velocities and offsets). An input
-- shorter than the model's bars is an error.
local function input_windows(path, opts, m)
  local Data = require "musicvae.data"
  local wopts = m:window_options()
  wopts.map = opts.map or wopts.map
  wopts.drum_channel = drum_channel_opt(opts.drum_channel)
  local res = Data.file_windows(path, wopts) -- the file is read and parsed once
  if res.drop == "parse error" then fail("%s", res.detail) end
  if #res.windows == 0 then
    fail("%s: no %d-bar drum window for the model (%s%s)", path, wopts.bars, res.drop or "none found",
      res.detail and res.detail ~= "" and (": " .. res.detail) or "")
  end
  for _, w in ipairs(res.windows) do w.bars, w.steps_per_bar = wopts.bars, wopts.steps_per_bar end
  return res.windows, res.qpm
end

--- A window as a pattern (with its velocities and offsets when it has groove rows).
local function window_pattern(w, qpm)
  local P = require "musicvae.pattern"
  local t = { labels = w.labels, qpm = qpm, bars = w.bars, steps_per_bar = w.steps_per_bar }
  if w.groove then
    local vel, off = {}, {}
    for s = 1, #w.labels do
      local base = (s - 1) * 27
      for c = 1, 9 do
        if w.groove[base + c] == 1 then
          vel[s], off[s] = vel[s] or {}, off[s] or {}
          vel[s][c] = math.floor(w.groove[base + 9 + c] * 127 + 0.5)
          off[s][c] = w.groove[base + 18 + c] / 2
        end
      end
    end
    t.velocities, t.offsets = vel, off
  end
  return P.new(t)
end

local function choose_window(path, windows, bar, out, say)
  if bar then
    for _, w in ipairs(windows) do
      if w.first_bar == bar then return w end
    end
    local bars = {}
    for i, w in ipairs(windows) do if i <= 20 then bars[#bars + 1] = tostring(w.first_bar) end end
    fail("%s: no %d-bar window starts at bar %d (windows start at bars %s%s)", path, windows[1].bars, bar,
      table.concat(bars, ", "),
      #windows > 20 and ", ..." or "")
  end
  if say and #windows > 1 then
    out:write(("%s: using the window at bars %d-%d (of %d windows; --bar K picks another)\n"):format(path,
      windows[1].first_bar, windows[1].first_bar + windows[1].bars - 1, #windows))
  end
  return windows[1]
end

-- Writes each item as DIR/<mode>-s<seed>-t<temp>-<index>.mid + .json; nothing is written if any exists.
local function write_outputs(opts, out, m, mode, seed, temperature, items)
  local core = require "musicvae.core"
  local midi = require "musicvae.midi"
  local dir = opts.output
  if not dir then usage_error("%s: -o DIR is required", mode) end
  if items[1] and items[1].stem then dir = items[1].stem:match("^(.*)/[^/]*$") or "." end
  if dir == "" then usage_error("%s: -o needs a folder name, not ''", mode) end
  if not core.isdir(dir) then
    local ok, err = core.mkdir_p(dir) -- from C: one line of our own, never the shell's
    if not ok then fail("%s", err) end
  end
  local kit
  if opts.kit then
    local err
    kit, err = midi.load_kit(opts.kit)
    if not kit then fail("%s", err) end
  end
  local stems = {}
  for i, it in ipairs(items) do
    stems[i] = it.stem or ("%s/%s-s%d-t%s-%s"):format(dir, mode, seed, temp_str(temperature),
      it.suffix or ("%03d"):format(it.index))
    if not opts.force then
      for _, ext in ipairs { ".mid", ".json", opts.wav and ".wav" or nil } do
        if core.isfile(stems[i] .. ext) then fail("%s exists; use --force to overwrite", stems[i] .. ext) end
      end
    end
  end
  require("musicvae.cli_audio").check(opts)
  for i, it in ipairs(items) do
    local ok, err = midi.write(stems[i] .. ".mid", it.pattern, { kit = kit, map = m:drum_map(), qpm = it.pattern.qpm })
    if not ok then fail("%s", err) end
    local side = json.ordered {
      { "mode", mode }, { "model", m.path }, { "model_sha256", m.sha256 }, { "seed", seed },
      { "index", it.index }, { "temperature", temperature }, { "qpm", it.pattern.qpm }, { "bars", it.pattern.bars },
      { "inputs", json.array(it.inputs or {}) }, { "z", json.array(it.z or {}) },
    }
    ok, err = core.write_atomic(stems[i] .. ".json", json.encode(side) .. "\n")
    if not ok then fail("%s", err) end
    out:write(stems[i], ".mid\n")
    require("musicvae.cli_audio").beside(opts, it.pattern, stems[i], kit, out)
    if not opts.quiet and not it.no_grid then out:write(tostring(it.pattern), "\n") end
  end
end

local function zrow(z, i)
  return z:select(1, i):totable()
end

-- the sidecar's description of one input window
local function source(file, w)
  return json.ordered { { "file", file }, { "bar", w.first_bar } }
end

-- One pattern made from window w of file: -o OUT.mid writes OUT.mid (and OUT.json), -o DIR as the
-- other commands.
local function write_one(opts, out, m, mode, seed, temperature, p, file, w)
  local item = { pattern = p, index = 1, inputs = { source(file, w) } }
  if opts.output:lower():match("%.midi?$") then item.stem = opts.output:gsub("%.[mM][iI][dD][iI]?$", "") end
  write_outputs(opts, out, m, mode, seed, temperature, { item })
end

-- write_outputs' items for generated patterns: z row i each; inputs is a list or inputs(i) gives one
local function pattern_items(pats, z, inputs)
  local items = {}
  for i, p in ipairs(pats) do
    items[i] = { pattern = p, index = i, z = z and zrow(z, i),
      inputs = type(inputs) == "function" and inputs(i) or inputs }
  end
  return items
end

-- --attr NAME=AMOUNT (repeatable; amounts add up) and --style NAME -> shift options for the model's
-- vectors, checked against what the model offers.
local function shift_opts(opts, m)
  local attrs
  for _, a in ipairs(opts.attr or {}) do
    local name, v = a:match("^%s*([%w_]+)%s*=%s*(%S+)%s*$")
    local x = v and tonumber(v)
    if not name or not x or x ~= x or x == math.huge or x == -math.huge then
      usage_error("--attr %s: expected NAME=AMOUNT with a finite amount (e.g. density=+1)", a)
    end
    attrs = attrs or {}
    attrs[name] = (attrs[name] or 0) + x
  end
  if not attrs and not opts.style then return {} end
  if not m.vectors then
    fail("%s has no attribute or style vectors; musicvae attributes --model M --data DATA.mvd -o OUT.safetensors writes them",
      m.path)
  end
  local o = { attributes = attrs, style = opts.style }
  local ok, err = pcall(require("musicvae.attributes").offset, m, o)
  if not ok then usage_error("%s", (tostring(err):gsub("^.-:%d+: ", ""))) end
  return o
end

M.register {
  name = "sample",
  summary = "Generate new drum patterns from the model's prior.",
  usage = "sample [--model M] [-n 8] [--temperature 0.5] [--seed S] [--qpm 120] [--attr NAME=AMOUNT ...] [--style NAME] -o DIR [--kit FILE.lua] [--force]",
  options = { GEN_OPTIONS.model, GEN_OPTIONS.out,
    { name = "--n", short = "-n", arg = "N", type = "integer", help = "how many patterns (default 8)",
      check = function(v) return v >= 1 and v <= 10000, "must be 1-10000" end },
    GEN_OPTIONS.temperature, GEN_OPTIONS.seed,
    { name = "--qpm", arg = "QPM", type = "number", help = "tempo of the written files (default 120)",
      check = function(v) return v > 0 and v < 1000, "must be between 0 and 1000" end },
    GEN_OPTIONS.attr, GEN_OPTIONS.style, GEN_OPTIONS.kit, GEN_OPTIONS.force, GEN_OPTIONS.quiet, GEN_OPTIONS.wav,
    GEN_OPTIONS.soundfont },
  run = function(opts, _, out)
    if not opts.output then usage_error("sample: -o DIR is required") end
    local m = gen_model(opts)
    local sh = shift_opts(opts, m)
    local seed = pick_seed(opts, out)
    local t = opts.temperature or 0.5
    local pats, z = m:sample { n = opts.n or 8, temperature = t, seed = seed, qpm = opts.qpm or 120,
      attributes = sh.attributes, style = sh.style }
    write_outputs(opts, out, m, "sample", seed, t, pattern_items(pats, z))
    return 0
  end,
}

M.register {
  name = "reconstruct",
  summary = "Encode a MIDI file's windows of the model's bars and decode them again (every window, or --bar K).",
  usage = "reconstruct [--model M] IN.mid -o DIR [--bar K] [--temperature T] [--seed S] [--force]",
  min_args = 1, max_args = 1,
  options = { GEN_OPTIONS.enc_model, GEN_OPTIONS.out, GEN_OPTIONS.bar, GEN_OPTIONS.temperature, GEN_OPTIONS.seed,
    GEN_OPTIONS.kit, GEN_OPTIONS.force, GEN_OPTIONS.quiet, GEN_OPTIONS.drum_channel, GEN_OPTIONS.wav,
    GEN_OPTIONS.soundfont },
  run = function(opts, args, out)
    if not opts.output then usage_error("reconstruct: -o DIR is required") end
    local m = gen_model(opts, "reconstruct")
    local windows, qpm = input_windows(args[1], opts, m)
    if opts.bar then windows = { choose_window(args[1], windows, opts.bar, out) } end
    local t = opts.temperature or 0
    local seed = opts.seed or 0
    local pats = {}
    for i, w in ipairs(windows) do pats[i] = window_pattern(w, qpm) end
    local rec, mu = m:reconstruct(pats, { temperature = t, seed = seed, qpm = qpm })
    local items = pattern_items(rec, mu, function(i) return { source(args[1], windows[i]) } end)
    write_outputs(opts, out, m, "reconstruct", seed, t, items)
    return 0
  end,
}

M.register {
  name = "interpolate",
  summary = "Walk between two drum patterns in latent space (slerp between their mu's; --lerp for linear).",
  usage = "interpolate [--model M] A.mid B.mid [--steps 8] [--lerp] -o DIR [--bar K] [--temperature T] [--seed S]",
  min_args = 2, max_args = 2,
  options = { GEN_OPTIONS.enc_model, GEN_OPTIONS.out,
    { name = "--steps", arg = "N", type = "integer", help = "points including both ends (default 8)",
      check = function(v) return v >= 2 and v <= 1000, "must be 2-1000" end },
    { name = "--lerp", type = "flag", help = "linear instead of spherical interpolation" },
    GEN_OPTIONS.bar, GEN_OPTIONS.temperature, GEN_OPTIONS.seed, GEN_OPTIONS.kit, GEN_OPTIONS.force,
    GEN_OPTIONS.quiet, GEN_OPTIONS.drum_channel, GEN_OPTIONS.wav, GEN_OPTIONS.soundfont },
  run = function(opts, args, out)
    if not opts.output then usage_error("interpolate: -o DIR is required") end
    local P = require "musicvae.pattern"
    local m = gen_model(opts, "interpolate")
    local wa, qa = input_windows(args[1], opts, m)
    local wb = input_windows(args[2], opts, m)
    local a = choose_window(args[1], wa, opts.bar, out, true)
    local b = choose_window(args[2], wb, opts.bar, out, true)
    local t = opts.temperature or 0
    local seed = opts.seed or 0
    local pats, z = m:interpolate(window_pattern(a, qa), window_pattern(b, qa),
      { steps = opts.steps or 8, lerp = opts.lerp, temperature = t, seed = seed, qpm = qa })
    local inputs = { source(args[1], a), source(args[2], b) }
    local items, all, vel, off = pattern_items(pats, z, inputs), {}, {}, {}
    for _, p in ipairs(pats) do
      for s, l in ipairs(p.labels) do
        all[#all + 1] = l
        if p.velocities then vel[#all], off[#all] = p.velocities[s], p.offsets[s] end
      end
    end
    items[#items + 1] = { pattern = P.new { labels = all, qpm = qa, steps_per_bar = m.config.steps_per_bar,
      velocities = m.config.groove and vel or nil, offsets = m.config.groove and off or nil }, index = 0,
      suffix = "all", inputs = inputs, no_grid = true }
    write_outputs(opts, out, m, "interpolate", seed, t, items)
    return 0
  end,
}

M.register {
  name = "similar",
  summary = "Variations on a drum pattern: z = s * mu + (1 - s) * noise, as magenta.js.",
  usage = "similar [--model M] IN.mid [--similarity 0.8] [-n 4] -o DIR [--bar K] [--temperature T] [--seed S]",
  min_args = 1, max_args = 1,
  options = { GEN_OPTIONS.enc_model, GEN_OPTIONS.out,
    { name = "--similarity", arg = "S", type = "number", help = "0 (unrelated) to 1 (the input's mu); default 0.8",
      check = function(v) return v >= 0 and v <= 1, "must be in [0, 1]" end },
    { name = "--n", short = "-n", arg = "N", type = "integer", help = "how many (default 4)",
      check = function(v) return v >= 1 and v <= 10000, "must be 1-10000" end },
    GEN_OPTIONS.bar, GEN_OPTIONS.temperature, GEN_OPTIONS.seed, GEN_OPTIONS.kit, GEN_OPTIONS.force,
    GEN_OPTIONS.quiet, GEN_OPTIONS.drum_channel, GEN_OPTIONS.wav, GEN_OPTIONS.soundfont },
  run = function(opts, args, out)
    if not opts.output then usage_error("similar: -o DIR is required") end
    local m = gen_model(opts, "similar")
    local ws, q = input_windows(args[1], opts, m)
    local w = choose_window(args[1], ws, opts.bar, out, true)
    local seed = pick_seed(opts, out)
    local t = opts.temperature or 0.5
    local pats, z = m:similar(window_pattern(w, q),
      { similarity = opts.similarity or 0.8, n = opts.n or 4, temperature = t, seed = seed, qpm = q })
    write_outputs(opts, out, m, "similar", seed, t, pattern_items(pats, z, { source(args[1], w) }))
    return 0
  end,
}

M.register {
  name = "shift",
  summary = "Move a drum pattern along the model's attribute and style vectors (denser, more syncopated, funk...).",
  usage = "shift [--model M] IN.mid [--attr NAME=AMOUNT ...] [--style NAME] -o DIR [--bar K] [--temperature T] [--seed S]",
  details = "Encodes each 4-bar window of IN.mid (or the one at --bar K), adds AMOUNT times each named vector\n" ..
    "to its mu (amounts in units of the vector; +1 moves as far as from the least to the most of it) and\n" ..
    "decodes. musicvae attributes --list shows what a model offers.",
  min_args = 1, max_args = 1,
  options = { GEN_OPTIONS.enc_model, GEN_OPTIONS.out, GEN_OPTIONS.attr, GEN_OPTIONS.style, GEN_OPTIONS.bar,
    GEN_OPTIONS.temperature, GEN_OPTIONS.seed, GEN_OPTIONS.kit, GEN_OPTIONS.force, GEN_OPTIONS.quiet,
    GEN_OPTIONS.drum_channel, GEN_OPTIONS.wav, GEN_OPTIONS.soundfont },
  run = function(opts, args, out)
    if not opts.output then usage_error("shift: -o DIR is required") end
    if not opts.attr and not opts.style then usage_error("shift: give --attr NAME=AMOUNT or --style NAME") end
    local m = gen_model(opts, "shift")
    if m.config.groove then fail("%s is a groove model; shift needs a categorical model", m.path) end
    local sh = shift_opts(opts, m)
    local windows, qpm = input_windows(args[1], opts, m)
    if opts.bar then windows = { choose_window(args[1], windows, opts.bar, out) } end
    local t = opts.temperature or 0
    local seed = opts.seed or 0
    local pats = {}
    for i, w in ipairs(windows) do pats[i] = window_pattern(w, qpm) end
    local res, z = m:shift(pats, { attributes = sh.attributes, style = sh.style, temperature = t, seed = seed,
      qpm = qpm })
    write_outputs(opts, out, m, "shift", seed, t, pattern_items(res, z, function(i) return { source(args[1], windows[i]) } end))
    return 0
  end,
}

M.register {
  name = "attributes",
  summary = "Write a model's attribute and style vectors (or --list them).",
  usage = "attributes [--model M] --data DATA.mvd -o OUT.safetensors [--split train] [--force] | attributes [--model M] --list [--json]",
  details = "Encodes the split's windows; an attribute's vector is the mean mu of the top quartile minus that\n" ..
    "of the bottom quartile, a style's the mean mu of its windows minus that of all (styles come from\n" ..
    "prepare --info). OUT is a copy of the model with the vectors added; the weights are unchanged.",
  options = { GEN_OPTIONS.model,
    { name = "--data", arg = "DATA.mvd", help = "the dataset file (musicvae prepare --info for styles)" },
    { name = "--split", arg = "NAME", help = "split to compute the vectors on (default train)" },
    { name = "--output", short = "-o", arg = "OUT.safetensors", help = "the model file to write (never the input)" },
    { name = "--list", type = "flag", help = "print the vectors the model has" },
    { name = "--json", type = "flag", help = "with --list: one JSON object" },
    GEN_OPTIONS.force },
  run = function(opts, _, out)
    local A = require "musicvae.attributes"
    local core = require "musicvae.core"
    local m = M.load_model(opts.model)
    if opts.list then
      local v = m.vectors or { attributes = {}, styles = {}, info = {} }
      local attrs, styles = A.sorted_keys(v.attributes), A.sorted_keys(v.styles)
      if opts.json then
        out:write(json.encode(json.ordered { { "model", m.path }, { "attributes", json.array(attrs) },
          { "styles", json.array(styles) }, { "info", v.info } }), "\n")
        return 0
      end
      out:write(("%s\n"):format(m.path))
      out:write(("attributes: %s\n"):format(#attrs > 0 and table.concat(attrs, ", ") or "none"))
      out:write(("styles: %s\n"):format(#styles > 0 and table.concat(styles, ", ") or "none"))
      if v.info.windows then
        out:write(("computed on %s (%d windows)\n"):format(tostring(v.info.source), v.info.windows))
      end
      return 0
    end
    if not opts.data then usage_error("attributes: give --data DATA.mvd (or --list)") end
    if not opts.output then usage_error("attributes: -o OUT.safetensors is required") end
    if m.config.groove then fail("%s is a groove model; attribute vectors need a categorical model", m.path) end
    if core.isfile(opts.output) and not opts.force then fail("%s exists; use --force to overwrite", opts.output) end
    local Data = require "musicvae.data"
    local ds, err = Data.load(opts.data)
    if not ds then fail("%s", err) end
    local split = opts.split or "train"
    if not ds.splits[split] or ds:size(split) == 0 then fail("%s has no '%s' windows", opts.data, split) end
    if ds.bars ~= m.config.bars then
      fail("%s has %d-bar windows, the model %d", opts.data, ds.bars or 0, m.config.bars)
    end
    local styles = ds:styles(split)
    local ok, vec = pcall(A.compute, m, ds.splits[split].labels, { styles = styles,
      source = ("%s (%s split)"):format(opts.data:match("[^/]*$"), split) })
    if not ok then fail("%s", (tostring(vec):gsub("^.-:%d+: ", ""))) end
    local wok, werr = A.write(m.path, opts.output, vec)
    if not wok then fail("%s", werr) end
    out:write(("%s: %d attribute vectors (%s), %d style vectors (%s) from %d windows\n"):format(opts.output,
      #vec.info.attributes, table.concat(vec.info.attributes, ", "), #vec.info.styles,
      #vec.info.styles > 0 and table.concat(vec.info.styles, ", ") or (styles and "none" or "the dataset has no styles"),
      vec.info.windows))
    return 0
  end,
}

M.register {
  name = "humanize",
  summary = "Give a drum pattern a drummer's velocities and timing with a groove model (GrooVAE's humanize).",
  usage = "humanize IN.mid -o OUT.mid|DIR [--model gmd-4bar-humanize] [--bar K] [--kit FILE.lua] [--force]",
  details = "The hits stay exactly as they are; the model predicts each hit's velocity and its offset from\n" ..
    "the grid. The written file keeps the input's tempo. -o OUT.mid writes that file (and OUT.json);\n" ..
    "-o DIR writes DIR/humanize-s0-t0-001.mid as the other commands. The model defaults to\n" ..
    "gmd-4bar-humanize (not $MUSICVAE_MODEL, which names a categorical model as a rule).",
  min_args = 1, max_args = 1,
  options = { { name = "--model", arg = "PATH|NAME", help = "groove model file or name (default gmd-4bar-humanize)" },
    GEN_OPTIONS.out_file, GEN_OPTIONS.bar, GEN_OPTIONS.kit, GEN_OPTIONS.force, GEN_OPTIONS.quiet, GEN_OPTIONS.drum_channel,
    GEN_OPTIONS.wav, GEN_OPTIONS.soundfont },
  run = function(opts, args, out)
    if not opts.output then usage_error("humanize: -o OUT.mid is required") end
    local m = gen_model { model = opts.model or "gmd-4bar-humanize" }
    if not m.config.groove then
      fail("%s is a categorical model; humanize needs a groove model (--model gmd-4bar-humanize)", m.path)
    end
    local ws, qpm = input_windows(args[1], opts, m)
    local w = choose_window(args[1], ws, opts.bar, out, true)
    local p = m:humanize(window_pattern(w, qpm), { qpm = qpm })
    write_one(opts, out, m, "humanize", 0, 0, p, args[1], w)
    return 0
  end,
}

M.register {
  name = "tap",
  summary = "Drums for a tapped rhythm with a tap model (GrooVAE's tap2drum).",
  usage = "tap IN.mid -o OUT.mid|DIR [--model PATH|NAME] [--temperature T] [--seed S] [--bar K] [--force]",
  details = "Every note of the input, on any channel and pitch, is a tap; the loudest note of a 16th gives its\n" ..
    "timing. The model (trained with musicvae train --config tap; default name gmd-4bar-tap) turns the\n" ..
    "rhythm into a 4-bar drum pattern with velocities and micro-timing. The written file keeps the\n" ..
    "input's tempo. --drum-channel N reads only that channel.",
  min_args = 1, max_args = 1,
  options = { { name = "--model", arg = "PATH|NAME", help = "tap model file or name (default gmd-4bar-tap)" },
    GEN_OPTIONS.out_file, GEN_OPTIONS.temperature, GEN_OPTIONS.seed, GEN_OPTIONS.bar, GEN_OPTIONS.kit,
    GEN_OPTIONS.force, GEN_OPTIONS.quiet, { name = "--drum-channel", arg = "N|all", help = "MIDI channel holding the taps (default all)" },
    GEN_OPTIONS.wav, GEN_OPTIONS.soundfont },
  run = function(opts, args, out)
    if not opts.output then usage_error("tap: -o OUT.mid is required") end
    local spec = opts.model or "gmd-4bar-tap"
    if not opts.model and not require("musicvae.models").resolve(spec) then
      fail("no tap model named %s is installed; train one (musicvae prepare DIR --groove -o groove.mvd, then " ..
        "musicvae train --data groove.mvd --config tap --out runs/tap) and pass --model", spec)
    end
    local m = gen_model { model = spec }
    if m.config.mode ~= "tap" then
      fail("%s is not a tap model (mode %s); tap needs one trained with --config tap", m.path,
        tostring(m.config.mode or "categorical"))
    end
    local D = require "musicvae.drums"
    local ws, qpm = input_windows(args[1], { drum_channel = opts.drum_channel or "all", map = D.tap_map() }, m)
    local w = choose_window(args[1], ws, opts.bar, out, true)
    local t = opts.temperature or 0
    local seed = t > 0 and pick_seed(opts, out) or (opts.seed or 0)
    local p = m:tap(window_pattern(w, qpm), { temperature = t, seed = seed, qpm = qpm })
    write_one(opts, out, m, "tap", seed, t, p, args[1], w)
    return 0
  end,
}

M.register {
  name = "show",
  summary = "Print a MIDI file's drum grid (rows = instruments, columns = steps, bar lines); --svg draws it.",
  usage = "show FILE.mid [--svg OUT.svg] [--title TEXT] [--drum-channel N|all]",
  min_args = 1, max_args = 1,
  options = { { name = "--svg", arg = "OUT.svg", help = "also draw the grid as an SVG file" },
    { name = "--title", arg = "TEXT", help = "the SVG's title (default: the file name)" }, GEN_OPTIONS.drum_channel },
  run = function(opts, args, out)
    local midi = require "musicvae.midi"
    local P_ = require "musicvae.pattern"
    local p, err = midi.groove(args[1], { drum_channel = drum_channel_opt(opts.drum_channel) })
    if not p then fail("%s", err) end
    out:write(("%s: %d bars, %.6g qpm\n"):format(args[1], p.bars, p.qpm), tostring(p), "\n")
    local soft, loud, early, late = 0, 0, 0, 0
    for st, row in pairs(p.velocities or {}) do
      for c, v in pairs(row) do
        if v < P_.SOFT then soft = soft + 1 elseif v >= P_.LOUD then loud = loud + 1 end
        local o = p.offsets[st] and p.offsets[st][c] or 0
        if o >= 0.125 then early = early + 1 elseif o <= -0.125 then late = late + 1 end
      end
    end
    if soft + loud + early + late > 0 then
      out:write(("o soft (velocity < %d): %d, X loud (>= %d): %d; early by 1/8 step or more: %d, late: %d\n"):format(
        P_.SOFT, soft, P_.LOUD, loud, early, late))
    end
    if opts.svg then
      local core = require "musicvae.core"
      local ok, werr = core.write_atomic(opts.svg, require("musicvae.svg").grid(p, opts.title or args[1]))
      if not ok then fail("%s", werr) end
      out:write("wrote ", opts.svg, "\n")
    end
    return 0
  end,
}

M.register {
  name = "plot",
  summary = "Draw a training log (runs/NAME/log.csv) as SVG curves: loss, KL, beta, p, lr, validation accuracy.",
  usage = "plot runs/NAME/log.csv -o curves.svg",
  min_args = 1, max_args = 1,
  options = { GEN_OPTIONS.out },
  run = function(opts, args, out)
    if not opts.output then usage_error("plot: -o OUT.svg is required") end
    local f = io.open(args[1], "r")
    if not f then fail("%s: cannot open", args[1]) end
    local header = f:read("l")
    local names = {}
    for n in (header or ""):gmatch("[^,]+") do names[#names + 1] = n end
    if names[1] ~= "step" then
      f:close()
      fail("%s: not a musicvae training log (no step column)", args[1])
    end
    local cols = {}
    for _, n in ipairs(names) do cols[n] = {} end
    local row = 0
    for line in f:lines() do
      row = row + 1
      local i = 0
      for field in (line .. ","):gmatch("([^,]*),") do
        i = i + 1
        if names[i] then cols[names[i]][row] = tonumber(field) end
      end
    end
    f:close()
    local svg = require("musicvae.svg").curves(cols, {
      { "loss (train, val)", { "loss", "val_loss" } }, { "reconstruction (nats)", { "recon" } },
      { "KL (nats)", { "kl" } }, { "beta and sampling p", { "beta", "p_sample" } },
      { "learning rate", { "lr" } }, { "validation accuracy", { "val_tf_accuracy", "val_sampled_accuracy" } },
    }, args[1])
    local ok, err = require("musicvae.core").write_atomic(opts.output, svg)
    if not ok then fail("%s", err) end
    out:write("wrote ", opts.output, "\n")
    return 0
  end,
}

require("musicvae.cli_audio").install(M)
require("musicvae.convert").install(M)

local function main_help(out)
  out:write("usage: musicvae <command> [options]\n\n")
  out:write("MusicVAE drum patterns from Lua and the shell.\n\ncommands:\n")
  for _, name in ipairs(order) do
    -- the first sentence (a period that ends one is followed by a space or the end, so
    -- "log.csv" and "magenta.js" stay whole)
    local summary = commands[name].summary
    out:write(("  %-12s %s\n"):format(name, summary:match("^(.-)%.%s") or summary:gsub("%.$", "")))
  end
  out:write("\nglobal options: --help, --version, --debug (tracebacks on errors)\n")
  out:write("Run 'musicvae <command> --help' for a command's options.\n")
end

--- M.main(argv[, out, err]) -> exit status. Never raises.
function M.main(argv, out, errout)
  out, errout = out or io.stdout, errout or io.stderr
  local args, want_trace = {}, false
  for i = 1, #argv do
    if argv[i] == "--debug" then want_trace = true else args[#args + 1] = argv[i] end
  end
  local function run()
    local first = args[1]
    if first == nil then
      main_help(errout)
      return 2
    end
    if first == "--help" or first == "-h" or first == "help" then
      main_help(out)
      return 0
    end
    if first == "--version" then
      out:write("musicvae ", mv._VERSION, "\n")
      return 0
    end
    local cmd = commands[first]
    if not cmd then usage_error("unknown command '%s' (run 'musicvae --help' for the list)", first) end
    local rest = table.move(args, 2, #args, 1, {})
    for _, a in ipairs(rest) do
      if a == "--help" or a == "-h" then
        out:write(help_text(cmd))
        return 0
      end
    end
    local opts, pos = parse_args(cmd, rest)
    return cmd.run(opts, pos, out, errout) or 0
  end
  local ok, res = xpcall(run, function(e)
    if getmetatable(e) == UsageError then return e end
    return { msg = tostring(e), status = 1, trace = want_trace and debug.traceback(tostring(e), 2) or nil }
  end)
  if ok then return res end
  if getmetatable(res) == UsageError then
    errout:write("musicvae: ", res.msg, "\n")
    return res.status
  end
  if res.trace then
    errout:write(res.trace, "\n")
  else
    errout:write("musicvae: ", (tostring(res.msg):gsub("\n.*", "")), "\n")
  end
  return 1
end

return M
