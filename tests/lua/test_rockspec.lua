-- test_rockspec.lua: the LuaRocks route.  `luarocks make` of
-- rockspecs/consensus-lua-*.rockspec into a temporary tree, from a copy
-- of the sources (LuaRocks builds in the current directory), with no
-- network; then stock lua5.4 requires the module from that tree and the
-- tree's consensus-lua runs a scenario.
--
-- Skipped in sanitizer builds (the rock is built without them; one run
-- in the plain build is enough) and, outside CI, when luarocks is not
-- installed (Debian: apt-get install luarocks).  Under CI=true a missing
-- luarocks fails the test.

local t = require "testlib"

local q = t.quote

local function skip(why)
  io.write("test_rockspec.lua: skipped: ", why, "\n")
  os.exit(0)
end

local cache = t.read(t.build .. "/CMakeCache.txt")
local sanitize = cache:match("\nCS_SANITIZE:%w+=([^\n]*)") or ""
if sanitize ~= "" then skip("sanitizer build (" .. sanitize .. ")") end
local _, _, has = t.run("command -v luarocks")
if has ~= 0 then
  if os.getenv("CI") then
    error("luarocks not found: CI must install it (apt-get install luarocks)")
  end
  skip("luarocks not found (apt-get install luarocks)")
end

local version = require("consensus")._VERSION
local rockspec = "rockspecs/consensus-lua-" .. version .. "-1.rockspec"
local tmp = assert(t.run("mktemp -d"):match("%S+"), "mktemp -d")
local src, tree = tmp .. "/src", tmp .. "/tree"
local luarocks = "luarocks --lua-version=5.4 --tree=" .. q(tree)

-- Run 'cmd' in the copy of the sources, without the build tree's paths.
local function in_src(cmd)
  return "cd " .. q(src) .. " && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4"
    .. " -u LUA_CPATH_5_4 CMAKE_BUILD_PARALLEL_LEVEL=2 " .. cmd
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local cases = {
  { "the rockspec is valid (luarocks lint)", function()
    local out, err, code = t.run("luarocks --lua-version=5.4 lint " .. q(rockspec))
    t.eq(code, 0, "luarocks lint (" .. err .. out .. ")")
  end },

  { "luarocks make builds and installs the rock, offline", function()
    -- The sources without build directories or version control.
    local out, err, code = t.run(string.format(
      "mkdir -p %s && tar -cf - --exclude=./.git --exclude=./build --exclude='./build-*'"
      .. " --exclude=./build.luarocks . | tar -xf - -C %s", q(src), q(src)))
    t.eq(code, 0, "copy (" .. err .. out .. ")")
    out, err, code = t.run(in_src(luarocks .. " make " .. q(rockspec)))
    t.eq(code, 0, "luarocks make (" .. err .. "\n" .. out .. ")")
    t.has(out, "consensus-lua " .. version .. "-1 is now installed", "luarocks make")
    for _, f in ipairs {
      "lib/lua/5.4/consensus.so",
      "share/lua/5.4/consensus/api.lua",
      "bin/consensus-lua",
    } do
      assert(exists(tree .. "/" .. f), "missing in the tree: " .. f)
    end
    -- the C module directory holds the module only
    out = t.run("ls " .. q(tree .. "/lib/lua/5.4"))
    t.eq(out, "consensus.so\n", "lib/lua/5.4")
    out, err, code = t.run(luarocks .. " list --porcelain")
    t.eq(code, 0, "luarocks list (" .. err .. ")")
    t.has(out, "consensus-lua\t" .. version .. "-1\tinstalled", "luarocks list")
  end },

  { "stock lua5.4 requires the module from the tree", function()
    local script = t.temp_script [[
      local consensus = require "consensus"
      local sim = consensus.sim { nodes = 5, seed = 4 }
      sim:spawn {
        start = function(node)
          node:propose(node.n)
          node:decide(node.n)
        end,
      }
      local r = sim:run()
      print(package.searchpath("consensus", package.cpath), r.status, r.decided)
    ]]
    -- the paths `luarocks path` would export for this tree
    local cmd = string.format("LUA_CPATH_5_4=%s LUA_PATH_5_4=%s %s %s",
      q(tree .. "/lib/lua/5.4/?.so"),
      q(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua"),
      q(t.lua), q(script))
    local out, err, code = t.run(in_src(cmd))
    os.remove(script)
    t.eq(code, 0, "exit (" .. err .. ")")
    t.eq(out, tree .. "/lib/lua/5.4/consensus.so\t0\t5\n", "output")
  end },

  { "the tree's consensus-lua runs a scenario", function()
    local out, err, code = t.run(in_src(q(tree .. "/bin/consensus-lua")
      .. " scripts/pbft_like.lua --nodes 4 --seed 3 --json"))
    t.eq(code, 0, "pbft_like (" .. err .. ")")
    t.has(out, '"status":0', "status")
    out, _, code = t.run(in_src(q(tree .. "/bin/consensus-lua") .. " --version"))
    t.eq(code, 0, "--version")
    t.has(out, "consensus-lua " .. version, "--version")
  end },

  { "luarocks remove takes every deployed file away", function()
    local _, err, code = t.run(luarocks .. " remove consensus-lua")
    t.eq(code, 0, "luarocks remove (" .. err .. ")")
    assert(not exists(tree .. "/lib/lua/5.4/consensus.so"), "consensus.so left")
    assert(not exists(tree .. "/bin/consensus-lua"), "bin/consensus-lua left")
  end },

  { "remove the temporary directory", function()
    local _, err, code = t.run("rm -rf " .. q(tmp))
    t.eq(code, 0, "rm (" .. err .. ")")
  end },
}

t.cases(cases)
