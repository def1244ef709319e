-- test_install.lua: `cmake --install` into a temporary prefix, then use
-- what was installed the way a user would: stock lua5.4 requires the
-- module, the installed host runs the installed scripts, pkg-config finds
-- the library, and examples/embed.c builds against it and runs.
--
-- Runs under CTest from the repository root (CS_BUILD names the build
-- directory, which must be built).  By hand:
--   CS_BUILD=build CS_HOST=build/consensus-lua \
--   LUA_PATH_5_4='tests/lua/?.lua;;' build/consensus-lua tests/lua/test_install.lua

local t = require "testlib"

local q = t.quote

-- The build's own settings, from its cache.
local cache = t.read(t.build .. "/CMakeCache.txt")
local function cached(name, default)
  local v = cache:match("\n" .. name .. ":[%w_]+=([^\n]*)")
  if v == nil or v == "" then return default end
  return v
end
local cmake = cached("CMAKE_COMMAND", "cmake")
local cc = cached("CMAKE_C_COMPILER", "cc")
local sanitize = cached("CS_SANITIZE", "")
local libdir = cached("CMAKE_INSTALL_LIBDIR", "lib")
-- -DCS_INSTALL_DEV=OFF installs no header, archive or .pc file
local dev = cached("CS_INSTALL_DEV", "ON") ~= "OFF"
local cmod = cached("CS_INSTALL_CMOD", libdir .. "/lua/5.4")
local version = require("consensus")._VERSION

-- The embedding program must be built like the archive it links.
local san_flags = ({
  address = "-fsanitize=address,undefined -fno-omit-frame-pointer",
  thread = "-fsanitize=thread",
})[sanitize] or ""

local prefix = assert(t.run("mktemp -d"):match("%S+"), "mktemp -d")
local P = prefix .. "/"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Run 'cmd' with a clean Lua environment: nothing from the build tree.
local function clean_env(cmd)
  return "env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 " .. cmd
end

