-- LuaRocks package of consensus-lua: the consensus module (consensus.so
-- with its Lua half compiled in), the Lua files for reading, and the
-- consensus-lua host.  Built by the project's own CMake build:
--
--   luarocks --lua-version=5.4 make rockspecs/consensus-lua-0.1.0-1.rockspec
--
-- Needs a C compiler, CMake >= 3.18, the Lua 5.4 headers and libsodium
-- (Debian: build-essential cmake liblua5.4-dev libsodium-dev); no network.
rockspec_format = "3.0"
package = "consensus-lua"
version = "0.1.0-1"

-- The project has no public address yet: `luarocks make` builds the
-- checkout it is run from and never reads source.url.  Set both before
-- publishing (`luarocks pack`, `luarocks upload`).
source = {
  url = "git+https://example.invalid/consensus-lua.git",
  tag = "v0.1.0",
}

description = {
  summary = "A deterministic simulator of distributed consensus",
  detailed = [[
Write a protocol (or an attacker) in a page of Lua, run it on 4 or 400
simulated nodes under network delay, loss, partitions, crashes and
Byzantine nodes, replay any run from its seed, and let the checker tell
whether the honest nodes agreed.  A C11 core runs the nodes on worker
threads over a virtual-time scheduler; every node has its own Lua state.
]],
  -- The project has not chosen a license yet; `luarocks lint` wants the
  -- field.  Replace before publishing.
  license = "TBD",
  labels = { "simulation", "distributed-systems", "consensus", "testing" },
}

dependencies = {
  "lua >= 5.4, < 5.5",
}

-- Ed25519 signatures (node:sign, node:verify)
external_dependencies = {
  SODIUM = { header = "sodium.h", library = "sodium" },
}

build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    -- consensus.so into the rock's lib/ and the Lua files into its lua/:
    -- LuaRocks deploys them to <tree>/lib/lua/5.4 and <tree>/share/lua/5.4.
    CS_INSTALL_CMOD = "$(LIBDIR)",
    CS_INSTALL_LMOD = "$(LUADIR)",
    -- the host into the rock's bin/, deployed to <tree>/bin
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
    LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
    SODIUM_INCLUDE_DIR = "$(SODIUM_INCDIR)",
    -- no header, static library or .pc: the rock's lib/ is deployed as
    -- the C module directory
    CS_INSTALL_DEV = "OFF",
    CS_BUILD_TESTS = "OFF",
    CS_WERROR = "OFF",
  },
}
