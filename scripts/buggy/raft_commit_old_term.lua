-- raft_commit_old_term.lua: Raft with a named bug -- a leader commits
-- entries of earlier terms by counting replicas.
--
-- Figure 2 lets a leader advance commitIndex to N only if log[N] is of
-- its current term; this leader commits any entry a majority stores.  The
-- paper's Figure 8 shows the consequence: an entry of an old term that is
-- on a majority can still be overwritten by a server whose log ends in a
-- later term, so two servers apply different entries at one index.  Every
-- committed entry is node:decide(entry, index), so the checker reports an
-- "agreement" violation (state machine safety; exit status 1).
--
-- The default scenario is 'figure8' (scripts/raft.lua), with requests all
-- along, one entry per AppendEntries and no no-op entries (a no-op of the
-- leader's term would hide the bug; the paper's Figure 8 has none).  The
-- correct scripts/raft.lua passes the same scenario and seeds:
--
--   consensus-lua scripts/buggy/raft_commit_old_term.lua --seed 1
--   consensus-lua scripts/raft.lua --scenario figure8 --no-noop \
--     --requests 40 --interval 50 --batch 1 --seed 1
--
-- Every option of scripts/raft.lua works here too.

-- scripts/raft.lua, next to this file's directory.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local path = here .. "/../raft.lua"

assert(loadfile(path))({
  defaults = { scenario = "figure8", noop = false, requests = 40, interval = 50, batch = 1 },
  rules = {
    -- BUG: no check that log[index] is of the current term.
    may_commit = function() return true end,
  },
})
