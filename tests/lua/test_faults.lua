-- test_faults: proof that the fault injector does what it says: partitions
-- and heals, crashes and restarts, loss, duplication, inbox policies,
-- pauses, clocks, signatures, and the fault options of the command line.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"
local consensus = require "consensus"

-- Every node pings every other node every 'period' ms until 'stop' ms and
-- notes each delivery as {from, sent_at}.
local function pinger(period, stop)
  return {
    start = function(node) node:set_timer("ping", period) end,
    timer = function(node)
      node:broadcast({ type = "PING", at = node.now }, false)
      if node.now < stop then node:set_timer("ping", period) end
    end,
    receive = function(node, msg, from)
      node:note { from = from, sent = msg.at, got = node.now }
    end,
  }
end

local function deliveries(r)
  local list = {}
  for _, n in ipairs(r.notes) do
    list[#list + 1] = { to = n.node, from = n.value.from, sent = n.value.sent, got = n.value.got }
  end
  return list
end

local function group_of(groups, id)
  for g, ids in ipairs(groups) do
    for _, x in ipairs(ids) do if x == id then return g end end
  end
  return 0
end

local cases = {
  { "a partition stops every crossing message; after heal they flow again", function()
    local sim = consensus.sim { nodes = 5, network = { latency = 1 } }
    sim:spawn(pinger(5, 100))
    local groups = { { 0, 1 }, { 2, 3, 4 } }
    sim:at(30, function(s) s:partition(groups[1], groups[2]) end)
    sim:at(60, function(s) s:heal() end)
    local r = sim:run { stop_when_decided = false }
    local crossed_before, crossed_after = 0, 0
    for _, d in ipairs(deliveries(r)) do
      local crossing = group_of(groups, d.to) ~= group_of(groups, d.from)
      if crossing and d.sent >= 30 and d.sent < 60 then
        error(string.format("message %d->%d sent at %.1f crossed the partition", d.from, d.to, d.sent))
      end
      if crossing and d.sent < 30 then crossed_before = crossed_before + 1 end
      if crossing and d.sent >= 60 then crossed_after = crossed_after + 1 end
    end
    assert(crossed_before > 0, "messages crossed before the partition")
    assert(crossed_after > 0, "messages cross again after heal")
    t.eq(r.drops.partition > 0, true, "drops counted as partition")
  end },

  { "a one-way cut drops one direction only", function()
    local sim = consensus.sim { nodes = 2, network = { latency = 1 } }
    sim:spawn(pinger(5, 50))
    sim:cut({ 0 }, { 1 })
    local r = sim:run { stop_when_decided = false }
    local from0, from1 = 0, 0
    for _, d in ipairs(deliveries(r)) do
      if d.from == 0 then from0 = from0 + 1 else from1 = from1 + 1 end
    end
    t.eq(from0, 0, "0 -> 1 cut")
    assert(from1 > 0, "1 -> 0 still flows")
  end },

  { "a crashed node's handlers never run until it restarts", function()
    local sim = consensus.sim { nodes = 3, network = { latency = 1 } }
    local P = pinger(4, 100)
    local base_start = P.start
    P.start = function(node) node:note { boot = node.now }; base_start(node) end
    sim:spawn(P)
    sim:crash(1, { at = 20, restart = 50 })
    local r = sim:run { stop_when_decided = false }
    local boots = 0
    for _, n in ipairs(r.notes) do
      if n.node == 1 then
        if n.value.boot then boots = boots + 1
        else
          assert(n.t < 20 or n.t >= 50, "node 1 handled a message at " .. n.t .. " while down")
        end
      end
    end
    t.eq(boots, 2, "start ran at boot and at restart")
    t.eq(r.crashes, 1, "crashes"); t.eq(r.restarts, 1, "restarts")
    assert(r.drops.down > 0, "messages to the crashed node were dropped")
  end },

  { "a dropped message never arrives; loss 1 delivers nothing", function()
    local sim = consensus.sim { nodes = 3, network = { latency = 1, loss = 1 } }
    sim:spawn(pinger(5, 40))
    local r = sim:run { stop_when_decided = false }
    t.eq(r.delivered, 0, "delivered"); t.eq(r.dropped, r.messages, "all dropped")
    t.eq(#r.notes, 0, "no handler saw a message")
  end },

  { "a dropped message never arrives (trace): no deliver for a dropped id", function()
    local path = os.tmpname()
    local sim = consensus.sim { nodes = 4, network = { latency = "uniform:1:4", loss = 0.3 }, trace = path }
    sim:spawn(pinger(3, 60))
    local r = sim:run { stop_when_decided = false }
    local dropped, delivered = {}, {}
    for line in io.lines(path) do
      local ev, id = line:match('"ev":"(%a+)".-"msg":"([%d:]+)"')
      if ev == "drop" then dropped[id] = true elseif ev == "deliver" then delivered[id] = true end
    end
    os.remove(path)
    local n = 0
    for id in pairs(dropped) do
      n = n + 1
      assert(not delivered[id], "dropped message " .. id .. " arrived")
    end
    assert(n > 10, "some messages were dropped")
    t.eq(r.drops.loss, n, "loss counted")
  end },

  { "fifo links: jitter reorders messages, fifo keeps each link in order", function()
    local function run(fifo)
      local sim = consensus.sim { nodes = 2, network = { latency = "uniform:1:20" }, fifo = fifo }
      sim:spawn {
        start = function(node)
          if node.id == 0 then for i = 1, 50 do node:send(1, { type = "N", i = i }) end end
        end,
        receive = function(node, msg) node:note(msg.i) end,
      }
      local r = sim:run { stop_when_decided = false }
      local inversions = 0
      for k = 2, #r.notes do
        if r.notes[k].value < r.notes[k - 1].value then inversions = inversions + 1 end
      end
      return inversions, #r.notes
    end
    local jitter, n1 = run(false)
    local fifo, n2 = run(true)
    t.eq(n1, 50, "all arrive"); t.eq(n2, 50, "all arrive with fifo")
    assert(jitter > 0, "jitter reorders without fifo")
    t.eq(fifo, 0, "no overtaking with fifo")
  end },

  { "a duplicated message arrives twice", function()
    local sim = consensus.sim { nodes = 2, network = { latency = 1, duplicate = 1 } }
    sim:spawn(pinger(5, 30))
    local r = sim:run { stop_when_decided = false }
    t.eq(r.delivered, 2 * r.messages, "every message twice")
    local seen = {}
    for _, d in ipairs(deliveries(r)) do
      local k = d.from .. "@" .. d.sent
      seen[k] = (seen[k] or 0) + 1
    end
    for k, c in pairs(seen) do t.eq(c, 2, "copies of " .. k) end
  end },

  { "a full inbox follows its policy exactly", function()
    -- Node 0 sends 6 numbered messages at once to node 1 (inbox 2).
    local function run(overflow)
      local sim = consensus.sim { nodes = 2, network = { latency = 5 }, inbox = 2, overflow = overflow }
      sim:spawn {
        start = function(node)
          if node.id == 0 then for i = 1, 6 do node:send(1, { type = "N", i = i }) end end
        end,
        receive = function(node, msg) node:note { i = msg.i, at = node.now } end,
      }
      local r = sim:run { stop_when_decided = false }
      local got = {}
      for _, n in ipairs(r.notes) do got[#got + 1] = n.value.i .. "@" .. n.value.at end
      return table.concat(got, " "), r
    end
    local newest, r1 = run("drop_newest")
    t.eq(newest, "1@5.0 2@5.0", "drop_newest keeps the first two")
    t.eq(r1.drops.overflow, 4, "four dropped")
    local random, r2 = run("drop_random")
    t.eq(select(2, random:gsub("@", "")), 2, "drop_random keeps exactly two")
    t.eq(r2.drops.overflow, 4, "four dropped")
    local block, r3 = run("block")
    t.eq(r3.drops.overflow, 0, "block drops nothing")
    local order = {}
    for i in block:gmatch("(%d)@") do order[#order + 1] = i end
    t.eq(table.concat(order), "123456", "all six, in order")
    assert(block:find("6@") and not block:find("6@5.0"), "the blocked ones arrive later")
  end },

  { "a paused node handles what arrived meanwhile at the end of the pause", function()
    local sim = consensus.sim { nodes = 2, network = { latency = 1 } }
    sim:spawn(pinger(2, 40))
    sim:pause(1, { at = 10, ms = 15 })
    local r = sim:run { stop_when_decided = false }
    for _, d in ipairs(deliveries(r)) do
      if d.to == 1 then
        local real = d.got
        assert(not (real > 10 and real < 25), "node 1 ran at " .. real .. " during its pause")
      end
    end
  end },

  { "clock skew and drift: node.now and timers run on the node's clock", function()
    local sim = consensus.sim { nodes = 2 }
    sim:spawn {
      start = function(node) node:note { now = node.now }; node:set_timer("t", 10) end,
      timer = function(node) node:note { now = node.now } end,
    }
    sim:clock(1, { skew = 100, drift = 1.0 })
    local r = sim:run { stop_when_decided = false }
    local by = {}
    for _, n in ipairs(r.notes) do by[#by + 1] = n.node .. ":" .. n.value.now .. "@" .. n.t end
    t.eq(table.concat(by, " "), "0:0.0@0.0 1:100.0@0.0 1:110.0@5.0 0:10.0@10.0", "clocks")
  end },

  { "lose_unsynced: a node that replies before persisting is caught", function()
    -- Node 1 promises its one vote; nodes 0 and 2 each decide slot 1 on
    -- its answer.  It crashes losing unsynced writes between the two asks.
    local function run(sync_first)
      local sim = consensus.sim { nodes = 3, network = { latency = 1 } }
      sim:spawn {
        start = function(node)
          if node.id == 0 then node:send(1, { type = "ASK", v = "A" }) end
          if node.id == 2 then node:set_timer("ask", 30) end
          node:propose("A"); node:propose("B")
        end,
        timer = function(node) node:send(1, { type = "ASK", v = "B" }) end,
        receive = function(node, msg, from)
          if msg.type == "ASK" then
            node.store.vote = node.store.vote or msg.v
            if sync_first then node:sync() end
            node:send(from, { type = "VOTE", v = node.store.vote })
          else
            node:decide(msg.v)
          end
        end,
      }
      sim:crash(1, { at = 10, restart = 20, lose_unsynced = true })
      return sim:run { slots = 0, stop_when_decided = false }
    end
    local bad = run(false)
    t.eq(bad.agreement, false, "replying before sync breaks agreement")
    local good = run(true)
    t.eq(good.agreement, true, "syncing first keeps the promise across the crash")
  end },

  { "signatures: verify returns the value; forgeries are nil and counted", function()
    local sim = consensus.sim { nodes = 3 }
    sim:spawn {
      start = function(node)
        if node.id == 0 then
          local blob = node:sign { v = 42 }
          node:send(1, { type = "S", blob = blob })
          node:send(2, { type = "S", blob = blob:sub(1, -2) .. "x" })   -- altered
        end
      end,
      receive = function(node, msg, from)
        local good = node:verify(msg.blob, from)
        local wrong_signer = node:verify(msg.blob, 2)
        node:note { ok = good and good.v or false, wrong = wrong_signer == nil }
      end,
    }
    local r = sim:run { stop_when_decided = false }
    local by = {}
    for _, n in ipairs(r.notes) do by[n.node] = n.value end
    t.eq(by[1].ok, 42, "node 1 verified the value"); t.eq(by[1].wrong, true, "wrong signer refused")
    t.eq(by[2].ok, false, "the altered blob is refused")
    t.eq(r.forgeries_detected, 3, "three failed verifications counted")
  end },

  { "fault options on the command line, and their bad input", function()
    local mv = "scripts/majority_vote.lua"
    local out, err = t.host_run(mv, "--partition", "0,1|2,3,4@5-400", "--json")
    t.has(out, '"partition":', "json"); assert(not out:find('"partition":0'), "partition drops: " .. err)
    out = t.host_run(mv, "--crash", "1@5-50", "--json")
    t.has(out, '"crashes":1', "crash"); t.has(out, '"restarts":1', "restart")
    for _, c in ipairs {
      { { "--crash", "9@3" }, "not a node id" },
      { { "--crash", "x" }, "is not ID@AT" },
      { { "--partition", "0,1" }, "two groups" },
      { { "--partition", "0|7" }, "not a node id" },
      { { "--latency", "wobbly:3" }, "bad latency" },
      { { "--latency", "0" }, "smallest latency must be above 0 ms" },
      { { "--loss", "1.5" }, "probability" },
      { { "--attack", "nosuch" }, "unknown attack" },
    } do
      local _, e, c2 = t.host_run(mv, table.unpack(c[1]))
      t.eq(c2, 2, "exit for " .. table.concat(c[1], " "))
      t.has(e, c[2], "message for " .. table.concat(c[1], " "))
    end
  end },
}

t.cases(cases)
