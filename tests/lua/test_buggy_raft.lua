-- test_buggy_raft.lua: the checkers catch the two Raft bugs of
-- scripts/buggy/, and the correct scripts/raft.lua passes the same
-- scenarios and seeds.
--
--   raft_two_votes.lua        votedFor not persisted -> two leaders in a
--                             term: a "uniqueness" violation (election
--                             safety), scenario 'storm'
--   raft_commit_old_term.lua  a leader commits entries of earlier terms by
--                             counting replicas (Figure 8): an "agreement"
--                             violation (state machine safety), scenario
--                             'figure8'
--
-- Each bug must be caught (exit status 1, that violation in the JSON)
-- within seeds 1..100; the test prints the first seed that catches it.
-- Run from the repository root:
--   CS_HOST=build/consensus-lua build/consensus-lua tests/lua/test_buggy_raft.lua

local t = require "testlib"

local MAX_SEEDS = 100
-- The correct script on a sample of the seeds (and on the catching one).
local SAMPLE = 10

local BUGS = {
  { script = "scripts/buggy/raft_two_votes.lua", kind = "uniqueness",
    same = { "--scenario", "storm", "--no-noop" } },
  { script = "scripts/buggy/raft_commit_old_term.lua", kind = "agreement",
    same = { "--scenario", "figure8", "--no-noop", "--requests", "40",
             "--interval", "50", "--batch", "1" } },
}

-- The first seed in 1..MAX_SEEDS whose run is caught with 'kind'.
local function first_catch(bug)
  for seed = 1, MAX_SEEDS do
    local out, err, code = t.host_run(bug.script, "--json", "--seed", tostring(seed))
    if code == 2 then error(bug.script .. " failed to run:\n" .. out .. err, 0) end
    if code == 1 and out:find('"kind":"' .. bug.kind .. '"', 1, true) then
      return seed, out
    end
  end
end

local function correct_passes(bug, seed)
  local args = { "scripts/raft.lua", "--json", "--seed", tostring(seed) }
  for _, a in ipairs(bug.same) do args[#args + 1] = a end
  local out, err, code = t.host_run(table.unpack(args))
  t.eq(code, 0, table.concat(args, " ") .. "\n" .. out .. err)
  for _, k in ipairs { "agreement", "uniqueness", "validity", "termination" } do
    t.has(out, '"' .. k .. '":true', k .. " of " .. table.concat(args, " "))
  end
end

local cases = {}
for _, bug in ipairs(BUGS) do
  local name = bug.script:match("([^/]+)%.lua$")
  cases[#cases + 1] = { name .. " is caught (" .. bug.kind .. ")", function()
    local seed, out = first_catch(bug)
    assert(seed, string.format("%s: no %s violation in seeds 1..%d",
      bug.script, bug.kind, MAX_SEEDS))
    io.write(string.format("     %s: caught at seed %d\n", name, seed))
    t.has(out, '"status":1', "status")
    bug.caught = seed
  end }
  cases[#cases + 1] = { "scripts/raft.lua passes " .. name .. "'s scenario", function()
    for seed = 1, SAMPLE do correct_passes(bug, seed) end
    if bug.caught and bug.caught > SAMPLE then correct_passes(bug, bug.caught) end
  end }
end

-- The human report names the violation.
cases[#cases + 1] = { "the report names the violations", function()
  local out, _, code = t.host_run("scripts/buggy/raft_two_votes.lua", "--seed", "1")
  t.eq(code, 1, "exit status")
  t.has(out, "election safety (uniqueness) VIOLATED")
  t.has(out, 'UNIQUENESS VIOLATED at t=')
  t.has(out, 'both claimed ["leader",')
  out, _, code = t.host_run("scripts/buggy/raft_commit_old_term.lua", "--seed", "1")
  t.eq(code, 1, "exit status")
  t.has(out, "state machine safety (agreement) VIOLATED")
  t.has(out, "AGREEMENT VIOLATED in slot ")
  t.has(out, "figure8 (d): leader ")
end }

t.cases(cases)
