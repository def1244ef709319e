-- test_badinput: a catalogue of bad inputs (options, scripts, handlers,
-- messages, files, data directories) and what the host does with each.
--
-- Every case runs the host under `timeout 20` and asserts: the documented
-- exit status; a message naming the problem on stderr (first line
-- "consensus-lua: ..."); no crash (no exit status 128 + signal, no
-- sanitizer report or "Segmentation fault" on stderr); no hang (not killed
-- by timeout: 124); and nothing already written lost: a report printed
-- before the error stays on stdout, a --trace file ends with a complete
-- line.  test_cli.lua holds the first bad-input cases (unknown options,
-- --nodes 0, a missing script, a syntax error, sending a function, a
-- handler error, a loop under pcall); they are not repeated here.
--
-- PENDING lists inputs the host does not handle yet, with the expected
-- behaviour.  They run (with a shorter timeout) and print "pending" or,
-- once fixed, "FIXED: move it to CASES"; they never fail the suite.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

local MV = "scripts/majority_vote.lua"
local PBFT = "scripts/pbft_like.lua"

-- A scratch directory for files the cases need.
local TMP = os.tmpname()
os.remove(TMP)
assert(os.execute("mkdir -p " .. t.quote(TMP)))
local function tmp(name) return TMP .. "/" .. name end
local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- A three-node scenario whose node 1 runs BODY in start (after proposing
-- and deciding, so the other nodes still decide and the report tells).
local function node1(body, sim_extra)
  return ([[
-- node1
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 3 %s}
sim:spawn{ start = function(node)
  node:propose(1)
  node:decide(1)
  if node.id == 1 then
    %s
  end
end }
sim:run():print()
]]):format(sim_extra and (", " .. sim_extra .. " ") or "", body)
end

local HEAD = [[
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 3 }
]]

-- An unreadable script: chmod 000, unless we run as root (who reads it
-- anyway); then /proc/self/mem, which opens but fails to read (EIO).
local unreadable = write(tmp("noread.lua"), "print('read anyway')\n")
os.execute("chmod 000 " .. t.quote(unreadable))
local probe = io.open(unreadable, "rb")
local as_root = probe ~= nil and probe:read(1) ~= nil
if probe then probe:close() end
local unreadable_needle = "cannot open " .. unreadable .. ": Permission denied"
if as_root then
  unreadable, unreadable_needle = "/proc/self/mem", "cannot read /proc/self/mem"
end

local a_file = write(tmp("a_file"), "not a directory\n")
assert(os.execute("mkdir -p " .. t.quote(tmp("a_dir"))))

