-- test_cli: the host's command line and its exit statuses, the bad-input
-- cases of the engine issue, and the majority vote's golden output.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

local MV = "scripts/majority_vote.lua"

-- { name, args, expected exit status, text expected on stderr }
local bad = {
  { "unknown option", { "--bogus", MV }, 2, "unknown option '--bogus'" },
  { "unknown option after SCRIPT", { MV, "--frobnicate" }, 2, "unknown option '--frobnicate'" },
  { "--nodes 0", { MV, "--nodes", "0" }, 2, "--nodes must be at least 1" },
  { "--nodes not a number", { "--nodes", "many", MV }, 2, "--nodes needs an integer, got 'many'" },
  { "--faulty above --nodes", { MV, "--nodes", "3", "--faulty", "4" }, 2, "--faulty (4) cannot exceed --nodes (3)" },
  { "--threads 0", { MV, "--threads", "0" }, 2, "--threads must be between 1 and 1024" },
  { "--nodes too big for an integer", { MV, "--nodes", "-1e300" }, 2, "--nodes needs an integer, got '-1e300'" },
  { "--seed too big for an integer", { MV, "--seed", "1e30" }, 2, "--seed needs an integer, got '1e30'" },
  { "option without value", { MV, "--seed" }, 2, "--seed needs a value" },
  { "missing script", { "scripts/no_such_script.lua" }, 2, "cannot open scripts/no_such_script.lua" },
  { "no script at all", {}, 2, "no SCRIPT given" },
}

local SYNTAX = "local x = = 1\n"
local SEND_FN = [[
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 3 }
sim:spawn{ start = function(node)
  node:propose(1)
  if node.id == 1 then node:send(0, { type = "X", cb = function() end }) end
  node:decide(1)
end }
sim:run():print()
]]
local RAISE = [[
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 3 }
sim:spawn{ start = function(node)
  node:propose(1)
  node:set_timer("t", 5)
end, timer = function(node)
  if node.id == 2 then error("handler exploded") end
  node:decide(1)
end }
sim:run():print()
]]
local LOOP = [[
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 2, budget = 2000000 }
sim:spawn{ start = function(node)
  node:propose(1); node:decide(1)
  if node.id == 1 then
    while true do pcall(function() while true do end end) end
  end
end }
sim:run():print()
]]

local cases = {}

for _, c in ipairs(bad) do
  cases[#cases + 1] = { "bad input: " .. c[1], function()
    local out, err, code = t.host_run(table.unpack(c[2]))
    t.eq(code, c[3], "exit status")
    t.has(err, c[4], "stderr")
    local lines = select(2, err:gsub("\n", ""))
    t.eq(lines, 1, "a one-line message")
    t.eq(out, "", "nothing on stdout")
  end }
end

local function script_case(name, text, args, code, needles)
  cases[#cases + 1] = { name, function()
    local path = t.temp_script(text)
    local out, err, got = t.host_run(path, table.unpack(args))
    os.remove(path)
    t.eq(got, code, "exit status (stderr: " .. err .. ")")
    for _, n in ipairs(needles) do t.has(err, n, "stderr") end
    return out
  end }
end

script_case("bad input: a Lua syntax error", SYNTAX, {}, 2, { ":1:", "near '='" })
script_case("bad input: sending a function names the field", SEND_FN, {}, 2,
  { "node 1 failed", "msg.cb: cannot send a function", "seed 1" })
script_case("a handler error names node, time, seed and has a traceback", RAISE, {}, 2,
  { "node 2 failed at t=5.000 ms (seed 1) in timer", "handler exploded", "stack traceback" })
local EARLY = RAISE:gsub('node:set_timer%("t", 5%)', 'node:set_timer("t", 5); if node.id == 2 then error("early") end')
cases[#cases + 1] = { "--strict stops the run at the first handler error", function()
  local path = t.temp_script(EARLY)
  local out, err, code = t.host_run(path, "--json")
  local sout, serr, scode = t.host_run(path, "--json", "--strict")
  os.remove(path)
  t.eq(code, 2, "exit"); t.eq(scode, 2, "strict exit")
  t.has(err, "node 2 failed at t=0.000 ms", "stderr"); t.has(serr, "node 2 failed", "strict stderr")
  t.has(out, '"decided":2', "without --strict the others decide at t=5")
  t.has(sout, '"decided":0', "with --strict the run stopped at t=0")
end }
script_case("an endless loop is stopped by the budget, even through pcall", LOOP, {}, 2,
  { "node 1 failed", "instruction budget exceeded" })

