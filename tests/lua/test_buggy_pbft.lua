-- test_buggy_pbft: the checker catches scripts/buggy/pbft_commit_2f.lua
-- (PBFT that commits after 2f PREPAREs instead of 2f+1 COMMITs), and the
-- correct scripts/pbft_like.lua passes the same runs.
--
-- Two attacks on n = 7, f = 2, both with the primaries of views 0 and 1
-- Byzantine: the library's equivocate strategy (odd replicas hear lies),
-- which needs a few seeds to hit the bad interleaving, and the script's
-- own --twofaced coalition, which builds it on purpose.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

local BUGGY = "scripts/buggy/pbft_commit_2f.lua"
local CORRECT = "scripts/pbft_like.lua"

local function words(s)
  local out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  return out
end

local function run(script, args)
  return t.host_run(script, table.unpack(words(args)))
end

local field = t.field

local ATTACKS = {
  { "equivocate", "--nodes 7 --attack equivocate --byzantine 0,1" },
  { "twofaced", "--nodes 7 --faulty 2 --twofaced" },
}

-- The first seed in 1..100 at which the buggy script breaks agreement.
local caught = {}
local function first_catch(args)
  if caught[args] then return caught[args] end
  for seed = 1, 100 do
    local out, err, code = run(BUGGY, args .. " --json --seed " .. seed)
    if code == 1 and field(out, "agreement") == "false" then
      caught[args] = seed
      return seed
    end
    assert(code == 0 or code == 1 or code == 3, "seed " .. seed .. ": exit " .. tostring(code) .. err)
  end
  return nil
end

local cases = {}

for _, a in ipairs(ATTACKS) do
  local name, args = a[1], a[2]
  cases[#cases + 1] = { "the checker catches the bug under " .. name, function()
    local seed = first_catch(args)
    assert(seed, BUGGY .. " " .. args .. ": no agreement violation in seeds 1..100")
    io.write("     (", name, ": caught at seed ", seed, ")\n")
    -- the human report names the violation and the replay command
    local out, _, code = run(BUGGY, args .. " --seed " .. seed)
    t.eq(code, 1, "exit status")
    t.has(out, "agreement VIOLATED", "report")
    t.has(out, "AGREEMENT VIOLATED in slot ", "report")
    t.has(out, "replay: consensus-lua " .. BUGGY, "report")
  end }
  cases[#cases + 1] = { "pbft_like.lua passes the same runs under " .. name, function()
    local last = math.max(first_catch(args) or 1, 20)
    for seed = 1, last do
      local out, err, code = run(CORRECT, args .. " --json --seed " .. seed)
      local where = CORRECT .. " " .. args .. " --seed " .. seed .. "\n" .. out .. err
      t.eq(code, 0, "exit status of " .. where)
      t.eq(field(out, "agreement"), "true", "agreement of " .. where)
    end
  end }
end

cases[#cases + 1] = { "the buggy script is the correct one with one rule changed", function()
  local out, err, code = run(BUGGY, "--json")
  t.eq(code, 0, "a run without an attack passes: " .. err)
  t.eq(field(out, "agreement"), "true", "agreement")
  local _, err2, code2 = run(BUGGY, "--requests 0")
  t.eq(code2, 2, "the options of pbft_like.lua: " .. err2)
end }

t.cases(cases)