-- Each case: name; args (SCRIPT stands for the case's script file); the
-- exit status; needles on stderr; and optionally: script (text), want_out
-- (needles on stdout), trace (a --trace path that must end with a
-- complete JSON line), timeout (seconds).  A node1() script fails node 1
-- only: unless told otherwise, its report must show the others decided.
local CASES = {
  ------------------------------------------------------------ options
  { "--byzantine with a non-number", { MV, "--byzantine", "1,x" }, 2,
    { "--byzantine: 'x' is not a node id" } },
  { "--byzantine beyond the script's nodes", { MV, "--byzantine", "9" }, 2,
    { "byzantine node id must be between 0 and 4, got 9" } },
  { "--latency bogus", { MV, "--latency", "bogus" }, 2,
    { "bad latency 'bogus'", "uniform:5:20" } },
  { "--latency with a missing parameter", { MV, "--latency", "uniform:5" }, 2,
    { "bad latency 'uniform:5'" } },
  { "--latency 0", { MV, "--latency", "0" }, 2,
    { "smallest latency must be above 0 ms" } },
  { "--loss 2", { MV, "--loss", "2" }, 2,
    { "--loss must be a probability between 0 and 1" } },
  { "--duplicate nan", { MV, "--duplicate", "nan" }, 2,
    { "--duplicate needs a number, got 'nan'" } },
  { "--seed 1.5", { MV, "--seed", "1.5" }, 2, { "--seed needs an integer, got '1.5'" } },
  { "--seed beyond 64 bits", { MV, "--seed", "99999999999999999999" }, 2,
    { "--seed needs an integer" } },
  { "--nodes= (empty value)", { MV, "--nodes=" }, 2, { "--nodes needs an integer, got ''" } },
  { "--json=yes (a flag with a value)", { MV, "--json=yes" }, 2, { "--json takes no value" } },
  { "--until=-3", { MV, "--until=-3" }, 2, { "--until must be a positive number of ms" } },
  { "--until inf", { MV, "--until", "inf" }, 2, { "--until needs a number, got 'inf'" } },
  { "--faulty -1", { MV, "--faulty", "-1" }, 2, { "--faulty must be at least 0" } },
  { "--rounds 0", { MV, "--rounds", "0" }, 2, { "--rounds must be at least 1" } },
  { "--budget 10", { MV, "--budget", "10" }, 2, { "--budget must be at least 1000" } },
  { "--watchdog -1", { MV, "--watchdog", "-1" }, 2, { "--watchdog must be a number of seconds >= 0" } },
  { "--memory abc", { MV, "--memory", "abc" }, 2, { "--memory needs an integer, got 'abc'" } },
  { "--inbox -1", { MV, "--inbox", "-1" }, 2, { "--inbox must be at least 0" } },
  { "--heal-at abc", { MV, "--heal-at", "abc" }, 2, { "--heal-at needs a number, got 'abc'" } },
  { "--attack with an unknown name", { MV, "--attack", "nosuch" }, 2,
    { "unknown attack 'nosuch'", "equivocate" } },
  { "--attacker FILE missing", { MV, "--attacker", tmp("nope.lua") }, 2,
    { "--attacker: cannot open " .. tmp("nope.lua") } },
  { "--attacker FILE is a directory", { MV, "--attacker", tmp("a_dir") }, 2,
    { "--attacker: cannot read " .. tmp("a_dir") } },
  { "--window junk", { MV, "--window", "junk" }, 2,
    { "--window needs FROM-TO in ms (e.g. 100-250), got 'junk'" }, one_line = true },
  { "--window backwards", { MV, "--window", "5-2" }, 2,
    { "--window: the end (2) must come after the start (5)" }, one_line = true },
  { "a script's own option, not a number", { PBFT, "--requests", "abc" }, 2,
    { "--requests needs an integer, got 'abc'" } },
  { "a script's own option, out of range", { PBFT, "--requests", "-3" }, 2,
    { "--requests must be at least 1" } },
  { "another script's option", { MV, "--requests", "5" }, 2,
    { "unknown option '--requests'" } },

  ------------------------------------------------------------ scripts
  { "a runtime error at top level", { "SCRIPT" }, 2,
    { "attempt to index a nil value (local 'x')", "stack traceback" },
    script = "local x = nil\nprint(x.y)\n" },
  { "a binary file as script", { "SCRIPT" }, 2, { "unexpected symbol" },
    script = "\0\1\2binary" },
  { "an error inside a sim:at action", { "SCRIPT", "--trace", tmp("action.jsonl") }, 2,
    { "scenario action failed:", "action exploded" }, trace = tmp("action.jsonl"),
    script = HEAD .. [[
sim:spawn{ start = function(node) node:propose(1); node:set_timer("t", 20) end,
           timer = function(node) node:decide(1) end }
sim:at(10, function() error("action exploded") end)
sim:run():print()
]] },
  { "an error after output: the output is kept", { "SCRIPT", "--trace", tmp("after.jsonl") }, 2,
    { "after the report" }, trace = tmp("after.jsonl"),
    want_out = { "checks: agreement OK", "partial line, no newline" },
    script = HEAD .. [[
sim:spawn{ start = function(node) node:propose(1); node:decide(1) end }
sim:run():print()
io.stdout:write("partial line, no newline")
error("after the report")
]] },
  { "a protocol that is not a table", { "SCRIPT" }, 2,
    { "spawn: a protocol is a table of handlers, got number" },
    script = HEAD .. "sim:spawn(42)\n" },
  { "a protocol holding a userdata (an open file)", { "SCRIPT" }, 2,
    { "upvalue 'f' is a userdata" },
    script = HEAD .. [[
local f = io.stdout
sim:spawn{ start = function(node) f:write("x") end }
sim:run():print()
]] },

  ------------------------------------------------------------ handlers
  -- Without --budget, the watchdog stops a call that runs too long in
  -- wall-clock time; the node's pcall cannot hold it.
  { "an endless loop under pcall, stopped by the watchdog", { "SCRIPT", "--watchdog", "0.3" }, 2,
    { "node 1 failed", "stopped by the watchdog", "--budget N" },
    want_out = { "2 of 3 honest nodes decided", "--watchdog 0.3" },
    script = node1("while true do pcall(function() while true do end end) end") },
  { "an endless loop with the default watchdog (5 s)", { "SCRIPT" }, 2,
    { "node 1 failed", "after 5 s of wall-clock time" }, want_out = { "2 of 3 honest nodes decided" },
    timeout = 60, script = node1("local x = 0 while true do x = x + 1 end") },
  { "an endless loop inside a running coroutine, stopped by the watchdog", { "SCRIPT", "--watchdog", "0.3" }, 2,
    { "node 1 failed", "stopped by the watchdog" }, want_out = { "2 of 3 honest nodes decided" },
    script = node1("coroutine.resume(coroutine.create(function() while true do end end)) while true do end") },
  { "an endless loop inside coroutine.wrap, stopped by the watchdog", { "SCRIPT", "--watchdog", "0.3" }, 2,
    { "node 1 failed", "stopped by the watchdog" }, want_out = { "2 of 3 honest nodes decided" },
    script = node1("coroutine.wrap(function() while true do end end)()") },
  { "--budget N stops an endless loop instead of the watchdog", { "SCRIPT", "--budget", "100000" }, 2,
    { "node 1 failed", "instruction budget exceeded (100000" }, absent = { "watchdog" },
    script = node1("while true do end") },
  { "an endless loop in coroutines, resumed in a loop", { "SCRIPT", "--budget", "100000" }, 2,
    { "node 1 failed", "instruction budget exceeded" }, want_out = { "2 of 3 honest nodes decided" },
    script = node1("while true do coroutine.resume(coroutine.create(function() while true do end end)) end") },
  -- 190 locals a frame: the Lua stack (10^6 slots) overflows after ~5000
  -- calls, not 500000, which the sanitizer builds take long to reach.
  { "deep recursion: Lua stack overflow", { "SCRIPT" }, 2,
    { "node 1 failed", "stack overflow" }, timeout = 60,
    script = node1(("local function f(n) local %s = n return 1 + f(n + 1) end f(1)")
      :format(("a,"):rep(189) .. "a")) },
  { "deep recursion through metamethods: C stack overflow", { "SCRIPT" }, 2,
    { "node 1 failed", "C stack overflow" },
    script = node1("local t = setmetatable({}, { __index = function(t, k) return t[k] end }) local _ = t.x") },
  { "a memory bomb fails the node, not the process",
    { "SCRIPT", "--memory", "8000000", "--trace", tmp("bomb.jsonl") }, 2,
    { "node 1 failed", "memory cap of" }, want_out = { "2 of 3 honest nodes decided" },
    trace = tmp("bomb.jsonl"),
    script = node1("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000000) .. i end") },
  { "string.rep beyond any size", { "SCRIPT" }, 2,
    { "node 1 failed", "resulting string too large" },
    script = node1("local s = string.rep('x', 1 << 40)") },
  { "yield outside a coroutine", { "SCRIPT" }, 2,
    { "node 1 failed", "attempt to yield from outside a coroutine" },
    script = node1("coroutine.yield(1)") },
  { "resuming a dead coroutine", { "SCRIPT" }, 2,
    { "node 1 failed", "cannot resume dead coroutine" },
    script = node1("local co = coroutine.wrap(function() coroutine.yield() end) co() co() co()") },
  { "a handler reaching for io (sandbox)", { "SCRIPT" }, 2,
    { "node 1 failed", "attempt to index a nil value (global 'io')" },
    script = node1("io.open('/etc/passwd')") },

  ------------------------------------------------------------ messages
  { "sending a coroutine", { "SCRIPT" }, 2, { "msg.co: cannot send a thread" },
    script = node1("node:send(0, { type = 'X', co = coroutine.create(print) })") },
  { "sending a cyclic table", { "SCRIPT" }, 2, { "msg.self: cyclic table" },
    script = node1("local m = { type = 'X' } m.self = m node:send(0, m)") },
  { "a function deep inside a message names the path", { "SCRIPT" }, 2,
    { "msg.a.b[3]: cannot send a function" },
    script = node1("node:send(0, { type = 'X', a = { b = { 1, 2, print } } })") },
  { "a function as a table key", { "SCRIPT" }, 2,
    { "table key must be a string, number or boolean (got function)" },
    script = node1("node:send(0, { type = 'X', [print] = 1 })") },
  { "a message over --max-msg", { "SCRIPT", "--max-msg", "1000" }, 2,
    { "node 1 failed", "message too large", "limit 1000" },
    script = node1("node:send(0, { type = 'X', s = string.rep('x', 5000) })") },
  { "a decision that is a function", { "SCRIPT" }, 2, { "value: cannot send a function" },
    script = node1("node:decide(print, 2)") },
  { "send to a node that does not exist", { "SCRIPT" }, 2,
    { "bad node id 7 (nodes are 0..2)" }, script = node1("node:send(7, { type = 'X' })") },
  { "send to a node named by a string", { "SCRIPT" }, 2,
    { "bad argument #1 to 'send' (number expected, got string)" },
    script = node1("node:send('zero', { type = 'X' })") },
  { "send without a message", { "SCRIPT" }, 2, { "bad argument #2 to 'send' (value expected)" },
    script = node1("node:send(0)") },
  { "set_timer with a negative delay", { "SCRIPT" }, 2,
    { "bad argument #2 to 'set_timer' (delay must be >= 0 ms)" },
    script = node1("node:set_timer('t', -5)") },
  { "set_timer with NaN", { "SCRIPT" }, 2, { "delay must be >= 0 ms" },
    script = node1("node:set_timer('t', 0/0)") },
  { "set_timer with a table as name", { "SCRIPT" }, 2,
    { "timer name (string or number) expected, got table" },
    script = node1("node:set_timer({}, 5)") },

  ------------------------------------------------------------ files
  { "the script is a directory", { tmp("a_dir") }, 2,
    { "cannot read " .. tmp("a_dir") .. ": Is a directory" } },
  { "the script cannot be read", { unreadable }, 2, { unreadable_needle } },
  { "--trace under /proc", { MV, "--trace", "/proc/x/t.jsonl" }, 2,
    { "cannot write trace file /proc/x/t.jsonl: No such file or directory" } },
  { "--trace in a directory that does not exist", { MV, "--trace", tmp("none/t.jsonl") }, 2,
    { "cannot write trace file " .. tmp("none/t.jsonl") } },
  { "--trace is a directory", { MV, "--trace", tmp("a_dir") }, 2,
    { "cannot write trace file " .. tmp("a_dir") .. ": Is a directory" } },
  { "--trace to a full disk (/dev/full)", { MV, "--trace", "/dev/full" }, 2,
    { "No space left on device" } },
  { "--strict stop with --trace: the trace is complete",
    { "SCRIPT", "--strict", "--trace", tmp("strict.jsonl") }, 2,
    { "node 0 failed at t=5.000 ms" }, trace = tmp("strict.jsonl"), want_out = { "checks:" },
    script = HEAD .. [[
sim:spawn{ start = function(node) node:propose(1); node:set_timer("t", 5) end,
           timer = function(node) if node.id == 0 then error("x") end node:decide(1) end }
sim:run():print()
]] },

  ------------------------------------------------------------ data dirs
  { "--data-dir is a file", { MV, "--data-dir", a_file }, 2,
    { "data directory " .. a_file .. ": Not a directory" } },
  { "--data-dir below a file", { MV, "--data-dir", a_file .. "/sub" }, 2,
    { "data directory " .. a_file .. "/sub: Not a directory" } },
  { "--data-dir that cannot be created", { MV, "--data-dir", "/proc/nope" }, 2,
    { "data directory /proc/nope" } },
  { "--data-dir where files cannot be made", { MV, "--data-dir", "/proc/1" }, 2,
    { "data directory", "/proc/1/" } },
}

-- Not handled yet; each with the behaviour we expect.
local PENDING = {
  { fixed = true, "an endless loop in a sim:at action is stopped by the budget", { "SCRIPT" }, 2,
    { "scenario action failed", "instruction budget exceeded" }, timeout = 20,
    script = HEAD .. [[
sim:spawn{ start = function(node) node:propose(1); node:set_timer("t", 20) end,
           timer = function(node) node:decide(1) end }
sim:at(10, function() while true do end end)
sim:run():print()
]] },
  { fixed = true, "a zero-delay timer loop (time never advances) fails the node", { "SCRIPT" }, 2,
    { "node 1 failed", "without time advancing" }, timeout = 20,
    want_out = { "errors: 1 handler error" },
    script = HEAD .. [[
sim:spawn{ start = function(node)
  node:propose(1)
  node:set_timer(node.id == 1 and "spin" or "done", node.id == 1 and 0 or 10)
end, timer = function(node, name)
  if name == "spin" then node:set_timer("spin", 0) else node:decide(1) end
end }
sim:run():print()
]] },
  { fixed = true, "--memory -5 is a usage error", { MV, "--memory", "-5" }, 2, { "--memory must be" } },
  { fixed = true, "--max-msg -1 is a usage error (0 means no cap)", { MV, "--max-msg", "-1" }, 2,
    { "--max-msg must be" } },
  { fixed = true, "--memory too small for a node state says so", { MV, "--memory", "1000" }, 2,
    { "--memory" }, one_line = true },
  { fixed = true, "--until 1e400 (infinite) is a one-line usage error", { MV, "--until", "1e400" }, 2,
    { "--until must be" }, one_line = true },
  { fixed = true, "--latency bogus is a one-line usage error", { MV, "--latency", "bogus" }, 2,
    { "--latency" }, one_line = true },
  { fixed = true, "--byzantine 1,x does not claim the nodes are 0..0", { MV, "--byzantine", "1,x" }, 2,
    { "'x' is not a node id" }, absent = { "(0..0)" } },
  { fixed = true, "--trace to an impossible path is a one-line error", { MV, "--trace", "/proc/x/t.jsonl" }, 2,
    { "cannot write trace file" }, one_line = true },
  { "a pathological pattern (backtracking in C) is stopped by the budget", { "SCRIPT" }, 2,
    { "node 1 failed", "budget" }, timeout = 2,
    script = node1("local k = 40 string.find(string.rep('a', k), string.rep('a?', k) .. string.rep('a', k) .. 'b')") },
  { fixed = true, "a node cannot load binary chunks (crafted bytecode crashes the VM)", { "SCRIPT" }, 2,
    { "node 1 failed", "binary chunk" },
    script = node1("local f, e = load(string.dump(function() end)) if not f then error(e) end") },
  { fixed = true, "a node cannot probe files with package.searchpath", { "SCRIPT" }, 2,
    { "node 1 failed", "searchpath" },
    script = node1("package.searchpath('passwd', '/etc/?')") },
  { fixed = true, "the replay line keeps --memory, --max-msg and --inbox",
    { "SCRIPT", "--memory", "8000000", "--max-msg", "5000", "--inbox", "7" }, 2,
    { "node 1 failed" }, want_out = { "--memory 8000000", "--max-msg 5000", "--inbox 7" },
    script = node1("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000000) .. i end") },
  { fixed = true, "a memory bomb names the cap", { "SCRIPT", "--memory", "8000000" }, 2,
    { "node 1 failed", "8000000" },
    script = node1("local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000000) .. i end") },
}

-- Fixed since they were found: they count like the others now.
for i = #PENDING, 1, -1 do
  if PENDING[i].fixed then table.insert(CASES, table.remove(PENDING, i)) end
end

local CRASH = { "Segmentation fault", "AddressSanitizer", "LeakSanitizer",
                "ThreadSanitizer", "runtime error:", "Aborted", "core dumped" }

-- The command of one case (its script written to a file of its own).
local function command(c, k)
  local args = {}
  if c.script then c.path = write(tmp("case" .. k .. ".lua"), c.script) end
  for i, a in ipairs(c[2]) do args[i] = a == "SCRIPT" and c.path or a end
  if c.trace then os.remove(c.trace) end
  local parts = { "timeout", tostring(c.timeout or 20), t.quote(t.host) }
  for _, a in ipairs(args) do parts[#parts + 1] = t.quote(a) end
  return table.concat(parts, " ")
end

-- Run every case's command, JOBS at a time (each is a process of its
-- own; in parallel the whole catalogue takes a few seconds even under
-- the sanitizers).  Fills c.out, c.err, c.code.
local JOBS = 4
local function run_all(list, tag)
  local sh = {}
  for k, c in ipairs(list) do
    local base = tmp(tag .. k)
    c.files = base
    sh[#sh + 1] = string.format("( %s >%s 2>%s; echo $? >%s ) &", command(c, tag .. k),
      t.quote(base .. ".out"), t.quote(base .. ".err"), t.quote(base .. ".code"))
    if k % JOBS == 0 then sh[#sh + 1] = "wait" end
  end
  sh[#sh + 1] = "wait"
  local script = write(tmp(tag .. ".sh"), table.concat(sh, "\n") .. "\n")
  t.run("sh " .. t.quote(script))
  for _, c in ipairs(list) do
    c.out = t.read(c.files .. ".out")
    c.err = t.read(c.files .. ".err")
    c.code = tonumber(t.read(c.files .. ".code"))
    if c.path then os.remove(c.path) end
  end
end

-- Check one case's results; raise on the first broken expectation.
local function check(c)
  local out, err, code = c.out, c.err, c.code
  assert(code ~= 124, "hung: killed by timeout after " .. (c.timeout or 20) .. " s")
  assert(code < 128, "crashed: exit status " .. tostring(code) .. "\n" .. err)
  for _, bad in ipairs(CRASH) do
    assert(not err:find(bad, 1, true), "crash report on stderr:\n" .. err)
  end
  t.eq(code, c[3], "exit status (stderr: " .. err .. ")")
  assert(err:sub(1, 15) == "consensus-lua: ", "stderr starts with 'consensus-lua: ':\n" .. err)
  for _, n in ipairs(c[4]) do t.has(err, n, "stderr") end
  local want_out = c.want_out
  if want_out == nil and c.script and c.script:sub(1, 8) == "-- node1" then
    want_out = { "2 of 3 honest nodes decided", "errors: 1 handler error (nodes 1 failed)" }
  end
  for _, n in ipairs(want_out or {}) do t.has(out, n, "stdout") end
  for _, n in ipairs(c.absent or {}) do
    assert(not err:find(n, 1, true), "stderr should not say " .. n .. ":\n" .. err)
  end
  if c.one_line then
    t.eq(select(2, err:gsub("\n", "")), 1, "a one-line message:\n" .. err)
  end
  if not want_out then t.eq(out, "", "nothing on stdout") end
  if c.trace then
    local f = io.open(c.trace, "rb")
    assert(f, "no trace written to " .. c.trace)
    local text = f:read("a")
    f:close()
    t.eq(text:sub(-1), "\n", "the trace ends with a complete line")
    local last = text:match("([^\n]*)\n$")
    assert(last:match('^{.*}$'), "last trace line is a JSON object: " .. last)
  end
end

run_all(CASES, "c")
run_all(PENDING, "p")

local cases = {}
for _, c in ipairs(CASES) do
  cases[#cases + 1] = { "bad input: " .. c[1], function() check(c) end }
end
cases[#cases + 1] = { "the catalogue has at least 25 cases", function()
  assert(#CASES >= 25, #CASES .. " cases")
end }

-- Pending cases report, never fail.
cases[#cases + 1] = { "pending cases (reported, never failing)", function()
  local pending = 0
  for _, c in ipairs(PENDING) do
    local ok, err = pcall(check, c)
    if ok then
      io.write("  FIXED (move it to CASES): ", c[1], "\n")
    else
      pending = pending + 1
      io.write("  pending: ", c[1], "\n    ", (tostring(err):gsub("\n.*", "")), "\n")
    end
  end
  io.write(string.format("  %d of %d pending\n", pending, #PENDING))
end }

cases[#cases + 1] = { "clean up", function()
  os.execute("chmod -R u+rwx " .. t.quote(TMP) .. "; rm -rf " .. t.quote(TMP))
end }

t.cases(cases)
