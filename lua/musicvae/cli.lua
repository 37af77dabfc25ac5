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
      sgemm_n = n,
      sgemm_gflops = math.floor(gflops * 10 + 0.5) / 10,
    }
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
    out:write(("  threads     %d\n"):format(info.threads))
    out:write(("  SGEMM       %.1f GFLOP/s (%dx%dx%d, %d threads, median of 5)\n"):format(gflops, n, n, n,
      info.threads))
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
  usage = "prepare DIR -o DATA.mvd [--info info.csv] [--max-per-file N] [--bars N] [--max-bars N] [--map NAME] [--drum-channel N|all] [--force]",
  details = "Every distinct window of every drum track is kept unless --max-per-file caps it (evenly spaced).\n" ..
    "Without --info, files are split 80/10/10 by a hash of their path. A list of dropped files\n" ..
    "and why is written beside the dataset (DATA.mvd.drops.tsv).",
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
      map = map_opt(opts.map), drum_channel = drum_channel_opt(opts.drum_channel),
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
    if report.steps_truncated > 0 then
      out:write(("steps cut by --max-bars: %d\n"):format(report.steps_truncated))
    end
    out:write(("wrote %s (drop list: %s)\n"):format(opts.output, report.drops_path))
    return 0
  end,
}

local function main_help(out)
  out:write("usage: musicvae <command> [options]\n\n")
  out:write("MusicVAE drum patterns from Lua and the shell.\n\ncommands:\n")
  for _, name in ipairs(order) do
    out:write(("  %-12s %s\n"):format(name, commands[name].summary:match("^[^.]*")))
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
