-- test_gossip.lua: scripts/gossip.lua end to end, through the host: every
-- mode and several fanouts spread the rumour to every honest node, with
-- message loss, crashed nodes and attackers; the report gives the rounds;
-- the output is the same whatever --threads.

local t = require "testlib"

local SCRIPT = "scripts/gossip.lua"

local function run(...)
  return t.host_run(SCRIPT, ...)
end

local field = t.field

-- Run (human report); assert every honest node got the rumour.  Returns
-- the report and the number of rounds it took.
local function spread(args)
  local out, err, code = run(table.unpack(args))
  local where = table.concat(args, " ") .. "\n" .. out .. err
  t.eq(code, 0, "exit status of " .. where)
  t.has(out, "checks: agreement OK, validity OK, termination OK", where)
  local rounds = out:match("every honest node has the rumour after (%d+) rounds?, at t = [%d.]+ ms")
  assert(rounds, "no rounds line: " .. where)
  return out, tonumber(rounds)
end

local cases = {}
local function case(name, fn) cases[#cases + 1] = { name, fn } end

case("every mode and fanout reaches every node", function()
  for _, mode in ipairs { "push", "pull", "pushpull" } do
    for _, k in ipairs { 1, 2, 4 } do
      local out, rounds = spread { "--mode", mode, "--fanout", k, "--nodes", 24, "--seed", 3,
                                   "--threads", 1 }
      t.has(out, string.format("=== Gossip: %s, fanout %d, period 20 ms, 24 nodes ===", mode, k))
      assert(rounds >= 1 and rounds <= 40, mode .. " fanout " .. k .. ": " .. rounds .. " rounds")
      -- the round table ends with every node informed
      t.has(out, string.format("%5d", rounds), "round table")
      t.has(out, "24/24", "round table")
    end
  end
end)

case("push-pull with fanout 3 is faster than push with fanout 1", function()
  local total_pp, total_p = 0, 0
  for seed = 1, 3 do
    local _, a = spread { "--mode", "pushpull", "--fanout", 3, "--nodes", 48, "--seed", seed }
    local _, b = spread { "--mode", "push", "--fanout", 1, "--nodes", 48, "--seed", seed }
    total_pp, total_p = total_pp + a, total_p + b
  end
  assert(total_pp < total_p, string.format("pushpull %d rounds, push %d", total_pp, total_p))
end)

case("message loss", function()
  for _, mode in ipairs { "push", "pull", "pushpull" } do
    spread { "--mode", mode, "--nodes", 30, "--loss", 0.3, "--seed", 2 }
  end
end)

case("crashed and silent nodes: every honest node still gets it", function()
  for _, mode in ipairs { "push", "pull", "pushpull" } do
    local out = spread { "--mode", mode, "--nodes", 24, "--faulty", 6, "--loss", 0.1 }
    t.has(out, "(crashed)")
    t.has(out, "/18", "18 honest nodes")
    spread { "--mode", mode, "--nodes", 24, "--faulty", 6, "--crash-at", 30 }
    spread { "--mode", mode, "--nodes", 24, "--faulty", 6, "--attack", "silent" }
  end
end)

case("attackers: altered copies are refused", function()
  local out = spread { "--mode", "push", "--nodes", 32, "--faulty", 8, "--attack", "flip" }
  assert(out:match("rejected: %d+ altered rumours? %(bad checksum%)"), out)
  for _, a in ipairs { "equivocate", "garble", "replay", "delay", "selective", "collude" } do
    spread { "--nodes", 24, "--faulty", 6, "--attack", a, "--seed", 5 }
  end
end)

case("the origin decides first; --origin picks it", function()
  local out = run("--nodes", "10", "--origin", "7", "--json")
  t.eq(field(out, "decided"), "10", "decided")
  local human = run("--nodes", "10", "--origin", "7")
  t.has(human, "origin: node 7;")
  -- round 0 holds the origin alone
  t.has(human, "    0    1     1/10")
end)

case("JSON: one decision per node, the rumour's text", function()
  local out = run("--nodes", "20", "--faulty", "4", "--json", "--rumour", "hello")
  t.eq(field(out, "status"), "0", "status")
  t.eq(field(out, "honest"), "16", "honest")
  t.eq(field(out, "decided"), "16", "decided")
  t.has(out, '"value":"hello"')
end)

case("the same seed gives the same output, whatever --threads", function()
  for _, args in ipairs {
    { "--nodes", "40", "--mode", "push", "--loss", "0.2", "--seed", "4" },
    { "--nodes", "30", "--faulty", "5", "--attack", "garble", "--seed", "8" },
  } do
    local function with(...)
      local a = { table.unpack(args) }
      for _, x in ipairs { ... } do a[#a + 1] = x end
      return run(table.unpack(a))
    end
    local what = table.concat(args, " ")
    local one = with("--json", "--threads", "1")
    local two = with("--json", "--threads", "2")
    t.eq(t.strip_threads(one), t.strip_threads(two), "--threads 1 vs 2: " .. what)
    t.eq(two, with("--json", "--threads", "2"), "two processes: " .. what)
    t.eq(with("--threads", "1"), with("--threads", "2"), "human report: " .. what)
  end
end)

case("usage errors exit 2", function()
  for _, args in ipairs {
    { "--mode", "shout" }, { "--fanout", "0" }, { "--period", "0" },
    { "--origin", "99" }, { "--nodes", "4", "--byzantine", "0", "--origin", "0" },
  } do
    local out, err, code = run(table.unpack(args))
    t.eq(code, 2, table.concat(args, " ") .. ":\n" .. out .. err)
  end
end)

t.cases(cases)
