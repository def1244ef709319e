-- custom_attacker.lua: write your own Byzantine attacker with attackers.wrap.
--
--   consensus-lua examples/custom_attacker.lua                # n = 4, f = 1
--   consensus-lua examples/custom_attacker.lua --nodes 4 --faulty 2
--   consensus-lua examples/custom_attacker.lua --nodes 7 --byzantine 0,5
--
-- The protocol is a one-shot majority vote: node 0 proposes a value, every
-- node votes for what it heard, and a node decides a value once more than
-- two thirds of the nodes voted for that same value.  The attacker is a
-- "double agent": it runs this same protocol, but rewrites its votes so
-- that half of the nodes hear it vote for a fake value, and it pretends
-- not to hear node 1.
--
-- With n = 4 and one attacker the honest nodes still decide 42 (exit 0):
-- 2f+1 honest votes are enough, and one fake vote cannot make a quorum.
-- With --faulty 2 (n < 3f+1) the even nodes only count 2 votes for 42 and
-- never decide: termination is NOT reached (exit 3).  Make node 0 faulty
-- (--byzantine 0,...) and the decided value was proposed by a Byzantine
-- node: the checker reports a validity violation (exit 1).

local consensus = require "consensus"
local attackers = require "consensus.attackers"

local opts = consensus.options({}, { nodes = 4, faulty = 1 })

---------------------------------------------------------------- protocol

-- An honest node.  Everything it remembers lives in the node table.
local Vote = {}

-- Votes needed: more than two thirds of n.
local function quorum(n) return (2 * n) // 3 + 1 end

function Vote.start(node)
  node.voted = false
  node.decided = false
  node.voters = {}                    -- value -> { [id] = true, count = k }
  if node.id == 0 then
    node:propose(42)                  -- only the leader proposes
    node:broadcast { type = "PROPOSE", value = 42 }
  end
end

function Vote.receive(node, msg, from)
  if msg.type == "PROPOSE" and from == 0 and not node.voted then
    node.voted = true
    node:broadcast { type = "VOTE", value = msg.value }
  elseif msg.type == "VOTE" then
    -- Count each voter once per value: a duplicated vote changes nothing.
    local key = tostring(msg.value)
    local voters = node.voters[key]
    if voters == nil then
      voters = { count = 0 }
      node.voters[key] = voters
    end
    if not voters[from] then
      voters[from] = true
      voters.count = voters.count + 1
      if voters.count == quorum(node.n) and not node.decided then
        node.decided = true
        node:decide(msg.value)
      end
    end
  end
end

---------------------------------------------------------------- attacker

-- attackers.wrap(Vote, hooks) is a new protocol: it runs Vote's handlers,
-- but every message Vote sends passes through hooks.outgoing (once per
-- destination, even for a broadcast), and every message it receives
-- passes through hooks.incoming first.  Vote's code sees a stand-in node
-- whose node.byzantine is false, so it behaves honestly; the hooks alone
-- lie.
local DoubleAgent = attackers.wrap(Vote, {
  -- 'msg' is a private copy for destination 'to': change it freely.
  -- Return it, nil to drop it, or a list of messages to send instead.
  outgoing = function(node, to, msg)
    if msg.type ~= "VOTE" or to == node.id then return msg end
    if to % 2 == 0 then
      msg.value = msg.value + 1       -- even nodes hear a vote for 43
      return { msg, msg }             -- twice, in case they count twice
    end
    return msg                        -- odd nodes hear the honest vote
  end,
  -- Return the message for Vote to handle, or nil to ignore it.
  incoming = function(node, msg, from)
    if from == 1 then return nil end  -- "I never heard from node 1"
    return msg
  end,
})

---------------------------------------------------------------- scenario

-- The faulty nodes: --byzantine's list, else the last --faulty ids (so the
-- leader, node 0, stays honest unless you name it).
local faulty = opts.byzantine
if type(faulty) ~= "table" then
  faulty = {}
  for id = opts.nodes - opts.faulty, opts.nodes - 1 do faulty[#faulty + 1] = id end
end

local sim = consensus.sim { name = "Majority vote against a double agent",
                            network = { latency = "uniform:5:15" } }
sim:spawn(Vote)                       -- every node runs Vote ...
sim:byzantine(faulty, DoubleAgent)    -- ... but the faulty ones run the attacker
sim:run():print()
