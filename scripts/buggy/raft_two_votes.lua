-- raft_two_votes.lua: Raft with a named bug -- votedFor is not persisted.
--
-- The follower keeps votedFor in volatile memory (node.voted) instead of
-- node.store, so a server that crashes and restarts within a term has
-- forgotten whom it voted for, and grants a second vote in that term.
-- Two candidates can then both gather a majority: two leaders in one term,
-- which breaks election safety.  Every leader does node:claim{"leader",
-- term}, so the checker reports a "uniqueness" violation (exit status 1).
--
-- The default scenario is 'storm' (scripts/raft.lua): the leader crashes,
-- two servers A and B are cut off from each other so both campaign in the
-- same term, and the other servers crash for 1 ms every few ms; without
-- no-op entries (a no-op the first winner replicates makes the voters'
-- logs more up to date than the second candidate's, which hides the bug
-- in most runs).  The correct scripts/raft.lua passes the same scenario
-- and seeds:
--
--   consensus-lua scripts/buggy/raft_two_votes.lua --seed 1              # exit 1
--   consensus-lua scripts/raft.lua --scenario storm --no-noop --seed 1   # exit 0
--
-- Every option of scripts/raft.lua works here too.

-- scripts/raft.lua, next to this file's directory.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local path = here .. "/../raft.lua"

assert(loadfile(path))({
  defaults = { scenario = "storm", noop = false },
  rules = {
    -- BUG: votedFor in volatile memory; a restart forgets it.
    voted_for = function(node) return node.voted end,
    record_vote = function(node, id) node.voted = id end,
  },
})
