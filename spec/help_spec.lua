-- musicvae --help: each command's summary line is its whole first sentence.
local H = require "spec.helpers"

describe("musicvae --help", function()
  it("shows every command's first sentence whole (no cut at a period inside a name)", function()
    local out, err, code = H.cli("--help")
    assert.equal(0, code, err)
    assert.matches("logging to runs/NAME/log%.csv and writing checkpoints there\n", out)
    assert.matches("%(runs/NAME/log%.csv%) as SVG curves", out)
    assert.matches("as magenta%.js\n", out)
    for line in out:gmatch("\n  (%l+ +[^\n]+)") do
      local _, open = line:gsub("%(", "")
      local _, close = line:gsub("%)", "")
      assert.equal(open, close, line)
    end
  end)
end)
