-- gossip.lua: epidemic dissemination of one rumour (Demers et al., "Epidemic
-- algorithms for replicated database maintenance", 1987; Karp et al.,
-- "Randomized rumor spreading", 2000).
--
-- One honest node, the origin, starts with the rumour.  Time runs in
-- gossip rounds of --period ms (round k is [(k-1)*period, k*period)); at
-- the start of each round every node contacts --fanout K peers drawn at
-- random:
--
--   push      a node that has the rumour sends it (PUSH) to its K peers;
--   pull      a node that lacks it asks its K peers (PULL), and a peer that
--             has it answers (REPLY);
--   pushpull  both: informed nodes push, uninformed ones pull.
--
-- A node decides the rumour (slot 1) the first time it gets it; the origin
-- proposes and decides it at t = 0.  The run ends when every honest node
-- has it, and the report says after how many rounds and how much time,
-- round by round.  Push is fast at first and slow at the end (the last
-- uninformed nodes are hard to hit); pull the other way round; push-pull
-- takes about log3(n) + O(log log n) rounds.
--
-- The rumour travels with a checksum of its text, which stands in for the
-- origin's signature: a node drops a rumour whose checksum does not match
-- (so the attackers' altered copies are refused).  It is no defence against
-- a forger that knows the scheme.
--
-- Faulty nodes (--faulty, --byzantine) are crashed from the start: they
-- send nothing and drop what they get; with --crash-at MS they gossip
-- honestly until MS, then crash.  --attack NAME makes them attackers
-- instead.  The origin is the lowest honest id unless --origin says.
--
--   consensus-lua scripts/gossip.lua --nodes 64 --mode push --fanout 2
--   consensus-lua scripts/gossip.lua --nodes 100 --faulty 10 --loss 0.2
--   consensus-lua scripts/gossip.lua --nodes 32 --faulty 4 --crash-at 25

local consensus = require "consensus"

local opts = consensus.options({
  mode = { "pushpull", "push, pull or pushpull" },
  fanout = { 3, "peers each node contacts per round" },
  period = { 20.0, "ms per gossip round" },
  origin = { -1, "the node that starts with the rumour (-1: the lowest honest id)" },
  crash_at = { -1.0, "ms at which the faulty nodes crash (-1: crashed from the start)" },
  rumour = { "the quick brown fox", "the rumour's text" },
}, { nodes = 16, faulty = 0 })

local MODE, FANOUT, PERIOD = opts.mode, opts.fanout, opts.period
local PUSH = MODE == "push" or MODE == "pushpull"
local PULL = MODE == "pull" or MODE == "pushpull"
if not (PUSH or PULL) then
  consensus.usage_error("--mode must be push, pull or pushpull, got '" .. MODE .. "'")
end
if FANOUT < 1 then consensus.usage_error("--fanout must be at least 1") end
if PERIOD <= 0 then consensus.usage_error("--period must be > 0 ms") end

local format = string.format

-- FNV-1a (32 bits) of a string, as 8 hex digits: the rumour's checksum.
local function checksum(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return format("%08x", h)
end

local RUMOUR = opts.rumour

---------------------------------------------------------------- the sim

local sim = consensus.sim { name = "Gossip", network = { latency = "uniform:5:15" } }
local faulty = sim.faulty > 0 and sim:faulty_ids() or {}
local is_faulty = {}
for _, id in ipairs(faulty) do is_faulty[id] = true end
local ORIGIN = opts.origin
if ORIGIN < 0 then
  ORIGIN = nil
  for id = 0, sim.nodes - 1 do
    if not is_faulty[id] then ORIGIN = id; break end
  end
  if ORIGIN == nil then consensus.usage_error("every node is faulty: no origin") end
elseif ORIGIN >= sim.nodes then
  consensus.usage_error(format("--origin must be a node id (0..%d)", sim.nodes - 1))
elseif is_faulty[ORIGIN] then
  consensus.usage_error(format("--origin %d is a faulty node", ORIGIN))
end

---------------------------------------------------------------- the node

local Gossip = {}

-- Round of virtual time t: round k is [(k-1)*period, k*period).
local function round_at(t) return math.floor(t / PERIOD) + 1 end

-- K distinct peers other than this node, drawn with node:random.
local function peers(node)
  local n, me = node.n, node.id
  if FANOUT >= n - 1 then
    local all = {}
    for id = 0, n - 1 do if id ~= me then all[#all + 1] = id end end
    return all
  end
  local pool = node.pool
  if pool == nil then
    pool = {}
    for id = 0, n - 1 do if id ~= me then pool[#pool + 1] = id end end
    node.pool = pool
  end
  -- a partial Fisher-Yates shuffle: the first K entries are the sample
  for i = 1, FANOUT do
    local j = node:random(i, #pool)
    pool[i], pool[j] = pool[j], pool[i]
  end
  local out = {}
  for i = 1, FANOUT do out[i] = pool[i] end
  return out
end

-- A rumour whose checksum matches its text is taken; the first one is
-- this node's decision.
local function learn(node, value, digest, how)
  if type(value) ~= "string" or checksum(value) ~= digest then
    node:count("rejected")
    return
  end
  if node.has then return end
  node.has, node.rumour = true, value
  node:decide(value)
  node:note { round = round_at(node.now), how = how }
end

function Gossip.start(node)
  node.has = false
  if node.id == ORIGIN then
    node:propose(RUMOUR)
    node:decide(RUMOUR)
    node.has, node.rumour = true, RUMOUR
    node:note { round = 0, how = "origin" }
  end
  node:set_timer("gossip", 0)
end

function Gossip.timer(node, name)
  if name ~= "gossip" then return end
  if node.has and PUSH then
    for _, to in ipairs(peers(node)) do
      node:count("push")
      node:send(to, { type = "PUSH", value = node.rumour,
                         digest = checksum(node.rumour) })
    end
  elseif not node.has and PULL then
    for _, to in ipairs(peers(node)) do
      node:count("pull")
      node:send(to, { type = "PULL" })
    end
  end
  node:set_timer("gossip", PERIOD)
end

function Gossip.receive(node, msg, from)
  if type(msg) ~= "table" then return end
  if msg.type == "PUSH" then
    learn(node, msg.value, msg.digest, "push")
  elseif msg.type == "REPLY" then
    learn(node, msg.value, msg.digest, "pull")
  elseif msg.type == "PULL" and node.has then
    node:count("reply")
    node:send(from, { type = "REPLY", value = node.rumour,
                       digest = checksum(node.rumour) })
  end
end

-- A crashed node: nothing at all.
local Crashed = {}

---------------------------------------------------------------- run

sim:spawn(Gossip)
if #faulty > 0 then
  if opts.attack or opts.attacker then
    sim:byzantine(faulty)                 -- the attacker wraps the honest code
  elseif opts.crash_at >= 0 then
    sim:byzantine(faulty)                 -- honest code until the crash
    for _, id in ipairs(faulty) do sim:crash(id, { at = opts.crash_at }) end
  else
    sim:byzantine(faulty, Crashed)
  end
end
local report = sim:run()

---------------------------------------------------------------- report

-- Honest nodes informed per round, from the notes: the count per round,
-- the last round and time, and how many honest nodes have the rumour.
local function spread_of(r)
  local byz = {}
  for _, id in ipairs(r.byzantine) do byz[id] = true end
  local per, last_round, last_t, informed = {}, 0, 0, 0
  for _, note in ipairs(r.notes) do
    if not byz[note.node] and type(note.value) == "table" then
      local k = note.value.round
      per[k] = (per[k] or 0) + 1
      informed = informed + 1
      if k > last_round then last_round = k end
      if note.t > last_t then last_t = note.t end
    end
  end
  return per, last_round, last_t, informed
end

local function print_report(r)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = format(fmt, ...) end
  say("=== Gossip: %s, fanout %d, period %g ms, %d nodes ===", MODE, FANOUT,
    PERIOD, r.nodes)
  if #r.byzantine > 0 then
    local how = opts.attack and ("attack " .. opts.attack)
      or opts.attacker and ("attacker " .. opts.attacker)
      or opts.crash_at >= 0 and format("crash at %s ms", tostring(opts.crash_at))
      or "crashed"
    say("faulty: node%s %s (%s)", #r.byzantine == 1 and "" or "s",
      table.concat(r.byzantine, ", "), how)
  end
  say("origin: node %d; network: latency %s, loss %s", ORIGIN,
    opts.latency or "uniform:5:15", tostring(opts.loss or 0))
  say("")
  local per, last_round, last_t, informed = spread_of(r)
  say("round  new  informed")
  local total = 0
  for k = 0, last_round do
    total = total + (per[k] or 0)
    say("%5d %4d %5d/%d", k, per[k] or 0, total, r.honest)
  end
  say("")
  if informed == r.honest then
    say("every honest node has the rumour after %d round%s, at t = %.3f ms",
      last_round, last_round == 1 and "" or "s", last_t)
  else
    say("%d of %d honest nodes have the rumour by t = %.3f ms", informed, r.honest,
      r.sim_time_ms)
  end
  local c = r.counters or {}
  say("messages: %d sent, %d delivered, %d dropped (push %d, pull %d, reply %d)",
    r.messages, r.delivered, r.dropped, c.push or 0, c.pull or 0, c.reply or 0)
  if (c.rejected or 0) > 0 then
    say("rejected: %d altered rumour%s (bad checksum)", c.rejected, c.rejected == 1 and "" or "s")
  end
  for _, l in ipairs(r:check_lines()) do say("%s", l) end
  say("seed %d; replay: %s", r.seed, r.replay)
  io.stdout:write(table.concat(out, "\n"), "\n")
  return true
end

do
  local _, last_round, last_t, informed = spread_of(report)
  report.extra = { informed = informed, rounds = last_round, time_ms = last_t }
end
report:print(print_report)