-- The count restarts with every call: 2000 short timer calls (a few dozen
-- instructions each) stay within --budget 1000 however many they add up to.
local SHORT = [[
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 2 }
sim:spawn{
  start = function(node) node:propose(1); node:set_timer("t", 1) end,
  timer = function(node)
    node.k = (node.k or 0) + 1
    if node.k < 2000 then node:set_timer("t", 1) else node:decide(1) end
  end,
}
sim:run():print()
]]
cases[#cases + 1] = { "--budget 1000: many short calls each stay within it", function()
  local path = t.temp_script(SHORT)
  local out, err, code = t.host_run(path, "--budget", "1000")
  os.remove(path)
  t.eq(code, 0, "exit status (stderr: " .. err .. ")")
  t.has(out, "agreement OK", "report")
end }

cases[#cases + 1] = { "a handler error leaves the run going (other nodes decide)", function()
  local path = t.temp_script(RAISE)
  local out, _, code = t.host_run(path, "--json")
  os.remove(path)
  t.eq(code, 2, "exit")
  t.has(out, '"decided":2', "the two healthy nodes decided")
  t.has(out, '"failed":[2]', "node 2 failed")
end }

cases[#cases + 1] = { "--help and --version", function()
  local out, _, code = t.host_run("--help")
  t.eq(code, 0, "help exit")
  for _, o in ipairs { "--nodes", "--faulty", "--seed", "--threads", "--rounds", "--until",
                       "--json", "--quiet", "--strict", "Exit status", "Example" } do
    t.has(out, o, "help")
  end
  local sout, _, scode = t.host_run(MV, "--help")
  t.eq(scode, 0, "script help exit")
  t.has(sout, "--timeout", "script's own option listed")
  local vout, _, vcode = t.host_run("--version")
  t.eq(vcode, 0, "version exit")
  t.has(vout, "consensus-lua 0.", "version")
  t.has(vout, "Lua 5.4", "Lua version")
end }

cases[#cases + 1] = { "majority vote: the seed's report, byte for byte", function()
  local out, _, code = t.host_run(MV, "--nodes", "5", "--faulty", "1", "--seed", "5", "--threads", "1")
  t.eq(code, 0, "exit")
  t.eq(out, t.read("tests/golden/majority_vote_n5_f1_s5.txt"), "golden")
  local again = t.host_run(MV, "--nodes", "5", "--faulty", "1", "--seed", "5", "--threads", "2")
  t.eq(again, out, "same with two threads")
end }

cases[#cases + 1] = { "majority vote: a faulty leader is retried by the next", function()
  local out, _, code = t.host_run(MV, "--seed", "3", "--rounds", "2")
  t.eq(code, 0, "exit")
  t.eq(out, t.read("tests/golden/majority_vote_n5_f1_s3_r2.txt"), "golden")
end }

cases[#cases + 1] = { "majority vote: n < 3f+1 says so and ends without termination", function()
  local out, err, code = t.host_run(MV, "--nodes", "4", "--faulty", "2")
  t.eq(code, 3, "exit 3 (" .. err .. ")")
  t.has(out, "WARNING: 4 nodes cannot tolerate 2 faulty nodes", "warning")
  t.has(out, "termination NOT reached", "result")
end }

cases[#cases + 1] = { "options reach the script and --json gives one object per run", function()
  local out, _, code = t.host_run("--seed", "7", MV, "--nodes", "7", "--faulty", "2", "--json", "--rounds", "3")
  t.eq(code, 0, "exit")
  local n = select(2, out:gsub("\n", ""))
  t.eq(n, 1, "one line")
  for _, f in ipairs { '"seed":7', '"nodes":7', '"faulty":2', '"threads":', '"messages":',
                       '"sim_time_ms":', '"decided":5', '"agreement":true', '"validity":true',
                       '"termination":true', '"violations":[]', '"decisions":[', '"slots":3' } do
    t.has(out, f, "json")
  end
end }

cases[#cases + 1] = { "--quiet prints nothing, the status still tells", function()
  local out, _, code = t.host_run(MV, "--nodes", "4", "--faulty", "2", "--quiet")
  t.eq(out, "", "stdout")
  t.eq(code, 3, "exit")
end }

t.cases(cases)
