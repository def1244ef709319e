-- tendermint.lua: Tendermint BFT consensus (Buchman, Kwon, Milosevic, "The
-- latest gossip on BFT consensus", 2018, Algorithm 1).
--
-- n validators tolerate f = (n-1)//3 Byzantine ones; a quorum is more than
-- two thirds of n (2f+1 when n = 3f+1).  Heights are the checker's slots:
-- each honest node decides --heights H values (default --rounds), one
-- height after the other.  A height runs rounds 0, 1, 2, ...; the proposer
-- of (h, r) is node (h - 1 + r) mod n.  A round has three steps:
--
--   propose    the proposer sends PROPOSAL(h, r, v, validRound): its
--              validValue if it has one, else a value of its own;
--   prevote    on the proposal, a node prevotes v if v is valid and it is
--              not locked on another value (or a polka, 2f+1 prevotes,
--              for v at validRound >= its lockedRound justifies v), else
--              nil; nil as well when timeoutPropose expires first;
--   precommit  on 2f+1 prevotes for v in its round a node locks v
--              (lockedValue/lockedRound), sets validValue/validRound and
--              precommits v; on 2f+1 nil prevotes, or timeoutPrevote after
--              2f+1 prevotes of any kind, it precommits nil.
--
-- 2f+1 precommits for v in any round decide v; timeoutPrecommit (after
-- 2f+1 precommits of any kind) starts the next round, and messages from
-- f+1 nodes in a higher round make a node jump to it.  Every timeout grows
-- with the round: timeout = base + round * --timeout-delta.
--
-- What the paper leaves to its gossip layer, done here with authenticated
-- point-to-point links only (the simulator has no signatures, so a node
-- cannot relay another node's vote as proof):
--
--   * Votes carry the value itself, not id(v): 2f+1 precommits for v are
--     enough to decide v without the proposal (at least f+1 honest nodes
--     saw it), and a polka is 2f+1 prevotes for v.
--   * A node that has sent nothing for --resend ms sends its own messages
--     of its current round again (partitions and --loss drop messages; the
--     paper assumes that every message eventually arrives after GST).
--   * A node that hears from a node behind it (a lower round of its height,
--     or a height it has already decided) answers it: with DECISION(h, v)
--     for a decided height, and with its own votes of that round.  A round
--     it skipped (it jumped past it) it fills in with nil votes, which can
--     never form a quorum for a value, so they are always safe.  A node
--     decides v when f+1 nodes report DECISION(h, v): one of them is honest.
--   * The round jump uses, per sender, the highest round heard from it: a
--     node moves to the highest round that f+1 senders have reached.
--   * A decided height stays alive, passively: it follows the rounds of the
--     laggards (it does not start rounds of its own) and answers them.
--   * An unlocked node (or one locked on v) prevotes a re-proposal of v
--     even before it sees the polka of its validRound, as it would prevote
--     a fresh proposal of v.
--   * f+1 precommits for v in round r prove a polka for v in round r (an
--     honest node precommits v only after one), even to a node that did
--     not get 2f+1 of its prevotes: without this a Byzantine node that
--     shows its prevotes to some nodes only could leave two groups of
--     honest nodes locked on different values for ever.  validValue
--     follows the latest polka known, whatever its round.
--
-- Values.  Each height has a mempool of --values K candidate values,
-- h*1000 + 1 .. h*1000 + K, known to every node (the clients' blocks);
-- valid(v) holds for those only.  An honest node registers the mempool
-- with node:propose when it enters a height, so the checker's validity
-- says no honest node decided a value outside it.  The proposer of round r
-- proposes the candidate of its own id (id mod K + 1).
--
-- Byzantine nodes (--faulty, --byzantine) equivocate unless --attack or
-- --attacker says otherwise: every message they send to an odd id carries
-- another value (the next candidate; nil becomes the first).  Run it as
--
--   consensus-lua scripts/tendermint.lua --nodes 4 --faulty 1 --heights 3
--   consensus-lua scripts/tendermint.lua --nodes 7 --faulty 2 --attack delay
--   consensus-lua scripts/tendermint.lua --nodes 4 --faulty 0 \
--       --partition '0,1|2,3' --heal-at 500
--
-- docs/protocols/tendermint.md explains each change and what was verified.

local consensus = require "consensus"

local opts = consensus.options({
  heights = { 0, "heights (decisions) each honest node makes; 0: --rounds" },
  values = { 3, "candidate values per height (the mempool); others are invalid" },
  timeout_propose = { 40.0, "ms timeoutPropose at round 0" },
  timeout_prevote = { 30.0, "ms timeoutPrevote at round 0" },
  timeout_precommit = { 30.0, "ms timeoutPrecommit at round 0" },
  timeout_delta = { 20.0, "ms every timeout grows per round" },
  resend = { 50.0, "ms a node waits, without sending, before it sends its round's messages again" },
  verbose = { false, "log round changes, locks and decisions to stderr" },
}, { faulty = 1 })

if opts.heights < 0 then consensus.usage_error("--heights must be at least 1") end
local H = opts.heights > 0 and opts.heights or opts.rounds
local K = opts.values
local TP, TV, TC = opts.timeout_propose, opts.timeout_prevote, opts.timeout_precommit
local DELTA = opts.timeout_delta
local RESEND = opts.resend
if H < 1 then consensus.usage_error("--heights must be at least 1") end
if K < 1 or K > 999 then consensus.usage_error("--values must be between 1 and 999") end
if TP <= 0 or TV <= 0 or TC <= 0 or DELTA < 0 then
  consensus.usage_error("timeouts must be > 0 ms (and --timeout-delta >= 0)")
end
if RESEND <= 0 then consensus.usage_error("--resend must be > 0 ms") end

local VERBOSE = opts.verbose
local MAX_ROUND = 1 << 30         -- rounds beyond are garbage
local KINDS = { "PROPOSAL", "PREVOTE", "PRECOMMIT" }

---------------------------------------------------------------- helpers

local function quorum(n) return 2 * n // 3 + 1 end
local function max_faulty(n) return (n - 1) // 3 end
local function proposer(n, h, r) return (h - 1 + r) % n end
local function candidate(h, k) return h * 1000 + k end

local function valid(h, v)
  return math.type(v) == "integer" and v > h * 1000 and v <= h * 1000 + K
end

-- The tally key of a vote's value: the value, "nil", or "other" (a
-- Byzantine node's garbage: counts as a vote, never for a value).
local function key(v)
  if v == nil then return "nil" end
  if math.type(v) == "integer" then return v end
  return "other"
end

local function timeout(base, r) return base + r * DELTA end

local function timer_name(kind, h, r) return string.format("%s/%d/%d", kind, h, r) end

---------------------------------------------------------------- the node

local Tendermint = {}

-- The state of height h at this node, made on first use (messages of a
-- height ahead are kept until the node gets there).
local function inst(node, h)
  local I = node.insts[h]
  if I == nil then
    I = {
      h = h, started = false, round = -1, step = "none",
      locked_value = nil, locked_round = -1,
      valid_value = nil, valid_round = -1,
      proposals = {},       -- round -> { value, vr } from the proposer
      PREVOTE = {},         -- round -> tally { by, total, count }
      PRECOMMIT = {},
      polka = {},           -- round -> the value 2f+1 prevotes are for
      fired = {},           -- round -> { tv, lock, tc } once-only rules
      maxr = {},            -- sender -> highest round heard from it
      skip_dirty = false,
      mine = {},            -- round -> { PROPOSAL, PREVOTE, PRECOMMIT } sent
      helped = {},          -- node -> { r, t }: last answer to a laggard
      claimed = {}, claims = {},   -- DECISION reports: sender, value -> count
      pending = nil,        -- { value, round, via }: a decision to take
      decided = nil, decided_round = nil,
    }
    node.insts[h] = I
  end
  return I
end

-- Send msg to every other node.  A Byzantine node (node.byzantine, the
-- default faulty behaviour) equivocates: odd ids get another value.
local function send_out(node, msg)
  if not node.byzantine then
    node:broadcast(msg, false)
    return
  end
  for to = 0, node.n - 1 do
    if to ~= node.id then
      local m = { type = msg.type, height = msg.height, round = msg.round,
                  value = msg.value, valid_round = msg.valid_round }
      if to % 2 == 1 then
        local v = m.value
        if math.type(v) == "integer" and K > 1 then
          m.value = candidate(m.height, (v - m.height * 1000) % K + 1)
        elseif v == nil then
          m.value = candidate(m.height, 1)
        else
          m.value = nil
        end
      end
      node:send(to, m)
    end
  end
end

local function note_round(node, I, from, r)
  local old = I.maxr[from]
  if old == nil or r > old then
    I.maxr[from] = r
    if r > I.round then I.skip_dirty = true end
  end
end

-- A polka (2f+1 prevotes) for v in round r is known to exist.
local function set_polka(I, r, v)
  if I.polka[r] ~= nil then return end
  I.polka[r] = v
  if I.latest_polka == nil or r > I.latest_polka then I.latest_polka = r end
end

-- Count one vote; the first vote of a sender in a round is the one that
-- counts (a second, different one is equivocation and is ignored).
local function record_vote(node, I, kind, r, v, from)
  local t = I[kind][r]
  if t == nil then
    t = { by = {}, total = 0, count = {} }
    I[kind][r] = t
  end
  if t.by[from] ~= nil then return end
  local k = key(v)
  t.by[from] = k
  t.total = t.total + 1
  local c = (t.count[k] or 0) + 1
  t.count[k] = c
  if not valid(I.h, v) then return end
  if kind == "PREVOTE" then
    if c == node.quorum then set_polka(I, r, v) end
  else
    -- An honest node precommits v only after a polka for v: f+1
    -- precommits prove the polka even to a node that missed some of its
    -- prevotes (the paper's gossip would have relayed them).
    if c == node.skip then set_polka(I, r, v) end
    if c == node.quorum and I.pending == nil then
      I.pending = { value = v, round = r, via = "precommits" }
    end
  end
end

-- DECISION(h, v, r) from 'from': f+1 reports of v decide v.
local function record_claim(node, I, v, r, from)
  if I.claimed[from] then return end
  I.claimed[from] = true
  if not valid(I.h, v) then return end
  local c = I.claims[v]
  if c == nil then
    c = { n = 0, round = r }
    I.claims[v] = c
  end
  c.n = c.n + 1
  if r < c.round then c.round = r end
  if c.n >= node.skip and I.pending == nil then
    I.pending = { value = v, round = c.round, via = "decision" }
  end
end

local function mine(I, r)
  local m = I.mine[r]
  if m == nil then
    m = {}
    I.mine[r] = m
  end
  return m
end

-- Send one of this node's own messages, and take it into account here.
local function emit(node, I, msg)
  local r = msg.round
  mine(I, r)[msg.type] = msg
  send_out(node, msg)
  if I.h == node.cur then node:set_timer("resend", RESEND) end
  if msg.type == "PROPOSAL" then
    if I.proposals[r] == nil then
      I.proposals[r] = { value = msg.value, vr = msg.valid_round }
    end
  else
    record_vote(node, I, msg.type, r, msg.value, node.id)
  end
  note_round(node, I, node.id, r)
end

local function prevote(node, I, v)
  I.step = "prevote"
  emit(node, I, { type = "PREVOTE", height = I.h, round = I.round, value = v })
end

local function precommit(node, I, v)
  I.step = "precommit"
  emit(node, I, { type = "PRECOMMIT", height = I.h, round = I.round, value = v })
end

local function fired(I, r, what)
  local f = I.fired[r]
  if f == nil then
    f = {}
    I.fired[r] = f
  end
  if f[what] then return true end
  f[what] = true
  return false
end

local function start_round(node, I, r)
  if VERBOSE then
    node:log("height %d: round %d%s", I.h, r, I.decided ~= nil and " (decided)" or "")
  end
  I.round, I.step = r, "propose"
  I.skip_dirty = true
  node:count("rounds")
  if proposer(node.n, I.h, r) == node.id then
    local v, vr = I.valid_value, I.valid_round
    if v == nil then v, vr = candidate(I.h, node.id % K + 1), -1 end
    emit(node, I, { type = "PROPOSAL", height = I.h, round = r, value = v, valid_round = vr })
  else
    node:set_timer(timer_name("propose", I.h, r), timeout(TP, r))
  end
end

-- The highest round that f+1 senders have reached, if above ours.
local function skip_round(node, I)
  if not I.skip_dirty then return nil end
  I.skip_dirty = false
  local rs = {}
  for id = 0, node.n - 1 do
    local r = I.maxr[id]
    if r ~= nil and r > I.round then rs[#rs + 1] = r end
  end
  if #rs < node.skip then return nil end
  table.sort(rs, function(a, b) return a > b end)
  return rs[node.skip]
end

local advance

local function start_height(node, I)
  I.started = true
  if not node.byzantine then
    for k = 1, K do node:propose(candidate(I.h, k), I.h) end
  end
  start_round(node, I, 0)
  advance(node, I)
end

local function decide(node, I)
  local p = I.pending
  I.decided, I.decided_round = p.value, p.round
  node:decide(p.value, I.h)
  node:note { height = I.h, round = p.round, value = p.value, via = p.via }
  if VERBOSE then
    node:log("height %d: decided %d (round %d, via %s)", I.h, p.value, p.round, p.via)
  end
  -- A decided value had a polka in its round: lock it and offer it.
  if I.locked_round < p.round then I.locked_value, I.locked_round = p.value, p.round end
  if I.valid_round < p.round then I.valid_value, I.valid_round = p.value, p.round end
  if I.h == node.cur then
    node.cur = I.h + 1
    if node.cur <= H then
      start_height(node, inst(node, node.cur))
    else
      node:cancel_timer("resend")
    end
  end
end

-- Apply the first rule that holds; true if one did.
local function step_once(node, I)
  if I.decided == nil and I.pending ~= nil then
    decide(node, I)
    return true
  end
  local jump = skip_round(node, I)
  if jump ~= nil then
    start_round(node, I, jump)
    return true
  end
  local r, q = I.round, node.quorum
  -- lines 22 and 28: the proposal of this round
  if I.step == "propose" then
    local P = I.proposals[r]
    if P ~= nil then
      local v, vr = P.value, P.vr
      local ok = valid(I.h, v)
      local free = I.locked_round == -1 or I.locked_value == v
      if vr == -1 then
        prevote(node, I, (ok and free) and v or nil)
        return true
      elseif math.type(vr) == "integer" and vr >= 0 and vr < r then
        if ok and free then
          prevote(node, I, v)
          return true
        elseif I.polka[vr] ~= nil and I.polka[vr] == v then
          prevote(node, I, (ok and I.locked_round <= vr) and v or nil)
          return true
        end
      elseif not ok then
        prevote(node, I, nil)
        return true
      end
    end
  end
  local pv = I.PREVOTE[r]
  -- line 34: 2f+1 prevotes of any kind start timeoutPrevote
  if I.step == "prevote" and pv ~= nil and pv.total >= q and not fired(I, r, "tv") then
    node:set_timer(timer_name("prevote", I.h, r), timeout(TV, r))
    return true
  end
  -- line 36: a polka for v locks it
  local v = I.polka[r]
  if v == nil and I.latest_polka ~= nil and I.latest_polka > I.valid_round then
    -- A polka of an earlier round than this one: it cannot lock (the node
    -- has left that round) but it is the freshest value to propose.
    I.valid_value, I.valid_round = I.polka[I.latest_polka], I.latest_polka
    return true
  end
  if v ~= nil and (I.step == "prevote" or I.step == "precommit") and not fired(I, r, "lock") then
    if I.step == "prevote" then
      if VERBOSE then node:log("height %d round %d: locked %d", I.h, r, v) end
      I.locked_value, I.locked_round = v, r
      precommit(node, I, v)
    end
    I.valid_value, I.valid_round = v, r
    return true
  end
  -- line 44: 2f+1 nil prevotes
  if I.step == "prevote" and pv ~= nil and (pv.count["nil"] or 0) >= q then
    precommit(node, I, nil)
    return true
  end
  -- line 47: 2f+1 precommits of any kind start timeoutPrecommit
  local pc = I.PRECOMMIT[r]
  if pc ~= nil and pc.total >= q and not fired(I, r, "tc") then
    node:set_timer(timer_name("precommit", I.h, r), timeout(TC, r))
    return true
  end
  return false
end

function advance(node, I)
  if not I.started then return end
  while step_once(node, I) do end
end

-- Answer node j, which is behind: a decided height's DECISION, and this
-- node's own votes of round r (nil ones for a round it skipped).
local function help(node, I, j, r)
  local last = I.helped[j]
  if last ~= nil and last.r == r and node.now - last.t < RESEND then return end
  I.helped[j] = { r = r, t = node.now }
  if I.decided ~= nil then
    node:send(j, { type = "DECISION", height = I.h, round = I.decided_round, value = I.decided })
  end
  local m = mine(I, r)
  if r < I.round then
    -- This node left round r: its missing votes there can only be nil.
    if m.PREVOTE == nil then
      m.PREVOTE = { type = "PREVOTE", height = I.h, round = r }
      record_vote(node, I, "PREVOTE", r, nil, node.id)
    end
    if m.PRECOMMIT == nil then
      m.PRECOMMIT = { type = "PRECOMMIT", height = I.h, round = r }
      record_vote(node, I, "PRECOMMIT", r, nil, node.id)
    end
  end
  for _, kind in ipairs(KINDS) do
    local msg = m[kind]
    if msg ~= nil then
      node:send(j, { type = msg.type, height = msg.height, round = msg.round,
                     value = msg.value, valid_round = msg.valid_round, answer = true })
    end
  end
end

function Tendermint.start(node)
  node.insts, node.cur = {}, 1
  node.quorum = quorum(node.n)
  node.skip = max_faulty(node.n) + 1
  start_height(node, inst(node, 1))
end

function Tendermint.receive(node, msg, from)
  if type(msg) ~= "table" then return end
  local h, r = msg.height, msg.round
  if math.type(h) ~= "integer" or h < 1 or h > H then return end
  if math.type(r) ~= "integer" or r < 0 or r > MAX_ROUND then return end
  local I = inst(node, h)
  local ty = msg.type
  if ty == "DECISION" then
    if I.decided == nil then record_claim(node, I, msg.value, r, from) end
  elseif ty == "PROPOSAL" then
    if from ~= proposer(node.n, h, r) then return end
    if I.proposals[r] == nil then
      I.proposals[r] = { value = msg.value, vr = msg.valid_round }
    end
    note_round(node, I, from, r)
  elseif ty == "PREVOTE" or ty == "PRECOMMIT" then
    record_vote(node, I, ty, r, msg.value, from)
    note_round(node, I, from, r)
  else
    return
  end
  -- An answer is never answered: two nodes could otherwise bounce one
  -- round's votes between them forever.
  if ty ~= "DECISION" and from ~= node.id and not msg.answer
      and (I.decided ~= nil or (I.started and r < I.round)) then
    help(node, I, from, r)
  end
  if h <= node.cur then advance(node, I) end
end

function Tendermint.timer(node, name)
  if name == "resend" then
    local I = node.insts[node.cur]
    if I ~= nil then
      local m = I.mine[I.round]
      if m ~= nil then
        for _, kind in ipairs(KINDS) do
          if m[kind] ~= nil then send_out(node, m[kind]) end
        end
      end
      node:set_timer("resend", RESEND)
    end
    return
  end
  local kind, hs, rs = name:match("^(%a+)/(%d+)/(%d+)$")
  local I = kind and node.insts[math.tointeger(tonumber(hs))]
  if I == nil or math.tointeger(tonumber(rs)) ~= I.round then return end
  if kind == "propose" then
    if I.step ~= "propose" then return end
    prevote(node, I, nil)
  elseif kind == "prevote" then
    if I.step ~= "prevote" then return end
    precommit(node, I, nil)
  elseif kind == "precommit" then
    -- A decided height follows the laggards' rounds, never leads them.
    if I.decided ~= nil then return end
    start_round(node, I, I.round + 1)
  end
  advance(node, I)
end

---------------------------------------------------------------- report

local format = string.format

-- Per height, the honest decisions, from the notes: the value(s), how
-- many nodes, first and last time, decision rounds, catch-ups.
local function heights_of(r)
  local byz = {}
  for _, id in ipairs(r.byzantine) do byz[id] = true end
  local per = {}
  for _, note in ipairs(r.notes) do
    local v = note.value
    if not byz[note.node] and type(v) == "table" and v.height then
      local e = per[v.height]
      if e == nil then
        e = { nodes = 0, values = {}, nvalues = 0, t0 = note.t, t1 = note.t,
              rmin = v.round, rmax = v.round, via_decision = 0 }
        per[v.height] = e
      end
      e.nodes = e.nodes + 1
      if not e.values[v.value] then
        e.values[v.value] = true
        e.nvalues = e.nvalues + 1
        e.value = e.value and (tostring(e.value) .. " and " .. tostring(v.value)) or v.value
      end
      if note.t > e.t1 then e.t1 = note.t end
      if v.round < e.rmin then e.rmin = v.round end
      if v.round > e.rmax then e.rmax = v.round end
      if v.via == "decision" then e.via_decision = e.via_decision + 1 end
    end
  end
  return per
end

local function print_report(r)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = format(fmt, ...) end
  local n = r.nodes
  local f = max_faulty(n)
  say("=== Tendermint: %d validators, f = %d, quorum %d, %d height%s ===",
    n, f, quorum(n), H, H == 1 and "" or "s")
  local byz = {}
  for _, id in ipairs(r.byzantine) do byz[id] = true end
  if #r.byzantine > 0 then
    local how = opts.attack and ("attack " .. opts.attack)
      or opts.attacker and ("attacker " .. opts.attacker) or "equivocating"
    say("Byzantine: node%s %s (%s)%s", #r.byzantine == 1 and "" or "s",
      table.concat(r.byzantine, ", "), how,
      #r.byzantine > f and format("; more than f = %d: no guarantee", f) or "")
  else
    say("Byzantine: none")
  end
  local net = format("latency %s, loss %s", opts.latency or "uniform:5:15",
    tostring(opts.loss or 0))
  if opts.partition then net = net .. ", partition " .. opts.partition end
  if opts.crash then net = net .. ", crash " .. opts.crash end
  if opts.heal_at then net = net .. format(", healed at %s ms", tostring(opts.heal_at)) end
  say("network: %s", net)
  say("")

  local per = heights_of(r)
  for h = 1, H do
    local e = per[h]
    if e == nil then
      say("height %d: no honest node decided", h)
    else
      local rounds = e.rmin == e.rmax and format("round %d", e.rmin)
        or format("rounds %d-%d", e.rmin, e.rmax)
      say("height %d: %s %s by %d of %d honest nodes, %s, t = %.3f-%.3f ms",
        h, e.nvalues > 1 and "values" or "value", tostring(e.value), e.nodes,
        r.honest, rounds, e.t0, e.t1)
      local p0 = proposer(n, h, 0)
      local p = format("  proposer of round 0: node %d%s", p0, byz[p0] and " (Byzantine)" or "")
      if e.via_decision > 0 then
        p = p .. format("; %d node%s caught up on f+1 DECISION reports",
          e.via_decision, e.via_decision == 1 and "" or "s")
      end
      say("%s", p)
    end
  end
  say("")
  local rounds = r.counters and r.counters.rounds or 0
  say("rounds started: %d (%.1f per node and height)", rounds, rounds / (n * H))
  local types = {}
  for _, t in ipairs { "PROPOSAL", "PREVOTE", "PRECOMMIT", "DECISION" } do
    local c = r.by_type and r.by_type[t]
    if c then types[#types + 1] = format("%s %d", t, c.messages) end
  end
  say("messages: %d sent, %d delivered, %d dropped%s", r.messages, r.delivered, r.dropped,
    #types > 0 and (" (" .. table.concat(types, ", ") .. ")") or "")
  say("virtual time: %.3f ms", r.sim_time_ms)
  say("decided: %d of %d honest nodes decided %d height%s", r.decided, r.honest,
    H, H == 1 and "" or "s")
  for _, l in ipairs(r:check_lines()) do say("%s", l) end
  say("seed %d; replay: %s", r.seed, r.replay)
  io.stdout:write(table.concat(out, "\n"), "\n")
  return true
end

---------------------------------------------------------------- run

local sim = consensus.sim { name = "Tendermint", slots = H,
                            network = { latency = "uniform:5:15" } }
sim:spawn(Tendermint)
if sim.faulty > 0 then sim:byzantine() end
local report = sim:run { slots = H }
-- For --json: per height, the value and the last decision's round and time.
do
  local per, heights = heights_of(report), {}
  for h = 1, H do
    local e = per[h]
    heights[h] = e and { height = h, value = e.value, nodes = e.nodes,
                         max_round = e.rmax, time_ms = e.t1 }
      or { height = h, nodes = 0 }
  end
  report.extra = { heights = heights }
end
report:print(print_report)
