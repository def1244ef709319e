-- test_pbft: scripts/pbft_like.lua end to end, through the host: the
-- normal case over n and f, every attacker strategy on backups and on
-- the primary (view changes), checkpoints, batching, --heal-at liveness,
-- --twofaced, determinism and the golden report.
--
-- Set CS_UPDATE_GOLDEN=1 to record tests/golden/pbft_like.txt again.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"
local attackers = require "consensus.attackers"

local SCRIPT = "scripts/pbft_like.lua"
local GOLDEN = "tests/golden/pbft_like.txt"

local function words(s)
  local out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- Run the script with 'args' (a string of words); stdout, stderr, status.
local function run(args)
  return t.host_run(SCRIPT, table.unpack(words(args)))
end

local field = t.field

local function view_changes(json)
  return tonumber(json:match('"view_changes":(%d+)') or "0")
end

-- Exit 0 and every check holds; returns the JSON line.
local function passes(args)
  local out, err, code = run(args .. " --json")
  local where = SCRIPT .. " " .. args .. "\n" .. out .. err
  t.eq(code, 0, "exit status of " .. where)
  t.eq(field(out, "agreement"), "true", "agreement of " .. where)
  t.eq(field(out, "validity"), "true", "validity of " .. where)
  t.eq(field(out, "termination"), "true", "termination of " .. where)
  t.eq(field(out, "decided"), field(out, "honest"), "decided of " .. where)
  return out
end

