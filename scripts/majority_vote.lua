-- majority_vote.lua: the seed algorithm of consensus-lua.
--
--   1. Proposal: the leader of the round proposes a value.
--   2. Voting:   every node votes on the proposal and tells every node.
--   3. Commit:   a node commits the value once the YES votes reach the
--                Byzantine quorum, more than two thirds of n (2f+1 when
--                n = 3f+1).
--   4. Retry:    if the leader fails or no quorum forms, the next node
--                leads the round again.
--
-- Faulty nodes (chosen by the seed, or named with --byzantine) vote NO and
-- stay silent when it is their turn to lead.  Run it as
--
--   consensus-lua scripts/majority_vote.lua --nodes 5 --faulty 1 --seed 5
--   consensus-lua scripts/majority_vote.lua --nodes 4 --faulty 2   # n < 3f+1
--   lua5.4 scripts/majority_vote.lua --rounds 3                    # stock Lua
--
-- With n < 3f+1 the run still goes ahead: YES votes can no longer reach
-- the quorum, every leader's attempt fails, and the run ends without
-- termination (exit status 3).

local consensus = require "consensus"

local opts = consensus.options({
  timeout = { 100, "ms a node waits for a round before the next leader retries" },
  collect = { "all", "where votes go: all (every node counts them, n^2 messages) or "
    .. "leader (the leader counts and announces the commit, 3n messages)" },
}, { nodes = 5, faulty = 1 })
if opts.collect ~= "all" and opts.collect ~= "leader" then
  consensus.usage_error("--collect must be all or leader")
end
local TO_LEADER = opts.collect == "leader"

local ROUNDS = opts.rounds
local FIRST_VALUE = 42

-- The protocol.  Every node runs its own copy; per-node state lives in the
-- node table.  A round is a decision slot; an attempt is one leader's try.

local Vote = {}

-- Leadership rotates: round r starts with node r-1, and each retry moves
-- to the next node.
local function leader_of(node, attempt)
  return (node.round - 1 + attempt) % node.n
end

local function value_of(round)
  return FIRST_VALUE + round - 1
end

-- YES votes needed: more than two thirds of n.
local function quorum(n)
  return (2 * n) // 3 + 1
end

local function begin_attempt(node)
  node.yes, node.no, node.votes = {}, 0, 0
  node:set_timer("round", opts.timeout)
  if leader_of(node, node.attempt) ~= node.id then return end
  local v = value_of(node.round)
  if node.byzantine then
    -- A faulty leader fails: it proposes nothing.
    node:note { round = node.round, attempt = node.attempt, kind = "silent" }
    return
  end
  node:propose(v, node.round)
  node:note { round = node.round, attempt = node.attempt, kind = "propose", value = v }
  node:broadcast { type = "PROPOSE", round = node.round, attempt = node.attempt, value = v }
end

local function next_attempt(node)
  node.attempt = node.attempt + 1
  if node.attempt >= node.n then
    -- Every node led once and no quorum formed: this node gives up.
    node:note { round = node.round, attempt = node.attempt, kind = "give_up" }
    node:cancel_timer("round")
    node.gave_up = true
    return
  end
  begin_attempt(node)
end

function Vote.start(node)
  node.round, node.attempt = 1, 0
  begin_attempt(node)
end

-- The value commits at this node: decide and go on to the next round.
local function commit(node, value)
  node:decide(value, node.round)
  if node.round == ROUNDS then
    node:cancel_timer("round")
    node.gave_up = true     -- done: ignore the rest
    return
  end
  node.round, node.attempt = node.round + 1, 0
  begin_attempt(node)
end

function Vote.receive(node, msg, from)
  if node.gave_up or msg.round ~= node.round then return end
  if msg.type == "PROPOSE" then
    if msg.attempt ~= node.attempt or from ~= leader_of(node, msg.attempt) then return end
    local yes = not node.byzantine
    if from ~= node.id then
      node:note { round = msg.round, attempt = msg.attempt, kind = "vote", yes = yes }
    end
    local vote = { type = "VOTE", round = msg.round, attempt = msg.attempt,
                   value = msg.value, yes = yes }
    if TO_LEADER then node:send(from, vote) else node:broadcast(vote) end
  elseif msg.type == "COMMIT" and msg.attempt == node.attempt then
    -- --collect leader: the leader saw the quorum (a crash-fault shortcut:
    -- a Byzantine leader could lie here).
    commit(node, msg.value)
  elseif msg.type == "VOTE" and msg.attempt == node.attempt then
    -- YES votes count per value: a vote for another value (a lie) can
    -- never complete the quorum of the proposal.
    node.votes = node.votes + 1
    local yes = 0
    if msg.yes then
      yes = (node.yes[msg.value] or 0) + 1
      node.yes[msg.value] = yes
    else
      node.no = node.no + 1
    end
    if yes == quorum(node.n) then
      if TO_LEADER then
        node:broadcast({ type = "COMMIT", round = node.round, attempt = node.attempt,
                         value = msg.value }, false)
      end
      commit(node, msg.value)
    elseif node.votes == node.n then
      next_attempt(node)        -- every vote is in and the quorum is not
    end
  end