local cases = {
  { "cmake --install puts every file in place", function()
    local out, err, code = t.run(string.format("%s --install %s --prefix %s",
      q(cmake), q(t.build), q(prefix)))
    t.eq(code, 0, "cmake --install (" .. err .. out .. ")")
    for _, f in ipairs {
      "bin/consensus-lua",
      cmod .. "/consensus.so",
      "share/lua/5.4/consensus/api.lua",
      "share/lua/5.4/consensus/attackers.lua",
      "share/consensus-lua/scripts/majority_vote.lua",
      "share/consensus-lua/scripts/pbft_like.lua",
      "share/consensus-lua/examples/embed.c",
      "share/man/man1/consensus-lua.1",
      "share/doc/consensus-lua/reference.md",
    } do
      assert(exists(P .. f), "missing after install: " .. f)
    end
    for _, f in ipairs {
      "include/consensus-lua/consensus.h",
      "include/consensus-lua/consensus_lua.h",
      libdir .. "/libconsensus-lua.a",
      libdir .. "/pkgconfig/consensus-lua.pc",
    } do
      t.eq(exists(P .. f), dev, f .. " installed")
    end
  end },

  { "stock lua5.4 requires the installed module and runs a sim", function()
    local script = t.temp_script [[
      local consensus = require "consensus"
      local where = package.searchpath("consensus", package.cpath)
      local sim = consensus.sim { nodes = 4, seed = 2 }
      sim:spawn {
        start = function(node)
          node:propose(7)
          node:decide(7)
        end,
      }
      local r = sim:run()
      print(where, r.status, r.decided, consensus._VERSION)
    ]]
    local cmd = string.format("LUA_CPATH_5_4=%s LUA_PATH_5_4=%s %s %s",
      q(P .. cmod .. "/?.so"), q(P .. "share/lua/5.4/?.lua"),
      q(t.lua), q(script))
    local out, err, code = t.run(clean_env("") .. cmd)
    os.remove(script)
    t.eq(code, 0, "exit (" .. err .. ")")
    t.eq(out, string.format("%s\t0\t4\t%s\n", P .. cmod .. "/consensus.so",
      version), "output")
  end },

  { "the installed host runs the installed scripts, from anywhere", function()
    local host = P .. "bin/consensus-lua"
    local out, err, code = t.run(clean_env(string.format("sh -c %s",
      q("cd / && " .. q(host) .. " --version"))))
    t.eq(code, 0, "--version (" .. err .. ")")
    t.has(out, "consensus-lua " .. version, "--version")
    for _, s in ipairs {
      { "majority_vote.lua", "--nodes 5 --faulty 1 --seed 5" },
      { "pbft_like.lua", "--nodes 4 --seed 2" },
    } do
      local cmd = string.format("cd / && %s %s %s --json", q(host),
        q(P .. "share/consensus-lua/scripts/" .. s[1]), s[2])
      out, err, code = t.run(clean_env("sh -c " .. q(cmd)))
      t.eq(code, 0, s[1] .. " (" .. err .. ")")
      t.has(out, '"status":0', s[1] .. " status")
    end
  end },

  { "the man page is a man page", function()
    local page = t.read(P .. "share/man/man1/consensus-lua.1")
    t.has(page, ".TH CONSENSUS-LUA 1", "title")
    for _, section in ipairs { "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS",
                               "EXIT STATUS", "EXAMPLES", "SEE ALSO" } do
      local plain = section:find(" ") and '"' .. section .. '"' or section
      t.has(page, "\n.SH " .. plain .. "\n", "section")
    end
    -- groff, when present, reads it without a warning
    local _, _, has_groff = t.run("command -v groff")
    if has_groff == 0 then
      local out, err, code = t.run("groff -man -ww -z " .. q(P .. "share/man/man1/consensus-lua.1"))
      t.eq(code, 0, "groff")
      t.eq(err .. out, "", "groff warnings")
    end
  end },

  { "pkg-config finds consensus-lua in the prefix", function()
    if not dev then return end
    local env = "PKG_CONFIG_PATH=" .. q(P .. libdir .. "/pkgconfig") .. " "
    local out, err, code = t.run(env .. "pkg-config --modversion consensus-lua")
    t.eq(code, 0, "pkg-config --modversion (" .. err .. ")")
    t.eq(out, version .. "\n", "version")
    out, err, code = t.run(env .. "pkg-config --cflags --libs consensus-lua")
    t.eq(code, 0, "pkg-config --cflags --libs (" .. err .. ")")
    t.has(out, "-I" .. P .. "include/consensus-lua", "cflags")
    t.has(out, "-L" .. P .. libdir, "libs")
    t.has(out, "-lconsensus-lua", "libs")
  end },

  { "examples/embed.c builds against the installed prefix and runs", function()
    if not dev then return end
    local exe = P .. "embed"
    local cmd = string.format(
      "PKG_CONFIG_PATH=%s %s -std=c11 -Wall -Wextra -Werror %s -o %s examples/embed.c"
      .. " $(PKG_CONFIG_PATH=%s pkg-config --cflags --libs consensus-lua)",
      q(P .. libdir .. "/pkgconfig"), q(cc), san_flags, q(exe),
      q(P .. libdir .. "/pkgconfig"))
    local out, err, code = t.run(cmd)
    t.eq(code, 0, "cc (" .. err .. out .. ")")
    out, err, code = t.run(clean_env(q(exe)))
    t.eq(code, 0, "embed (" .. err .. ")")
    t.has(out, "consensus-lua " .. version, "banner")
    t.has(out, "checks: agreement OK, validity OK, termination OK", "Lua run")
    t.has(out, "=== C callbacks ===", "core run")
    t.has(out, "checks: OK", "core run")
    -- each half alone
    out, err, code = t.run(q(exe) .. " core")
    t.eq(code, 0, "embed core (" .. err .. ")")
    assert(not out:find("embedded vote", 1, true), "core only")
    out, err, code = t.run(q(exe) .. " nonsense")
    t.eq(out, "", "usage: stdout")
    t.has(err, "usage:", "usage: stderr")
    t.eq(code, 2, "usage")
  end },

  { "remove the prefix", function()
    local _, err, code = t.run("rm -rf " .. q(prefix))
    t.eq(code, 0, "rm (" .. err .. ")")
  end },
}

t.cases(cases)
