-- test_buggy_vote.lua: the checker catches the planted bug of
-- scripts/buggy/vote_simple_majority.lua ("commits on a simple majority
-- (n/2+1) under equivocation"), and the correct scripts/majority_vote.lua
-- (2f+1 quorum) keeps agreement on the same seeds under the same attack.

local t = require "testlib"

local BUGGY = "scripts/buggy/vote_simple_majority.lua"
local CORRECT = "scripts/majority_vote.lua"
local MAX_SEEDS = 100

-- The attack: one faulty node of five, chosen by the seed, equivocates
-- (the attacker library's strategy: odd ids get value + 1).
local ATTACK = { "--nodes", "5", "--faulty", "1", "--attack", "equivocate", "--threads", "1" }

local function args_with(seed, ...)
  local a = { table.unpack(ATTACK) }
  a[#a + 1] = "--seed"
  a[#a + 1] = tostring(seed)
  for _, x in ipairs { ... } do a[#a + 1] = x end
  return a
end

local field = t.field

local caught         -- the first seed whose run the checker flags

local cases = {}
local function case(name, fn) cases[#cases + 1] = { name, fn } end

case("the checker catches the simple-majority bug within 100 seeds", function()
  for seed = 1, MAX_SEEDS do
    local out, err, code = t.host_run(BUGGY, table.unpack(args_with(seed, "--json")))
    if code ~= 0 then
      t.eq(code, 1, "exit status (seed " .. seed .. "):\n" .. out .. err)
      t.eq(field(out, "agreement"), "false", "agreement (seed " .. seed .. ")")
      t.eq(field(out, "status"), "1", "status")
      caught = seed
      break
    end
    t.eq(field(out, "agreement"), "true", "agreement of a passing run")
  end
  assert(caught, "no agreement violation in " .. MAX_SEEDS .. " seeds")
  io.write(string.format("     caught at seed %d (%d seed%s tried)\n", caught, caught,
    caught == 1 and "" or "s"))
end)

case("the human report names the bug and the violation, with the replay", function()
  assert(caught, "no seed caught")
  local out, _, code = t.host_run(BUGGY, table.unpack(args_with(caught)))
  t.eq(code, 1, "exit status")
  t.has(out, "BUG under test: commits on a simple majority (n/2+1 = 3 of 5)")
  t.has(out, "AGREEMENT VIOLATED in slot 1")
  t.has(out, "checks: agreement VIOLATED, validity OK")
  t.has(out, "replay: consensus-lua " .. BUGGY)
  -- the replay command gives the same run again
  local again = t.host_run(BUGGY, table.unpack(args_with(caught)))
  t.eq(again, out, "replay")
end)

case("majority_vote.lua (2f+1 quorum) keeps agreement on the same seeds", function()
  assert(caught, "no seed caught")
  for seed = 1, caught do
    local out, err, code = t.host_run(CORRECT, table.unpack(args_with(seed, "--json")))
    -- validity or termination may fail under the attack; agreement may not
    assert(code == 0 or code == 1 or code == 3,
      "exit status " .. tostring(code) .. " (seed " .. seed .. "):\n" .. out .. err)
    t.eq(field(out, "agreement"), "true", "majority_vote agreement (seed " .. seed .. ")")
  end
end)

case("the built-in equivocating leader trips the bug at once", function()
  local out, _, code = t.host_run(BUGGY, "--byzantine", "0", "--json")
  t.eq(code, 1, "exit status:\n" .. out)
  t.eq(field(out, "agreement"), "false", "agreement")
  t.eq(field(out, "validity"), "true", "validity (both values are client requests)")
  -- the honest leaders of later rounds are fine
  local out2, _, code2 = t.host_run(BUGGY, "--byzantine", "4", "--rounds", "3", "--json")
  t.eq(code2, 0, "Byzantine voter only:\n" .. out2)
  -- no faulty node: no violation
  local out3, _, code3 = t.host_run(BUGGY, "--faulty", "0", "--rounds", "2", "--json")
  t.eq(code3, 0, "no faulty node:\n" .. out3)
end)

t.cases(cases)