end

function Vote.timer(node, name)
  if name == "round" then next_attempt(node) end
end

-- The scenario.

local sim = consensus.sim { name = "Distributed Consensus Simulation",
                            network = { latency = 10 } }
sim:spawn(Vote)
sim:byzantine(opts.byzantine)   -- the seed's faulty nodes run Vote too,
                                -- but with node.byzantine set
local report = sim:run { slots = ROUNDS }

-- The seed's report, rebuilt from the notes the nodes made.

local function print_report(r)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
  local n, f = r.nodes, r.faulty
  local tolerance = (n - 1) // 3
  say("=== Distributed Consensus Simulation ===")
  say("")
  say("Configuration:")
  say("- Total nodes: %d", n)
  say("- Faulty nodes: %d", f)
  say("- Byzantine tolerance: %d fault%s (3f+1 = %d minimum)", tolerance,
      tolerance == 1 and "" or "s", 3 * f + 1)
  if n < 3 * f + 1 then
    say("- WARNING: %d nodes cannot tolerate %d faulty nodes: 3f+1 = %d are needed", n, f, 3 * f + 1)
  end

  local faulty = {}
  for _, id in ipairs(r.byzantine) do faulty[id] = true end
  -- attempts[round][attempt] = { leader note, votes by node }
  local attempts, order = {}, {}
  for _, note in ipairs(r.notes) do
    local v = note.value
    local key = v.round .. ":" .. v.attempt
    local a = attempts[key]
    if not a then
      a = { round = v.round, attempt = v.attempt, votes = {} }
      attempts[key] = a
      order[#order + 1] = a
    end
    if v.kind == "vote" then a.votes[note.node] = v.yes
    elseif v.kind ~= "give_up" then a.leader, a.kind, a.value = note.node, v.kind, v.value end
  end
  local decided = {}
  for _, d in ipairs(r.decisions) do decided[d.slot] = d end

  for i, a in ipairs(order) do
    if a.leader then
      local retry = a.attempt > 0 and string.format(" (retry %d)", a.attempt) or ""
      say("")
      say("Round %d%s: Proposing value %d", a.round, retry, value_of(a.round))
      if a.kind == "silent" then
        say("  Node %d (Leader): proposed nothing (faulty)", a.leader)
      else
        say("  Node %d (Leader): proposed %d", a.leader, a.value)
      end
      local yes, no = a.kind == "propose" and 1 or 0, 0
      for id = 0, n - 1 do
        if id ~= a.leader and a.votes[id] ~= nil then
          if a.votes[id] then
            yes = yes + 1
            say("  Node %d: voted YES", id)
          else
            no = no + 1
            say("  Node %d: voted NO%s", id, faulty[id] and " (faulty)" or "")
          end
        end
      end
      local next_a = order[i + 1]
      local committed = decided[a.round] and not (next_a and next_a.round == a.round)
      say("")
      if committed then
        say("Result: CONSENSUS REACHED")
        say("  Value: %s", tostring(decided[a.round].value))
      elseif a.kind == "silent" then
        say("Result: NO PROPOSAL (the leader failed); the next leader retries")
      else
        say("Result: NO CONSENSUS (%d YES votes, %d needed)", yes, quorum(n))
      end
      if a.kind == "propose" then
        say("  Votes: %d/%d (%d%%)", yes, n, yes * 100 // n)
        say("  Faulty nodes detected: %d", no)
      end
    end
  end
  if not r.termination then
    say("")
    say("Result: gave up after every node led once; termination NOT reached")
  end
  if not r.agreement or not r.validity then
    say("")
    for _, l in ipairs(r:violation_lines()) do say("%s", l) end
  end
  io.write(table.concat(out, "\n"), "\n")
end

report:print(print_report)
