-- test_campaign: every shipped protocol across many seeds with randomized
-- faults within its tolerance, all of which must pass; and the message
-- complexity of the leader-based vote (O(n)) against PBFT (O(n^2)).
--
-- Seeds: 200 runs per protocol in a normal build, fewer under the
-- sanitizers (they are 5-10x slower and the normal build already covers
-- the seeds).  CS_CAMPAIGN_SCALE=N multiplies them: tests/run --long.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

local scale = tonumber(os.getenv("CS_CAMPAIGN_SCALE") or "1")
local sanitized = (os.getenv("CS_SANITIZE") or "") ~= ""
local ATTACKS = "silent,flip,equivocate,delay,replay,garble,selective,collude"

-- seeds: how many per combination of the other parameters, so that each
-- protocol gets 200 runs in a normal build.
local function seeds(n)
  local k = sanitized and math.max(1, n // 10) or n
  return "seed=1.." .. math.floor(k * scale)
end

-- { name, script, sweep spec (without seeds), seeds per combination,
--   combinations, extra options }
local CAMPAIGNS = {
  { "majority vote: seed-chosen faulty voters and leaders", "scripts/majority_vote.lua",
    "nodes=4,7", 100, 2, { "--faulty", "1", "--latency", "uniform:5:20" } },
  { "majority vote, votes to the leader", "scripts/majority_vote.lua",
    "nodes=4,7", 100, 2, { "--faulty", "1", "--collect", "leader" } },
  { "PBFT: every attack on a seed-chosen replica", "scripts/pbft_like.lua",
    "attack=" .. ATTACKS, 25, 8, { "--faulty", "1", "--latency", "uniform:5:20" } },
  { "Tendermint: every attack on a seed-chosen validator", "scripts/tendermint.lua",
    "attack=" .. ATTACKS, 25, 8, { "--faulty", "1", "--latency", "uniform:5:20" } },
  { "Raft: crashes and partitions (churn)", "scripts/raft.lua",
    "nodes=3,5", 100, 2, { "--scenario", "churn" } },
  { "gossip: loss and crashed nodes", "scripts/gossip.lua",
    "mode=push,pushpull", 100, 2, { "--faulty", "2", "--loss", "0.1", "--nodes", "10" } },
}

-- The number of data rows of a CSV file, and the rows themselves.
local function count_rows(path)
  local rows, lines = -1, {}
  for line in io.lines(path) do
    rows = rows + 1
    if rows > 0 then lines[#lines + 1] = line end
  end
  return rows, lines
end

local cases = {}

for _, c in ipairs(CAMPAIGNS) do
  local name, script, spec, per, combos, extra = table.unpack(c)
  cases[#cases + 1] = { "campaign: " .. name, function()
    local csv = os.tmpname()
    local args = { "--sweep", spec .. " " .. seeds(per), "--jobs", "2", "--csv", csv, "--quiet",
                   script }
    for _, a in ipairs(extra) do args[#args + 1] = a end
    local _, err, code = t.host_run(table.unpack(args))
    local header = io.open(csv) and io.lines(csv)() or ""
    local col, i = 0, 0
    for h in header:gmatch("[^,]+") do
      i = i + 1
      if h == "status" then col = i end
    end
    local rows, lines = count_rows(csv)
    os.remove(csv)
    local want = (sanitized and math.max(1, per // 10) or per) * scale * combos
    t.eq(rows, math.floor(want), "one row per run")
    assert(col > 0, "a status column")
    for _, l in ipairs(lines) do
      local f = {}
      for v in (l .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
      t.eq(f[col], "0", "status of run " .. f[1] .. " (" .. l:sub(1, 80) .. ")")
    end
    t.eq(code, 0, "sweep exit (" .. err .. ")")
  end }
end

local function by_type(out, type)
  return tonumber(out:match('"' .. type:gsub("%-", "%%-") .. '":{"bytes":%d+,"messages":(%d+)}'))
end

cases[#cases + 1] = { "PBFT's normal case has the paper's message counts", function()
  -- One request, no faults: n-1 pre-prepares, (n-1)^2 prepares, n(n-1)
  -- commits.  Replies: the client runs on a replica's node, and that
  -- replica answers it locally, so n-1 REPLY messages (the paper's n,
  -- less the local one); one REQUEST reaches the primary.
  for _, n in ipairs { 4, 7, 10 } do
    local out, err, code = t.host_run("scripts/pbft_like.lua", "--requests", "1", "--faulty", "0",
      "--nodes", tostring(n), "--json")
    t.eq(code, 0, "exit (" .. err .. ")")
    t.eq(by_type(out, "PRE-PREPARE"), n - 1, "pre-prepares, n=" .. n)
    t.eq(by_type(out, "PREPARE"), (n - 1) ^ 2 // 1, "prepares, n=" .. n)
    t.eq(by_type(out, "COMMIT"), n * (n - 1), "commits, n=" .. n)
    t.eq(by_type(out, "REPLY"), n - 1, "replies, n=" .. n)
  end
end }

cases[#cases + 1] = { "the leader-based vote grows as O(n), PBFT as O(n^2)", function()
  local function messages(script, n, ...)
    local out = t.host_run(script, "--nodes", tostring(n), "--faulty", "0", "--json", ...)
    return tonumber(out:match('"messages":(%d+)'))
  end
  local v = {}
  local p = {}
  for _, n in ipairs { 10, 20, 40 } do
    v[n] = messages("scripts/majority_vote.lua", n, "--collect", "leader")
    p[n] = messages("scripts/pbft_like.lua", n, "--requests", "1")
  end
  -- doubling n: linear doubles the count, quadratic quadruples it
  for _, n in ipairs { 10, 20 } do
    local rv, rp = v[2 * n] / v[n], p[2 * n] / p[n]
    assert(rv > 1.8 and rv < 2.3, string.format("vote: %d -> %d messages (x%.2f)", v[n], v[2 * n], rv))
    assert(rp > 3.5 and rp < 4.5, string.format("pbft: %d -> %d messages (x%.2f)", p[n], p[2 * n], rp))
  end
end }

t.cases(cases)
