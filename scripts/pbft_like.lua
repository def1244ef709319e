-- pbft_like.lua: the normal case of PBFT (Castro & Liskov, OSDI'99).
--
-- n replicas tolerate f = floor((n-1)/3) Byzantine ones; every quorum is
-- 2f+1 replicas.  The view is fixed at v = 0, so the primary is replica
-- v mod n = 0.  A client, co-located with the primary on node 0, issues
-- --requests K requests, one every --interval ms (timer-driven, open
-- loop, so several sequence numbers are in flight at once).  For each one:
--
--   primary   assigns the next sequence number n, proposes the request for
--             slot n (so the checker can judge validity) and sends
--             PRE-PREPARE <v, n, d> with the request m (d = digest of m);
--   backup    accepts the PRE-PREPARE if it comes from the primary of its
--             view, d matches m, and it has not accepted another digest
--             for (v, n); it then sends PREPARE <v, n, d, i>;
--   prepared  once a replica holds the PRE-PREPARE and 2f PREPAREs that
--             match it, from distinct backups (its own counts; the
--             primary sends none): it sends COMMIT <v, n, d, i>;
--   committed-local  once prepared with 2f+1 matching COMMITs from
--             distinct replicas (its own counts);
--   execute   in sequence order: node:decide(m, n) and a REPLY with the
--             result to the client, which accepts a result once f+1
--             replicas reply it.
--
-- Messages a replica sends to itself are recorded locally, not sent.
-- The state machine is a counter: request "reqI: add X" adds X to it, and
-- the reply carries the new total, so all honest replicas must execute the
-- same requests in the same order to give the client f+1 matching replies.
--
-- Faults: --faulty F replicas are silent (they run a protocol that does
-- nothing).  They are chosen among the backups 1..n-1 by the seed: the
-- first F of a permutation of 1..n-1 drawn with splitmix64 from --seed
-- (node 0 joins them only when F = n).  With F <= f every honest replica
-- executes all K requests; with F > f the run goes on anyway and the
-- checkers say what happened (typically termination NOT REACHED, exit 3).
--
-- Not modelled yet (a later issue): view changes (so a faulty primary is
-- out of scope), checkpoints and garbage collection of the log, the
-- watermarks h < n <= H, signatures/MACs (senders are authenticated by
-- the simulator), and request retransmission.  Quorums are 2f+1 for any
-- n; that is PBFT's choice for n = 3f+1 (the sizes tested), while other
-- n would need ceil((n+f+1)/2) to be safe against Byzantine replicas.
--
-- Usage: consensus-lua scripts/pbft_like.lua [--nodes N] [--faulty F]
--          [--seed S] [--requests K] [--interval MS] [--json|--quiet]

local consensus = require "consensus"

local opts = consensus.options({
  requests = { 10, "client requests to issue" },
  interval = { 5.0, "ms between two client requests" },
}, { faulty = 1 })

local K = opts.requests
local INTERVAL = opts.interval
if K < 1 then consensus.usage_error("--requests must be at least 1") end
if INTERVAL < 0 then consensus.usage_error("--interval must be >= 0") end

local format = string.format

-- One-way message delay, uniform in [LAT_MIN, LAT_MAX] ms: messages overtake
-- each other, so phases of different sequence numbers interleave.
local LAT_MIN, LAT_MAX = 5, 20

local PHASES = { "PRE-PREPARE", "PREPARE", "COMMIT", "REPLY" }

---------------------------------------------------------------- helpers

-- f from n alone, independent of --faulty.
local function max_faulty(n) return (n - 1) // 3 end

-- FNV-1a (32 bits) of a string, as 8 hex digits: the request digest D(m).
local function digest(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return format("%08x", h)
end

-- The request's operation: "reqI: add X" -> X.
local function operand(m)
  return tonumber(m:match("add (%-?%d+)$")) or 0
end

---------------------------------------------------------------- replica

local Pbft = {}

local function primary_of(node, v) return v % node.n end

-- To every other replica; counts messages, not broadcasts.
local function send_all(node, msg)
  node.sent[msg.type] = node.sent[msg.type] + node.n - 1
  node:broadcast(msg, false)
end

-- The entry of sequence number n: the accepted pre-prepare (d, m) and
-- the votes per digest.
local function entry(node, n)
  local e = node.log[n]
  if not e then
    e = { d = nil, m = nil, prepared = false, committed = false, votes = {} }
    node.log[n] = e
  end
  return e
end

local function votes(e, d)
  local vt = e.votes[d]
  if not vt then
    vt = { prepares = {}, np = 0, commits = {}, nc = 0 }
    e.votes[d] = vt
  end
  return vt
end

local function add_prepare(vt, i)
  if not vt.prepares[i] then vt.prepares[i] = true; vt.np = vt.np + 1 end
end

local function add_commit(vt, i)
  if not vt.commits[i] then vt.commits[i] = true; vt.nc = vt.nc + 1 end
end

-- The client, on node 0: one REPLY from replica i for request t.
local function client_reply(node, t, i, r)
  local c = node.client
  local req = c.replies[t]
  if not req or req.done or req.from[i] then return end
  req.from[i] = true
  req.count[r] = (req.count[r] or 0) + 1
  if req.count[r] >= node.fq + 1 then
    req.done = true
    node:note({ reply = t, result = r })
  end
end

-- Execute every committed request that is next in sequence order.
local function execute(node)
  while true do
    local e = node.log[node.last_exec + 1]
    if not (e and e.committed) then return end
    local n = node.last_exec + 1
    node.last_exec = n
    node.total = node.total + operand(e.m)
    node:decide(e.m, n)
    local t = tonumber(e.m:match("^req(%d+):"))
    if node.id == node.client_host then
      client_reply(node, t, node.id, node.total)
    else
      node.sent.REPLY = node.sent.REPLY + 1
      node:send(node.client_host, { type = "REPLY", v = node.view, t = t,
                                    i = node.id, r = node.total })
    end
    if n == node.requests then
      -- Every message this replica will ever send is sent: say how many.
      node:note({ sent = node.sent, total = node.total })
    end
  end
end

-- Move (v, n) forward as far as what the log holds allows.
local function advance(node, n)
  local e = node.log[n]
  if not e or not e.d then return end
  local vt = votes(e, e.d)
  local q = 2 * node.fq + 1
  if not e.prepared and vt.np >= q - 1 then
    e.prepared = true
    add_commit(vt, node.id)
    send_all(node, { type = "COMMIT", v = node.view, n = n, d = e.d, i = node.id })
  end
  if e.prepared and not e.committed and vt.nc >= q then
    e.committed = true
    execute(node)
  end
end

-- Accept (v, n, d, m) unless another digest is accepted for (v, n).
local function accept_pre_prepare(node, n, d, m)
  local e = entry(node, n)
  if e.d then return false end
  e.d, e.m = d, m
  return true
end

function Pbft.start(node)
  node.view = 0
  node.fq = max_faulty(node.n)
  node.requests = K
  node.client_host = 0
  node.log = {}
  node.last_exec = 0
  node.total = 0
  node.next_seq = 0
  node.sent = {}
  for _, p in ipairs(PHASES) do node.sent[p] = 0 end
  if node.id == node.client_host then
    node.client = { next = 1, replies = {} }
    node:set_timer("request", 0)
  end
end

-- The primary orders request m.
local function order(node, m)
  node.next_seq = node.next_seq + 1
  local n, d = node.next_seq, digest(m)
  node:propose(m, n)
  accept_pre_prepare(node, n, d, m)
  send_all(node, { type = "PRE-PREPARE", v = node.view, n = n, d = d, m = m })
  advance(node, n)
end

function Pbft.timer(node, name)
  if name ~= "request" then return end
  local c = node.client
  local t = c.next
  c.next = t + 1
  local m = format("req%d: add %d", t, node:random(1, 99))
  c.replies[t] = { from = {}, count = {}, done = false }
  if t < node.requests then node:set_timer("request", INTERVAL) end
  -- The client sends the request to the primary, here on the same node.
  if primary_of(node, node.view) == node.id then order(node, m) end
end

function Pbft.receive(node, msg, from)
  local ty = msg.type
  if ty == "REPLY" then
    if node.client then client_reply(node, msg.t, from, msg.r) end
    return
  end
  if msg.v ~= node.view or math.type(msg.n) ~= "integer" or msg.n < 1 then
    return
  end
  local n, d = msg.n, msg.d
  if type(d) ~= "string" then return end
  if ty == "PRE-PREPARE" then
    if from ~= primary_of(node, node.view) or from == node.id then return end
    if type(msg.m) ~= "string" or digest(msg.m) ~= d then return end
    if not accept_pre_prepare(node, n, d, msg.m) then return end
    add_prepare(votes(node.log[n], d), node.id)
    send_all(node, { type = "PREPARE", v = node.view, n = n, d = d, i = node.id })
    advance(node, n)
  elseif ty == "PREPARE" then
    -- The primary sends no PREPARE; one claiming to come from it is void.
    if from == primary_of(node, node.view) then return end
    add_prepare(votes(entry(node, n), d), from)
    advance(node, n)
  elseif ty == "COMMIT" then
    add_commit(votes(entry(node, n), d), from)
    advance(node, n)
  end
end

-- A faulty replica that never sends anything.
local Silent = {}

---------------------------------------------------------------- faults

-- splitmix64: a small seeded stream, independent of the simulator's.
local function splitmix(state)
  state = state + 0x9e3779b97f4a7c15
  local z = state
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return state, z ~ (z >> 31)
end

-- The silent replicas: the first 'count' of a seeded permutation of the
-- backups 1..n-1, then node 0 if every node is faulty.  Sorted.
local function silent_ids(seed, n, count)
  local perm = {}
  for i = 1, n - 1 do perm[i] = i end
  local state, z = seed ~ 0x5eed9b17, 0
  for i = #perm, 2, -1 do
    state, z = splitmix(state)
    local j = (z >> 1) % i + 1
    perm[i], perm[j] = perm[j], perm[i]
  end
  local ids = {}
  for i = 1, math.min(count, n - 1) do ids[i] = perm[i] end
  if count >= n then ids[#ids + 1] = 0 end
  table.sort(ids)
  return ids
end

---------------------------------------------------------------- report

local function fmt_report(rep)
  local out = {}
  local function say(...) out[#out + 1] = format(...) end
  local n = rep.nodes
  local f = max_faulty(n)
  local silent = {}
  for _, id in ipairs(rep.byzantine) do silent[id] = true end

  say("=== PBFT normal case: pre-prepare, prepare, commit ===")
  say("replicas: %d (f = %d, quorum 2f+1 = %d), view 0, primary 0",
    n, f, 2 * f + 1)
  say("client: on node 0, %d request%s, one every %s ms; latency uniform %d-%d ms",
    K, K == 1 and "" or "s", format("%g", INTERVAL), LAT_MIN, LAT_MAX)
  if #rep.byzantine == 0 then
    say("silent replicas: none")
  else
    say("silent replicas: %s (--faulty %d%s)", table.concat(rep.byzantine, ", "),
      rep.faulty, rep.faulty > f and format(", more than f = %d", f) or "")
  end

  -- Commit (execution) times per sequence number, at honest replicas.
  local per = {}
  for _, d in ipairs(rep.decision_list) do
    if not silent[d.node] then
      local p = per[d.slot]
      if not p then
        p = { value = d.value, first = d.t, last = d.t, count = 0 }
        per[d.slot] = p
      end
      if d.t < p.first then p.first = d.t end
      if d.t > p.last then p.last = d.t end
      p.count = p.count + 1
    end
  end
  local reply, sent, finished, totals = {}, {}, 0, {}
  for _, p in ipairs(PHASES) do sent[p] = 0 end
  for _, note in ipairs(rep.notes) do
    local v = note.value
    if v.reply then reply[v.reply] = note.t end
    if v.sent then
      finished = finished + 1
      totals[#totals + 1] = v.total
      for _, p in ipairs(PHASES) do sent[p] = sent[p] + v.sent[p] end
    end
  end
  say("")
  say("times in ms; the client accepts a result once f+1 replicas reply it")
  say("seq  request           issued  executed at honest replicas  client accepts")
  local shown = math.min(K, 10)
  for s = 1, shown do
    local p, r = per[s], reply[s]
    local when = p and format("%7.3f .. %7.3f (%d/%d)", p.first, p.last,
      p.count, rep.honest) or "not executed"
    say("%3d  %-16s %7s  %-27s  %s", s, p and format("%q", p.value) or "-",
      format("%.3f", (s - 1) * INTERVAL), when,
      r and format("%.3f", r) or "no f+1 replies")
  end
  if K > shown then say("... and %d more requests", K - shown) end

  say("")
  if finished == rep.honest then
    say("messages: %d sent (pre-prepare %d, prepare %d, commit %d, reply %d), %d delivered",
      rep.messages, sent["PRE-PREPARE"], sent.PREPARE, sent.COMMIT, sent.REPLY,
      rep.delivered)
  else
    say("messages: %d sent, %d delivered (%d of %d honest replicas did not finish)",
      rep.messages, rep.delivered, rep.honest - finished, rep.honest)
  end
  say("virtual time: %.3f ms", rep.sim_time_ms)
  if finished > 0 then
    local same = true
    for _, t in ipairs(totals) do same = same and t == totals[1] end
    say("state: counter = %s at %s that executed all requests",
      same and tostring(totals[1]) or "DIFFERS",
      finished == 1 and "the 1 replica" or format("all %d replicas", finished))
  end
  say("executed: %d of %d honest replicas executed all %d requests",
    rep.decided, rep.honest, K)
  local function ok(b) return b and "OK" or "VIOLATED" end
  say("checks: agreement %s, validity %s, termination %s",
    ok(rep.agreement), ok(rep.validity), rep.termination and "OK" or "NOT REACHED")
  for _, l in ipairs(rep:violation_lines()) do say("%s", l) end
  if #rep.errors > 0 then
    say("errors: %d handler error%s (nodes %s failed)", #rep.errors,
      #rep.errors == 1 and "" or "s", table.concat(rep.failed, ", "))
  end
  say("seed %d; replay: %s", rep.seed, rep.replay)
  io.stdout:write(table.concat(out, "\n"), "\n")
  return true   -- the seed is printed: no aside on stderr
end

---------------------------------------------------------------- run

local sim = consensus.sim {
  nodes = opts.nodes, faulty = opts.faulty, slots = K,
  network = { latency = { "uniform", LAT_MIN, LAT_MAX }, loss = 0 },
  name = "PBFT",
}
sim:spawn(Pbft)
local ids = silent_ids(opts.seed, opts.nodes, opts.faulty)
-- Under --attack/--attacker the engine makes the faulty nodes attackers
-- instead of silent replicas.
if #ids > 0 and not (opts.attack or opts.attacker) then sim:byzantine(ids, Silent) end
-- Run until the network is quiet, not just until every replica executed:
-- the client's last replies are still in flight at that point.
local report = sim:run { slots = K, stop_when_decided = false }
report:print(fmt_report)
