-- scripts/test itself, on a throwaway tree: a stub ctest directory and stub spec files that pass,
-- hang, crash or skip, so the runner's counting, per-file timeout and failure reports are checked.
local H = require "spec.helpers"

describe("scripts/test", function()
  local root
  before_each(function()
    root = H.tmpdir()
    assert(os.execute("mkdir -p " .. H.shell_quote(root .. "/scripts") .. " " .. H.shell_quote(root .. "/spec") ..
      " " .. H.shell_quote(root .. "/build/musicvae") .. " && cp " .. H.shell_quote(H.root .. "/scripts/test") .. " " ..
      H.shell_quote(root .. "/scripts/") .. " && cp " .. H.shell_quote(H.root .. "/.busted") .. " " ..
      H.shell_quote(root .. "/") .. " && touch " .. H.shell_quote(root .. "/build/musicvae/core.so")))
  end)
  after_each(function() H.rmtree(root) end)

  local function ctest_file(tests)
    local lines = {}
    for name, cmd in pairs(tests) do lines[#lines + 1] = ("add_test(%s \"sh\" \"-c\" %q)"):format(name, cmd) end
    H.writefile(root .. "/build/CTestTestfile.cmake", table.concat(lines, "\n") .. "\n")
  end

  local function spec(name, body)
    H.writefile(root .. "/spec/" .. name .. "_spec.lua", ("describe(%q, function() %s end)\n"):format(name, body))
  end

  local function run()
    local out, err, code = H.run("cd / && env -u MV_COUNTS_FILE -u MVT_SKIP_FILE MV_SPEC_TIMEOUT=3 " ..
      H.shell_quote(root .. "/scripts/test"))
    return out, err, code
  end

  it("counts passes, skips with their reasons and C skips, and succeeds", function()
    ctest_file { ok = "true", cpu = 'echo "test_x.c: kernel avx512: not supported on this CPU" >> "$MVT_SKIP_FILE"' }
    spec("a", 'it("passes", function() assert.is_true(true) end) it("skips", function() pending("no node") end)')
    local out, err, code = run()
    assert.equal(0, code, out .. err)
    assert.matches("skip: test_x.c: kernel avx512: not supported on this CPU", out, 1, true)
    assert.matches("fast: 3 passed, 0 failed, 2 skipped\n$", out)
  end)

  it("fails a hung spec file by its timeout and a crashed one by name, and runs the others", function()
    ctest_file { ok = "true" }
    spec("a_hang", 'it("hangs", function() while true do end end)')
    spec("b_crash", 'it("crashes", function() os.exit(3) end)')
    spec("c_fine", 'it("passes", function() end)')
    local out, err, code = run()
    assert.is_true(code ~= 0)
    assert.matches("spec/a_hang_spec.lua timed out after 3s", err, 1, true)
    assert.matches("spec/b_crash_spec.lua crashed (exit status ", err, 1, true)
    assert.matches("did not run to the end: spec/a_hang_spec.lua spec/b_crash_spec.lua", err, 1, true)
    assert.matches("fast: 2 passed, 2 failed, 0 skipped\n$", out)
  end)

  it("fails a tier that runs no tests", function()
    ctest_file {}
    local out, err, code = run()
    assert.is_true(code ~= 0)
    assert.matches("ctest ran no tests", err, 1, true)
    assert.matches("busted ran no tests", err, 1, true)
    assert.matches("fast: 0 passed, [1-9]%d* failed", out)
  end)
end)
