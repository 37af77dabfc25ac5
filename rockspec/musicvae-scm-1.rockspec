rockspec_format = "3.0"
package = "musicvae"
version = "scm-1"
source = {
  url = "git+https://example.invalid/musicvae.git", -- placeholder: install with `luarocks make` from a checkout
}
description = {
  summary = "MusicVAE for 4-bar drum patterns: a C core on OpenBLAS with a Lua 5.4 API and CLI",
  detailed = [[
    Train, sample, reconstruct and interpolate drum patterns with Magenta's hierarchical
    MusicVAE, without Python or TensorFlow. Weights are safetensors files.
  ]],
  license = "Apache-2.0",
}
-- Also needed at run time, from the system and not as rocks (so that `luarocks make` works offline):
-- lua-cjson for Lua 5.4 (Debian: apt-get install lua-cjson; its module is `cjson`), and the
-- libraries below (Debian: libopenblas-dev, libsmf-dev). scripts/setup installs all of them.
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  OPENBLAS = { library = "openblas" },
  SMF = { header = "smf.h", library = "smf" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_C_FLAGS = "$(CFLAGS)",
    CMAKE_MODULE_LINKER_FLAGS = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LIBDIR = "$(LIBDIR)",
    LUADIR = "$(LUADIR)",
    OPENBLAS_LIBDIR = "$(OPENBLAS_LIBDIR)",
    MV_TESTS = "OFF",
  },
  install = {
    bin = { musicvae = "bin/musicvae" },
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
