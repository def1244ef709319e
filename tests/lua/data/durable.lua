-- A scenario for the data-directory tests: each node counts in node.store
-- and syncs every step; node 0 logs each count once node:sync returned.
local consensus = require "consensus"
local opts = consensus.options { steps = { 100, "steps each node takes" } }

local P = {}
function P.start(node)
  node:note { recovered = node.store.count or 0, boots = node.store.boots or 0 }
  node.store.boots = (node.store.boots or 0) + 1
  node.store.count = node.store.count or 0
  node:sync()
  node:set_timer("step", 1)
end
function P.timer(node)
  node.store.count = node.store.count + 1
  node:sync()
  if node.id == 0 then node:log("acked %d", node.store.count) end
  node:propose(node.store.count, node.store.count)
  node:decide(node.store.count, node.store.count)
  if node.store.count < opts.steps then node:set_timer("step", 1) end
end

local sim = consensus.sim { nodes = 2, until_ms = 1e9 }
sim:spawn(P)
local r = sim:run { stop_when_decided = false }
for _, n in ipairs(r.notes) do
  if n.node == 0 then
    print(string.format("recovered=%d boots=%d", n.value.recovered, n.value.boots))
  end
end
print("stores=" .. r.recovered.stores .. " decisions=" .. r.recovered.decisions)
