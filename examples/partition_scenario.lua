-- partition_scenario.lua: a scenario written from scratch.
--
-- Five nodes run a small leader-based vote.  At 2 ms, just after it
-- proposed, the leader (node 0) is partitioned away from everybody else:
-- the others decide without it, it cannot.  At 200 ms the network heals
-- and node 0 catches up by asking.  Then we read what the checker said and
-- print it our own way.
--
--   consensus-lua examples/partition_scenario.lua
--   consensus-lua examples/partition_scenario.lua --seed 7 --trace run.jsonl

local consensus = require "consensus"

-- The protocol: the leader of each attempt proposes; everyone votes;
-- a value commits on 2f+1 matching votes; a silent leader is replaced
-- after a timeout (attempt + 1 moves the leadership to the next node).
-- An undecided node also asks around on each timeout, and decided nodes
-- answer (trusting one answer is safe here: no node is Byzantine).
local Vote = {}

local function quorum(n) return (2 * n) // 3 + 1 end

local function try(node)
  node.votes = {}
  node:set_timer("timeout", 60)
  if node.attempt % node.n == node.id then
    local value = 100 + node.attempt
    node:propose(value)
    node:broadcast { type = "PROPOSE", attempt = node.attempt, value = value }
  end
end

function Vote.start(node)
  node.attempt = 0
  try(node)
end

local function decide(node, value, attempt)
  node.decided = true
  node:cancel_timer("timeout")
  node:decide(value)
  node:note { decided = value, attempt = attempt }
end

function Vote.receive(node, msg, from)
  if msg.type == "QUERY" and node.decided then
    node:send(from, { type = "DECIDED", value = node.decided_value })
    return
  elseif msg.type == "DECIDED" and not node.decided then
    decide(node, msg.value, node.attempt)
    node.decided_value = msg.value
    return
  end
  if node.decided or msg.attempt ~= node.attempt then return end
  if msg.type == "PROPOSE" and from == msg.attempt % node.n then
    node:broadcast { type = "VOTE", attempt = msg.attempt, value = msg.value }
  elseif msg.type == "VOTE" then
    node.votes[msg.value] = (node.votes[msg.value] or 0) + 1
    if node.votes[msg.value] == quorum(node.n) then
      node.decided_value = msg.value
      decide(node, msg.value, msg.attempt)
    end
  end
end

function Vote.timer(node)
  node:broadcast({ type = "QUERY" }, false)
  node.attempt = node.attempt + 1
  try(node)
end

-- The scenario.
local sim = consensus.sim { nodes = 5, network = { latency = "uniform:5:15" } }
sim:spawn(Vote)
sim:at(2, function(s) s:partition({ 0 }, { 1, 2, 3, 4 }) end)
sim:at(200, function(s) s:heal() end)
local report = sim:run { until_ms = 2000 }

-- Reading what the checker said.
report:print(function(r)
  print("Partitioned the leader away at 2 ms, healed at 200 ms.")
  for _, n in ipairs(r.notes) do
    print(string.format("  node %d decided %d at %.1f ms (attempt %d)",
      n.node, n.value.decided, n.t, n.value.attempt))
  end
  print(string.format("agreement %s, validity %s, termination %s",
    tostring(r.agreement), tostring(r.validity), tostring(r.termination)))
  print(string.format("%d messages lost to the partition", r.drops.partition))
  print("replay: " .. r.replay)
  return true
end)
