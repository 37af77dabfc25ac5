-- Data-parallel training over MPI (mpirun -np 2 on one machine).
local mv = require "musicvae"
local H = require "spec.helpers"

local MPI_ENV = { OMPI_ALLOW_RUN_AS_ROOT = "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = "1", OMPI_MCA_btl_vader_single_copy_mechanism = "none",
  OMPI_MCA_rmaps_base_oversubscribe = "1" }

-- The environment of an MPI child: Open MPI as root in a container, and the tier's build on the paths.
local function mpi_env(extra)
  local env = {}
  for k, v in pairs(MPI_ENV) do env[k] = v end
  env.LUA_CPATH = H.root .. "/" .. H.build_dir() .. "/?.so;;"
  env.LUA_PATH = H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"
  for k, v in pairs(extra or {}) do env[k] = v end
  return env
end

local function mpi_missing()
  if not H.have("mpirun") then return "mpirun is not installed (openmpi-bin)" end
  local f = io.open(H.root .. "/" .. H.build_dir() .. "/musicvae/dist.so")
  if not f then return "musicvae.dist was not built (libopenmpi-dev)" end
  f:close()
end

local function synthetic(path)
  local r = mv.rng(3, "synthetic")
  local function rows(n)
    local t = {}
    for i = 1, n do
      local row, a, b = {}, r:integer(0, 511), r:integer(0, 511)
      for s = 1, 64 do row[s] = (s % 4 == 1) and a or ((s % 2 == 0) and b or 0) end
      t[i] = row
    end
    return t
  end
  assert(mv.data.save(path, { train = { labels = rows(256) }, validation = { labels = rows(32) } }, {}))
end

local function max_diff(pa, pb)
  local a = assert(mv.safetensors.load(pa))
  local b = assert(mv.safetensors.load(pb))
  local worst = 0
  for k, t in pairs(a) do
    local d = t:sub(b[k]):view(-1)
    for i = 1, d:numel() do worst = math.max(worst, math.abs(d:get(i))) end
  end
  return worst
end

describe("distributed training #full", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  local function train(args, np)
    local cmd = "lua5.4 " .. H.shell_quote(H.root .. "/bin/musicvae") .. " train --config tiny --set batch_size=64 " ..
      "--val-every 0 " .. args
    if np then cmd = ("timeout 300 mpirun -np %d %s --dist"):format(np, cmd) end
    return H.run(cmd, mpi_env { OPENBLAS_NUM_THREADS = "1" })
  end

  it("2 ranks x batch 32 end with the parameters of 1 rank x batch 64 (max |diff| <= 1e-5)", function()
    local why = mpi_missing()
    if why then return pending(why) end
    local data = dir .. "/syn.mvd"
    synthetic(data)
    local out, err, code = train("--data " .. data .. " --out " .. dir .. "/one --steps 10")
    assert.equal(0, code, err)
    out, err, code = train("--data " .. data .. " --out " .. dir .. "/two --steps 10", 2)
    assert.equal(0, code, out .. err)
    assert.matches("on 2 ranks", out)
    assert.matches("allreduce payload", out)
    local d = max_diff(dir .. "/one/ckpt-00000010.safetensors", dir .. "/two/ckpt-00000010.safetensors")
    assert.is_true(d <= 1e-5, "max difference " .. d)
    -- resume the 2-rank run on 1 rank, and a 1-rank run on 2 ranks
    out, err, code = train("--resume --out " .. dir .. "/two --steps 5")
    assert.equal(0, code, err)
    out, err, code = train("--data " .. data .. " --out " .. dir .. "/one2 --steps 15")
    assert.equal(0, code, err)
    d = max_diff(dir .. "/two/ckpt-00000015.safetensors", dir .. "/one2/ckpt-00000015.safetensors")
    assert.is_true(d <= 1e-5, "after resuming on another rank count: " .. d)
    out, err, code = train("--resume --out " .. dir .. "/one --steps 5", 2)
    assert.equal(0, code, out .. err)
    d = max_diff(dir .. "/one/ckpt-00000015.safetensors", dir .. "/one2/ckpt-00000015.safetensors")
    assert.is_true(d <= 1e-5, "1 -> 2 ranks: " .. d)
  end)

  it("keeps the parameters identical on every rank and refuses an uneven split", function()
    local why = mpi_missing()
    if why then return pending(why) end
    local data = dir .. "/syn.mvd"
    synthetic(data)
    local script = dir .. "/ranks.lua"
    H.writefile(script, ([[
      local mv = require "musicvae"
      local dist = require "musicvae.dist"
      local T = require "musicvae.train"
      dist.init()
      local tr = assert(T.new { data = %q, config = "tiny", set = { batch_size = 64 }, out = %q, dist = dist })
      assert(tr:run { steps = 6, val_every = 0 })
      io.write("rank ", dist.rank(), " ", mv.core.sha256(tr.model.vae:flat():tobytes()), "\n")
      dist.finalize()
    ]]):format(data, dir .. "/r"))
    local out, err, code = H.run("timeout 300 mpirun -np 2 lua5.4 " .. H.shell_quote(script), mpi_env())
    assert.equal(0, code, err)
    local h0 = out:match("rank 0 (%x+)")
    local h1 = out:match("rank 1 (%x+)")
    assert.is_string(h0, out)
    assert.equal(h0, h1)
    out, err, code = train("--data " .. data .. " --out " .. dir .. "/odd --steps 2 --set batch_size=63", 2)
    assert.are_not.equal(0, code)
    assert.matches("does not split into 2 equal parts", err)
  end)

  it("fails with a clear message, not a hang, when a rank dies", function()
    local why = mpi_missing()
    if why then return pending(why) end
    local data = dir .. "/syn.mvd"
    synthetic(data)
    local script = dir .. "/die.lua"
    H.writefile(script, ([[
      local dist = require "musicvae.dist"
      local T = require "musicvae.train"
      dist.init()
      local tr = assert(T.new { data = %q, config = "tiny", set = { batch_size = 64 }, out = %q, dist = dist })
      tr:run { steps = 1000, val_every = 0, interrupt = function()
        if dist.rank() == 1 and tr.step == 3 then os.exit(7) end
        return false
      end }
    ]]):format(data, dir .. "/d"))
    local t0 = mv.clock()
    local out, err, code = H.run("timeout 120 mpirun -np 2 lua5.4 " .. H.shell_quote(script), mpi_env())
    local took = mv.clock() - t0
    assert.are_not.equal(0, code)
    assert.is_true(took < 100, "took " .. took .. " s")
    assert.matches("exit", (out .. err):lower())
  end)
end)
