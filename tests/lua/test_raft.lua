-- test_raft.lua: scripts/raft.lua end to end, through the host.
--
-- Elections and replication for 3, 5 and 7 servers, crash and restart of
-- a follower and of the leader (recovery from node.store), membership
-- changes, --crash-leader-at and election_ms, the liveness phase after
-- --heal-at, random faults (churn), determinism across --threads, the
-- human report and usage errors.  Run from the repository root:
--   CS_HOST=build/consensus-lua build/consensus-lua tests/lua/test_raft.lua

local t = require "testlib"

local SCRIPT = "scripts/raft.lua"

-- Run the script with the given arguments; returns stdout, stderr, code.
local function run(...)
  return t.host_run(SCRIPT, ...)
end

local field = t.field

local function num(json, name) return tonumber(field(json, name)) end

-- A run that must pass every check; returns its JSON line.
local function ok_run(...)
  local out, err, code = run("--json", ...)
  local args = table.concat({ ... }, " ")
  t.eq(code, 0, "exit status of " .. args .. "\n" .. out .. err)
  for _, k in ipairs { "agreement", "uniqueness", "validity", "termination" } do
    t.eq(field(out, k), "true", k .. " of " .. args)
  end
  t.eq(field(out, "decided"), field(out, "honest"), "servers done of " .. args)
  return out
end

