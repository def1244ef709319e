-- test_args: positional messages (node:post, post_all, post_others) and
-- the protocol's 'on' handlers: the values that arrive, the fallback to
-- receive, counts and metrics, the trace, errors, the budget, attackers
-- around a protocol that posts, bench/allvote.lua --args, and the stock
-- interpreter.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"
local consensus = require "consensus"
local attackers = require "consensus.attackers"

-- Run 'protocol' on 'n' nodes (constant latency) and return the report.
local function run(protocol, n, settings)
  local s = { nodes = n or 3, threads = 1, network = { latency = 1 } }
  for k, v in pairs(settings or {}) do s[k] = v end
  local sim = consensus.sim(s)
  sim:spawn(protocol)
  return sim:run { stop_when_decided = false, until_ms = 100 }
end

-- The notes of a report as a list of values.
local function notes(r)
  local out = {}
  for _, nt in ipairs(r.notes) do out[#out + 1] = nt.value end
  return out
end

-- The first error of a report (a table), failing when there is none.
local function first_error(r)
  assert(#r.errors > 0, "expected a handler error")
  return r.errors[1]
end

-- node 0 runs 'body' in start; the other nodes do nothing.
local function sender(body)
  return { start = function(node) if node.id == 0 then body(node) end end }
end

local cases = {
  { "posted values arrive as arguments: nil holes, tables, booleans, number kinds", function()
    local P = { on = {} }
    function P.start(node)
      if node.id == 0 then
        node:post(1, "ALL", 1, nil, 2.0, "s", { x = { 1, 2 }, [true] = "t" }, false, nil)
        node:post(1, "NONE")
      end
    end
    function P.on.ALL(node, from, ...)
      local a, b, c, d, e, f, g = ...
      node:note { from = from, n = select("#", ...), a = a, a_kind = math.type(a),
                  b_nil = b == nil, c = c, c_kind = math.type(c), d = d,
                  ex2 = e.x[2], et = e[true], f = f, g_nil = g == nil }
    end
    function P.on.NONE(node, from, ...)
      node:note { none = true, n = select("#", ...), from = from }
    end
    local ns = notes(run(P))
    t.eq(#ns, 2, "notes")
    local v = ns[1]
    t.eq(v.from, 0, "from")
    t.eq(v.n, 7, "argument count keeps the trailing nil")
    t.eq(v.a, 1, "a"); t.eq(v.a_kind, "integer", "1 stays an integer")
    t.eq(v.b_nil, true, "hole")
    t.eq(v.c, 2.0, "c"); t.eq(v.c_kind, "float", "2.0 stays a float")
    t.eq(v.d, "s", "string"); t.eq(v.ex2, 2, "nested table"); t.eq(v.et, "t", "boolean key")
    t.eq(v.f, false, "false"); t.eq(v.g_nil, true, "trailing nil")
    t.eq(ns[2].none, true, "no-argument message")
    t.eq(ns[2].n, 0, "no arguments")
  end },

  { "without on[type] a posted message goes to receive as {type=, n=, ...}", function()
    local P = { on = {} }
    function P.start(node)
      if node.id == 0 then node:post(1, "X", "a", nil, 3) end
      if node.id == 1 then node:post(2, "Y", 7) end
    end
    function P.on.Y(node, from, v) node:note { on = "Y", v = v, from = from } end
    function P.receive(node, msg, from)
      node:note { recv = msg.type, n = msg.n, a = msg[1], hole = msg[2] == nil, c = msg[3],
                  len = #msg, from = from }
    end
    local ns = notes(run(P))
    t.eq(#ns, 2, "notes")
    t.eq(ns[1].recv, "X", "fallback type"); t.eq(ns[1].n, 3, "fallback n")
    t.eq(ns[1].a, "a", "msg[1]"); t.eq(ns[1].hole, true, "msg[2]"); t.eq(ns[1].c, 3, "msg[3]")
    t.eq(ns[1].from, 0, "from")
    t.eq(ns[2].on, "Y", "on handler"); t.eq(ns[2].v, 7, "arg")
  end },

  { "table messages always go to receive, even when on[msg.type] exists", function()
    local P = { on = {} }
    function P.start(node) if node.id == 0 then node:send(1, { type = "T", v = 1 }) end end
    function P.on.T(node) node:note "on" end
    function P.receive(node, msg) node:note("receive " .. msg.type) end
    t.eq(notes(run(P))[1], "receive T", "table message")
  end },

  { "no handler at all: a posted message is dropped quietly", function()
    local r = run { on = {}, start = function(node)
      if node.id == 0 then node:post(1, "NOBODY", 1) end
    end }
    t.eq(#r.errors, 0, "errors"); t.eq(r.delivered, 1, "delivered")
  end },

  { "post_all and post_others: deliveries, sent counts and by_type", function()
    local P = { on = {} }
    function P.start(node)
      if node.id == 0 then
        node:post_all("ALL", 1)
        node:post_others("OTHERS", 1)
        node:post(2, "ONE", 1)
        node:broadcast({ type = "TAB", v = 1 }, false)
      end
    end
    function P.on.ALL(node, from) node:note { "ALL", node.id, from } end
    function P.on.OTHERS(node, from) node:note { "OTHERS", node.id, from } end
    function P.on.ONE(node, from) node:note { "ONE", node.id, from } end
    function P.receive(node, msg) node:note { msg.type, node.id } end
    local r = run(P, 4)
    t.eq(r.messages, 4 + 3 + 1 + 3, "sent")
    t.eq(r.delivered, 11, "delivered")
    local seen = {}
    for _, v in ipairs(notes(r)) do seen[v[1]] = (seen[v[1]] or 0) + 1 end
    t.eq(seen.ALL, 4, "post_all reaches every node, itself included")
    t.eq(seen.OTHERS, 3, "post_others skips itself")
    t.eq(seen.ONE, 1, "post"); t.eq(seen.TAB, 3, "broadcast")
    t.eq(r.by_type.ALL.messages, 4, "by_type ALL")
    t.eq(r.by_type.OTHERS.messages, 3, "by_type OTHERS")
    t.eq(r.by_type.ONE.messages, 1, "by_type ONE")
    t.eq(r.by_type.TAB.messages, 3, "by_type TAB")
    -- "ALL" + one small integer: tag, type header, 3 bytes, count, value
    t.eq(r.by_type.ALL.bytes, 4 * 7, "by_type bytes of a 7-byte message")
    t.eq(r.by_type.OTHERS.bytes, 3 * 10, "by_type bytes")
  end },

  { "a posted message is smaller than its table", function()
    local P = {}
    function P.start(node)
      if node.id == 0 then
        node:post(1, "VOTE", 3, 42, true)
        node:send(1, { type = "VOTET", round = 3, value = 42, yes = true })
      end
    end
    local r = run(P, 2)
    t.eq(r.by_type.VOTE.bytes, 10, "post(VOTE, 3, 42, true)")
    t.eq(r.by_type.VOTET.bytes, 33, "the same as a table")
  end },

  { "the trace names a posted message's type", function()
    local path = os.tmpname()
    local P = { on = { PING = function() end } }
    function P.start(node) if node.id == 0 then node:post(1, "PING", 1, "x") end end
    run(P, 2, { trace = path })
    local text = t.read(path)
    os.remove(path)
    t.has(text, '"ev":"send","node":0,"peer":1,"type":"PING","size":10', "send")
    t.has(text, '"ev":"deliver","node":1,"peer":0,"type":"PING","size":10', "deliver")
  end },

  { "consensus.decode reads a positional message as its table form", function()
    local v = consensus.decode("\xc7\x84VOTE\x04\x03\xc0\xc2\x81a")
    t.eq(v.type, "VOTE", "type"); t.eq(v.n, 4, "n"); t.eq(v[1], 3, "[1]")
    t.eq(v[2], nil, "[2]"); t.eq(v[3], true, "[3]"); t.eq(v[4], "a", "[4]")
    local bad = {
      { "\xc7\x80\x00", "empty type" },
      { "\xc7\x84VOTE\x02\x01", "fewer values than counted" },
      { "\xc7\x84VOTE\x01\x01\x02", "trailing bytes" },
      { "\xc7\x84VOTE\x01\xc7\x81A\x00", "a positional message inside" },
      { "\xc6\x01\x00\xc7\x81A\x00", "a positional message in a table" },
      { "\xc7\xc5\x04VOTE\x00", "a long-string type" },
      { "\xc7\x84VOTE\x80\x02", "more than 255 values" },
      { "\xc7\x84VO", "a cut type" },
      { "\xc7", "a bare tag" },
    }
    for _, b in ipairs(bad) do
      local ok, err = pcall(consensus.decode, b[1])
      assert(not ok, b[2] .. " decoded")
      t.has(err, "decode: malformed message", b[2])
    end
  end },

  { "bad posts fail the node with clear messages", function()
    local big = {}
    for i = 1, 256 do big[i] = i end
    local list = {
      { function(node) node:post(1, 5) end, "bad argument #2 to 'post' (message type (string) expected, got number)" },
      { function(node) node:post(1) end, "bad argument #2 to 'post' (message type (string) expected, got no value)" },
      { function(node) node:post(1, "") end, "bad argument #2 to 'post' (a message type of 1..63 bytes)" },
      { function(node) node:post(1, ("x"):rep(64)) end, "(a message type of 1..63 bytes)" },
      { function(node) node:post_all({}) end,
        "bad argument #1 to 'post_all' (message type (string) expected, got table)" },
      { function(node) node:post(1, "V", 1, print) end, "msg[2]: cannot send a function" },
      { function(node) node:post_all("V", { cb = print }) end, "msg[1].cb: cannot send a function" },
      { function(node) node:post_others("V", nil, coroutine.create(print)) end, "msg[2]: cannot send a thread" },
      { function(node) node:post(9, "V") end, "bad node id 9 (nodes are 0..2)" },
      { function(node) node:post(1, "V", table.unpack(big)) end, "msg: too many arguments (256, at most 255)" },
      { function(node) node:post(1, "V", ("x"):rep(2000)) end, "msg: message too large (" },
    }
    for i, c in ipairs(list) do
      local r = run(sender(c[1]), 3, { max_msg = 1000 })
      local e = first_error(r)
      t.eq(e.handler, "start", "case " .. i .. " handler")
      t.has(e.message, c[2], "case " .. i)
    end
    -- 255 values are fine
    local r = run(sender(function(node)
      local v = {}
      for i = 1, 255 do v[i] = i end
      node:post(1, "V", table.unpack(v))
    end))
    t.eq(#r.errors, 0, "255 values")
  end },

  { "spawn checks the on table", function()
    local ok, err = pcall(function() consensus.sim { nodes = 2 }:spawn { on = 3 } end)
    assert(not ok); t.has(err, "spawn: protocol.on must be a table of handlers, got number", "on")
    ok, err = pcall(function() consensus.sim { nodes = 2 }:spawn { on = { VOTE = 1 } } end)
    assert(not ok); t.has(err, "spawn: protocol.on.VOTE must be a function, got number", "on.VOTE")
  end },

  { "an error in on[type] fails the node and names on.TYPE", function()
    local P = { on = {} }
    function P.start(node) if node.id == 0 then node:post(1, "VOTE", 1) end end
    function P.on.VOTE(_, _, v) error("bad vote " .. v) end
    local r = run(P, 2)
    local e = first_error(r)
    t.eq(e.handler, "on.VOTE", "handler"); t.eq(e.node, 1, "node")
    t.has(e.message, "bad vote 1", "message")
    t.eq(r.failed[1], 1, "failed node")
    -- the fallback names receive
    P.on.VOTE = nil
    function P.receive() error("in receive") end
    e = first_error(run(P, 2))
    t.eq(e.handler, "receive", "fallback handler")
  end },

  { "the instruction budget applies to on[type] handlers", function()
    local P = { on = {} }
    function P.start(node) if node.id == 0 then node:post(1, "SPIN") end end
    function P.on.SPIN(node)
      local ok = pcall(function() while true do end end)
      node:note(ok)
    end
    local r = run(P, 2, { budget = 100000 })
    local e = first_error(r)
    t.eq(e.handler, "on.SPIN", "handler")
    t.has(e.message, "instruction budget exceeded", "budget")
    t.eq(#r.notes, 0, "pcall cannot swallow it")
  end },

  { "each node has its own on table, and may change it as it runs", function()
    local P = { on = {} }
    local calls = 0
    function P.start(node)
      if node.id == 0 then node:post_all("A"); node:post_all("A") end
    end
    function P.on.A(node)
      calls = calls + 1
      node:note { id = node.id, calls = calls }
      node.protocol.on.A = function(nd) nd:note { id = nd.id, second = true } end
    end
    local ns = notes(run(P, 2))
    t.eq(#ns, 4, "notes")
    for _, v in ipairs(ns) do
      if v.calls then t.eq(v.calls, 1, "an upvalue per node") end
    end
    t.eq(ns[3].second or ns[4].second, true, "the replaced handler runs")
    t.eq(calls, 0, "the main state's upvalue is untouched")
  end },

  { "same output on 1 and 2 threads", function()
    local P = { on = {} }
    function P.start(node) node:set_timer("t", node:random(1, 5)) end
    function P.timer(node) node:post_others("PING", node.id, node:random(1, 100)) end
    function P.on.PING(node, from, id, v)
      assert(from == id)
      node:note { at = node.now, from = from, v = v }
      if v % 3 == 0 and node.now < 50 then node:post(from, "PING", node.id, v + 1) end
    end
    local function go(th)
      local sim = consensus.sim { nodes = 5, threads = th, network = { latency = "uniform:1:4" } }
      sim:spawn(P)
      return sim:run { stop_when_decided = false, until_ms = 100 }:json()
    end
    local a = go(1)
    t.eq(t.strip_threads(go(2)), t.strip_threads(a), "threads 1 vs 2")
  end },

  { "attackers: a wrap without hooks passes posts through to on", function()
    local P = { on = {} }
    function P.start(node) if node.id == 0 then node:post_all("V", 1, 2) end end
    function P.on.V(node, from, a, b) node:note { node.id, from, a, b, node.byzantine } end
    function P.receive(node) node:note "receive" end
    local sim = consensus.sim { nodes = 3, threads = 1 }
    sim:spawn(P):byzantine({ 0 }, attackers.wrap(P, {}))
    local ns = notes(sim:run { stop_when_decided = false, until_ms = 100 })
    t.eq(#ns, 3, "notes")
    for _, v in ipairs(ns) do
      t.eq(v[3], 1, "a"); t.eq(v[4], 2, "b")
      t.eq(v[5], false, "the honest code sees byzantine == false")
    end
  end },

  { "attackers: outgoing and incoming hooks see the table form; posts stay positional", function()
    local P = { on = {} }
    function P.start(node) if node.id == 0 then node:post_all("VOTE", 5, 42, true) end end
    function P.on.VOTE(node, from, r, v, yes) node:note { "on", node.id, from, r, v, yes } end
    function P.receive(node, msg) node:note { "receive", node.id, msg.type } end
    -- node 0 flips the vote (position 3) and bumps the value (position 2);
    -- node 1 rewrites what it hears.
    local liar = attackers.flip(P, { vote_fields = { 3 }, value_fields = { 2 } })
    local deaf = attackers.wrap(P, { incoming = function(node, msg)
      node:note { "in", node.id, msg.type, msg.n, msg[1], require("consensus.attackers").is_posted(msg) }
      msg[1] = msg[1] + 100
      return msg
    end })
    local sim = consensus.sim { nodes = 3, threads = 1 }
    sim:spawn(P):byzantine({ 0 }, liar):byzantine({ 1 }, deaf)
    local r = sim:run { stop_when_decided = false, until_ms = 100 }
    t.eq(#r.errors, 0, "errors")
    local by = {}
    for _, v in ipairs(notes(r)) do by[v[1] .. v[2]] = v end
    t.eq(by.on0[6], true, "a message to itself stays honest")
    t.eq(by.on2[5], 43, "value lied to node 2"); t.eq(by.on2[6], false, "vote flipped for node 2")
    t.eq(by.in1[3], "VOTE", "incoming sees the type"); t.eq(by.in1[4], 3, "and n")
    t.eq(by.in1[5], 5, "and the arguments"); t.eq(by.in1[6], true, "marked as posted")
    t.eq(by.on1[4], 105, "the rewritten message reaches on.VOTE")
    assert(by.receive1 == nil and by.receive2 == nil, "nothing went to receive")
  end },

  { "attackers: delay and replay keep posted messages positional", function()
    local P = { on = {} }
    function P.start(node) if node.id == 0 then node:post_others("V", node.id) end end
    function P.on.V(node, from, id) node:note { at = node.now, from = from, id = id } end
    function P.receive(node, msg) node:note { receive = msg.type } end
    local sim = consensus.sim { nodes = 3, threads = 1, network = { latency = 1 } }
    sim:spawn(P):byzantine({ 0 }, attackers.delay(P, { ms = 20 }))
    local ns = notes(sim:run { stop_when_decided = false, until_ms = 100 })
    t.eq(#ns, 2, "two deliveries")
    for _, v in ipairs(ns) do
      t.eq(v.receive, nil, "not in receive"); t.eq(v.id, 0, "argument")
      assert(v.at >= 21, "held 20 ms, arrived at " .. tostring(v.at))
    end
    sim = consensus.sim { nodes = 3, threads = 1, network = { latency = 1 } }
    sim:spawn(P):byzantine({ 0 }, attackers.replay(P, { every = 5, times = 3, burst = 2 }))
    ns = notes(sim:run { stop_when_decided = false, until_ms = 100 })
    t.eq(#ns, 2 + 3 * 2, "two honest deliveries and six replays")
    for _, v in ipairs(ns) do t.eq(v.receive, nil, "replays reach on.V") end
  end },

  { "attackers: a strategy from the command line runs a posting protocol", function()
    local out, err, code = t.host_run("bench/allvote.lua", "--args", "--nodes", "7", "--rounds", "2",
      "--faulty", "1", "--byzantine", "3", "--attack", "garble")
    -- a Byzantine node decides too, so allvote's counts may differ: only
    -- the run itself must go through without a handler error
    t.has(out, "messages=", "output (" .. err .. ")")
    assert(not err:find("failed at"), "no handler error: " .. err)
    assert(code == 0 or code == 1, "exit " .. tostring(code))
  end },

  { "bench/allvote.lua --args gives the same counts as the table version", function()
    local function last(...)
      local out, err, code = t.host_run("bench/allvote.lua", "--nodes", "9", "--rounds", "4",
        "--threads", "2", ...)
      t.eq(code, 0, "exit (" .. err .. ")")
      return out:match("(messages=%d+ decisions=%d+)")
    end
    local tab = last()
    t.eq(tab, "messages=" .. 4 * (81 + 9 - 1) .. " decisions=36", "table version")
    t.eq(last("--args"), tab, "--args")
  end },

  { "the stock lua5.4 runs a posting protocol", function()
    local path = t.temp_script([[
local consensus = require "consensus"
local P = { on = {} }
function P.start(node) if node.id == 0 then node:post_all("HI", "there", 2.5) end end
function P.on.HI(node, from, w, x)
  node:propose(w); node:decide(w)
  assert(from == 0 and x == 2.5 and math.type(x) == "float")
end
local r = consensus.sim{ nodes = 3, threads = 1 }:spawn(P):run()
print(r.delivered, r.by_type.HI.messages, r.status)
consensus.exit()
]])
    local cmd = string.format("LUA_CPATH_5_4=%s %s %s", t.quote(t.build .. "/?.so;;"),
      t.quote(t.lua), t.quote(path))
    local out, err, code = t.run(cmd)
    os.remove(path)
    t.eq(code, 0, "exit (" .. err .. ")")
    t.eq(out, "3\t3\t0\n", "output")
  end },
}

t.cases(cases)
