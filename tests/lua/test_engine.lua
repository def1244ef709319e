-- test_engine: the engine seen from Lua: isolation, determinism, node
-- handles, timers, checks, and the module under the stock interpreter.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"
local consensus = require "consensus"

-- A protocol whose whole story depends on the seed: random delays, random
-- values, timers, string-keyed tables walked in sorted order.
local NOISY = [[
local consensus = require "consensus"
local P = {}
function P.start(node)
  node.seen = {}
  node:set_timer("tick", node:random(1, 30))
  node:propose(node.id)
end
function P.timer(node, name)
  local v = math.random(1, 1000)
  node:broadcast({ type = "PING", v = v, tag = "n" .. node.id })
  if node.now < 200 then node:set_timer(name, math.random(5, 40)) end
end
function P.receive(node, msg, from)
  node.seen["k" .. from] = (node.seen["k" .. from] or 0) + msg.v
  local acc = {}
  for k, v in consensus.sorted_pairs(node.seen) do acc[#acc + 1] = k .. "=" .. v end
  node:note({ at = node.now, from = from, digest = table.concat(acc, ","):sub(1, 40) })
  if not node.done and node.now > 150 then
    node.done = true
    node:decide(0)
  end
end
local sim = consensus.sim{ nodes = 9, network = { latency = "uniform:2:9", loss = 0.1 } }
sim:spawn(P)
local r = sim:run()
local lines = { r:json() }
for _, n in ipairs(r.notes) do
  lines[#lines + 1] = string.format("%.3f %d %s", n.t, n.node, n.value.digest)
end
print(table.concat(lines, "\n"))
]]

local cases = {
  { "isolation: a global set by one node is invisible to the others", function()
    local sim = consensus.sim { nodes = 4, threads = 2 }
    sim:spawn {
      start = function(node)
        if node.id == 0 then SHARED = "leak" end
        node:set_timer("look", 5)
      end,
      timer = function(node)
        node:note { id = node.id, sees = SHARED }
        node:propose(1)
        node:decide(1)
      end,
    }
    local r = sim:run()
    t.eq(#r.notes, 4, "notes")
    for _, n in ipairs(r.notes) do
      if n.node == 0 then t.eq(n.value.sees, "leak", "node 0")
      else t.eq(n.value.sees, nil, "node " .. n.node) end
    end
    t.eq(SHARED, nil, "main state")
  end },

  { "isolation: upvalue tables are copied per node", function()
    local counter = { n = 0 }
    local sim = consensus.sim { nodes = 3 }
    sim:spawn {
      start = function(node)
        counter.n = counter.n + 1
        node:note(counter.n)
        node:propose(0); node:decide(0)
      end,
    }
    local r = sim:run()
    for _, n in ipairs(r.notes) do t.eq(n.value, 1, "each node's own copy") end
    t.eq(counter.n, 0, "main state's table untouched")
  end },

  { "node handle: id, n, f, now, byzantine and timers", function()
    local sim = consensus.sim { nodes = 5, faulty = 1, network = { latency = 3 } }
    sim:spawn {
      start = function(node)
        node:set_timer("a", 10)
        node:set_timer("b", 20)
        node:set_timer("a", 30)        -- replaces the pending "a"
        node:set_timer("c", 15)
        node:cancel_timer("c")
      end,
      timer = function(node, name)
        node:note { id = node.id, n = node.n, f = node.f, now = node.now,
                    name = name, byz = node.byzantine }
        if name == "a" then node:propose(1); node:decide(1) end
      end,
    }
    sim:byzantine { 4 }
    local r = sim:run()
    local fired = {}
    for _, n in ipairs(r.notes) do
      local v = n.value
      t.eq(v.n, 5, "n"); t.eq(v.f, 1, "f")
      t.eq(v.byz, v.id == 4, "byzantine flag")
      fired[#fired + 1] = v.name .. "@" .. v.now
    end
    -- per node: b at 20, a at 30; c never
    t.eq(#fired, 10, "timers fired")
    for i = 1, 5 do t.eq(fired[i], "b@20.0", "first five") end
    for i = 6, 10 do t.eq(fired[i], "a@30.0", "last five") end
  end },

  { "messages: round trip of nested data, sends and the from argument", function()
    local sim = consensus.sim { nodes = 2, network = { latency = 1 } }
    local payload = { type = "X", list = { 1, 2.5, "three", true }, nested = { deep = { x = -7 } } }
    sim:spawn {
      start = function(node) if node.id == 0 then node:send(1, payload) end end,
      receive = function(node, msg, from)
        node:note { from = from, msg = msg, now = node.now }
        node:propose(1); node:decide(1)
      end,
    }
    local r = sim:run { stop_when_decided = false }
    t.eq(#r.notes, 1, "one delivery")
    local v = r.notes[1].value
    t.eq(v.from, 0, "from"); t.eq(v.now, 1.0, "arrives after the latency")
    t.eq(v.msg.list[2], 2.5, "float"); t.eq(v.msg.list[3], "three", "string")
    t.eq(v.msg.nested.deep.x, -7, "nested")
    t.eq(math.type(v.msg.list[1]), "integer", "integer stays integer")
  end },

  { "checks: two honest values in one slot break agreement (exit 1)", function()
    local sim = consensus.sim { nodes = 3 }
    sim:spawn { start = function(node)
      node:propose(node.id); node:decide(node.id % 2)
    end }
    local r = sim:run()
    t.eq(r.agreement, false, "agreement")
    t.eq(r.status, 1, "status")
    t.eq(r.violations[1].kind, "agreement", "kind")
    t.eq(r.violations[1].slot, 1, "slot")
  end },

  { "checks: a Byzantine node's decision is not checked", function()
    local sim = consensus.sim { nodes = 4 }
    sim:spawn { start = function(node)
      node:propose(7)
      node:decide(node.byzantine and 99 or 7)
    end }
    sim:byzantine { 2 }
    local r = sim:run()
    t.eq(r.agreement, true, "agreement"); t.eq(r.validity, true, "validity")
    t.eq(r.status, 0, "status")
  end },

  { "checks: an unproposed value breaks validity; undecided breaks termination", function()
    local sim = consensus.sim { nodes = 2, until_ms = 50 }
    sim:spawn { start = function(node) if node.id == 0 then node:decide("x") end end }
    local r = sim:run()
    t.eq(r.validity, false, "validity")
    t.eq(r.termination, false, "termination")
    t.eq(r.status, 1, "safety outranks termination")
    local sim2 = consensus.sim { nodes = 2, until_ms = 50 }
    sim2:spawn { start = function(node) node:propose(1); if node.id == 0 then node:decide(1) end end }
    local r2 = sim2:run()
    t.eq(r2.termination, false, "termination")
    t.eq(r2.status, 3, "status 3")
  end },

  { "math.random and os.time in nodes follow the seed, not the clock", function()
    local function once(seed)
      local sim = consensus.sim { nodes = 3, seed = seed }
      sim:spawn { start = function(node)
        node:note { r = math.random(1, 1 << 40), f = math.random(), t = os.time(), c = os.clock() }
        node:propose(0); node:decide(0)
      end }
      local r = sim:run()
      local s = {}
      for _, n in ipairs(r.notes) do s[#s + 1] = n.value.r .. ":" .. n.value.f .. ":" .. n.value.t end
      return table.concat(s, ",")
    end
    t.eq(once(11), once(11), "same seed")
    assert(once(11) ~= once(12), "different seeds differ")
    t.has(once(11), ":0,", "os.time is virtual (0 s at start)")
  end },

  { "node states have no io, no file loading, no C modules", function()
    local sim = consensus.sim { nodes = 1 }
    sim:spawn { start = function(node)
      node:note { io = type(io), dofile = type(dofile), loadfile = type(loadfile),
                  debug = type(debug), exec = type(os.execute),
                  req = (pcall(require, "socket")) }
      node:propose(0); node:decide(0)
    end }
    local v = sim:run().notes[1].value
    t.eq(v.io, "nil", "io"); t.eq(v.dofile, "nil", "dofile"); t.eq(v.loadfile, "nil", "loadfile")
    t.eq(v.debug, "nil", "debug"); t.eq(v.exec, "nil", "os.execute"); t.eq(v.req, false, "require C")
  end },

  { "allow widens the sandbox on purpose, and only what it names", function()
    local sim = consensus.sim { nodes = 1, allow = { "io" } }
    sim:spawn { start = function(node)
      node:note { io = type(io), date = type(os.date), debug = type(debug), t = os.time() }
      node:propose(0); node:decide(0)
    end }
    local v = sim:run().notes[1].value
    t.eq(v.io, "table", "io given"); t.eq(v.date, "nil", "os not given")
    t.eq(v.debug, "nil", "debug not given"); t.eq(v.t, 0, "time still virtual")
    local ok, err = pcall(consensus.sim, { nodes = 1, allow = { "socket" } })
    t.eq(ok, false, "unknown library refused"); t.has(err, "unknown library 'socket'", "named")
  end },

  { "a protocol holding a userdata upvalue is refused with its name", function()
    local out = io.stdout
    local sim = consensus.sim { nodes = 2 }
    sim:spawn { receive = function() out:write("x") end }
    local ok, err = pcall(sim.run, sim)
    assert(not ok, "run should fail")
    t.has(err, "upvalue 'out'", "names the upvalue")
    t.has(err, "userdata", "names the type")
  end },

  { "sorted_pairs walks keys in a fixed order", function()
    local keys = {}
    for k in consensus.sorted_pairs { b = 1, a = 2, [3] = 0, [1] = 0, c = 3 } do
      keys[#keys + 1] = tostring(k)
    end
    t.eq(table.concat(keys, ","), "1,3,a,b,c", "order")
  end },

  { "determinism: byte-identical output with 1, 2 and 4 threads", function()
    local path = t.temp_script(NOISY)
    local out1, err1, c1 = t.host_run(path, "--threads", "1", "--seed", "9")
    local out2, _, c2 = t.host_run(path, "--threads", "2", "--seed", "9")
    local out4, _, c4 = t.host_run(path, "--threads", "4", "--seed", "9")
    os.remove(path)
    t.eq(c1, 0, "exit (" .. err1 .. ")"); t.eq(c2, 0, "exit"); t.eq(c4, 0, "exit")
    assert(#out1 > 1000, "a real story was told")
    t.eq(t.strip_threads(out2), t.strip_threads(out1), "threads 2 vs 1")
    t.eq(t.strip_threads(out4), t.strip_threads(out1), "threads 4 vs 1")
  end },

  { "determinism: two processes, same seed, same bytes; other seed differs", function()
    local path = t.temp_script(NOISY)
    local a = t.host_run(path, "--seed", "3", "--threads", "2")
    local b = t.host_run(path, "--seed", "3", "--threads", "2")
    local c = t.host_run(path, "--seed", "4", "--threads", "2")
    os.remove(path)
    t.eq(a, b, "same seed")
    assert(a ~= c, "another seed tells another story")
  end },

  { "the module loads in the stock lua5.4 and reads options from arg", function()
    local cmd = string.format("LUA_CPATH_5_4=%s %s scripts/majority_vote.lua --nodes 4 --faulty 1 --seed 2 --json",
      t.quote(t.build .. "/?.so;;"), t.quote(t.lua))
    local out, err, code = t.run(cmd)
    t.eq(code, 0, "exit (" .. err .. ")")
    t.has(out, '"nodes":4', "nodes from arg")
    t.has(out, '"seed":2', "seed from arg")
    local host = t.host_run("scripts/majority_vote.lua", "--nodes", "4", "--faulty", "1", "--seed", "2", "--json")
    t.eq(t.strip_threads(out), t.strip_threads(host), "same result as the host")
  end },
}

t.cases(cases)