t.cases {
  { "elections and replication for 3, 5 and 7 servers", function()
    for _, n in ipairs { 3, 5, 7 } do
      for _, seed in ipairs { 1, 2, 3 } do
        local out = ok_run("--nodes", n, "--seed", seed)
        t.eq(num(out, "honest"), n, "live servers")
        t.eq(num(out, "requests"), 10, "requests")
        assert(num(out, "leaders") >= 1, "a leader was elected: " .. out)
        -- the log: 10 requests and the first leader's no-op at least
        assert(num(out, "committed") >= 11, "committed entries: " .. out)
        t.has(out, '"value":{"noop":true,"t":1}', "the first leader's no-op")
      end
    end
  end },

  { "a follower crashes and recovers its log from node.store", function()
    local out = ok_run("--crash", "follower@250+100", "--requests", "30")
    t.eq(num(out, "crashes"), 1, "crashes")
    t.eq(num(out, "restarts"), 1, "restarts")
    t.eq(num(out, "recoveries"), 1, "recoveries")
    local human = run("--crash", "follower@250+100", "--requests", "30")
    local entries = human:match("restarted at [%d.]+ ms with term 1 and (%d+) log entr")
    assert(entries and tonumber(entries) > 0,
      "the follower restarts with its term and log:\n" .. human)
  end },

  { "the leader crashes: a new leader, election_ms, recovery", function()
    local out = ok_run("--crash-leader-at", "1000", "--seed", "2")
    local ms = num(out, "election_ms")
    assert(ms > 0 and ms < 1000, "election_ms " .. ms)
    t.eq(num(out, "crashed_leader"), 0, "crashed leader (seed 2)")
    assert(num(out, "max_term") >= 2, "a later term: " .. out)
    t.eq(num(out, "recoveries"), 1, "the old leader restarts from node.store")
    -- new requests after the crash are committed by the new leader
    out = ok_run("--crash-leader-at", "300", "--requests", "40", "--seed", "5",
      "--nodes", "3")
    assert(num(out, "election_ms") > 0, out)
  end },

  { "membership: a server joins, another leaves, the leader leaves", function()
    local human, err, code = run("--add-at", "600", "--remove-at", "900",
      "--remove", "0", "--requests", "60", "--seed", "3")
    t.eq(code, 0, "exit status\n" .. human .. err)
    t.has(human, "configuration {0,1,2,3}; server 4 asks to join at 600 ms")
    t.has(human, "membership: +4 committed")
    t.has(human, "configuration {0,1,2,3,4}")
    t.has(human, "membership: -0 committed")
    t.has(human, "configuration {1,2,3,4}")
    t.has(human, "applied: 5 of 5 live servers applied all 60 requests and 2 membership changes")
    -- seed 3 elects server 1 first: removing it makes the leader leave
    human, err, code = run("--add-at", "600", "--remove-at", "900",
      "--remove", "1", "--requests", "60", "--seed", "3")
    t.eq(code, 0, "exit status\n" .. human .. err)
    t.has(human, "leader 1 left the configuration and stepped down")
    local out = ok_run("--add-at", "600", "--remove-at", "900", "--remove", "1",
      "--requests", "60", "--seed", "3")
    t.eq(num(out, "membership_changes"), 2, "changes")
  end },

  { "random crashes and partitions (churn), with membership changes", function()
    for _, seed in ipairs { 1, 2 } do
      ok_run("--scenario", "churn", "--requests", "100", "--interval", "25", "--seed", seed)
    end
    ok_run("--scenario", "churn", "--nodes", "7", "--requests", "100", "--interval", "25",
      "--add-at", "700", "--remove-at", "1500", "--remove", "2", "--seed", "5")
    ok_run("--scenario", "churn", "--nodes", "3", "--requests", "100", "--interval", "25",
      "--no-noop", "--batch", "2", "--seed", "11")
  end },

  { "liveness: no majority until --heal-at, done within the bound", function()
    local out = ok_run("--nodes", "3", "--crash", "0@100,1@100", "--heal-at", "2000",
      "--interval", "50")
    local done, bound = num(out, "done_ms"), num(out, "bound_ms")
    assert(done > 2000 and done < 2000 + bound, "done at " .. done)
    -- too short a run: termination is not reached (exit 3)
    local out3, _, code = run("--json", "--until", "260")
    t.eq(code, 3, "exit status with --until 260")
    t.eq(field(out3, "termination"), "false", "termination")
    t.has(out3, '"kind":"termination"', "termination violations")
  end },

  { "the human report", function()
    local out, _, code = run("--crash-leader-at", "1000", "--seed", "2")
    t.eq(code, 0, "exit status")
    t.has(out, "=== Raft: 5 servers, election timeout 150-300 ms, heartbeat 75 ms ===")
    t.has(out, "terms and leaders (elections started: 2, leaders elected: 2):")
    t.has(out, "  term   1  leader 0  elected at")
    assert(out:find("leader 0 %(term 1%) crashed at 1000%.000 ms: leader %d elected in term 2 after [%d.]+ ms"),
      "the crash and the new leader:\n" .. out)
    t.has(out, "recovery: server 0 restarted at 1300.000 ms with term 1 and")
    t.has(out, "committed log (first commit, servers that applied the entry):")
    t.has(out, '"req1: add 76"')
    t.has(out, "applied: 5 of 5 live servers applied all 10 requests")
    t.has(out, "checks: state machine safety (agreement) OK, election safety (uniqueness) OK, "
      .. "validity OK, termination OK")
    t.has(out, "seed 2; replay: consensus-lua scripts/raft.lua")
  end },

  { "same output with --threads 1 and 2, and in two processes", function()
    for _, args in ipairs {
      { "--scenario", "churn", "--requests", "60", "--interval", "25", "--seed", "4",
        "--add-at", "700", "--remove-at", "1300" },
      { "--nodes", "7", "--crash-leader-at", "500", "--seed", "6" },
    } do
      local unpack = table.unpack
      local one = run("--json", "--threads", "1", unpack(args))
      local two = run("--json", "--threads", "2", unpack(args))
      local again = run("--json", "--threads", "2", unpack(args))
      assert(one ~= "", "no output")
      t.eq(t.strip_threads(one), t.strip_threads(two), "--threads 1 and 2")
      t.eq(two, again, "two processes")
      local h1 = run("--threads", "1", unpack(args))
      local h2 = run("--threads", "2", unpack(args))
      t.eq(h1, h2, "human reports")
    end
  end },

  { "usage errors", function()
    for _, args in ipairs {
      { "--election-timeout", "300-100" },
      { "--scenario", "bogus" },
      { "--scenario", "figure8", "--nodes", "3" },
      { "--remove-at", "500", "--remove", "9" },
      { "--crash", "x@5" },
      { "--requests", "0" },
    } do
      local _, err, code = run(table.unpack(args))
      t.eq(code, 2, table.concat(args, " "))
      t.has(err, "consensus-lua: ", "message")
    end
  end },
}
