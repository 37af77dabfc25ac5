local H = require "spec.helpers"

-- #full: builds the rock (a couple of seconds), so it runs in the full tier.
describe("luarocks installation #full", function()
  it("installs module, CLI and models into a fresh tree that works from any folder", function()
    if not H.have("luarocks") then
      pending("luarocks is not installed")
      return
    end
    local tree = H.tmpdir()
    local out, err, code = H.run("cd " .. H.shell_quote(H.root) .. " && luarocks --lua-version 5.4 --tree " ..
      H.shell_quote(tree) .. " make rockspec/musicvae-scm-1.rockspec", { LD_PRELOAD = "" })
    assert.equal(0, code, out .. err)
    -- the installed CLI, from an unrelated folder, without the checkout on any path (";;": Lua's
    -- default paths only, where Debian's lua-cjson is)
    out, err, code = H.run("cd / && " .. H.shell_quote(tree .. "/bin/musicvae") ..
      " doctor --json --size 64 --seconds 0.05", { LD_PRELOAD = "", LUA_PATH = ";;", LUA_CPATH = ";;" })
    assert.equal(0, code, err)
    assert.matches('"module":"' .. tree:gsub("%p", "%%%0") .. "/lib/lua/5.4/musicvae/core.so", out)
    -- require "musicvae" with the tree's paths
    local paths = H.run("luarocks --lua-version 5.4 --tree " .. H.shell_quote(tree) .. " path --lr-path"):gsub("\n", "")
    local cpaths = H.run("luarocks --lua-version 5.4 --tree " .. H.shell_quote(tree) .. " path --lr-cpath"):gsub("\n", "")
    out, err, code = H.run("cd / && lua5.4 -e " .. H.shell_quote(
      'local mv = require "musicvae"; local t = mv.tensor{{1,2},{3,4}}; ' ..
      'io.write(mv._VERSION, " ", t:matmul(t):sum(), " ", package.searchpath("musicvae", package.path))'),
      { LD_PRELOAD = "", LUA_PATH = paths .. ";;", LUA_CPATH = cpaths .. ";;" })
    assert.equal(0, code, err)
    assert.matches("^%d+%.%d+%.%d+ 54%.?0? " .. tree:gsub("%p", "%%%0"), out)
    -- the shipped model is installed and is the default of the installed CLI
    local f = io.open(H.root .. "/models/gmd-4bar-small.safetensors", "rb")
    if f then
      f:close()
      local gen = H.tmpdir()
      out, err, code = H.run("cd / && " .. H.shell_quote(tree .. "/bin/musicvae") .. " sample -n 1 --seed 1 -o " ..
        H.shell_quote(gen), { LD_PRELOAD = "", LUA_PATH = ";;", LUA_CPATH = ";;" })
      assert.equal(0, code, err)
      assert.matches("BD |", out)
      H.rmtree(gen)
    end
    H.rmtree(tree)
  end)
end)
