-- buggy/vote_simple_majority.lua: a vote protocol with a planted bug, for
-- the checker to catch.
--
-- BUG: commits on a simple majority (n/2+1) under equivocation.
--
-- The protocol is the seed algorithm of scripts/majority_vote.lua (the
-- leader proposes, every node votes for what it got and tells every node,
-- a node commits once enough votes match, the next leader retries after a
-- timeout) with one change: the commit quorum is n//2 + 1 instead of the
-- Byzantine quorum 2n//3 + 1 (2f+1 when n = 3f+1).
--
-- Two simple majorities of n nodes share at least one node, which is enough
-- against crashes, but not against a Byzantine one: the shared node can
-- vote both ways.  A Byzantine leader that equivocates, value A to half of
-- the nodes and B to the other half, and then votes A to the first half and
-- B to the second, gives each half n//2 + 1 matching votes when n is odd
-- and the honest nodes split evenly: both halves commit, to different
-- values, and agreement is violated.  With the 2f+1 quorum the halves
-- would need f + 1 shared nodes, one of them honest, and that one votes
-- only once.
--
-- Each round has two client requests, value_of(round) and value_of(round)
-- + 1, which every honest node holds (node:propose): the leader should pick
-- one, an honest one picks the first.  Both are valid decisions, so the
-- checker's validity holds and the bug shows as an agreement violation.
--
-- Faulty nodes (--faulty, --byzantine) equivocate on their own: as leader
-- they send value + 1 to the odd ids, and as voters they vote value + 1 to
-- the odd ids.  --attack equivocate does the same from the attacker
-- library.  Run it as
--
--   consensus-lua scripts/buggy/vote_simple_majority.lua --byzantine 0
--   consensus-lua scripts/buggy/vote_simple_majority.lua --attack equivocate --seed 3
--   consensus-lua scripts/majority_vote.lua --attack equivocate --seed 3  # correct

local consensus = require "consensus"

local opts = consensus.options({
  timeout = { 100.0, "ms a node waits for a round before the next leader retries" },
}, { nodes = 5, faulty = 1 })

local ROUNDS = opts.rounds
local FIRST_VALUE = 42

local Vote = {}

local function leader_of(node, attempt)
  return (node.round - 1 + attempt) % node.n
end

local function value_of(round) return FIRST_VALUE + round - 1 end

-- THE BUG: a simple majority.  (Correct: 2 * n // 3 + 1.)
local function quorum(n) return n // 2 + 1 end

-- Send msg to every node; a Byzantine node sends value + 1 to odd ids.
local function send_all(node, msg)
  if not node.byzantine then
    node:broadcast(msg)
    return
  end
  for to = 0, node.n - 1 do
    local m = { type = msg.type, round = msg.round, attempt = msg.attempt, value = msg.value }
    if to % 2 == 1 and to ~= node.id then m.value = m.value + 1 end
    node:send(to, m)
  end
end

local function begin_attempt(node)
  node.votes, node.voted = {}, false
  node:set_timer("round", opts.timeout)
  if node.attempt == 0 and not node.byzantine then
    -- The round's two client requests reach every node: either is a valid
    -- decision (so the checker's validity holds, and only agreement breaks).
    node:propose(value_of(node.round), node.round)
    node:propose(value_of(node.round) + 1, node.round)
  end
  if leader_of(node, node.attempt) ~= node.id then return end
  local v = value_of(node.round)
  send_all(node, { type = "PROPOSE", round = node.round, attempt = node.attempt, value = v })
end

function Vote.start(node)
  node.round, node.attempt = 1, 0
  begin_attempt(node)
end

function Vote.receive(node, msg, from)
  if node.done or msg.round ~= node.round or msg.attempt ~= node.attempt then return end
  if msg.type == "PROPOSE" then
    if from ~= leader_of(node, msg.attempt) or node.voted then return end
    node.voted = true
    send_all(node, { type = "VOTE", round = msg.round, attempt = msg.attempt, value = msg.value })
  elseif msg.type == "VOTE" then
    -- votes per value, one per voter
    local by = node.votes[msg.value]
    if by == nil then
      by = { count = 0 }
      node.votes[msg.value] = by
    end
    if by[from] then return end
    by[from] = true
    by.count = by.count + 1
    if by.count == quorum(node.n) then
      node:decide(msg.value, node.round)
      node:note { round = node.round, value = msg.value }
      if node.round == ROUNDS then
        node:cancel_timer("round")
        node.done = true
        return
      end
      node.round, node.attempt = node.round + 1, 0
      begin_attempt(node)
    end
  end
end

function Vote.timer(node, name)
  if name ~= "round" or node.done then return end
  node.attempt = node.attempt + 1
  begin_attempt(node)
end

local sim = consensus.sim { name = "Vote on a simple majority (buggy)",
                            network = { latency = "uniform:5:15" } }
sim:spawn(Vote)
if sim.faulty > 0 then sim:byzantine() end
local report = sim:run { slots = ROUNDS }

local function print_report(r)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  say("BUG under test: commits on a simple majority (n/2+1 = %d of %d) under equivocation;",
    quorum(r.nodes), r.nodes)
  say("a Byzantine quorum would be 2n/3+1 = %d.", 2 * r.nodes // 3 + 1)
  local byz = {}
  for _, id in ipairs(r.byzantine) do byz[id] = true end
  local commits = {}
  for _, note in ipairs(r.notes) do
    if not byz[note.node] then
      commits[#commits + 1] = string.format("node %d committed %s in round %d at t=%.3f ms",
        note.node, tostring(note.value.value), note.value.round, note.t)
    end
  end
  for _, c in ipairs(commits) do say("  %s", c) end
  io.stdout:write(table.concat(out, "\n"), "\n", r:summary())
  return true
end

report:print(print_report)
