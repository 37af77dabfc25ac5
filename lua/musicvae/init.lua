--- musicvae: MusicVAE for 4-bar drum patterns, a C core with a Lua 5.4 API.
-- `local mv = require "musicvae"` returns this table and sets no globals.
local core = require "musicvae.core"

local M = {}

M._VERSION = core._VERSION
M.core = core

-- Tensors (see docs/api.md): constructors, the method table and GEMM.
for _, name in ipairs {
  "zeros", "ones", "full", "tensor", "frombytes", "randn", "rand", "gemm", "istensor", "Tensor",
} do
  M[name] = core[name]
end

--- mv.matmul(a, b[, {ta = bool, tb = bool}]) -> new tensor op(a) * op(b).
function M.matmul(a, b, opts)
  return a:matmul(b, opts)
end

--- mv.rng(seed[, purpose[, index]]) -> an explicit random stream.
-- Every (seed, purpose, index) is its own stream; the same on every machine.
M.rng = core.rng

--- mv.blas_info() -> {core, how, library, config, threads, cpu_avx2, cpu_avx512}
M.blas_info = core.blas_info
--- mv.set_num_threads(n): BLAS threads for every later call (1 = no threads).
M.set_num_threads = core.set_num_threads
M.get_num_threads = core.get_num_threads
--- mv.clock() -> monotonic wall-clock seconds.
M.clock = core.clock

M.safetensors = require "musicvae.safetensors"
M.drums = require "musicvae.drums"
M.Pattern = require "musicvae.pattern"
--- mv.pattern{labels = {...}, qpm = 120, bars = 4, steps_per_bar = 16} or mv.pattern{grid = {...}}
M.pattern = M.Pattern.new
M.midi = require "musicvae.midi"
M.data = require "musicvae.data"
M.Model = require "musicvae.model"
M.evaluate = require "musicvae.evaluate"
--- mv.load([path_or_name]) -> model, or nil, err: a path, a model name, $MUSICVAE_MODEL, or the shipped default
M.load = require("musicvae.models").load
--- mv.audio.render(pattern_or_path, opts) -> samples [frames, 2]; mv.audio.write(path, samples, rate)
M.audio = require "musicvae.audio"

return M
