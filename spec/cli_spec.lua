local H = require "spec.helpers"
local json = require "musicvae.json"

describe("the musicvae command", function()
  it("prints its version and help", function()
    local out, err, code = H.cli("--version")
    assert.equal(0, code, err)
    assert.matches("^musicvae %d+%.%d+%.%d+\n$", out)
    out, _, code = H.cli("--help")
    assert.equal(0, code)
    assert.matches("usage: musicvae <command>", out)
    assert.matches("doctor", out)
    out, _, code = H.cli("doctor --help")
    assert.equal(0, code)
    assert.matches("usage: musicvae doctor", out)
    assert.matches("%-%-json", out)
  end)

  it("doctor reports the BLAS kernel and a measured SGEMM rate", function()
    local out, err, code = H.cli("doctor --json --size 128 --seconds 0.2")
    assert.equal(0, code, err)
    local r = assert(json.decode(out))
    assert.equal("Lua 5.4", r.lua)
    assert.is_string(r.blas_core)
    assert.is_string(r.blas_how)
    assert.is_true(r.threads >= 1)
    assert.is_true(r.sgemm_gflops > 0)
    assert.equal(128, r.sgemm_n)
    out, err, code = H.cli("doctor --size 64 --seconds 0.1 --threads 1")
    assert.equal(0, code, err)
    assert.matches("BLAS core", out)
    assert.matches("threads     1", out)
    assert.matches("GFLOP/s", out)
  end)

  it("gives one line and status 2 for usage errors, never a traceback", function()
    for _, args in ipairs { "", "nosuchcommand", "doctor --bogus", "doctor --size", "doctor --size abc",
      "doctor --size 3", "doctor extra" } do
      local out, err, code = H.cli(args)
      assert.equal(2, code, "args: " .. args)
      assert.matches("^musicvae: [^\n]+\n$", (err:gsub("^usage:.*", "musicvae: usage\n")), "args: " .. args)
      assert.is_nil((err:find("stack traceback", 1, true)), "args: " .. args)
      assert.equal("", out, "args: " .. args)
    end
  end)

  it("explains a missing module in one line", function()
    -- from a checkout, the in-tree fallback finds lua/ and build/ whatever the paths say (";;" keeps
    -- the system's own paths, where Debian's lua-cjson lives)
    local out, err, code = H.run("cd /tmp && LUA_CPATH='/nonexistent/?.so;;' LUA_PATH='/nonexistent/?.lua;;' lua5.4 " ..
      H.shell_quote(H.root .. "/bin/musicvae") .. " --version")
    assert.equal(0, code, err)
    assert.matches("%d+%.%d+%.%d+", out)
    -- a copy of the script whose root has lua/ but no build/: the C module is missing
    local root = H.tmpdir()
    assert(os.execute("mkdir -p " .. H.shell_quote(root .. "/bin") .. " && cp " ..
      H.shell_quote(H.root .. "/bin/musicvae") .. " " .. H.shell_quote(root .. "/bin/") .. " && ln -s " ..
      H.shell_quote(H.root .. "/lua") .. " " .. H.shell_quote(root .. "/lua")))
    -- and a copy with neither: the Lua module is missing too
    local bare = H.tmpdir()
    assert(os.execute("cp " .. H.shell_quote(H.root .. "/bin/musicvae") .. " " .. H.shell_quote(bare .. "/")))
    for script, missing in pairs { [root .. "/bin/musicvae"] = "musicvae%.core", [bare .. "/musicvae"] = "musicvae%.cli" } do
      out, err, code = H.run("cd /tmp && LUA_CPATH='/nonexistent/?.so;;' LUA_PATH='/nonexistent/?.lua;;' lua5.4 " ..
        H.shell_quote(script) .. " --version")
      assert.equal(1, code, script .. ": " .. err)
      assert.equal("", out)
      assert.matches("^musicvae: cannot load the musicvae module %(run the setup command first%): [^\n]+\n$", err)
      assert.is_nil((err:find("stack traceback", 1, true)))
      assert.matches(missing, err)
    end
    H.rmtree(root)
    H.rmtree(bare)
  end)
end)
