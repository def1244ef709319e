-- test_selfcheck: consensus-lua --check-determinism (consensus.selfcheck).
--
-- The shipped scenarios pass; a script whose sends follow pairs() order
-- over string keys (salted per process) is caught, naming the first
-- differing trace line; so is one that differs only with the thread
-- count, and one whose traces agree but whose output does not.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

-- Node 0 sends to peers in pairs() order over 24 string keys: the order
-- depends on the node state's string-hash salt, which differs from one
-- process to the next.
local PAIRS = [[
local consensus = require "consensus"
local NAMES = {}
for i = 1, 24 do NAMES["peer" .. i] = i end
local P = {}
function P.start(node)
  node:propose(1)
  if node.id == 0 then
    for name, i in pairs(NAMES) do
      node:send(i % node.n, { type = "HELLO", name = name })
    end
  end
  node:decide(1)
end
local sim = consensus.sim { nodes = 4 }
sim:spawn(P)
sim:run():print()
]]

-- A scenario action that looks at the thread count: only the run with
-- --threads 1 crashes node 1.
local THREADS = [[
local consensus = require "consensus"
local sim = consensus.sim { nodes = 4 }
sim:spawn { start = function(node)
  node:propose(7)
  node:set_timer("t", 10)
end, timer = function(node) node:decide(7) end }
sim:at(5, function(s) if s.threads == 1 then s:crash(1) end end)
sim:run():print()
]]

-- Same traces, but the script prints its process id after the report.
local ADDRESS = [[
local consensus = require "consensus"
local sim = consensus.sim { nodes = 3 }
sim:spawn { start = function(node) node:propose(1); node:decide(1) end }
sim:run():print()
print("pid " .. io.open("/proc/self/stat"):read("n"))
]]

-- A handler error on node 2, the same in every run.
local FAILING = [[
local consensus = require "consensus"
local sim = consensus.sim { nodes = 3 }
sim:spawn { start = function(node)
  node:propose(1)
  if node.id == 2 then error("boom") end
  node:decide(1)
end }
sim:run():print()
]]

