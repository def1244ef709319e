-- test_tendermint.lua: scripts/tendermint.lua end to end, through the host:
-- safety and liveness with up to f faulty nodes, under every attacker
-- strategy (a faulty proposer included), partitions healed with
-- --heal-at, message loss, and byte-identical output across --threads.

local t = require "testlib"
local attackers = require "consensus.attackers"

local SCRIPT = "scripts/tendermint.lua"

local function run(...)
  return t.host_run(SCRIPT, ...)
end

-- A scalar field of a one-line JSON report.
local field = t.field

-- Run with args (a list) and --json; assert every check holds.
local function ok_run(args)
  local all = { table.unpack(args) }
  all[#all + 1] = "--json"
  local out, err, code = run(table.unpack(all))
  local where = table.concat(all, " ") .. "\n" .. out .. err
  t.eq(code, 0, "exit status of " .. where)
  t.eq(field(out, "agreement"), "true", "agreement: " .. where)
  t.eq(field(out, "validity"), "true", "validity: " .. where)
  t.eq(field(out, "termination"), "true", "termination: " .. where)
  t.eq(field(out, "decided"), field(out, "honest"), "decided: " .. where)
  return out
end

local cases = {}
local function case(name, fn) cases[#cases + 1] = { name, fn } end

case("n = 4 and 7, f = 0 .. (n-1)//3 equivocating nodes, several seeds", function()
  for _, n in ipairs { 4, 7 } do
    for f = 0, (n - 1) // 3 do
      for _, seed in ipairs { 1, 2, 3 } do
        local out = ok_run { "--nodes", n, "--faulty", f, "--seed", seed, "--heights", 2 }
        t.eq(field(out, "slots"), "2", "slots")
        t.eq(field(out, "honest"), tostring(n - f), "honest")
      end
    end
  end
end)

case("every attacker strategy, one faulty node: the proposer of round 0", function()
  for _, name in ipairs(attackers.names()) do
    for _, n in ipairs { 4, 7 } do
      ok_run { "--nodes", n, "--byzantine", "0", "--attack", name, "--heights", 2, "--seed", 5 }
    end
  end
end)

case("every attacker strategy, one faulty non-proposer", function()
  for _, name in ipairs(attackers.names()) do
    ok_run { "--nodes", 4, "--byzantine", "2", "--attack", name, "--heights", 2, "--seed", 2 }
  end
end)

case("every attacker strategy, f = 2 of 7 (the seed picks them)", function()
  for _, name in ipairs(attackers.names()) do
    ok_run { "--nodes", 7, "--faulty", 2, "--attack", name, "--seed", 3 }
  end
end)

case("a silent proposer of round 0: the height ends in round 1", function()
  local out, _, code = run("--nodes", "4", "--byzantine", "0", "--attack", "silent")
  t.eq(code, 0, "exit status:\n" .. out)
  t.has(out, "proposer of round 0: node 0 (Byzantine)")
  t.has(out, "by 3 of 3 honest nodes, round 1,")
  t.has(out, "checks: agreement OK, validity OK, termination OK")
  t.has(out, "replay: consensus-lua scripts/tendermint.lua")
end)

case("partition without a quorum: no decision until --heal-at, then all", function()
  local out = ok_run { "--nodes", 4, "--faulty", 0, "--partition", "0,1|2,3",
                       "--heal-at", 500, "--heights", 2 }
  local first = tonumber(out:match('"decisions":%[{[^}]*"t":([%d.]+)'))
  assert(first and first > 500, "decided before the heal: " .. out)
  -- never healed: nothing is decided, nothing is violated
  local out2, _, code = run("--nodes", "4", "--faulty", "0", "--partition", "0,1|2,3",
    "--until", "1500", "--json")
  t.eq(code, 3, "exit status without heal:\n" .. out2)
  t.eq(field(out2, "agreement"), "true", "agreement")
  t.eq(field(out2, "decided"), "0", "decided")
end)

case("partition with Byzantine nodes and loss, healed: liveness after GST", function()
  for _, a in ipairs { "equivocate", "garble", "delay" } do
    ok_run { "--nodes", 7, "--faulty", 2, "--attack", a, "--partition", "0,1,2|3,4,5,6",
             "--heal-at", 400, "--loss", 0.05, "--heights", 2, "--seed", 4 }
  end
  ok_run { "--nodes", 4, "--byzantine", "0", "--partition", "0|1,2,3", "--heal-at", 300,
           "--loss", 0.05, "--heights", 2 }
end)

case("a node cut off while the others decide catches up after the heal", function()
  ok_run { "--nodes", 4, "--faulty", 0, "--partition", "0,1,2|3", "--heal-at", 300,
           "--heights", 3 }
  local human = run("--nodes", "4", "--faulty", "0", "--partition", "0,1,2|3",
    "--heal-at", "300", "--heights", "3")
  t.has(human, "decided: 4 of 4 honest nodes decided 3 heights")
  t.has(human, "partition 0,1,2|3, healed at 300 ms")
  -- the three others decide every height before the heal, node 3 after it
  for h = 1, 3 do
    local t0, t1 = human:match(string.format("height %d: value %%d+ by 4 of 4 honest nodes, "
      .. "round[s]? [%%d-]+, t = ([%%d.]+)%%-([%%d.]+) ms", h))
    assert(t0, "height " .. h .. " line:\n" .. human)
    assert(tonumber(t0) < 300 and tonumber(t1) > 300, "height " .. h .. ":\n" .. human)
  end
end)

case("message loss", function()
  ok_run { "--nodes", 7, "--faulty", 2, "--loss", 0.1, "--heights", 2, "--seed", 6 }
  ok_run { "--nodes", 4, "--faulty", 1, "--loss", 0.2, "--attack", "flip", "--seed", 7 }
end)

case("rounds are counted; --rounds sets the heights", function()
  local out = ok_run { "--nodes", 4, "--faulty", 0, "--rounds", 3 }
  t.eq(field(out, "slots"), "3", "slots")
  local rounds = tonumber(out:match('"counters":{[^}]*"rounds":(%d+)'))
  assert(rounds and rounds >= 4 * 3, "rounds counter: " .. out)
  local human = run("--nodes", "4", "--faulty", "0", "--heights", "2")
  t.has(human, "=== Tendermint: 4 validators, f = 1, quorum 3, 2 heights ===")
  t.has(human, "rounds started: 8 (1.0 per node and height)")
end)

case("the same seed gives the same output, whatever --threads", function()
  for _, args in ipairs {
    { "--nodes", "7", "--faulty", "2", "--seed", "9", "--heights", "2" },
    { "--nodes", "4", "--byzantine", "0", "--attack", "replay", "--loss", "0.1", "--seed", "3" },
    { "--nodes", "7", "--faulty", "1", "--partition", "0,1,2|3,4,5,6", "--heal-at", "200" },
  } do
    local function with(...)
      local a = { table.unpack(args) }
      for _, x in ipairs { ... } do a[#a + 1] = x end
      return run(table.unpack(a))
    end
    local what = table.concat(args, " ")
    local one = with("--json", "--threads", "1")
    local two = with("--json", "--threads", "2")
    local again = with("--json", "--threads", "2")
    assert(one:find('"agreement":true', 1, true), what .. ": " .. one)
    t.eq(t.strip_threads(one), t.strip_threads(two), "--threads 1 vs 2: " .. what)
    t.eq(two, again, "two processes: " .. what)
    t.eq(with("--threads", "1"), with("--threads", "2"), "human report: " .. what)
  end
end)

case("f beyond (n-1)//3: the checker sees agreement break", function()
  -- 2 equivocating nodes of 4: two quorums of 3 may share only them
  local broken
  for seed = 1, 20 do
    local out, err, code = run("--nodes", "4", "--faulty", "2", "--seed", tostring(seed),
      "--until", "3000", "--json", "--threads", "1")
    assert(code ~= 2, "seed " .. seed .. ":\n" .. out .. err)
    if field(out, "agreement") == "false" then
      t.eq(code, 1, "exit status")
      broken = seed
      break
    end
  end
  assert(broken, "no agreement violation with f = 2 of 4 in 20 seeds")
  local human = run("--nodes", "4", "--faulty", "2", "--seed", tostring(broken), "--until", "3000")
  t.has(human, "more than f = 1: no guarantee")
  t.has(human, "AGREEMENT VIOLATED")
end)

case("usage errors exit 2", function()
  for _, args in ipairs {
    { "--heights", "-1" }, { "--values", "0" }, { "--values", "1000" },
    { "--partition", "0,9|1" }, { "--resend", "0" }, { "--bogus" },
  } do
    local out, err, code = run(table.unpack(args))
    t.eq(code, 2, table.concat(args, " ") .. ":\n" .. out .. err)
  end
end)

t.cases(cases)
