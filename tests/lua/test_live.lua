-- test_live.lua: --live end to end, through the host.  Each node runs on
-- its own thread in wall-clock time; the scripts and the checkers are the
-- same, and the report says the run is live and not reproducible.  Live
-- runs are not byte-identical from run to run, so the cases check
-- outcomes (exit status, agreement, termination, the "live" flag), never
-- times or counts that depend on the interleaving.

local t = require "testlib"

-- A scalar field of a one-line JSON report.
local field = t.field

-- Run a script live with --json; every check must hold.
local function ok_live(script, ...)
  local out, err, code = t.host_run(script, "--live", "--json", ...)
  local where = script .. " --live --json " .. table.concat({ ... }, " ")
    .. "\n" .. out .. err
  t.eq(code, 0, "exit status of " .. where)
  t.eq(field(out, "live"), "true", "live: " .. where)
  t.eq(field(out, "agreement"), "true", "agreement: " .. where)
  t.eq(field(out, "validity"), "true", "validity: " .. where)
  t.eq(field(out, "termination"), "true", "termination: " .. where)
  t.eq(field(out, "decided"), field(out, "honest"), "decided: " .. where)
  return out
end

local cases = {}
local function case(name, fn) cases[#cases + 1] = { name, fn } end

case("majority_vote --live --json: agreement and termination", function()
  for _ = 1, 3 do ok_live("scripts/majority_vote.lua") end
end)

case("pbft_like --live --json: agreement and termination", function()
  for _ = 1, 3 do ok_live("scripts/pbft_like.lua") end
end)

case("live runs with loss and duplicates still agree", function()
  local out = ok_live("scripts/pbft_like.lua", "--duplicate", "0.1")
  assert(tonumber(field(out, "duplicated")) > 0, "duplicated: " .. out)
  ok_live("scripts/majority_vote.lua", "--nodes", "7", "--faulty", "2")
end)

case("a partition before the run drops messages, live", function()
  local out = ok_live("scripts/pbft_like.lua", "--partition", "0,1|2,3@0-150")
  assert(out:find('"partition":[1-9]'), "partition drops: " .. out)
end)

case("a simulated run does not claim to be live", function()
  local out, err, code = t.host_run("scripts/majority_vote.lua", "--json")
  t.eq(code, 0, "exit status\n" .. out .. err)
  assert(not out:find('"live":', 1, true), "no live field: " .. out)
end)

-- The human report says the run is live and not reproducible, both in the
-- default summary and next to a script's own format (majority_vote and
-- pbft_like print their own; the host adds the line aside).
local SUMMARY_SCRIPT = [[
local consensus = require "consensus"
consensus.options()
local P = {}
function P.start(node)
  if node.id == 0 then
    node:propose("v")
    node:broadcast { v = "v" }
  end
end
function P.receive(node, msg)
  node:decide(msg.v)
end
local sim = consensus.sim { network = { latency = 2 } }
sim:spawn(P)
sim:run():print()
]]

case("the summary says the run is not reproducible", function()
  local path = t.temp_script(SUMMARY_SCRIPT)
  local out, err, code = t.host_run(path, "--nodes", "4", "--live")
  os.remove(path)
  t.eq(code, 0, "exit status\n" .. out .. err)
  t.has(out, "not reproducible", "summary")
  t.has(out, "live run", "summary")
end)

case("scripts with their own report say it too", function()
  for _, script in ipairs { "scripts/majority_vote.lua", "scripts/pbft_like.lua" } do
    local out, err, code = t.host_run(script, "--live")
    t.eq(code, 0, "exit status of " .. script .. "\n" .. out .. err)
    t.has(out .. err, "not reproducible", script)
  end
end)

case("crash and pause are refused in live mode, without a hang", function()
  local out, err, code = t.host_run("scripts/pbft_like.lua", "--live", "--crash", "1@50")
  assert(code ~= 0, "a live crash must fail\n" .. out .. err)
  t.has(err, "crash: not supported in a live run", "the error names the fault")
end)

t.cases(cases)