-- Two processes print the pairs() order of the same string keys: they
-- differ unless this environment gives every process the same hash salt
-- (no address-space randomization, e.g. some sanitizer re-execs, and
-- the same second).
local ORDER = [[
local names, keys = {}, {}
for i = 1, 24 do names["peer" .. i] = i end
for k in pairs(names) do keys[#keys + 1] = k end
print(table.concat(keys, " "))
]]
local function salts_vary()
  local path = t.temp_script(ORDER)
  local a = t.host_run(path)
  local b = t.host_run(path)
  os.remove(path)
  return a ~= b
end

local function fnv1a64(s)
  local h = -3750763034362895579       -- 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return string.format("%016x", h)
end

-- Remove the traces a failed check keeps.
local function drop_kept(err)
  local kept = err:match("traces kept: ([^\n]*)")
  for p in (kept or ""):gmatch("%S+") do os.remove(p) end
end

local cases = {}

local shipped = {
  { "scripts/majority_vote.lua" },
  { "scripts/majority_vote.lua", "--nodes", "7", "--faulty", "2", "--rounds", "3" },
  { "scripts/pbft_like.lua" },
  { "scripts/pbft_like.lua", "--nodes", "7", "--faulty", "2", "--requests", "20", "--loss", "0.05" },
}
for _, args in ipairs(shipped) do
  cases[#cases + 1] = { "shipped: " .. table.concat(args, " "), function()
    local out, err, code = t.host_run("--check-determinism", table.unpack(args))
    t.eq(code, 0, "exit status (stderr: " .. err .. ")")
    local n, h = out:match("^deterministic: (%d+) events, hash (%x+)\n")
    assert(n and tonumber(n) > 10, "summary line: " .. out)
    t.eq(#h, 16, "a 64-bit hash")
  end }
end

cases[#cases + 1] = { "the hash is FNV-1a 64 of the trace; --threads is the first pair's", function()
  local out, err, code = t.host_run("--check-determinism", "--threads", "1",
    "scripts/pbft_like.lua", "--json")
  t.eq(code, 0, "exit (" .. err .. ")")
  t.has(out, '"threads":[1,4]', "threads 1, then 4")
  local h = out:match('"hash":"(%x+)"')
  local path = os.tmpname()
  local _, _, c2 = t.host_run("scripts/pbft_like.lua", "--threads", "3", "--quiet",
    "--trace", path)
  t.eq(c2, 0, "plain run")
  local trace = t.read(path)
  os.remove(path)
  t.eq(h, fnv1a64(trace), "hash")
  local lines = select(2, trace:gsub("\n", ""))
  t.has(out, '"events":' .. (lines - 2), "events: the lines less header and end")
end }

cases[#cases + 1] = { "pairs() over string keys is caught, naming the first differing event", function()
  local path = t.temp_script(PAIRS)
  local out, err, code = t.host_run("--check-determinism", path, "--threads", "2")
  os.remove(path)
  drop_kept(err)
  if code == 0 and not salts_vary() then
    io.write("  (skipped: every process gets the same string-hash salt here)\n")
    return
  end
  t.eq(code, 1, "exit status 1 (stderr: " .. err .. ")")
  t.eq(out, "", "nothing on stdout")
  t.has(err, "not deterministic: " .. path, "names the script")
  -- One of node 0's first sends differs (which one depends on the two
  -- processes' hash salts: two orders can start with the same key).
  local line, event = err:match("differ first at line (%d+) %(event (%d+)%)")
  assert(line, "names the line:\n" .. err)
  t.eq(tonumber(event), tonumber(line) - 1, "event number: the line less the header")
  assert(tonumber(line) <= 25, "within node 0's sends at t = 0:\n" .. err)
  local l1 = err:match("\n  run 1: ([^\n]*)")
  local l2 = err:match("\n  run [23]: ([^\n]*)")
  assert(l1 and l2 and l1 ~= l2, "both lines shown:\n" .. err)
  t.has(l1, '"ev":"send"', "run 1's line")
  -- Usually run 2 already differs; where salts repeat (the same second,
  -- no address randomization) only run 3 may.
  assert(err:find("and run 2 (--threads 2, another process)", 1, true)
    or err:find("and run 3 (--threads 1)", 1, true), "names the other run:\n" .. err)
end }

cases[#cases + 1] = { "a difference only with another thread count names run 3", function()
  local path = t.temp_script(THREADS)
  local _, err, code = t.host_run("--check-determinism", path, "--threads", "2")
  os.remove(path)
  drop_kept(err)
  t.eq(code, 1, "exit (" .. err .. ")")
  t.has(err, "run 3 (--threads 1)", "run 3")
  t.has(err, '"ev":"crash"', "the crash is the first difference")
end }

cases[#cases + 1] = { "same traces but different output: the reports are compared", function()
  local path = t.temp_script(ADDRESS)
  local _, err, code = t.host_run("--check-determinism", path)
  os.remove(path)
  t.eq(code, 1, "exit (" .. err .. ")")
  t.has(err, "the traces agree, but the reports of run 1", "message")
  t.has(err, "differ first at line 2", "the line after the JSON report")
  t.has(err, "run 1: pid ", "the line shown")
end }

cases[#cases + 1] = { "a deterministic handler error still checks (exit 0, status shown)", function()
  local path = t.temp_script(FAILING)
  local out, err, code = t.host_run("--check-determinism", path)
  os.remove(path)
  t.eq(code, 0, "exit (" .. err .. ")")
  t.has(out, "deterministic: ", "summary")
  t.has(out, "each exited 2", "the runs' own status")
end }

cases[#cases + 1] = { "a run that fails before its trace: exit 2 with its message", function()
  local path = t.temp_script("local x = = 1\n")
  local out, err, code = t.host_run("--check-determinism", path)
  os.remove(path)
  t.eq(code, 2, "exit")
  t.eq(out, "", "stdout")
  t.has(err, "run 1 failed before writing a trace (exit status 2)", "message")
  t.has(err, "near '='", "the script's own error")
end }

cases[#cases + 1] = { "a script that runs no simulation: exit 2", function()
  local path = t.temp_script("print('hello')\n")
  local _, err, code = t.host_run("--check-determinism", path)
  os.remove(path)
  t.eq(code, 2, "exit")
  t.has(err, "run 1 wrote no trace", "message")
end }

cases[#cases + 1] = { "bad options are usage errors before any run", function()
  local _, err, code = t.host_run("--check-determinism", "scripts/pbft_like.lua", "--loss", "2")
  t.eq(code, 2, "exit")
  t.has(err, "--loss must be a probability", "message")
  local _, err2, code2 = t.host_run("--check-determinism", "scripts/no_such.lua")
  t.eq(code2, 2, "exit, missing script")
  t.has(err2, "cannot open scripts/no_such.lua", "message")
end }

cases[#cases + 1] = { "child arguments: the check's own options are replaced", function()
  local sc = require "consensus.selfcheck"
  local args, dd = sc._child_args { "--check-determinism", "--trace", "x.jsonl",
    "s.lua", "--json", "--nodes", "7", "--threads=3", "--no-quiet", "--trace=y",
    "--data-dir", "D", "--requests", "5", "--", "--json" }
  t.eq(dd, "D", "data dir")
  local shown = {}
  for i, a in ipairs(args) do shown[i] = type(a) == "table" and "<DIR>" or a end
  t.eq(table.concat(shown, " "),
    "s.lua --nodes 7 --data-dir <DIR> --requests 5 -- --json", "args")
end }

t.cases(cases)
