-- Issue 16: hostile input gives the right answer or a one-line error, with bounded work.
-- The inputs are generated (tools/hostile_cases.lua); each runs in a child process under a
-- generous hang timeout, which also reports the child's peak memory (VmHWM).
local H = require "spec.helpers"
local C = dofile(H.root .. "/tools/hostile_cases.lua")

local HANG = 120 -- seconds: a hang guard, not a timing assertion (timings go to bench/hostile.lua)

-- Runs Lua code in a child with the tier's build; the code's stdout, stderr, exit status and
-- the peak resident memory in MB (appended by the child).
local function child(code)
  local f = os.tmpname()
  H.writefile(f, code .. [[

local s = io.open("/proc/self/status"):read("a")
io.stderr:write("\nVmHWM_MB ", (tonumber(s:match("VmHWM:%s*(%d+)")) or 0) // 1024, "\n")
]])
  local env = {
    LUA_CPATH = H.root .. "/" .. H.build_dir() .. "/?.so;;",
    LUA_PATH = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;",
  }
  local out, err, code_ = H.run(("cd %s && timeout %d lua5.4 %s"):format(H.shell_quote(H.root), HANG, H.shell_quote(f)),
    env)
  os.remove(f)
  local mb = tonumber(err:match("VmHWM_MB (%d+)"))
  err = err:gsub("\nVmHWM_MB %d+\n$", "")
  assert.are_not.equal(124, code_, "hung (over " .. HANG .. " s)")
  return out, err, code_, mb
end

local function with_file(bytes, ext, fn)
  local dir = H.tmpdir()
  local p = dir .. "/case" .. ext
  H.writefile(p, bytes)
  local ok, e = pcall(fn, p)
  H.rmtree(dir)
  if not ok then error(e, 0) end
end

describe("MIDI: the quantized step count is bounded", function()
  local core = require "musicvae.core"
  local limit = core.MAX_STEPS

  it("exposes its documented limit", function()
    assert.equal(131072, limit)
  end)

  it("refuses the issue's 37-byte file (one note, a 2^25-tick delta) before allocating per step", function()
    local bytes = C.midi.huge_delta()
    assert.equal(37, #bytes)
    with_file(bytes, ".mid", function(p)
      for _, cmd in ipairs { "labels --json", "show" } do
        local out, err, code = H.cli(cmd .. " " .. H.shell_quote(p))
        assert.equal(1, code, cmd)
        assert.equal("", out, cmd)
        assert.truthy(err:match("^musicvae: [^\n]*limit is 131072 steps[^\n]*\n$"), cmd .. ": " .. err)
      end
      local _, err, code, mb = child(([[
        local mv = require "musicvae"
        local l, e = mv.midi.labels(%q)
        assert(l == nil and e:find("limit", 1, true), e)
        local p, e2 = mv.midi.groove(%q)
        assert(p == nil and e2:find("limit", 1, true), e2)
        local w = require("musicvae.data").file_windows(%q, {})
        assert(w.drop == "too long" and #w.windows == 0, w.drop)
      ]]):format(p, p, p))
      assert.equal(0, code, err)
      assert.is_true(mb < 300, mb .. " MB")
    end)
  end)

  it("reads a file exactly at the limit and refuses one step more", function()
    with_file(C.midi.at_step_limit(limit), ".mid", function(p)
      local mv = require "musicvae"
      local r = assert(mv.midi.labels(p))
      assert.equal(limit, r.steps)
      assert.equal(limit, #r.labels)
    end)
    with_file(C.midi.past_step_limit(limit), ".mid", function(p)
      local mv = require "musicvae"
      local r, err = mv.midi.labels(p)
      assert.is_nil(r)
      assert.truthy(err:find(("span %d steps"):format(limit + 1), 1, true), err)
    end)
  end)

  it("splits 50k alternating tempo changes without quadratic work", function()
    with_file(C.midi.many_tempos(50000), ".mid", function(p)
      local _, err, code, mb = child(([[
        local w = require("musicvae.data").file_windows(%q, {})
        assert(w.drop, "50k one-step pieces give no window")
      ]]):format(p))
      assert.equal(0, code, err)
      assert.is_true(mb < 300, mb .. " MB")
    end)
  end)
end)
