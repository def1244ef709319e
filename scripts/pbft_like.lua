-- pbft_like.lua: PBFT (Castro & Liskov, OSDI'99): the normal case, view
-- changes, checkpoints with garbage collection, batching and client
-- replies.  docs/protocols/pbft.md explains the choices made here.
--
-- n replicas tolerate f = floor((n-1)/3) Byzantine ones; a quorum is
-- q = ceil((n+f+1)/2) replicas, which is 2f+1 when n = 3f+1.  In view v
-- the primary is replica v mod n.
--
-- Client.  It runs on the highest-numbered honest node (never on a faulty
-- one, so a faulty primary 0 does not silence it) and issues --requests K
-- requests "reqT: add X", one every --interval ms, open loop.  It
-- proposes each one (node:propose, so the checker can judge validity),
-- sends it to the primary of the view it believes current, and after a
-- timeout retransmits it to every replica, with a doubling timeout.  It
-- accepts a result once f+1 replicas sent the same REPLY.
--
-- Normal case, per sequence number s (h < s <= h + L):
--   primary   orders a batch of up to --batch B requests: PRE-PREPARE
--             <v, s, d> with the batch (d = digest of the batch);
--   backup    accepts it if it comes from the primary of its view, d
--             matches, and no other digest is accepted for (v, s); it then
--             sends PREPARE <v, s, d, i>;
--   prepared  the PRE-PREPARE and q-1 matching PREPAREs from distinct
--             backups (its own counts): it sends COMMIT <v, s, d, i>;
--   commit    q matching COMMITs from distinct replicas (any view) commit
--             the batch: then at least f+1 honest replicas prepared it,
--             so every later view keeps it;
--   execute   in sequence order.  Each request gets its own slot, its
--             position in the replica's order of execution: the checker's
--             agreement is the total order of state-machine replication.
--             A request already executed (it may be ordered twice across
--             views) is skipped.  The state is a counter, so the REPLY
--             (the new total) tells whether replicas agree on the order.
--
-- Checkpoints: after executing s with s % K == 0 (--checkpoint K), a
-- replica sends CHECKPOINT <s, digest of the state>; q matching ones make
-- it stable: the low watermark h moves to s, and the log at or below s is
-- discarded.
--
-- Lost messages.  A replica says its PRE-PREPARE, PREPARE and COMMIT for a
-- sequence number of its view again while that number has not committed
-- there (on_resend_timer).
--
-- Catching up.  A replica missing a batch that f+1 replicas vouch for, or
-- a commit certificate (f+1 COMMITs came but not q), asks them (FETCH).
-- The answer's certificate and relayed PRE-PREPARE name the (v, n, d)
-- they were signed for, which must be the answer's own (signed_for).
-- One behind a checkpoint that f+1 vouch for fetches the state and checks
-- it against the digest (FETCH-STATE).  A replica restarted after a crash
-- (node.store says it ran before) asks everyone for the state and the
-- view.
--
-- View change.  A replica waiting to execute a request it knows (from the
-- client or a PRE-PREPARE) runs a timer, restarted whenever it executes a
-- new request.  On expiry it moves to view v+1 and sends VIEW-CHANGE with
-- its stable checkpoint and proof and its prepared certificates above h.
-- The new primary collects q of them and sends NEW-VIEW with them and O:
-- for each s between the highest stable checkpoint min-s in them and the
-- highest prepared s, the batch of the certificate with the highest view,
-- or a null batch; backups recompute O from the VIEW-CHANGEs and prepare
-- it.  A replica that has sent VIEW-CHANGE and holds q of them for that
-- view waits --timeout ms times 2^k for the NEW-VIEW (k view changes in a
-- row, at most 8x), then moves on to the next view; f+1 VIEW-CHANGEs for
-- higher views make a replica join the smallest of them.
--
-- Signatures are modelled by the sender id: a message carries i, and a
-- replica takes it only from node i (the simulator's 'from' cannot be
-- forged).  Messages embedded in others (certificates and checkpoint
-- proofs in a VIEW-CHANGE, VIEW-CHANGEs in a NEW-VIEW, requests in a
-- PRE-PREPARE) are trusted to carry their signers' ids: the attacker
-- library rewrites top-level fields only, and --twofaced never forges.
--
-- Faults: without --attack, the --faulty F replicas the seed picks (or
-- --byzantine IDS) are silent.  --twofaced makes replicas 0..F-1 a
-- Byzantine coalition that equivocates (see 'twofaced' below).  With
-- --heal-at MS the network is cut in two halves, neither a quorum, until
-- MS, and every request must be executed by MS + the declared bound.
--
-- Usage: consensus-lua scripts/pbft_like.lua [--nodes N] [--faulty F]
--          [--seed S] [--requests K] [--interval MS] [--batch B]
--          [--checkpoint K] [--log-window L] [--timeout MS] [--twofaced]
--          [--attack NAME] [--byzantine IDS] [--heal-at MS] [--json|--quiet]

local consensus = require "consensus"

local opts = consensus.options({
  requests = { 10, "client requests to issue" },
  interval = { 5.0, "ms between two client requests" },
  batch = { 1, "requests the primary orders under one sequence number" },
  checkpoint = { 5, "a checkpoint every N sequence numbers" },
  log_window = { 0, "the log holds h < s <= h+N above the stable checkpoint h "
    .. "(0: 2 x --checkpoint)" },
  timeout = { 100.0, "view-change timeout in ms (doubles on each successive view change)" },
  twofaced = { false, "replicas 0..F-1 collude: an equivocating primary (see the script)" },
}, { faulty = 1 })

local K = opts.requests
local INTERVAL = opts.interval
local B = opts.batch
local CP = opts.checkpoint
local L = opts.log_window ~= 0 and opts.log_window or 2 * CP
local T0 = opts.timeout
if K < 1 then consensus.usage_error("--requests must be at least 1") end
if INTERVAL < 0 then consensus.usage_error("--interval must be >= 0") end
if B < 1 then consensus.usage_error("--batch must be at least 1") end
if CP < 1 then consensus.usage_error("--checkpoint must be at least 1") end
if L < CP or L % CP ~= 0 then
  consensus.usage_error("--log-window must be a multiple of --checkpoint, at least it")
end
if not (T0 > 0) then consensus.usage_error("--timeout must be > 0") end
if opts.twofaced and (opts.attack or opts.attacker or type(opts.byzantine) == "table") then
  consensus.usage_error("--twofaced picks its own Byzantine replicas (0..F-1): "
    .. "do not combine it with --attack, --attacker or --byzantine")
end
if opts.twofaced and (opts.faulty < 1 or opts.faulty >= opts.nodes) then
  consensus.usage_error("--twofaced needs 1 <= --faulty < --nodes")
end

local format = string.format

-- One-way message delay, uniform in [LAT_MIN, LAT_MAX] ms (unless
-- --latency): messages overtake each other, phases interleave.
local LAT_MIN, LAT_MAX = 5, 20

local MAX_BACKOFF = 3                  -- timeouts double up to 2^3 x
local T_MAX = T0 * (1 << MAX_BACKOFF)
local CLIENT_RETRY = 2 * T0            -- the client's first retransmission
local BATCH_WAIT = 10                  -- ms a partial batch waits
local FETCH_WAIT = 2 * LAT_MAX         -- before asking for a missing batch
local RESEND_WAIT = 3 * LAT_MAX        -- before saying PREPARE/COMMIT again
local AHEAD = 3                        -- future views whose messages are kept

-- The liveness bound after --heal-at: every timer fires within T_MAX of
-- healing, then at most f+1 view changes (f faulty primaries in a row),
-- each within T_MAX plus a few message delays, and the requests run.
local HEAL_BOUND = (((opts.nodes - 1) // 3) + 3) * (T_MAX + 10 * LAT_MAX)

-- Message types, in the order the report lists them.
local TYPES = { "REQUEST", "PRE-PREPARE", "PREPARE", "COMMIT", "REPLY",
                "CHECKPOINT", "VIEW-CHANGE", "NEW-VIEW", "FETCH", "BATCH",
                "FETCH-STATE", "STATE" }

---------------------------------------------------------------- helpers

-- f from n alone, independent of --faulty, and the quorum size.
local function max_faulty(n) return (n - 1) // 3 end
local function quorum(n) return (n + max_faulty(n) + 2) // 2 end

-- FNV-1a (32 bits) of a string, as 8 hex digits: the digest D(m).
local function digest(s)
  local h = 0x811c9dc5
  for i = 1, #s do
    h = ((h ~ s:byte(i)) * 0x01000193) & 0xffffffff
  end
  return format("%08x", h)
end

local GENESIS = digest("genesis")

local function batch_digest(reqs) return digest("batch|" .. table.concat(reqs, "\n")) end
local NULL_D = batch_digest({})

local function state_digest(s, chain, total)
  return digest(format("state|%d|%s|%d", s, chain, total))
end

local math_type = math.type
local function is_int(x) return math_type(x) == "integer" end

-- A request "reqT: add X": its number T, or nil.
local function req_no(m)
  if type(m) ~= "string" then return nil end
  local t = m:match("^req(%d+): add %-?%d+$")
  return t and tonumber(t)
end

local function operand(m) return tonumber(m:match("add (%-?%d+)$")) end

-- A batch: a list of distinct well-formed requests.
local function valid_batch(reqs)
  if type(reqs) ~= "table" or #reqs > 1000 then return false end
  local seen = {}
  for i = 1, #reqs do
    local t = req_no(reqs[i])
    if not t or seen[t] then return false end
    seen[t] = true
  end
  return true
end

-- A list of at least 'need' distinct replica ids, none equal to 'except'.
local function valid_ids(ids, nodes, need, except)
  if type(ids) ~= "table" or #ids < need or #ids > nodes then return false end
  local seen = {}
  for _, i in ipairs(ids) do
    if not is_int(i) or i < 0 or i >= nodes or i == except or seen[i] then return false end
    seen[i] = true
  end
  return true
end

local function primary_of(node, v) return v % node.n end

---------------------------------------------------------------- the log

-- log[s] = { views = { [v] = ve }, vmin, vmax, batches = { [d] = reqs },
--            exec_d = the committed digest }
-- ve = { pp_d = the accepted PRE-PREPARE's digest, prep_sent, commit_sent,
--        prepares = { [i] = d }, np = { [d] = count },
--        commits = { [i] = d }, nc = { [d] = count } }
local function entry(node, s)
  local e = node.log[s]
  if not e then
    e = { views = {}, batches = {} }
    node.log[s] = e
  end
  return e
end

local function view_entry(e, v)
  local ve = e.views[v]
  if not ve then
    ve = { prepares = {}, np = {}, commits = {}, nc = {} }
    e.views[v] = ve
    if not e.vmin or v < e.vmin then e.vmin = v end
    if not e.vmax or v > e.vmax then e.vmax = v end
  end
  return ve
end

-- Sequence numbers a replica keeps messages for: above its stable
-- checkpoint (or above what it executed, while it catches up with one),
-- up to h + L.
local function in_window(node, s)
  local low = node.h < node.last_exec and node.h or node.last_exec
  return is_int(s) and s > low and s <= node.h + L
end

local function timeout(node) return T0 * (1 << node.backoff) end

-- The view-change timer runs while a known request waits to be executed.
local function watch(node, restart)
  if node.npending == 0 and node.resend_armed then
    -- nothing waits here: no retransmissions (on_resend_timer) either
    node:cancel_timer("resend")
    node.resend_armed = false
  end
  if node.in_vc then return end
  if node.npending == 0 then
    if node.timer_on then node:cancel_timer("vc"); node.timer_on = false end
  elseif restart or not node.timer_on then
    node:set_timer("vc", timeout(node))
    node.timer_on = true
  end
end

-- A request the replica now knows about.
local function learn(node, m)
  local t = req_no(m)
  if node.executed[t] ~= nil or node.pending[t] then return end
  node.pending[t] = m
  node.npending = node.npending + 1
  if t > node.max_t then node.max_t = t end
  watch(node, false)
end

-- Our PRE-PREPARE, PREPARE or COMMIT for (v, s) is out (ve is
-- log[s].views[v]): if s has not committed here RESEND_WAIT later,
-- on_resend_timer sends them again.  In the normal case s commits within
-- 3 message delays of the PRE-PREPARE, before that.
local function arm_resend(node, ve)
  if not ve.resend_at then ve.resend_at = node.now + RESEND_WAIT end
  if not node.resend_armed then
    node.resend_armed = true
    node:set_timer("resend", RESEND_WAIT)
  end
end

local function arm_fetch(node)
  if not node.fetch_armed then
    node.fetch_armed = true
    node:set_timer("fetch", FETCH_WAIT)
  end
end

---------------------------------------------------------------- client

local CLIENT -- the client's node, fixed before the run (an upvalue)

local function client_reply(node, t, i, v, r)
  local c = node.client
  local rq = c and c.reqs[t]
  if not rq or rq.done or rq.from[i] or not is_int(r) or not is_int(v) then return end
  rq.from[i] = true
  rq.count[r] = (rq.count[r] or 0) + 1
  if not rq.vmin[r] or v < rq.vmin[r] then rq.vmin[r] = v end
  if rq.count[r] >= node.fq + 1 then
    rq.done = true
    node:cancel_timer("retry:" .. t)
    -- At least one of the f+1 is honest and was in a view >= the least.
    if rq.vmin[r] > c.view then c.view = rq.vmin[r] end
    c.accepted = c.accepted + 1
    node:note({ accept = t, result = r })
  end
end

-- The replica on node i replies to the client.
local function reply(node, t, r)
  if node.id == CLIENT then
    client_reply(node, t, node.id, node.view, r)
  else
    node:send(CLIENT, { type = "REPLY", v = node.view, t = t, r = r, i = node.id })
  end
end

local on_request -- forward: a replica gets a request

local function client_issue(node)
  local c = node.client
  local t = c.next
  c.next = t + 1
  local m = format("req%d: add %d", t, node:random(1, 99))
  node:propose(m) -- for any slot: its slot is its place in the order
  c.reqs[t] = { m = m, from = {}, count = {}, vmin = {}, done = false, wait = CLIENT_RETRY }
  if t < K then node:set_timer("request", INTERVAL) end
  local p = primary_of(node, c.view)
  if p == node.id then on_request(node, m) else node:send(p, { type = "REQUEST", m = m }) end
  node:set_timer("retry:" .. t, CLIENT_RETRY)
end

-- No f+1 matching replies in time: send the request to every replica.
local function client_retry(node, t)
  local rq = node.client.reqs[t]
  if not rq or rq.done then return end
  node:count("client_retransmissions")
  node:broadcast({ type = "REQUEST", m = rq.m }, false)
  on_request(node, rq.m)
  rq.wait = math.min(2 * rq.wait, T_MAX)
  node:set_timer("retry:" .. t, rq.wait)
end

---------------------------------------------------------------- normal case

local take_checkpoint, order_batches -- forward

-- Execute every committed batch that is next in sequence order.
local function execute(node)
  while true do
    local s = node.last_exec + 1
    local e = node.log[s]
    local reqs = e and e.exec_d and e.batches[e.exec_d]
    if not reqs then return end
    node.last_exec = s
    local progressed = false
    for _, m in ipairs(reqs) do
      local t = req_no(m)
      if node.executed[t] == nil then
        node.total = node.total + operand(m)
        node.k = node.k + 1
        node.order[node.k] = m
        node.chain = digest(node.chain .. "|" .. m)
        node.executed[t] = node.total
        if node.pending[t] then
          node.pending[t] = nil
          node.npending = node.npending - 1
        end
        node:decide(m, node.k)
        reply(node, t, node.total)
        progressed = true
      end
    end
    if s % CP == 0 then take_checkpoint(node, s) end
    if s <= node.h then node.log[s], node.pcert[s] = nil, nil end
    if node.k == K and not node.finished then
      node.finished = true
      node:note({ executed_all = node.total })
    end
    if progressed then
      node.backoff = 0
      watch(node, true)
    end
  end
end

-- Move (v, s, d) forward: prepared -> COMMIT; q COMMITs -> execute.
-- e = log[s] and ve = its view v (the PREPARE and COMMIT handlers have them
-- at hand; progress() below looks them up).  This runs for every PREPARE
-- and COMMIT: once COMMIT is sent, the first test settles the first rule.
local function advance(node, e, ve, s, v, d)
  local q = node.q
  if not ve.commit_sent and ve.pp_d == d and v == node.view and not node.in_vc
      and (ve.np[d] or 0) >= q - 1 then
    ve.commit_sent = true
    local by = {}
    for i = 0, node.n - 1 do
      if ve.prepares[i] == d then by[#by + 1] = i end
    end
    local old = node.pcert[s]
    if not old or old.v < v then
      node.pcert[s] = { v = v, n = s, d = d, reqs = e.batches[d], by = by }
    end
    if not ve.commits[node.id] then
      ve.commits[node.id] = d
      ve.nc[d] = (ve.nc[d] or 0) + 1
    end
    node:broadcast({ type = "COMMIT", v = v, n = s, d = d, i = node.id }, false)
    arm_resend(node, ve)
  end
  if e.exec_d == nil and (ve.nc[d] or 0) >= q then -- the commit rule
    e.exec_d, e.exec_v = d, v
    if e.batches[d] then execute(node) else arm_fetch(node) end
  end
end

local function progress(node, s, v, d)
  local e = node.log[s]
  local ve = e and e.views[v]
  if ve then advance(node, e, ve, s, v, d) end
end

-- A backup accepts the PRE-PREPARE (v, s, d) already in its log.
local function accept_pp(node, s, v, d)
  local e = node.log[s]
  local ve = e.views[v]
  ve.prep_sent = true
  if not ve.prepares[node.id] then
    ve.prepares[node.id] = d
    ve.np[d] = (ve.np[d] or 0) + 1
  end
  node:broadcast({ type = "PREPARE", v = v, n = s, d = d, i = node.id }, false)
  arm_resend(node, ve)
  progress(node, s, v, d)
end

-- Lost normal-case messages.  With q honest replicas and f faulty ones,
-- every honest replica's PREPARE and COMMIT is needed for a commit: one
-- lost PREPARE leaves a replica unprepared, its COMMIT never comes, and no
-- one commits.  FETCH does not help (the batch is there; a PRE-PREPARE
-- lost where the batch is known from an earlier view is not fetched
-- either) and a view change leaves the next view to the same odds (about
-- 0.98^110 per sequence number for n = 16, f = 5 and 2% loss).  So a
-- replica says again what it said for each sequence number of the current
-- view not committed here RESEND_WAIT after it said it (the primary its
-- PRE-PREPARE, a backup its PREPARE, both their COMMIT), then with a
-- doubling wait (up to T_MAX), until it commits or a view change starts
-- (which has retransmissions of its own).  Receivers take one
-- PRE-PREPARE per (v, s) and count a sender once.
local function on_resend_timer(node)
  node.resend_armed = false
  if node.in_vc then return end
  local v, now, next_at = node.view, node.now, nil
  for s = node.last_exec + 1, node.h + L do
    local e = node.log[s]
    local ve = e and e.views[v]
    local at = ve and ve.resend_at
    if at and e.exec_d == nil then
      if at - now < 1 then -- due (the clock counts microseconds, 'at' may not)
        local d = ve.pp_d
        if ve.pp_sent then
          node:broadcast({ type = "PRE-PREPARE", v = v, n = s, d = d, reqs = e.batches[d],
                           i = node.id }, false)
        end
        if ve.prep_sent then
          node:broadcast({ type = "PREPARE", v = v, n = s, d = d, i = node.id }, false)
        end
        if ve.commit_sent then
          node:broadcast({ type = "COMMIT", v = v, n = s, d = d, i = node.id }, false)
        end
        ve.resends = (ve.resends or 0) + 1
        at = now + math.min(RESEND_WAIT * (1 << ve.resends), T_MAX)
        ve.resend_at = at
      end
      if not next_at or at < next_at then next_at = at end
    end
  end
  if next_at then
    node.resend_armed = true
    node:set_timer("resend", next_at - now)
  end
end

-- The primary orders the queued requests, B to a sequence number, while
-- the window allows; a partial batch waits BATCH_WAIT ms (flush: no more).
function order_batches(node, flush)
  if node.in_vc or primary_of(node, node.view) ~= node.id then return end
  while #node.queue > 0 and node.next_seq < node.h + L do
    if #node.queue < B and not flush then
      if not node.batch_armed then
        node.batch_armed = true
        node:set_timer("batch", BATCH_WAIT)
      end
      return
    end
    local reqs = {}
    while #reqs < B and #node.queue > 0 do
      local t = table.remove(node.queue, 1)
      node.queued[t] = nil
      local m = node.pending[t]
      if m and not node.assigned[t] then
        reqs[#reqs + 1] = m
        node.assigned[t] = true
      end
    end
    if #reqs > 0 then
      node.next_seq = node.next_seq + 1
      local s, d = node.next_seq, batch_digest(reqs)
      local e = entry(node, s)
      local ve = view_entry(e, node.view)
      ve.pp_d, ve.pp_sent = d, true
      e.batches[d] = reqs
      node:broadcast({ type = "PRE-PREPARE", v = node.view, n = s, d = d,
                       reqs = reqs, i = node.id }, false)
      arm_resend(node, ve)
      progress(node, s, node.view, d)
    end
  end
end

local function enqueue(node, t)
  if node.pending[t] and not node.assigned[t] and not node.queued[t] then
    node.queued[t] = true
    node.queue[#node.queue + 1] = t
  end
end

function on_request(node, m)
  local t = req_no(m)
  if not t then return end
  local r = node.executed[t]
  if r ~= nil then return reply(node, t, r) end -- a retransmission
  learn(node, m)
  if not node.in_vc and primary_of(node, node.view) == node.id then
    enqueue(node, t)
    order_batches(node, false)
  end
end

---------------------------------------------------------------- checkpoints

local request_state, start_view_change -- forward

-- (s, d) is stable with 'proof' (q signers): move the low watermark.
local function adopt_stable(node, s, d, proof)
  if s <= node.h then return end
  local old = node.h
  local upto = math.min(s, node.last_exec)
  for x = old + 1, upto do node.log[x], node.pcert[x] = nil, nil end
  for x = old + CP, s, CP do node.cps[x] = nil end
  for x = old, s - CP, CP do node.snaps[x] = nil end
  node.h, node.h_d, node.h_proof = s, d, proof
  node:note({ stable = s })
  if node.last_exec < s then request_state(node) end
  order_batches(node, false)
end

local function checkpoint_vote(node, s, d, i)
  if s <= node.h then return end
  local c = node.cps[s]
  if not c then
    c = { by = {}, count = {} }
    node.cps[s] = c
  end
  if c.by[i] then return end
  if s > node.cp_max then node.cp_max = s end
  c.by[i] = d
  c.count[d] = (c.count[d] or 0) + 1
  -- f+1 matching: an honest replica has this state, we may fetch it
  if c.count[d] == node.fq + 1 and s > node.last_exec then request_state(node) end
  if c.count[d] >= node.q then
    local proof = {}
    for j = 0, node.n - 1 do
      if c.by[j] == d then proof[#proof + 1] = j end
    end
    adopt_stable(node, s, d, proof)
  end
end

function take_checkpoint(node, s)
  node.snaps[s] = { k = node.k, total = node.total, chain = node.chain }
  if s <= node.h then return end -- caught up with a stable one
  local d = state_digest(s, node.chain, node.total)
  node:broadcast({ type = "CHECKPOINT", n = s, d = d, i = node.id }, false)
  checkpoint_vote(node, s, d, node.id)
end

-- Lost CHECKPOINTs would freeze the window: say ours again.
local function resend_checkpoints(node)
  for s = node.h, node.last_exec, CP do
    local sn = node.snaps[s]
    if s > 0 and sn then
      node:broadcast({ type = "CHECKPOINT", n = s, d = state_digest(s, sn.chain, sn.total),
                       i = node.id }, false)
    end
  end
end

-- The latest checkpoint above what we executed that f+1 replicas (so an
-- honest one) vouch for, or our stable one: s, its digest and signers.
local function state_target(node)
  if node.h > node.last_exec then
    return node.h, node.h_d, node.h_proof
  end
  for s = node.cp_max, node.last_exec + 1, -CP do
    local c = node.cps[s]
    if c then
      for j = 0, node.n - 1 do
        local d = c.by[j]
        if d and c.count[d] >= node.fq + 1 then
          local ids = {}
          for x = 0, node.n - 1 do
            if c.by[x] == d then ids[#ids + 1] = x end
          end
          return s, d, ids
        end
      end
    end
  end
end

-- Behind a checkpoint: wait a little (the log may still get there), then
-- fetch the state from the replicas that vouch for it, one at a time.
function request_state(node)
  if not node.state_armed then
    node.state_armed = true
    node:set_timer("state", FETCH_WAIT)
  end
end

local function on_state_timer(node)
  node.state_armed = false
  if node.recovering then
    node:broadcast({ type = "FETCH-STATE", s = 0, i = node.id }, false)
    node.state_armed = true
    node:set_timer("state", T0)
    return
  end
  local s, _, signers = state_target(node)
  if not s then return end
  local ids = {}
  for _, j in ipairs(signers) do
    if j ~= node.id then ids[#ids + 1] = j end
  end
  if #ids == 0 then return end
  node.state_try = node.state_try + 1
  node:send(ids[(node.state_try - 1) % #ids + 1], { type = "FETCH-STATE", s = s, i = node.id })
  node.state_armed = true
  node:set_timer("state", T0)
end

-- The commit certificate of an executed seq: q replicas sent COMMIT.
local function commit_cert(node, e)
  if e.cert then return e.cert end
  local ve = e.exec_v and e.views[e.exec_v]
  if not ve then return nil end
  local ids = {}
  for j = 0, node.n - 1 do
    if ve.commits[j] == e.exec_d then ids[#ids + 1] = j end
  end
  return #ids >= node.q and ids or nil
end

-- The state at checkpoint s (none for s = 0), then the batches executed
-- since, each with its commit certificate, and our view.
local function send_state(node, to, s, d, proof, snap)
  local order, tail = {}, {}
  for j = 1, snap and snap.k or 0 do order[j] = node.order[j] end
  for x = s + 1, node.last_exec do
    local e = node.log[x]
    local cert = e and e.exec_d and commit_cert(node, e)
    if not cert then break end
    tail[#tail + 1] = { n = x, d = e.exec_d, reqs = e.batches[e.exec_d], cert = cert }
  end
  node:send(to, { type = "STATE", s = s, d = d, proof = proof, order = order,
                  tail = tail, view = node.view, i = node.id })
end

-- Committed batches with their certificates: execute them.
local function adopt_tail(node, tail)
  if type(tail) ~= "table" then return end
  for _, c in ipairs(tail) do
    if type(c) == "table" and in_window(node, c.n) and c.n > node.last_exec
        and type(c.d) == "string" and valid_batch(c.reqs) and batch_digest(c.reqs) == c.d
        and valid_ids(c.cert, node.n, node.q) then
      local e = entry(node, c.n)
      e.batches[c.d] = c.reqs
      if e.exec_d == nil then e.exec_d, e.cert = c.d, c.cert end
    end
  end
  execute(node)
end

-- A restarted replica learns the view from f+1 replies (one is honest):
-- the (f+1)-th highest view they report.  It was the primary of that
-- view?  It lost what it ordered: it asks for the next view instead.
local function recover_view(node, msg, from)
  local r = node.recovering
  if not is_int(msg.view) or msg.view < 0 or r.views[from] then return end
  r.views[from] = msg.view
  r.count = r.count + 1
  if r.count < node.fq + 1 then return end
  local vs = {}
  for j = 0, node.n - 1 do
    if r.views[j] then vs[#vs + 1] = r.views[j] end
  end
  table.sort(vs, function(a, b) return a > b end)
  local w = vs[node.fq + 1]
  node.recovering = nil
  if w > node.view then
    if primary_of(node, w) == node.id then
      start_view_change(node, w + 1)
    else
      node.view = w
      node:note({ view = w })
    end
  end
end

-- A checked state: execute (decide) the requests it has that we lack.
local function adopt_state(node, s, order, total, chain)
  for j = 1, node.k do
    if order[j] ~= node.order[j] then return end -- not our history
  end
  local sum = 0
  for j = 1, #order do
    local m = order[j]
    sum = sum + operand(m)
    if j > node.k then
      local t = req_no(m)
      node.order[j] = m
      node.executed[t] = sum
      if node.pending[t] then
        node.pending[t] = nil
        node.npending = node.npending - 1
      end
      node:decide(m, j)
    end
  end
  local low = math.min(s, node.h)
  for x = node.last_exec + 1, low do node.log[x], node.pcert[x] = nil, nil end
  node.last_exec, node.k, node.total, node.chain = s, #order, total, chain
  node.snaps[s] = { k = node.k, total = total, chain = chain }
  if s > node.h then
    -- a checkpoint f+1 vouch for: ours makes it stable for the others
    local d = state_digest(s, chain, total)
    node:broadcast({ type = "CHECKPOINT", n = s, d = d, i = node.id }, false)
    checkpoint_vote(node, s, d, node.id)
  end
  node:note({ transfer = s })
  node:count("state_transfers")
  if node.state_armed then node:cancel_timer("state"); node.state_armed = false end
  if node.k == K and not node.finished then
    node.finished = true
    node:note({ executed_all = node.total })
  end
  node.backoff = 0
  watch(node, true)
  execute(node)
end

local function take_state(node, msg)
  local s, order = msg.s, msg.order
  if not is_int(s) or s <= node.last_exec or type(msg.d) ~= "string"
      or type(order) ~= "table" then
    return
  end
  local chain, total, seen = GENESIS, 0, {}
  for j = 1, #order do
    local t = req_no(order[j])
    if not t or seen[t] then return end
    seen[t] = true
    chain = digest(chain .. "|" .. order[j])
    total = total + operand(order[j])
  end
  if state_digest(s, chain, total) ~= msg.d then return end
  -- right if it is our stable checkpoint, one that f+1 replicas (so an
  -- honest one) vouched for, or a later stable one with its proof
  local c = node.cps[s]
  if s == node.h then
    if msg.d ~= node.h_d then return end
  elseif not (s > node.h and c and (c.count[msg.d] or 0) >= node.fq + 1) then
    if s > node.h and s % CP == 0 and valid_ids(msg.proof, node.n, node.q) then
      adopt_stable(node, s, msg.d, msg.proof)
    else
      return
    end
  end
  adopt_state(node, s, order, total, chain)
end

local function on_state(node, msg, from)
  if node.recovering then recover_view(node, msg, from) end
  take_state(node, msg)
  adopt_tail(node, msg.tail)
end

---------------------------------------------------------------- view change

local function certificates(node)
  local P = {}
  for s = node.h + 1, node.h + L do
    if node.pcert[s] then P[#P + 1] = node.pcert[s] end
  end
  return P
end

local function valid_vc(node, vc)
  if type(vc) ~= "table" or vc.type ~= "VIEW-CHANGE" or not is_int(vc.v) or vc.v < 1
      or not is_int(vc.h) or vc.h < 0 or vc.h % CP ~= 0 or type(vc.hd) ~= "string"
      or not is_int(vc.i) or vc.i < 0 or vc.i >= node.n or type(vc.P) ~= "table" then
    return false
  end
  if vc.h > 0 and not valid_ids(vc.C, node.n, node.q) then return false end
  if vc.h == 0 and vc.hd ~= GENESIS then return false end
  local seen = {}
  for _, c in ipairs(vc.P) do
    if type(c) ~= "table" or not is_int(c.v) or c.v < 0 or c.v >= vc.v
        or not is_int(c.n) or c.n <= vc.h or c.n > vc.h + L or seen[c.n]
        or type(c.d) ~= "string" or not valid_batch(c.reqs) or batch_digest(c.reqs) ~= c.d
        or not valid_ids(c.by, node.n, node.q - 1, primary_of(node, c.v)) then
      return false
    end
    seen[c.n] = true
  end
  return true
end

-- O from a set of VIEW-CHANGEs: for each s in (min-s, max-s], the batch
-- prepared in the highest view, else a null batch.
local function compute_o(V)
  local min_s, min_d, min_proof = 0, GENESIS, {}
  for _, vc in ipairs(V) do
    if vc.h > min_s then min_s, min_d, min_proof = vc.h, vc.hd, vc.C end
  end
  local best, max_s = {}, min_s
  for _, vc in ipairs(V) do
    for _, c in ipairs(vc.P) do
      if c.n > min_s then
        local b = best[c.n]
        if not b or c.v > b.v or (c.v == b.v and c.d < b.d) then best[c.n] = c end
        if c.n > max_s then max_s = c.n end
      end
    end
  end
  local O = {}
  for s = min_s + 1, max_s do
    local b = best[s]
    O[#O + 1] = b and { n = s, d = b.d, reqs = b.reqs } or { n = s, d = NULL_D, reqs = {} }
  end
  return O, min_s, min_d, min_proof, max_s
end

local function install_view(node, w, O, min_s, min_d, min_proof, max_s)
  node.view, node.in_vc, node.vc_armed = w, false, false
  node:cancel_timer("vc")
  node.timer_on = false
  for x in pairs(node.vcs) do
    if x <= w then node.vcs[x] = nil end
  end
  node:note({ view = w })
  if min_s > node.h then adopt_stable(node, min_s, min_d, min_proof) end
  local primary = primary_of(node, w) == node.id
  for _, o in ipairs(O) do
    if in_window(node, o.n) then
      local e = entry(node, o.n)
      local ve = view_entry(e, w)
      ve.pp_d = o.d
      e.batches[o.d] = o.reqs
      for _, m in ipairs(o.reqs) do learn(node, m) end
    end
  end
  for _, o in ipairs(O) do
    if in_window(node, o.n) then
      if primary then progress(node, o.n, w, o.d) else accept_pp(node, o.n, w, o.d) end
    end
  end
  -- PRE-PREPAREs of this view that came before the NEW-VIEW
  if not primary then
    for s = math.max(max_s, node.h) + 1, node.h + L do
      local e = node.log[s]
      local ve = e and e.views[w]
      if ve and ve.pp_d and not ve.prep_sent then accept_pp(node, s, w, ve.pp_d) end
    end
  else
    node.next_seq = math.max(max_s, node.h)
    node.queue, node.queued, node.assigned = {}, {}, {}
    for _, o in ipairs(O) do
      for _, m in ipairs(o.reqs) do node.assigned[req_no(m)] = true end
    end
    for t = 1, node.max_t do
      if node.pending[t] then enqueue(node, t) end
    end
    order_batches(node, false)
  end
  watch(node, true)
end

-- The new primary: q VIEW-CHANGEs for its view make the NEW-VIEW.
local function maybe_new_view(node)
  local w = node.view
  if not node.in_vc or primary_of(node, w) ~= node.id then return end
  local box = node.vcs[w]
  if not box or box.count < node.q or not box.by[node.id] then return end
  local V = { box.by[node.id] }
  for j = 0, node.n - 1 do
    if j ~= node.id and box.by[j] and #V < node.q then V[#V + 1] = box.by[j] end
  end
  local O, min_s, min_d, min_proof, max_s = compute_o(V)
  local od = {}
  for x, o in ipairs(O) do od[x] = { n = o.n, d = o.d } end
  local nv = { type = "NEW-VIEW", v = w, V = V, O = od, i = node.id }
  node.nv_msg = nv
  node:broadcast(nv, false)
  node:count("view_changes")
  install_view(node, w, O, min_s, min_d, min_proof, max_s)
end

local function vc_received(node, vc, from)
  local w = vc.v
  local box = node.vcs[w]
  if not box then
    box = { by = {}, count = 0 }
    node.vcs[w] = box
  end
  if box.by[from] then return end
  box.by[from] = vc
  box.count = box.count + 1
  if w == node.view and node.in_vc then
    if box.count >= node.q and not node.vc_armed then
      -- the real wait for the NEW-VIEW starts now
      node.vc_armed = true
      node:set_timer("vc", node.vc_t)
      node.timer_on = true
    end
    maybe_new_view(node)
  end
end

function start_view_change(node, w)
  if w <= node.view then return end
  node.view, node.in_vc, node.vc_armed, node.nv_msg = w, true, false, nil
  node.vc_t = timeout(node)
  node.backoff = math.min(node.backoff + 1, MAX_BACKOFF)
  node.queue, node.queued, node.assigned = {}, {}, {}
  if node.batch_armed then
    node:cancel_timer("batch")
    node.batch_armed = false
  end
  local vc = { type = "VIEW-CHANGE", v = w, h = node.h, hd = node.h_d, C = node.h_proof,
               P = certificates(node), i = node.id }
  node.my_vc = vc
  node.sent_vcs[w] = vc
  node.sent_vcs[w - 4] = nil
  node:broadcast(vc, false)
  node:set_timer("vc", node.vc_t)
  node.timer_on = true
  vc_received(node, vc, node.id)
end

local function on_vc_timer(node)
  node.timer_on = false
  resend_checkpoints(node)
  if not node.in_vc then
    if node.npending > 0 then start_view_change(node, node.view + 1) end
  elseif node.vc_armed then
    start_view_change(node, node.view + 1) -- q VIEW-CHANGEs, no NEW-VIEW
  elseif node.npending > 0 then
    -- too few VIEW-CHANGEs so far: ours may have been lost
    node:broadcast(node.my_vc, false)
    node:set_timer("vc", node.vc_t)
    node.timer_on = true
  end
end

local function on_view_change(node, msg, from)
  if not valid_vc(node, msg) then return end
  local w = msg.v
  if w < node.view then
    -- it is behind, and may have lost what we sent: say it again
    if node.sent_vcs[w] then node:send(from, node.sent_vcs[w]) end
    if not node.in_vc and node.nv_msg and node.nv_msg.v == node.view then
      node:send(from, node.nv_msg)
    end
    return
  end
  if w == node.view and not node.in_vc then
    -- late: it missed our NEW-VIEW
    if node.nv_msg and node.nv_msg.v == w then node:send(from, node.nv_msg) end
    return
  end
  if w > node.view + 1000 then return end
  vc_received(node, msg, from)
  local hv = node.vc_high[from]
  if not hv or w > hv then node.vc_high[from] = w end
  if w > node.view then
    -- f+1 replicas want a later view: join the smallest of theirs
    local count, least = 0, nil
    for j = 0, node.n - 1 do
      local x = node.vc_high[j]
      if j ~= node.id and x and x > node.view then
        count = count + 1
        if not least or x < least then least = x end
      end
    end
    if count >= node.fq + 1 then start_view_change(node, least) end
  end
end

local function on_new_view(node, msg, from)
  local w = msg.v
  if not is_int(w) or from ~= primary_of(node, w) or w < node.view
      or (w == node.view and not node.in_vc) then
    return
  end
  local V, od = msg.V, msg.O
  if type(V) ~= "table" or #V < node.q or #V > node.n or type(od) ~= "table" then return end
  local seen = {}
  for _, vc in ipairs(V) do
    if not valid_vc(node, vc) or vc.v ~= w or seen[vc.i] then return end
    seen[vc.i] = true
  end
  local O, min_s, min_d, min_proof, max_s = compute_o(V)
  if #od ~= #O then return end
  for x, o in ipairs(O) do
    if type(od[x]) ~= "table" or od[x].n ~= o.n or od[x].d ~= o.d then return end
  end
  install_view(node, w, O, min_s, min_d, min_proof, max_s)
end

---------------------------------------------------------------- missing batches

-- What seq s lacks, per (v, d): the batch, when f+1 replicas vouch for
-- one we never got (or q committed it), or the commit certificate, when
-- f+1 COMMITs came but not q (a replica the primary ignores, or one alone
-- in a view change, catches up so).
local function lacking(node, e, ve, d)
  local nc = ve.nc[d] or 0
  return (not e.batches[d] and ((ve.np[d] or 0) + nc >= node.fq + 1 or e.exec_d == d))
      or (e.exec_d == nil and nc >= node.fq + 1)
end

-- The digests of the PREPAREs and COMMITs received for (s, v) are the
-- keys of ve.np and ve.nc: the first one, and whether it is the only one.
-- pairs() visits them in no fixed order, but neither answer depends on it.
local function only_digest(ve)
  local one = next(ve.np) or next(ve.nc)
  for d in pairs(ve.np) do if d ~= one then return one, false end end
  for d in pairs(ve.nc) do if d ~= one then return one, false end end
  return one, true
end

-- What seq s lacks, as { v, d, ve }.  Several digests go in the order of
-- their senders (PREPAREs from replica 0 up, then COMMITs), never in
-- pairs() order: the FETCHes they make must not depend on it.  The scan
-- over the 2n senders is needed only then; in the normal case all agree
-- on one digest (the fetch timer runs about once per sequence number).
local function lacks(node, e)
  local out = {}
  for v = e.vmin, e.vmax do
    local ve = e.views[v]
    local one, only
    if ve then one, only = only_digest(ve) end
    if one and only then
      if lacking(node, e, ve, one) then out[#out + 1] = { v, one, ve } end
    elseif one then
      local seen = {}
      for x = 0, 2 * node.n - 1 do
        local d = x < node.n and ve.prepares[x] or ve.commits[x - node.n]
        if d and not seen[d] then
          seen[d] = true
          if lacking(node, e, ve, d) then out[#out + 1] = { v, d, ve } end
        end
      end
    end
  end
  return out
end

-- Ask the replicas that sent PREPAREs or COMMITs for what a seq lacks,
-- once it has lacked it for FETCH_WAIT, then with a doubling wait, at
-- most FETCH_TRIES times.
local FETCH_TRIES = 6

local function on_fetch_timer(node)
  node.fetch_armed = false
  local now, again = node.now, false
  for s = node.last_exec + 1, node.h + L do
    local e = node.log[s]
    if e and e.vmin and (e.tries or 0) < FETCH_TRIES then
      local asks = lacks(node, e)
      if #asks == 0 then
        e.since, e.next_try = nil, nil
      else
        e.since = e.since or now
        if now >= (e.next_try or e.since + FETCH_WAIT) then
          for _, a in ipairs(asks) do
            local v, d, ve = a[1], a[2], a[3]
            for j = 0, node.n - 1 do
              if j ~= node.id and (ve.prepares[j] == d or ve.commits[j] == d) then
                node:send(j, { type = "FETCH", v = v, n = s, d = d, i = node.id })
              end
            end
          end
          e.tries = (e.tries or 0) + 1
          e.next_try = now + math.min(FETCH_WAIT * (1 << e.tries), T_MAX)
        end
        again = again or e.tries == nil or e.tries < FETCH_TRIES
      end
    end
  end
  if again then
    node.fetch_armed = true
    node:set_timer("fetch", FETCH_WAIT)
  end
end

-- An embedded message 'x' signed for (v, s, d): the relayed PRE-PREPARE or
-- the commit certificate of a BATCH.  The BATCH's own v, n and d are only
-- its sender's word; the embedded copies stand for what the primary and
-- the q committers signed (embedded messages are trusted, see the top).
-- Without this check a Byzantine answerer that changed the BATCH's n
-- (--attack garble) moved a genuine certificate for d at s to another
-- sequence number, and the asker executed d there, out of order.
local function signed_for(x, v, s, d)
  return type(x) == "table" and x.v == v and x.n == s and x.d == d
end

local function on_batch(node, msg)
  local v, s, d, reqs = msg.v, msg.n, msg.d, msg.reqs
  if not is_int(v) or not in_window(node, s) or type(d) ~= "string"
      or not valid_batch(reqs) or batch_digest(reqs) ~= d then
    return
  end
  local cert, pp = msg.cert, msg.pp
  if (cert and not signed_for(cert, v, s, d)) or (pp and not signed_for(pp, v, s, d)) then
    return
  end
  local e = node.log[s]
  if not e then return end
  -- a commit certificate: q replicas sent COMMIT for (v, s, d)
  if e.exec_d == nil and cert and valid_ids(cert.by, node.n, node.q) then
    e.exec_d, e.cert = d, cert.by
  end
  if e.batches[d] then
    if e.exec_d == d then execute(node) end
    return
  end
  e.batches[d] = reqs
  for _, m in ipairs(reqs) do learn(node, m) end
  local ve = e.views[v]
  -- the relayed PRE-PREPARE, signed by the primary of v
  if ve and pp and v == node.view and not node.in_vc and not ve.pp_d
      and primary_of(node, v) ~= node.id then
    ve.pp_d = d
    accept_pp(node, s, v, d)
  end
  if e.exec_d == d then execute(node) end
end

---------------------------------------------------------------- dispatch

-- (v, s, d) well formed, v not too far ahead, s in the window (in_window,
-- inlined).  The PREPARE and COMMIT handlers spell these checks out again.
local function ok_normal(node, v, s, d)
  if math_type(v) ~= "integer" or math_type(s) ~= "integer" or type(d) ~= "string"
      or v < 0 or v > node.view + AHEAD then
    return false
  end
  local h, x = node.h, node.last_exec
  return s > (h < x and h or x) and s <= h + L
end

local handle = {}

handle["REQUEST"] = function(node, msg, from)
  if from == CLIENT then on_request(node, msg.m) end
end

handle["REPLY"] = function(node, msg, from)
  if node.client then client_reply(node, msg.t, from, msg.v, msg.r) end
end

handle["PRE-PREPARE"] = function(node, msg, from)
  local v, s, d = msg.v, msg.n, msg.d
  if not ok_normal(node, v, s, d) or v < node.view or from ~= primary_of(node, v)
      or not valid_batch(msg.reqs) or batch_digest(msg.reqs) ~= d then
    return
  end
  local e = entry(node, s)
  local ve = view_entry(e, v)
  if ve.pp_d then return end -- one digest per (v, s)
  ve.pp_d = d
  e.batches[d] = msg.reqs
  for _, m in ipairs(msg.reqs) do learn(node, m) end
  if v == node.view and not node.in_vc then
    accept_pp(node, s, v, d)
  elseif e.exec_d == d then
    execute(node)
  end
end

-- PREPARE and COMMIT are nearly all the messages, about 2n^2 per sequence
-- number (the rest is O(n)), so their handlers are the hot path of a
-- large run: a constant amount of work per message, no table built, and
-- few calls (each costs more than a line of checks; ok_normal is written
-- out, and entry() and view_entry() run only for the first message of an
-- (s, v)).
handle["PREPARE"] = function(node, msg, from)
  local v, s, d = msg.v, msg.n, msg.d
  -- ok_normal(node, v, s, d)
  if math_type(v) ~= "integer" or math_type(s) ~= "integer" or type(d) ~= "string"
      or v < 0 or v > node.view + AHEAD then
    return
  end
  local h, x = node.h, node.last_exec
  if not (s > (h < x and h or x) and s <= h + L) then return end
  -- the primary sends no PREPARE: one from it is void
  if v < node.view or from == v % node.n then return end
  local e = node.log[s] or entry(node, s)
  local ve = e.views[v] or view_entry(e, v)
  local prepares = ve.prepares
  if prepares[from] then return end
  prepares[from] = d
  local np = ve.np
  local count = (np[d] or 0) + 1
  np[d] = count
  if count == node.fq + 1 and not e.batches[d] then arm_fetch(node) end
  advance(node, e, ve, s, v, d)
end

handle["COMMIT"] = function(node, msg, from)
  local v, s, d = msg.v, msg.n, msg.d
  -- ok_normal(node, v, s, d); a quorum of COMMITs is final in any view,
  -- an old one included
  if math_type(v) ~= "integer" or math_type(s) ~= "integer" or type(d) ~= "string"
      or v < 0 or v > node.view + AHEAD then
    return
  end
  local h, x = node.h, node.last_exec
  if not (s > (h < x and h or x) and s <= h + L) then return end
  local e = node.log[s] or entry(node, s)
  local ve = e.views[v] or view_entry(e, v)
  local commits = ve.commits
  if commits[from] then return end
  commits[from] = d
  local nc = ve.nc
  local count = (nc[d] or 0) + 1
  nc[d] = count
  if count == node.fq + 1 then arm_fetch(node) end
  advance(node, e, ve, s, v, d)
end

handle["CHECKPOINT"] = function(node, msg, from)
  local s = msg.n
  if is_int(s) and s > 0 and s % CP == 0 and type(msg.d) == "string" then
    checkpoint_vote(node, s, msg.d, from)
  end
end

handle["VIEW-CHANGE"] = on_view_change
handle["NEW-VIEW"] = on_new_view

handle["FETCH"] = function(node, msg, from)
  local e = is_int(msg.n) and node.log[msg.n]
  local reqs = e and type(msg.d) == "string" and e.batches[msg.d]
  if reqs then
    local ve = is_int(msg.v) and e.views[msg.v]
    -- the commit certificate and the primary's PRE-PREPARE, each with the
    -- (v, n, d) its signers signed (on_batch checks them against ours)
    local cert, pp = nil, false
    if ve and (ve.nc[msg.d] or 0) >= node.q then
      local by = {}
      for j = 0, node.n - 1 do
        if ve.commits[j] == msg.d then by[#by + 1] = j end
      end
      cert = { v = msg.v, n = msg.n, d = msg.d, by = by }
    end
    if ve and ve.pp_d == msg.d then pp = { v = msg.v, n = msg.n, d = msg.d } end
    node:send(from, { type = "BATCH", v = msg.v, n = msg.n, d = msg.d, reqs = reqs,
                      pp = pp, cert = cert, i = node.id })
  end
end

handle["BATCH"] = on_batch

handle["FETCH-STATE"] = function(node, msg, from)
  local s = msg.s
  if not is_int(s) then return end
  local snap = node.snaps[s]
  if snap and s <= node.last_exec and s > 0 then
    send_state(node, from, s, state_digest(s, snap.chain, snap.total), nil, snap)
  elseif node.h > s and node.snaps[node.h] and node.last_exec >= node.h then
    send_state(node, from, node.h, node.h_d, node.h_proof, node.snaps[node.h])
  elseif s == 0 and node.h == 0 then
    send_state(node, from, 0, GENESIS, nil, nil) -- a restarted replica asks
  end
end

handle["STATE"] = on_state

---------------------------------------------------------------- replica

local Pbft = {}

function Pbft.start(node)
  node.fq = max_faulty(node.n)
  node.q = quorum(node.n)
  node.view, node.in_vc, node.vc_armed = 0, false, false
  node.backoff, node.timer_on = 0, false
  node.log, node.pcert = {}, {}
  node.h, node.h_d, node.h_proof = 0, GENESIS, {}
  node.cps, node.snaps, node.cp_max = {}, {}, 0
  node.last_exec, node.k, node.total, node.chain = 0, 0, 0, GENESIS
  node.order, node.executed = {}, {}
  node.pending, node.npending, node.max_t = {}, 0, 0
  node.next_seq, node.queue, node.queued, node.assigned = 0, {}, {}, {}
  node.vcs, node.vc_high, node.sent_vcs = {}, {}, {}
  node.state_try = 0
  -- node.store survives a crash: a restart asks the others for the state
  if node.store.booted then
    node.recovering = { views = {}, count = 0 }
    node:count("recoveries")
    node:broadcast({ type = "FETCH-STATE", s = 0, i = node.id }, false)
    node.state_armed = true
    node:set_timer("state", T0)
  end
  node.store.booted = true
  node:sync()
  if node.id == CLIENT then
    node.client = { view = 0, next = 1, reqs = {}, accepted = 0 }
    node:set_timer("request", 0)
  end
end

function Pbft.receive(node, msg, from)
  if type(msg) ~= "table" then return end
  local ty = msg.type
  local h = handle[ty]
  if not h then return end
  -- the signature: a replica's message names its sender
  if ty ~= "REQUEST" and msg.i ~= from then return end
  h(node, msg, from)
end

function Pbft.timer(node, name)
  if name == "vc" then
    on_vc_timer(node)
  elseif name == "batch" then
    node.batch_armed = false
    order_batches(node, true)
  elseif name == "fetch" then
    on_fetch_timer(node)
  elseif name == "resend" then
    on_resend_timer(node)
  elseif name == "state" then
    on_state_timer(node)
  elseif name == "request" then
    client_issue(node)
  elseif name:sub(1, 6) == "retry:" then
    client_retry(node, tonumber(name:sub(7)))
  end
end

-- A faulty replica that never sends anything.
local Silent = {}

---------------------------------------------------------------- twofaced

-- --twofaced: replicas 0..F-1 are a Byzantine coalition around the
-- honest code, after the textbook attack on a PBFT without its commit
-- phase.  z = F is the lowest honest replica, H1 = the q-F honest
-- replicas from z on, H2 = the other honest ones.
--   replica 0 (primary of view 0) equivocates: its PRE-PREPAREs carry the
--     batch to H1 and to the coalition, a null batch to H2;
--   the other members never show the honest code a PRE-PREPARE of view
--     0, and send a PREPARE for the real batch to z alone: z prepares it
--     (q-F from H1 plus F-1), nobody else does, and no batch commits;
--   replica 1 (primary of view 1) ignores z's VIEW-CHANGE, so its NEW-VIEW
--     has no certificate for those batches, and its first PRE-PREPARE of
--     view 1 carries a null batch in place of the first request.
-- A correct PBFT stays safe (z never had q COMMITs); one that executes
-- on a prepared certificate executes the batch at z alone, and z's order
-- then differs from everybody else's.
local function twofaced_hooks(F, n)
  local z = F
  local h1_last = F + quorum(n) - F - 1
  local st = {}
  return {
    outgoing = function(node, to, msg)
      if msg.type == "PRE-PREPARE" and type(msg.reqs) == "table" and #msg.reqs > 0 then
        if msg.v == 0 and node.id == 0 and to > h1_last then
          msg.reqs, msg.d = {}, NULL_D
        elseif msg.v == 1 and node.id == 1 then
          if st.null_n == nil then st.null_n = msg.n end
          if msg.n == st.null_n then msg.reqs, msg.d = {}, NULL_D end
        end
      end
      return msg
    end,
    incoming = function(node, msg, from)
      if msg.type == "PRE-PREPARE" and msg.v == 0 and node.id ~= 0 then
        if type(msg.reqs) == "table" and #msg.reqs > 0 then
          node:send(z, { type = "PREPARE", v = 0, n = msg.n, d = msg.d, i = node.id })
        end
        return nil
      end
      if msg.type == "VIEW-CHANGE" and msg.v == 1 and from == z then return nil end
      return msg
    end,
  }
end

---------------------------------------------------------------- report

local function attack_label()
  if opts.twofaced then return "twofaced coalition" end
  if opts.attack then return "attacker " .. opts.attack end
  if opts.attacker then return "attacker " .. opts.attacker end
  return "silent"
end

local function fmt_report(rep)
  local out = {}
  local function say(...) out[#out + 1] = format(...) end
  local n = rep.nodes
  local f = max_faulty(n)
  local q = quorum(n)
  local byz = {}
  for _, id in ipairs(rep.byzantine) do byz[id] = true end

  say("=== PBFT: normal case, view changes, checkpoints, client replies ===")
  say("replicas: %d (f = %d, quorum %s = %d); the primary of view v is v mod %d",
    n, f, n == 3 * f + 1 and "2f+1" or "ceil((n+f+1)/2)", q, n)
  if #rep.byzantine == 0 then
    say("faulty replicas: none")
  else
    say("faulty replicas: %s (%s)%s", table.concat(rep.byzantine, ", "), attack_label(),
      #rep.byzantine > f and format(", more than f = %d", f) or "")
  end
  say("client: on node %d, %d request%s, one every %s ms; retransmits to all after %s ms",
    CLIENT, K, K == 1 and "" or "s", format("%g", INTERVAL), format("%g", CLIENT_RETRY))
  say("batches of up to %d; checkpoint every %d sequence numbers; window L = %d",
    B, CP, L)
  say("latency %s; view-change timeout %s ms, doubling per view change up to %s ms",
    opts.latency and tostring(opts.latency) or format("uniform %d-%d ms", LAT_MIN, LAT_MAX),
    format("%g", T0), format("%g", T_MAX))
  if opts.heal_at and not (opts.partition or opts.crash) then
    say("network: two halves {0..%d} and {%d..%d} until %s ms", n // 2 - 1, n // 2, n - 1,
      format("%g", opts.heal_at))
  end

  -- Execution times per slot, at honest replicas.
  local per = {}
  for _, d in ipairs(rep.decision_list) do
    if not byz[d.node] then
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
  local accept, views, stable, totals = {}, {}, {}, {}
  local accepted, transfers, finished = 0, 0, 0
  for _, note in ipairs(rep.notes) do
    local v = note.value
    if not byz[note.node] and type(v) == "table" then
      if v.accept then
        -- a client that restarted may accept a request again
        if not accept[v.accept] then accepted = accepted + 1 end
        accept[v.accept] = accept[v.accept] or note.t
      elseif v.view then
        local w = views[v.view]
        if not w then
          w = { first = note.t, last = note.t, count = 0 }
          views[v.view] = w
        end
        w.last, w.count = note.t, w.count + 1
      elseif v.stable then
        local c = stable[v.stable]
        if not c then
          c = { first = note.t, last = note.t, count = 0 }
          stable[v.stable] = c
        end
        c.last, c.count = note.t, c.count + 1
      elseif v.transfer then
        transfers = transfers + 1
      elseif v.executed_all then
        finished = finished + 1
        totals[#totals + 1] = v.executed_all
      end
    end
  end

  say("")
  say("times in ms; slot k is the k-th request a replica executes; the client")
  say("accepts a result once f+1 replicas reply it")
  say("slot  request           issued  executed at honest replicas  client accepts")
  local shown = math.min(K, 10)
  for k = 1, shown do
    local p = per[k]
    local t = p and tonumber(p.value:match("^req(%d+):"))
    local when = p and format("%8.3f .. %8.3f (%d/%d)", p.first, p.last, p.count,
      rep.honest) or "not executed"
    say("%4d  %-16s %8s  %-27s  %s", k, p and format("%q", p.value) or "-",
      t and format("%.3f", (t - 1) * INTERVAL) or "-", when,
      t and accept[t] and format("%.3f", accept[t]) or "no f+1 replies")
  end
  if K > shown then say("... and %d more slots", K - shown) end

  say("")
  -- integer keys, sorted: the order does not depend on the process
  local vlist, slist = {}, {}
  for w in pairs(views) do vlist[#vlist + 1] = w end
  for s in pairs(stable) do slist[#slist + 1] = s end
  table.sort(vlist)
  table.sort(slist)
  local vc = rep.counters and rep.counters.view_changes or 0
  if #vlist == 0 then
    say("view changes: %d; view 0 (primary 0) throughout", vc)
  else
    local parts = {}
    for _, w in ipairs(vlist) do
      local x = views[w]
      parts[#parts + 1] = format("%d (primary %d) at %.3f .. %.3f (%d)", w, w % n,
        x.first, x.last, x.count)
    end
    say("view changes: %d; views installed at honest replicas: %s", vc,
      table.concat(parts, "; "))
  end
  local clist = {}
  for _, s in ipairs(slist) do
    clist[#clist + 1] = format("%d at %.3f .. %.3f (%d)", s, stable[s].first,
      stable[s].last, stable[s].count)
  end
  say("stable checkpoints: %s", #clist > 0 and table.concat(clist, "; ") or "none")
  say("state transfers: %d; client: %d of %d results accepted, %d retransmissions",
    transfers, accepted, K, rep.counters and rep.counters.client_retransmissions or 0)
  local types = {}
  for _, ty in ipairs(TYPES) do
    local c = rep.by_type and rep.by_type[ty]
    if c and c.messages > 0 then types[#types + 1] = format("%s %d", ty:lower(), c.messages) end
  end
  say("messages: %d sent (%s), %d delivered", rep.messages, table.concat(types, ", "),
    rep.delivered)
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
  if opts.heal_at then
    local last = 0
    for _, d in ipairs(rep.decision_list) do
      if not byz[d.node] and d.t > last then last = d.t end
    end
    say("liveness: healed at %s ms, bound %s ms after it: %s", format("%g", opts.heal_at),
      format("%g", HEAL_BOUND), rep.termination
        and format("all executed by +%.3f ms", math.max(0, last - opts.heal_at))
        or "NOT MET")
  end
  local function ok(b) return b and "OK" or "VIOLATED" end
  say("checks: agreement %s, validity %s, termination %s",
    ok(rep.agreement), ok(rep.validity), rep.termination and "OK" or "NOT REACHED")
  local lines = rep:violation_lines()
  for x = 1, math.min(#lines, 10) do say("%s", lines[x]) end
  if #lines > 10 then say("... and %d more violations", #lines - 10) end
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

-- The faulty replicas, and the client on the highest honest node.
local faulty
if opts.twofaced then
  faulty = {}
  for i = 1, opts.faulty do faulty[i] = i - 1 end
  local attackers = require "consensus.attackers"
  sim:byzantine(faulty, attackers.wrap(Pbft, twofaced_hooks(opts.faulty, opts.nodes)))
else
  faulty = sim:faulty_ids()
  -- under --attack/--attacker the engine makes them attackers
  if #faulty > 0 and not (opts.attack or opts.attacker) then sim:byzantine(faulty, Silent) end
end
local is_faulty = {}
for _, id in ipairs(faulty) do is_faulty[id] = true end
CLIENT = opts.nodes - 1
while CLIENT > 0 and is_faulty[CLIENT] do CLIENT = CLIENT - 1 end

local run = { slots = K, stop_when_decided = false }
if opts.heal_at then
  run.until_ms = opts.heal_at + HEAL_BOUND
end
if opts.heal_at and not (opts.partition or opts.crash) then
  -- neither half holds a quorum; --heal-at ends the cut (api.lua)
  local lo, hi = {}, {}
  for i = 0, opts.nodes - 1 do
    if i < opts.nodes // 2 then lo[#lo + 1] = i else hi[#hi + 1] = i end
  end
  sim:partition(lo, hi)
end
-- Run until the network is quiet, not just until every replica executed:
-- the client's last replies are still in flight at that point.
local report = sim:run(run)
report:print(fmt_report)