local cases = {}
local function case(name, fn) cases[#cases + 1] = { name, fn } end

---------------------------------------------------------------- correctness

-- Up to f silent replicas, chosen by the seed (the primary among them
-- sometimes): every honest replica executes every request.
case("n in {4, 7, 10} x f in 0..fmax x seeds", function()
  for _, n in ipairs { 4, 7, 10 } do
    for f = 0, (n - 1) // 3 do
      for _, seed in ipairs { 1, 7 } do
        local out = passes(string.format("--nodes %d --faulty %d --seed %d", n, f, seed))
        t.eq(field(out, "honest"), tostring(n - f), "honest replicas")
        t.eq(field(out, "slots"), "10", "slots")
      end
    end
  end
end)

case("more silent replicas than f: no quorum, exit 3, still safe", function()
  local out, _, code = run("--nodes 4 --faulty 2 --json")
  t.eq(code, 3, "exit status")
  t.eq(field(out, "termination"), "false", "termination")
  t.eq(field(out, "agreement"), "true", "agreement")
end)

---------------------------------------------------------------- attackers

-- Every strategy on backups and on primaries (n = 7: the primaries of
-- views 0 and 1 both faulty, so two view changes may be needed).
case("every attacker strategy on backups", function()
  for _, a in ipairs(attackers.names()) do
    passes("--nodes 4 --attack " .. a .. " --byzantine 2")
    passes("--nodes 7 --attack " .. a .. " --byzantine 3,5 --seed 2")
  end
end)

case("every attacker strategy on the primary", function()
  for _, a in ipairs(attackers.names()) do
    local one = passes("--nodes 4 --attack " .. a .. " --byzantine 0")
    local two = passes("--nodes 7 --attack " .. a .. " --byzantine 0,1 --seed 3")
    if a == "silent" then
      assert(view_changes(one) >= 1, "a silent primary needs a view change: " .. one)
      assert(view_changes(two) >= 1, "silent primaries need a view change: " .. two)
    end
  end
end)

case("a silent primary: view change, report shows it", function()
  local out, _, code = run("--byzantine 0 --attack silent")
  t.eq(code, 0, "exit status")
  t.has(out, "faulty replicas: 0 (attacker silent)", "report")
  t.has(out, "client: on node 3", "the client is not on a faulty node")
  t.has(out, "view changes: 1; views installed at honest replicas: 1 (primary 1)", "report")
  t.has(out, "client: 10 of 10 results accepted", "report")
end)

case("the client moves off a faulty highest node", function()
  local out = run("--byzantine 3 --attack silent")
  t.has(out, "client: on node 2", "report")
  out = run("--nodes 7 --byzantine 5,6 --attack flip")
  t.has(out, "client: on node 4", "report")
end)

-- The coalition that breaks a PBFT without its commit phase
-- (test_buggy_pbft.lua) leaves the real one safe and live.
case("--twofaced coalition: safe and live", function()
  for _, seed in ipairs { 1, 2, 3 } do
    local out = passes("--nodes 7 --faulty 2 --twofaced --seed " .. seed)
    assert(view_changes(out) >= 1, "view change expected: " .. out)
  end
  passes("--nodes 10 --faulty 3 --twofaced")
end)

---------------------------------------------------------------- loss and attackers

-- n = 16, f = 5, 2% loss.  A garbling replica answered a FETCH with a
-- BATCH whose n it had changed, carrying a genuine commit certificate for
-- another sequence number: the asker executed the batch there, out of
-- order (agreement violated at seeds 4, 5 and 6).  And with exactly q
-- honest replicas every PREPARE and COMMIT is needed: lost ones were never
-- said again, so views came and went without a commit (termination not
-- reached within 60 s at seed 5, silent or flip).
case("n = 16, f = 5, loss: garbled BATCHes, lost PREPAREs (regression)", function()
  local base = "--nodes 16 --faulty 5 --requests 60 --loss 0.02"
  for _, args in ipairs {
    "--attack garble --seed 4", "--attack garble --seed 5", "--attack garble --seed 6",
    "--seed 5", "--attack flip --seed 5",
  } do
    passes(base .. " " .. args)
  end
end)

-- A small campaign: garble and loss together, where the FETCH path runs.
case("garble with loss: seeds 1..12 at n = 7, 1..3 at n = 10", function()
  for seed = 1, 12 do
    passes("--nodes 7 --faulty 2 --attack garble --loss 0.05 --seed " .. seed)
  end
  for seed = 1, 3 do
    passes("--nodes 10 --faulty 3 --attack garble --loss 0.05 --requests 30 --seed " .. seed)
  end
end)

---------------------------------------------------------------- checkpoints, batches

case("checkpoints become stable, the window moves", function()
  local out, _, code = run("")
  t.eq(code, 0, "exit status")
  t.has(out, "stable checkpoints: 5 at ", "report")
  t.has(out, "; 10 at ", "report")
  -- 30 requests at once: the primary waits for the window (L = 4) to move
  out, _, code = run("--requests 30 --interval 0 --checkpoint 2 --log-window 4")
  t.eq(code, 0, "exit status with a small window:\n" .. out)
  t.has(out, "30 at ", "the last checkpoint is stable")
  t.has(out, "client: 30 of 30 results accepted", "report")
end)

case("--batch 3: fewer sequence numbers, every request decided", function()
  local one = passes("--requests 24 --interval 0 --faulty 0")
  local three = passes("--requests 24 --interval 0 --faulty 0 --batch 3")
  local function pp(json)
    return tonumber(json:match('"PRE%-PREPARE":{"bytes":%d+,"messages":(%d+)'))
  end
  assert(pp(one) and pp(three), "PRE-PREPARE counts: " .. one .. three)
  assert(pp(three) * 2 < pp(one), "batching should cut PRE-PREPAREs: " .. pp(one) .. " vs " .. pp(three))
  passes("--nodes 7 --faulty 2 --batch 3 --requests 20 --attack equivocate --byzantine 0,1")
end)

---------------------------------------------------------------- liveness

case("--heal-at: decides within the declared bound after healing", function()
  for _, args in ipairs {
    "--nodes 4 --heal-at 500",
    "--nodes 7 --faulty 2 --heal-at 1500 --seed 2",
    "--nodes 7 --byzantine 0,1 --attack silent --heal-at 800",
    -- a crashed replica (the primary) restarts at the heal and recovers
    "--nodes 4 --faulty 0 --crash 0@30 --heal-at 600",
  } do
    passes(args)
    local out = run(args)
    t.has(out, "liveness: healed at", args)
    t.has(out, "all executed by +", args)
  end
end)

---------------------------------------------------------------- determinism

case("same output with --threads 1 and 2, and in two processes", function()
  for _, args in ipairs {
    "--nodes 10 --faulty 3 --seed 11 --requests 30 --interval 1",
    "--nodes 7 --attack garble --byzantine 0,1 --seed 2",
  } do
    local one = run(args .. " --json --threads 1")
    local two = run(args .. " --json --threads 2")
    local again = run(args .. " --json --threads 2")
    assert(one ~= "", args)
    t.eq(t.strip_threads(one), t.strip_threads(two), "--threads 1 vs 2 for " .. args)
    t.eq(two, again, "two processes for " .. args)
    t.eq(run(args .. " --threads 1"), run(args .. " --threads 2"), "human reports for " .. args)
  end
end)

---------------------------------------------------------------- usage

case("usage errors exit 2", function()
  for _, args in ipairs {
    "--bogus", "--requests", "--requests 0", "--batch 0", "--checkpoint 0",
    "--log-window 7", "--timeout 0", "--twofaced --attack flip",
    "--twofaced --faulty 0",
  } do
    local _, err, code = run(args)
    t.eq(code, 2, "exit status of " .. args .. " (" .. err .. ")")
  end
end)

---------------------------------------------------------------- golden

case("golden report", function()
  local out, err, code = run("--threads 1")
  t.eq(code, 0, "default run: " .. err)
  if os.getenv("CS_UPDATE_GOLDEN") == "1" then
    local f = assert(io.open(GOLDEN, "wb"))
    f:write(out)
    f:close()
    print("recorded " .. GOLDEN)
  end
  local want = t.read(GOLDEN)
  if out ~= want then
    local tmp = os.tmpname()
    local g = assert(io.open(tmp, "wb"))
    g:write(out)
    g:close()
    error(string.format("%s: output of 'consensus-lua %s --threads 1' differs;\n"
      .. "  see: diff -u %s %s\n"
      .. "  if the change is intended: CS_UPDATE_GOLDEN=1 CS_HOST=%s %s tests/lua/test_pbft.lua",
      GOLDEN, SCRIPT, GOLDEN, tmp, t.host, t.host), 0)
  end
  t.eq(run("--threads 2"), out, "golden run again, 2 threads")
end)

t.cases(cases)
