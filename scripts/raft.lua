-- raft.lua: Raft (Ongaro & Ousterhout, "In Search of an Understandable
-- Consensus Algorithm", USENIX ATC'14; Figure 2), with single-server
-- membership changes (Ongaro's thesis, section 4).  docs/protocols/raft.md
-- explains the design; in short:
--
--   election  a follower that hears no leader for a random election timeout
--             (--election-timeout MIN-MAX, drawn anew each time) becomes a
--             candidate: term + 1, votes for itself, asks for votes; a
--             voter grants one vote per term, to a candidate whose log is at
--             least as up to date as its own; a majority of the candidate's
--             configuration makes it leader (node:claim{"leader", term}:
--             the checker's uniqueness = election safety).
--   log       the leader appends client requests and replicates them with
--             AppendEntries (heartbeat every --heartbeat ms); an entry of
--             the leader's own term stored on a majority is committed, and
--             with it every earlier entry; followers learn commitIndex from
--             AppendEntries.  Every committed entry is node:decide(entry,
--             index): the checker's agreement per slot = state machine
--             safety.  A new leader appends a no-op of its term (thesis
--             6.4); with --no-noop (the paper's Figure 2) it does so only
--             after leading MIN ms with an old uncommitted tail.
--   storage   currentTerm, votedFor and the log live in node.store and are
--             synced (node:sync) before the node sends anything after
--             changing them; a restarted node recovers them in start().
--   clients   request r (1..--requests) lives on node (r-1) mod n and is
--             issued at r * --interval ms; the client hands it to its node,
--             which appends it if it leads, else forwards it to the leader
--             it knows (or, knowing none, to the next node in turn).  The
--             client retries every --retry ms until its node applies the
--             request or the leader replies.  The state machine is a
--             counter; it applies each request id once (client sessions).
--   members   node n-1 starts outside the configuration with --add-at and
--             asks to join then: the leader catches it up as a non-voting
--             member and appends C_new = C + {n-1}.  --remove-at removes
--             --remove the same way.  One change at a time, after an entry
--             of the leader's term is committed; a configuration is used
--             as soon as it is in the log.  Removed servers stay
--             non-voting replicas (they neither vote nor count, nor start
--             elections) so that the checker still holds them to the log.
--
-- Termination: every live server applies all the requests (and the
-- membership changes) within a bound after the last fault (--bound).
-- Faults: --crash-leader-at MS, --crash 'ID@MS+DOWN,...', --heal-at, and
-- the scenarios (--scenario churn | storm | figure8).  Run it as
--
--   consensus-lua scripts/raft.lua --nodes 5 --seed 3
--   consensus-lua scripts/raft.lua --nodes 5 --crash-leader-at 1000 --json
--   consensus-lua scripts/raft.lua --nodes 5 --add-at 600 --remove-at 900
--   consensus-lua scripts/raft.lua --nodes 5 --scenario churn --seed 7
--
-- scripts/buggy/raft_*.lua load this file with a variant: a table that
-- replaces rules (R below) and changes option defaults.

local consensus = require "consensus"

local variant = ...
if type(variant) ~= "table" then variant = {} end

local format, concat = string.format, table.concat

local spec = {
  election_timeout = { "150-300", "election timeout MIN-MAX in ms, drawn anew each time" },
  heartbeat = { 0, "ms between the leader's AppendEntries (0: half the minimum election timeout)" },
  requests = { 10, "client requests every live server must apply" },
  interval = { 20, "ms between two client requests" },
  retry = { 100, "ms before a client sends a pending request again" },
  batch = { 64, "most entries in one AppendEntries" },
  noop = { true, "a new leader appends a no-op entry of its term (thesis 6.4); --no-noop: only when idle" },
  add_at = { -1, "ms: node n-1 starts outside the configuration and asks to join then (-1: off)" },
  remove_at = { -1, "ms: server --remove asks to leave the configuration then (-1: off)" },
  remove = { 0, "the server that --remove-at removes" },
  crash_leader_at = { -1, "ms: crash whichever server leads then (-1: off); --json gives election_ms" },
  restart_after = { 300, "ms a server crashed by --crash-leader-at stays down (-1: for good)" },
  crash = { "none", "more crashes: 'ID@MS+DOWN,...'; ID: a node, 'leader' or 'follower' "
    .. "(the next one up after the leader); +DOWN omitted: for good" },
  scenario = { "none", "fault scenario: none, churn (random crashes and partitions), storm (two "
    .. "candidates per term; the voters restart after voting), figure8 (the paper's Figure 8; 5 nodes)" },
  faults_until = { 3000, "ms: the scenarios stop making faults (and heal) then" },
  bound = { 0, "ms after the last fault within which every live server must apply everything "
    .. "(0: 20 x the maximum election timeout)" },
}
for name, v in pairs(variant.defaults or {}) do spec[name][1] = v end

local opts = consensus.options(spec, { nodes = 5 })

local N = opts.nodes
local K = opts.requests
local ET_MIN, ET_MAX
do
  local a, b = tostring(opts.election_timeout):match("^%s*([%d.]+)%s*%-%s*([%d.]+)%s*$")
  if not a then a = tostring(opts.election_timeout):match("^%s*([%d.]+)%s*$") end
  ET_MIN, ET_MAX = tonumber(a), tonumber(b or (a and tonumber(a) * 2))
  if not ET_MIN or ET_MIN <= 0 or ET_MAX < ET_MIN then
    consensus.usage_error("--election-timeout must be MIN-MAX in ms, 0 < MIN <= MAX (e.g. 150-300)")
  end
end
local HEARTBEAT = opts.heartbeat > 0 and opts.heartbeat or ET_MIN / 2
local INTERVAL, RETRY, BATCH, NOOP = opts.interval, opts.retry, opts.batch, opts.noop
local ADD_AT, REMOVE_AT = opts.add_at, opts.remove_at
local SPARE = ADD_AT >= 0 and N - 1 or nil
local REMOVE = REMOVE_AT >= 0 and opts.remove or nil
local SCENARIO = opts.scenario
local BOUND = opts.bound > 0 and opts.bound or 20 * ET_MAX

if opts.heartbeat < 0 then consensus.usage_error("--heartbeat must be >= 0") end
if K < 1 then consensus.usage_error("--requests must be at least 1") end
if INTERVAL < 0 then consensus.usage_error("--interval must be >= 0") end
if RETRY <= 0 then consensus.usage_error("--retry must be > 0") end
if BATCH < 1 then consensus.usage_error("--batch must be at least 1") end
if SPARE and N < 2 then consensus.usage_error("--add-at needs at least 2 nodes") end
if REMOVE then
  if REMOVE < 0 or REMOVE >= N then
    consensus.usage_error(format("--remove must be a node id (0..%d)", N - 1))
  end
  if REMOVE == SPARE then
    consensus.usage_error(format("--remove %d: node %d is the one --add-at adds", REMOVE, SPARE))
  end
  if N - (SPARE and 1 or 0) < 2 then
    consensus.usage_error("--remove-at needs a configuration of at least 2 servers")
  end
end
local SCENARIOS = { none = true, churn = true, storm = true, figure8 = true }
if not SCENARIOS[SCENARIO] then
  consensus.usage_error("--scenario must be none, churn, storm or figure8, got '" .. SCENARIO .. "'")
end
if SCENARIO == "figure8" and N ~= 5 then
  consensus.usage_error("--scenario figure8 needs --nodes 5")
end
if SCENARIO == "storm" and N < 5 then
  consensus.usage_error("--scenario storm needs at least 5 nodes")
end

-- The initial configuration: every node but the spare.
local INITIAL = {}
for id = 0, N - 1 do
  if id ~= SPARE then INITIAL[#INITIAL + 1] = id end
end
local CHANGES = (SPARE and 1 or 0) + (REMOVE and 1 or 0)

-- Request r: its client's node, its operation and when it is issued.
local function client_of(r) return (r - 1) % N end
local function op_of(r) return format("req%d: add %d", r, (r * 7919 + 13) % 97 + 1) end
local function operand(op) return tonumber(op:match("add (%-?%d+)$")) or 0 end

---------------------------------------------------------------- rules

-- The rules a buggy variant may replace (scripts/buggy/raft_*.lua).
local R = {}

-- votedFor lives in node.store: it survives a crash.
function R.voted_for(node) return node.store.vote end
function R.record_vote(node, id)
  node.store.vote = id
  node.dirty = true
end

-- Figure 2: a leader commits index N (with the entries before it) once a
-- majority stores it, and only if log[N] is of the leader's current term
-- (section 5.4.2; Figure 8 shows why).
function R.may_commit(node, index)
  return node.log[index].t == node.store.term
end

for name, fn in pairs(variant.rules or {}) do R[name] = fn end

---------------------------------------------------------------- helpers

local Raft = {}

local function term_at(node, i)
  if i == 0 then return 0 end
  local e = node.log[i]
  return e and e.t or nil
end

local function last_term(node) return term_at(node, #node.log) end

-- Send after making what changed durable: Raft's "persist before you
-- respond", so a crash that loses unsynced writes cannot undo a vote or
-- an acknowledged entry.
local function flush(node)
  if node.dirty then
    node:sync()
    node.dirty = false
  end
end

local function send(node, to, msg)
  flush(node)
  node:send(to, msg)
end

-- The configuration in force is the last one in the log, committed or not
-- (thesis 4.1); 'known' are the servers that were ever members, the
-- leader's replication targets besides those catching up.
local function load_config(node)
  local voters, at = INITIAL, 0
  for i = #node.log, 1, -1 do
    if node.log[i].cfg then
      voters, at = node.log[i].cfg, i
      break
    end
  end
  node.voters, node.cfg_index = voters, at
  node.is_voter = {}
  for _, v in ipairs(voters) do node.is_voter[v] = true end
  node.known = {}
  for _, v in ipairs(INITIAL) do node.known[v] = true end
  for i = 1, #node.log do
    local c = node.log[i].cfg
    if c then
      for _, v in ipairs(c) do node.known[v] = true end
    end
  end
end

-- Where each request id sits in the log (its last copy).
local function index_requests(node)
  node.req_index = {}
  for i = 1, #node.log do
    local r = node.log[i].req
    if r then node.req_index[r] = i end
  end
end

local function majority(node) return #node.voters // 2 + 1 end

local function set_term(node, term)
  node.store.term = term
  R.record_vote(node, nil)
  node.dirty = true
end

local function reset_election_timer(node)
  node:set_timer("election", ET_MIN + node:random() * (ET_MAX - ET_MIN))
end

-- Back to follower (a leader or candidate that saw a newer term, or a
-- leader that left the configuration).
local function step_down(node, term)
  if term > node.store.term then set_term(node, term) end
  if node.role ~= "follower" then
    if node.role == "leader" then
      node:cancel_timer("heartbeat")
      node.leader_hint = nil
    end
    node.role = "follower"
    reset_election_timer(node)
  end
end

-- Append an entry to the leader's log: a value an honest node proposed
-- for that index, so the checker's validity holds.
local function append(node, entry)
  local i = #node.log + 1
  node:propose(entry, i)
  node.log[i] = entry
  node.dirty = true
  if entry.req then node.req_index[entry.req] = i end
  if entry.cfg then load_config(node) end
end

local function send_append(node, to)
  local nxt = node.next[to]
  local prev = nxt - 1
  local entries = {}
  local last = math.min(#node.log, nxt + BATCH - 1)
  for i = nxt, last do
    entries[#entries + 1] = node.log[i]
  end
  if last > node.sent[to] then node.sent[to] = last end
  send(node, to, { type = "AppendEntries", term = node.store.term, prev = prev,
                   prev_term = term_at(node, prev), entries = entries,
                   commit = node.commit })
end

-- The leader replicates to every server that ever was a member and to
-- those it is catching up; removed servers stay non-voting replicas.
local function replicate(node)
  for j = 0, N - 1 do
    if j ~= node.id and (node.known[j] or node.catching[j]) then
      send_append(node, j)
    end
  end
end

local function reply_client(node, origin, key)
  if origin == node.id then
    node.op_done[key] = true
  else
    send(node, origin, { type = "ClientReply", key = key })
  end
end

-- Apply committed entries in log order: decide each one for its index.
local function apply(node)
  while node.applied < node.commit do
    local i = node.applied + 1
    node.applied = i
    local e = node.log[i]
    node:decide(e, i)
    local key, origin
    if e.req then
      if not node.sm_seen[e.req] then
        node.sm_seen[e.req] = true
        node.sm_total = node.sm_total + operand(e.op)
      end
      key, origin = e.req, client_of(e.req)
    elseif e.cfg then
      key, origin = e.change, e.change == "add" and SPARE or REMOVE
    end
    if key ~= nil then
      if origin == node.id then node.op_done[key] = true end
      if node.role == "leader" then reply_client(node, origin, key) end
    end
  end
end

local function advance_commit(node)
  local old = node.commit
  for i = #node.log, old + 1, -1 do
    if R.may_commit(node, i) then
      local count = 0
      for _, v in ipairs(node.voters) do
        local m = v == node.id and #node.log or node.match[v]
        if m >= i then count = count + 1 end
      end
      if count >= majority(node) then
        node.commit = i
        break
      end
    end
  end
  if node.commit == old then return end
  node:note { ev = "commit", term = node.store.term, index = node.commit }
  apply(node)
  for i = old + 1, node.commit do
    local e = node.log[i]
    if e.cfg then
      node:note { ev = "config", index = i, voters = e.cfg, change = e.change, server = e.server }
    end
  end
  -- Tell the followers now rather than at the next heartbeat.
  replicate(node)
  if not node.is_voter[node.id] and node.cfg_index <= node.commit then
    -- C_new, which leaves this leader out, is committed: step down.
    node:note { ev = "left", term = node.store.term }
    step_down(node, node.store.term)
  end
end

local function become_leader(node)
  node.role = "leader"
  node.lead_since = node.now
  node.leader_hint = node.id
  node:cancel_timer("election")
  local term = node.store.term
  node:claim { "leader", term }
  node:note { ev = "leader", term = term }
  node:count("leaders")
  -- sent[j]: the highest index sent to j (flow control: after a reply,
  -- send only what no AppendEntries in flight carries).
  node.next, node.match, node.sent, node.catching = {}, {}, {}, {}
  for j = 0, N - 1 do
    node.next[j] = #node.log + 1
    node.match[j] = 0
    node.sent[j] = 0
  end
  if NOOP then append(node, { t = term, noop = true }) end
  replicate(node)
  node:set_timer("heartbeat", HEARTBEAT)
  advance_commit(node)   -- a configuration of one commits at once
end

local function start_election(node)
  if not node.is_voter[node.id] then
    -- Outside its own configuration a server does not campaign.
    reset_election_timer(node)
    return
  end
  set_term(node, node.store.term + 1)
  R.record_vote(node, node.id)
  node.role = "candidate"
  node.leader_hint = nil
  node.votes = { [node.id] = true }
  node:count("elections")
  reset_election_timer(node)
  if majority(node) <= 1 then
    become_leader(node)
    return
  end
  local msg = { type = "RequestVote", term = node.store.term,
                last_index = #node.log, last_term = last_term(node) }
  for _, v in ipairs(node.voters) do
    if v ~= node.id then send(node, v, msg) end
  end
end

---------------------------------------------------------------- clients

-- A client operation: a request, or the spare's / removed server's own
-- membership change.
local function submit(node, op)
  local msg = { type = "ClientRequest", key = op.key, op = op.op, origin = node.id }
  if node.role == "leader" then
    Raft.client_request(node, msg)
  elseif node.leader_hint ~= nil and node.leader_hint ~= node.id then
    send(node, node.leader_hint, msg)
  else
    -- No leader known: try the next node in turn, which forwards it.
    node.rr = node.rr % (N - 1) + 1
    send(node, (node.id + node.rr) % N, msg)
  end
end

local function client_tick(node)
  local now = node.now
  local wake = math.huge
  for _, op in ipairs(node.ops) do
    if not node.op_done[op.key] then
      if op.due <= now + 1e-9 then
        if op.sent == nil or op.sent + RETRY <= now + 1e-9 then
          op.sent = now
          submit(node, op)
        end
        wake = math.min(wake, op.sent + RETRY)
      else
        wake = math.min(wake, op.due)
      end
    end
  end
  if wake < math.huge then node:set_timer("client", math.max(0, wake - now)) end
end

-- The leader's side of a client operation.
function Raft.client_request(node, msg)
  local key = msg.key
  local term = node.store.term
  if type(key) == "number" then
    local i = node.req_index[key]
    if i and i <= node.commit then
      reply_client(node, msg.origin, key)
      return
    end
    -- Pending in this term: it will commit.  A copy from an earlier term
    -- may never commit, so the request goes in again (the state machine
    -- applies an id once).
    if i and node.log[i].t == term then return end
    append(node, { t = term, req = key, op = msg.op })
    replicate(node)
    return
  end
  -- Membership: "add" (the spare) or "remove" (REMOVE).
  local server = key == "add" and SPARE or REMOVE
  local member = node.is_voter[server] == true
  if (key == "add") == member then
    -- Already in the configuration in force: done once it commits.
    if node.cfg_index <= node.commit then reply_client(node, msg.origin, key) end
    return
  end
  -- One change at a time, and only after an entry of this term is
  -- committed (thesis 4.1 and its 2015 correction).
  if node.cfg_index > node.commit then return end
  if term_at(node, node.commit) ~= term then
    if not NOOP and last_term(node) ~= term then
      append(node, { t = term, noop = true })
      replicate(node)
    end
    return
  end
  if key == "add" then
    if not node.catching[server] then
      node.catching[server] = true
      send_append(node, server)
    end
    Raft.maybe_add(node, server)
  else
    local voters = {}
    for _, v in ipairs(node.voters) do
      if v ~= server then voters[#voters + 1] = v end
    end
    append(node, { t = term, cfg = voters, change = "remove", server = server })
    replicate(node)
    advance_commit(node)
  end
end

-- The new server caught up with the commit index: C_new = C + {server}.
function Raft.maybe_add(node, server)
  if not node.catching[server] or node.is_voter[server] then return end
  if node.match[server] < node.commit or node.cfg_index > node.commit then return end
  if term_at(node, node.commit) ~= node.store.term then return end
  local voters = {}
  for _, v in ipairs(node.voters) do voters[#voters + 1] = v end
  voters[#voters + 1] = server
  table.sort(voters)
  node.catching[server] = nil
  append(node, { t = node.store.term, cfg = voters, change = "add", server = server })
  replicate(node)
end

---------------------------------------------------------------- handlers

function Raft.start(node)
  -- Recover what survived (nothing on the first start).
  local st = node.store
  if st.log == nil then
    st.term, st.vote, st.log = 0, nil, {}
  else
    node:note { ev = "recovered", term = st.term, entries = #st.log }
  end
  node.log = st.log
  node.role = "follower"
  node.commit, node.applied = 0, 0
  node.leader_hint = nil
  node.dirty = false
  node.rr = 0
  node.sm_total, node.sm_seen = 0, {}
  node.catching = {}
  load_config(node)
  index_requests(node)
  -- This node's client: its requests and its membership change.
  node.op_done = {}
  node.ops = {}
  for r = node.id + 1, K, N do
    node.ops[#node.ops + 1] = { key = r, due = r * INTERVAL, op = op_of(r) }
  end
  if SPARE == node.id then node.ops[#node.ops + 1] = { key = "add", due = ADD_AT } end
  if REMOVE == node.id then node.ops[#node.ops + 1] = { key = "remove", due = REMOVE_AT } end
  reset_election_timer(node)
  client_tick(node)
end

function Raft.timer(node, name)
  if name == "election" then
    if node.role ~= "leader" then start_election(node) end
  elseif name == "heartbeat" then
    if node.role == "leader" then
      -- Without the no-op, entries of earlier terms commit only behind an
      -- entry of this term; when clients are idle, append one after a
      -- while (long after the paper's Figure 8 race).
      if not NOOP and #node.log > node.commit and last_term(node) ~= node.store.term
          and node.now - node.lead_since >= ET_MIN then
        append(node, { t = node.store.term, noop = true })
      end
      replicate(node)
      node:set_timer("heartbeat", HEARTBEAT)
    end
  elseif name == "client" then
    client_tick(node)
  end
  flush(node)
end

-- Is a log ending at (last_term, last_index) at least as up to date as
-- this node's (section 5.4.1)?
local function up_to_date(node, lt, li)
  local mt = last_term(node)
  return lt > mt or (lt == mt and li >= #node.log)
end

local handlers = {}

function handlers.RequestVote(node, msg, from)
  if msg.term > node.store.term then step_down(node, msg.term) end
  local granted = false
  if msg.term == node.store.term then
    local v = R.voted_for(node)
    if (v == nil or v == from) and up_to_date(node, msg.last_term, msg.last_index) then
      granted = true
      R.record_vote(node, from)
      reset_election_timer(node)
    end
  end
  send(node, from, { type = "RequestVoteReply", term = node.store.term, granted = granted })
end

function handlers.RequestVoteReply(node, msg, from)
  if msg.term > node.store.term then
    step_down(node, msg.term)
    return
  end
  if node.role ~= "candidate" or msg.term ~= node.store.term or not msg.granted then return end
  if not node.is_voter[from] then return end
  node.votes[from] = true
  local count = 0
  for _, v in ipairs(node.voters) do
    if node.votes[v] then count = count + 1 end
  end
  if count >= majority(node) then become_leader(node) end
end

function handlers.AppendEntries(node, msg, from)
  local term = node.store.term
  if msg.term < term then
    send(node, from, { type = "AppendEntriesReply", term = term, ok = false,
                       hint = msg.prev })
    return
  end
  if msg.term > term then step_down(node, msg.term) end
  if node.role == "leader" then
    -- Another leader of this very term: only a broken election makes one.
    return
  end
  if node.role == "candidate" then step_down(node, msg.term) end
  node.leader_hint = from
  reset_election_timer(node)
  term = node.store.term
  local prev = msg.prev
  if prev > #node.log or term_at(node, prev) ~= msg.prev_term then
    -- Log Matching fails at prev: the leader backs up.
    send(node, from, { type = "AppendEntriesReply", term = term, ok = false,
                       hint = math.min(prev, #node.log + 1) })
    return
  end
  local truncated = false
  for k, e in ipairs(msg.entries) do
    local i = prev + k
    local mine = node.log[i]
    if mine and mine.t ~= e.t then
      -- A conflict: drop this entry and all that follow it.
      for j = #node.log, i, -1 do node.log[j] = nil end
      truncated, mine = true, nil
    end
    if not mine then
      node.log[i] = e
      node.dirty = true
      if e.cfg and not truncated then load_config(node) end
    end
  end
  if truncated then
    load_config(node)
    index_requests(node)
  else
    for k, e in ipairs(msg.entries) do
      if e.req then node.req_index[e.req] = prev + k end
    end
  end
  local match = prev + #msg.entries
  if msg.commit > node.commit then
    node.commit = math.max(node.commit, math.min(msg.commit, match))
    apply(node)
  end
  send(node, from, { type = "AppendEntriesReply", term = term, ok = true, match = match })
end

function handlers.AppendEntriesReply(node, msg, from)
  if msg.term > node.store.term then
    step_down(node, msg.term)
    return
  end
  if node.role ~= "leader" or msg.term ~= node.store.term then return end
  if msg.ok then
    if msg.match > node.match[from] then node.match[from] = msg.match end
    if node.next[from] < msg.match + 1 then node.next[from] = msg.match + 1 end
    advance_commit(node)
    if node.role ~= "leader" then return end
    Raft.maybe_add(node, from)
    if node.next[from] <= #node.log and node.sent[from] < #node.log then
      send_append(node, from)
    end
  else
    node.next[from] = math.max(node.match[from] + 1, math.min(node.next[from], msg.hint))
    node.sent[from] = 0      -- what was sent past the gap is refused
    send_append(node, from)
  end
end

function handlers.ClientRequest(node, msg, from)
  if node.role == "leader" then
    Raft.client_request(node, msg)
  elseif not msg.forwarded and node.leader_hint ~= nil and node.leader_hint ~= node.id
      and node.leader_hint ~= from then
    msg.forwarded = true
    send(node, node.leader_hint, msg)
  end
end

function handlers.ClientReply(node, msg)
  node.op_done[msg.key] = true
end

function Raft.receive(node, msg, from)
  local h = handlers[msg.type]
  if h then h(node, msg, from) end
  flush(node)
end

---------------------------------------------------------------- scenario

-- A seeded stream for the scenario, independent of the nodes' (splitmix64).
local rng_state = opts.seed ~ 0x7a1f5eed
local function rand(a, b)
  rng_state = rng_state + 0x9e3779b97f4a7c15
  local z = rng_state
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  z = z ~ (z >> 31)
  return a + (z >> 1) % (b - a + 1)
end

local sim = consensus.sim {
  nodes = N, slots = K + CHANGES,
  network = { latency = { "uniform", 5, 15 } },
  name = "Raft",
}
sim:spawn(Raft)

-- What the scenario did, for the report: { t =, text = }.
local events = {}
local function event(s, fmt, ...)
  events[#events + 1] = { t = s:now(), text = format(fmt, ...) }
end

-- The leader now, from the nodes' notes: the highest term's leader, if it
-- is up and has not left the configuration since.
local function current_leader(s)
  local best
  for _, nt in ipairs(s:notes()) do
    local v = nt.value
    if v.ev == "leader" and (best == nil or v.term > best.term) then
      best = { id = nt.node, term = v.term, t = nt.t }
    elseif v.ev == "left" and best and best.id == nt.node and v.term == best.term then
      best.left = true
    end
  end
  if best == nil or best.left or s:down(best.id) then return nil end
  return best
end

local last_fault = 0
local function fault_at(ms)
  if ms > last_fault then last_fault = ms end
end

-- Crash 'who' (an id, or "leader") at 'at' ms, back after 'down' ms (nil:
-- for good).  Unsynced writes are lost, as with kill -9.
local crashed = {}     -- crashes of leaders, for election_ms
local function schedule_crash(who, at, down)
  fault_at(at + (down or 0))
  sim:at(at, function(s)
    local id, term = who, nil
    if who == "leader" or who == "follower" then
      local l = current_leader(s)
      if not l then
        event(s, "no leader: no %s to crash", who)
        return
      end
      id, term = l.id, l.term
      if who == "follower" then
        -- The first server after the leader that is up.
        id, term = nil, nil
        for k = 1, N - 1 do
          local j = (l.id + k) % N
          if not s:down(j) then id = j break end
        end
        if id == nil then return end
      end
    end
    if s:down(id) then return end
    s:crash(id, { lose_unsynced = true, restart = down and s:now() + down or nil })
    if term then
      crashed[#crashed + 1] = { id = id, term = term, t = s:now() }
      event(s, "crash leader %d (term %d)%s", id, term, down and format(", back after %g ms", down) or "")
    else
      event(s, "crash server %d%s", id, down and format(", back after %g ms", down) or "")
    end
  end)
end

if opts.crash_leader_at >= 0 then
  schedule_crash("leader", opts.crash_leader_at,
    opts.restart_after >= 0 and opts.restart_after or nil)
end
for item in (opts.crash == "none" and "" or opts.crash):gmatch("[^,%s]+") do
  local who, at, down = item:match("^(%w+)@([%d.]+)%+?([%d.]*)$")
  local id = tonumber(who)
  if not who or not (who == "leader" or who == "follower"
      or (id and id >= 0 and id < N and id == math.floor(id))) then
    consensus.usage_error("--crash: '" .. item .. "' is not ID@MS[+DOWN] (ID: a node, 'leader' or 'follower')")
  end
  schedule_crash(id or who, tonumber(at), tonumber(down))
end
if ADD_AT >= 0 then fault_at(ADD_AT) end
if REMOVE_AT >= 0 then fault_at(REMOVE_AT) end
fault_at(K * INTERVAL)
if opts.heal_at then fault_at(opts.heal_at) end

local FAULTS_UNTIL = opts.faults_until
if opts.heal_at and opts.heal_at < FAULTS_UNTIL then FAULTS_UNTIL = opts.heal_at end

local function others(except)
  local out = {}
  for id = 0, N - 1 do
    if not except[id] then out[#out + 1] = id end
  end
  return out
end

local function heal_all(s, why)
  s:heal()
  for id = 0, N - 1 do
    if s:down(id) then s:restart(id) end
  end
  event(s, "heal%s", why and (" (" .. why .. ")") or "")
end

-- churn: every 150-450 ms, one of: crash the leader, crash a random
-- server briefly, or cut the leader off with a random minority.
if SCENARIO == "churn" then
  local t = 400
  while true do
    t = t + rand(150, 450)
    local kind, len = rand(1, 3), rand(50, 400)
    if t + len >= FAULTS_UNTIL then break end
    local pick, size = rand(0, N - 1), rand(0, (N - 1) // 2 - 1)
    sim:at(t, function(s)
      local l = current_leader(s)
      if kind == 1 and l then
        s:crash(l.id, { lose_unsynced = true, restart = s:now() + len })
        crashed[#crashed + 1] = { id = l.id, term = l.term, t = s:now() }
        event(s, "crash leader %d (term %d) for %d ms", l.id, l.term, len)
      elseif kind == 2 or not l then
        if not s:down(pick) then
          s:crash(pick, { lose_unsynced = true, restart = s:now() + len // 4 })
          event(s, "crash server %d for %d ms", pick, len // 4)
        end
      else
        local group = { l.id }
        local ids = others { [l.id] = true }
        for i = 1, size do group[#group + 1] = ids[(pick + i) % #ids + 1] end
        local in_group = {}
        for _, id in ipairs(group) do in_group[id] = true end
        local rest = others(in_group)
        s:partition(group, rest)
        event(s, "partition {%s} | {%s} for %d ms", concat(group, ","), concat(rest, ","), len)
      end
    end)
    sim:at(t + len, function(s) s:heal() end)
    t = t + len
  end
  fault_at(FAULTS_UNTIL)
  sim:at(FAULTS_UNTIL, function(s) heal_all(s, "end of churn") end)
end

-- storm: crash the leader and cut two servers A and B off from each
-- other, so that both campaign, likely in the same term; as soon as one
-- of them wins (its note, checked every 2 ms), every other server crashes
-- and restarts 1 ms later.  Their votes must survive the restart: the
-- other candidate asks them next, in the same term.
if SCENARIO == "storm" then
  local t = 600
  while t + 1000 <= FAULTS_UNTIL do
    local a_pick, b_pick = rand(0, 1000), rand(0, 1000)
    local storm = {}
    sim:at(t, function(s)
      local l = current_leader(s)
      if not l then return end
      local ids = others { [l.id] = true }
      local a = table.remove(ids, a_pick % #ids + 1)
      local b = table.remove(ids, b_pick % #ids + 1)
      storm.ids, storm.term, storm.cands = ids, l.term, { [a] = true, [b] = true }
      s:crash(l.id, { lose_unsynced = true, restart = s:now() + 700 })
      crashed[#crashed + 1] = { id = l.id, term = l.term, t = s:now() }
      s:cut({ a }, { b })
      s:cut({ b }, { a })
      event(s, "storm: crash leader %d (term %d) for 700 ms; cut %d <-> %d", l.id, l.term, a, b)
    end)
    for dt = 2, 600, 2 do
      sim:at(t + dt, function(s)
        if not storm.ids then return end
        local l = current_leader(s)
        if l and l.term > storm.term and storm.cands[l.id] then
          for _, v in ipairs(storm.ids) do
            if not s:down(v) then s:crash(v, { lose_unsynced = true, restart = s:now() + 1 }) end
          end
          event(s, "storm: %d leads (term %d); %s crash for 1 ms", l.id, l.term, concat(storm.ids, ","))
          storm.ids = nil
        end
      end)
    end
    sim:at(t + 650, function(s) s:heal() end)
    t = t + 1200
  end
  fault_at(FAULTS_UNTIL)
  sim:at(FAULTS_UNTIL, function(s) heal_all(s, "end of storms") end)
end

-- figure8: the paper's Figure 8 with partitions, steered by what the
-- nodes note (checked every 2 ms).  (a) the leader L1 and one server B
-- are cut off: L1 appends entries of its term that only B stores; (b) the
-- other three elect Z, which is cut off at once and appends entries of its
-- own term alone; (c) L1, B and a third server A elect L3 (L1 or B),
-- which brings A up to date and commits; (d) as soon as L3 commits, L3
-- and the other of L1 and B are cut off and Z, A and C elect a leader.  A
-- correct L3 commits only once an entry of its own term is on L3, B and A,
-- and Z cannot win (A's log is more up to date); a leader that commits
-- L1's old entries by counting replicas lets Z win and erase them.  It
-- needs requests all along and old entries sent apart from new ones:
-- --requests 40 --interval 50 --batch 1 --no-noop (with a no-op, Z's
-- first entry reaches its voters at once, as a real Raft intends).
if SCENARIO == "figure8" then
  local f8 = { phase = "start", since = 0 }
  local function leader_in(s, set, above)
    local l = current_leader(s)
    if l and set[l.id] and l.term > above then return l end
  end
  local function go(s, phase)
    f8.phase, f8.since = phase, s:now()
  end
  local function tick(s)
    local now = s:now()
    local p = f8.phase
    if p == "start" then
      local l = current_leader(s)
      if not l then return end
      f8.l1 = l
      local ids = others { [l.id] = true }
      f8.b = table.remove(ids, rand(1, #ids))
      f8.rest = ids
      s:partition({ l.id, f8.b }, { ids[1] }, { ids[2] }, { ids[3] })
      event(s, "figure8 (a): leader %d (term %d) and %d cut off", l.id, l.term, f8.b)
      go(s, "minority")
    elseif p == "minority" then
      if now < f8.since + 300 then return end
      s:partition({ f8.l1.id }, { f8.b }, f8.rest)
      event(s, "figure8 (b): %s elect a leader", concat(f8.rest, ","))
      go(s, "elect")
    elseif p == "elect" then
      local set = {}
      for _, id in ipairs(f8.rest) do set[id] = true end
      local z = leader_in(s, set, f8.l1.term)
      if z then
        f8.z = z
        local rest = {}
        for _, id in ipairs(f8.rest) do
          if id ~= z.id then rest[#rest + 1] = id end
        end
        f8.rest = rest
        s:partition({ f8.l1.id }, { f8.b }, { z.id }, rest)
        event(s, "figure8 (b): leader %d (term %d) cut off alone", z.id, z.term)
        go(s, "z_alone")
      elseif now > f8.since + 1500 then
        go(s, "done")
      end
    elseif p == "z_alone" then
      if now < f8.since + 300 then return end
      local i = rand(1, 2)
      f8.a, f8.c = f8.rest[i], f8.rest[3 - i]
      s:partition({ f8.l1.id, f8.b, f8.a }, { f8.z.id }, { f8.c })
      event(s, "figure8 (c): %d, %d and %d elect a leader", f8.l1.id, f8.b, f8.a)
      go(s, "l3")
    elseif p == "l3" then
      if not f8.l3 then
        f8.l3 = leader_in(s, { [f8.l1.id] = true, [f8.b] = true }, f8.z.term)
        if not f8.l3 and now > f8.since + 1500 then go(s, "done") end
        return
      end
      local committed = false
      for _, nt in ipairs(s:notes()) do
        if nt.node == f8.l3.id and nt.value.ev == "commit" and nt.value.term == f8.l3.term then
          committed = true
        end
      end
      if committed then
        local other = f8.l3.id == f8.l1.id and f8.b or f8.l1.id
        s:partition({ f8.l3.id }, { other }, { f8.z.id, f8.a, f8.c })
        event(s, "figure8 (d): leader %d (term %d) committed; %d, %d and %d elect a leader",
          f8.l3.id, f8.l3.term, f8.z.id, f8.a, f8.c)
        go(s, "d")
      elseif now > f8.since + 1500 then
        go(s, "done")
      end
    end
  end
  for t = 600, FAULTS_UNTIL - 1, 2 do sim:at(t, tick) end
  fault_at(FAULTS_UNTIL)
  sim:at(FAULTS_UNTIL, function(s) heal_all(s, "end of figure 8") end)
end

fault_at(last_fault)
local UNTIL = math.min(opts.until_ms, last_fault + BOUND)

-- Who is down at the end (the checks skip them).
local down_at_end = {}
sim:at(UNTIL, function(s)
  for id = 0, N - 1 do down_at_end[id] = s:down(id) end
end)

---------------------------------------------------------------- report

local function show_entry(e)
  if type(e) ~= "table" then return tostring(e) end
  if e.noop then return "no-op" end
  if e.cfg then
    return format("config {%s} (%s %d)", concat(e.cfg, ","), e.change == "add" and "+" or "-", e.server)
  end
  return format("%q", e.op)
end

-- What the run shows, from the report's decisions and notes: the leaders,
-- the committed log, what each live server applied, and the script's own
-- termination check (every request and membership change applied).
local function analyse(rep)
  local a = { leaders = {}, configs = {}, slots = {}, nodes = {}, recovered = {}, left = {} }
  local byz, failed = {}, {}
  for _, id in ipairs(rep.byzantine) do byz[id] = true end
  for _, id in ipairs(rep.failed) do failed[id] = true end
  local cfg_seen = {}
  for _, nt in ipairs(rep.notes) do
    local v = nt.value
    if v.ev == "leader" then
      a.leaders[#a.leaders + 1] = { t = nt.t, id = nt.node, term = v.term }
    elseif v.ev == "recovered" then
      a.recovered[#a.recovered + 1] = { t = nt.t, id = nt.node, term = v.term, entries = v.entries }
    elseif v.ev == "left" then
      a.left[#a.left + 1] = { t = nt.t, id = nt.node, term = v.term }
    elseif v.ev == "config" and not cfg_seen[v.index] then
      cfg_seen[v.index] = true
      a.configs[#a.configs + 1] = { t = nt.t, index = v.index, voters = v.voters,
                                    change = v.change, server = v.server }
    end
  end
  -- Per slot: the value first decided, when, and by which servers.
  local per_node = {}
  for id = 0, N - 1 do per_node[id] = {} end
  local max_slot = 0
  for _, d in ipairs(rep.decision_list) do
    if not byz[d.node] then
      local sl = a.slots[d.slot]
      if not sl then
        sl = { value = d.value, t = d.t, by = {}, count = 0 }
        a.slots[d.slot] = sl
        if d.slot > max_slot then max_slot = d.slot end
      end
      if not sl.by[d.node] then
        sl.by[d.node] = true
        sl.count = sl.count + 1
      end
      if per_node[d.node][d.slot] == nil then per_node[d.node][d.slot] = { v = d.value, t = d.t } end
    end
  end
  a.max_slot = max_slot
  -- Replay each server's state machine from its decisions.
  a.live, a.complete, a.missing = 0, 0, {}
  a.done_at = 0
  for id = 0, N - 1 do
    local seen, total, dups, last = {}, 0, 0, 0
    local changes = {}
    local count = 0
    for slot = 1, max_slot do
      local d = per_node[id][slot]
      if d and type(d.v) == "table" then
        local e = d.v
        if e.req then
          if seen[e.req] then
            dups = dups + 1
          else
            seen[e.req] = true
            count = count + 1
            total = total + operand(e.op)
            if d.t > last then last = d.t end
          end
        elseif e.cfg and not changes[e.change] then
          changes[e.change] = true
          if d.t > last then last = d.t end
        end
      end
    end
    local nd = { total = total, dups = dups, applied = count, last = last,
                 live = not byz[id] and not failed[id] and not down_at_end[id] }
    a.nodes[id] = nd
    if nd.live then
      a.live = a.live + 1
      local missing = K - count
      if SPARE and not changes.add then missing = missing + 1 end
      if REMOVE and not changes.remove then missing = missing + 1 end
      if missing == 0 then
        a.complete = a.complete + 1
        if last > a.done_at then a.done_at = last end
      else
        a.missing[#a.missing + 1] = { id = id, applied = count + (changes.add and 1 or 0)
                                      + (changes.remove and 1 or 0) }
      end
    end
  end
  -- election_ms: from each leader crash to the next leader of a later term.
  for _, c in ipairs(crashed) do
    for _, l in ipairs(a.leaders) do
      if l.t >= c.t and l.term > c.term then
        c.next = l
        break
      end
    end
  end
  return a
end

local function ms(v) return math.floor(v * 1000 + 0.5) / 1000 end

-- The report keeps the checker's verdicts; termination is the script's
-- own: the checker counts decided slots, and a log holds a varying number
-- of no-op entries besides the requests (see docs/protocols/raft.md).
local function finish(rep)
  local a = analyse(rep)
  local violations = {}
  for _, v in ipairs(rep.violations) do
    if v.kind ~= "termination" then violations[#violations + 1] = v end
  end
  for _, m in ipairs(a.missing) do
    violations[#violations + 1] = { kind = "termination", node = m.id, other = m.id,
                                    slot = m.applied, t = rep.sim_time_ms }
  end
  rep.violations = violations
  rep.slots = K + CHANGES
  rep.honest = a.live
  rep.decided = a.complete
  rep.termination = #a.missing == 0
  if rep.status == 0 and not rep.termination then rep.status = 3 end
  if rep.status == 3 and rep.termination then rep.status = 0 end
  local first = crashed[1]
  rep.extra = {
    scenario = SCENARIO,
    requests = K,
    membership_changes = CHANGES,
    recoveries = #a.recovered,
    leaders = #a.leaders,
    elections = rep.counters and rep.counters.elections or 0,
    max_term = #a.leaders > 0 and a.leaders[#a.leaders].term or 0,
    committed = a.max_slot,
    election_ms = first and first.next and ms(first.next.t - first.t) or nil,
    crashed_leader = first and first.id or nil,
    done_ms = a.complete > 0 and ms(a.done_at) or nil,
    bound_ms = BOUND,
    last_fault_ms = last_fault,
  }
  return a
end

local function fmt_report(rep, a)
  local out = {}
  local function say(...) out[#out + 1] = format(...) end
  say("=== Raft: %d servers, election timeout %g-%g ms, heartbeat %g ms ===", N, ET_MIN, ET_MAX, HEARTBEAT)
  local cfg = format("configuration {%s}", concat(INITIAL, ","))
  if SPARE then cfg = cfg .. format("; server %d asks to join at %g ms", SPARE, ADD_AT) end
  if REMOVE then cfg = cfg .. format("; server %d asks to leave at %g ms", REMOVE, REMOVE_AT) end
  say("%s", cfg)
  say("clients: %d request%s, one every %g ms, request r on node (r-1) mod %d, retry every %g ms%s",
    K, K == 1 and "" or "s", INTERVAL, N, RETRY, NOOP and "" or "; no no-op entries")
  if #events > 0 then
    say("")
    say("faults (scenario %s):", SCENARIO)
    local shown = math.min(#events, 12)
    for i = 1, shown do say("  %9.3f ms  %s", events[i].t, events[i].text) end
    if #events > shown then say("  ... and %d more", #events - shown) end
  end
  say("")
  say("terms and leaders (elections started: %d, leaders elected: %d):",
    rep.extra.elections, #a.leaders)
  local shown = math.min(#a.leaders, 12)
  for i = 1, shown do
    local l = a.leaders[i]
    say("  term %3d  leader %d  elected at %9.3f ms", l.term, l.id, l.t)
  end
  if #a.leaders > shown then say("  ... and %d more", #a.leaders - shown) end
  for _, c in ipairs(crashed) do
    if c.next then
      say("leader %d (term %d) crashed at %.3f ms: leader %d elected in term %d after %.3f ms",
        c.id, c.term, c.t, c.next.id, c.next.term, c.next.t - c.t)
    else
      say("leader %d (term %d) crashed at %.3f ms: no later leader", c.id, c.term, c.t)
    end
  end
  for _, c in ipairs(a.configs) do
    say("membership: %s%d committed at index %d (%.3f ms): configuration {%s}",
      c.change == "add" and "+" or "-", c.server, c.index, c.t, concat(c.voters, ","))
  end
  for _, l in ipairs(a.left) do
    say("leader %d left the configuration and stepped down at %.3f ms (term %d)", l.id, l.t, l.term)
  end
  local nrec = math.min(#a.recovered, 8)
  for i = 1, nrec do
    local r = a.recovered[i]
    say("recovery: server %d restarted at %.3f ms with term %d and %d log entr%s from node.store",
      r.id, r.t, r.term, r.entries, r.entries == 1 and "y" or "ies")
  end
  if #a.recovered > nrec then say("recovery: ... and %d more restarts", #a.recovered - nrec) end
  say("")
  say("committed log (first commit, servers that applied the entry):")
  say("  index  term  entry                     committed at  servers")
  local rows = math.min(a.max_slot, 24)
  for i = 1, rows do
    local sl = a.slots[i]
    if sl then
      say("  %5d  %4s  %-24s  %10.3f ms  %d", i, type(sl.value) == "table" and tostring(sl.value.t) or "?",
        show_entry(sl.value), sl.t, sl.count)
    else
      say("  %5d  -     (not committed)", i)
    end
  end
  if a.max_slot > rows then say("  ... and %d more entries", a.max_slot - rows) end
  say("")
  local totals, same = nil, true
  local dups = 0
  for id = 0, N - 1 do
    local nd = a.nodes[id]
    if nd.live and nd.applied == K then
      if totals == nil then totals = nd.total elseif totals ~= nd.total then same = false end
    end
    dups = dups + nd.dups
  end
  if totals then
    say("state: counter = %s at every server that applied all requests (%d duplicate%s skipped)",
      same and tostring(totals) or "DIFFERS", dups, dups == 1 and "" or "s")
  end
  say("applied: %d of %d live servers applied all %d requests%s%s", a.complete, a.live, K,
    CHANGES > 0 and format(" and %d membership change%s", CHANGES, CHANGES == 1 and "" or "s") or "",
    a.complete > 0 and format(" (the last at %.3f ms)", a.done_at) or "")
  say("liveness: everything must be applied within %g ms after the last fault or request (%.3f ms)%s",
    BOUND, last_fault, not (rep.termination and a.complete > 0) and ""
      or a.done_at <= last_fault and ": everything was applied by then"
      or format(": done %.3f ms after it", a.done_at - last_fault))
  say("messages: %d sent, %d delivered, %d dropped; virtual time %.3f ms",
    rep.messages, rep.delivered, rep.dropped, rep.sim_time_ms)
  local function ok(b) return b and "OK" or "VIOLATED" end
  say("checks: state machine safety (agreement) %s, election safety (uniqueness) %s, validity %s, termination %s",
    ok(rep.agreement), ok(rep.uniqueness), ok(rep.validity), rep.termination and "OK" or "NOT REACHED")
  for _, v in ipairs(rep.violations) do
    if v.kind == "termination" then
      say("TERMINATION NOT REACHED: server %d applied %d of the %d requests%s by %.3f ms",
        v.node, v.slot, K + CHANGES, CHANGES > 0 and " and membership changes" or "", v.t)
    end
  end
  for _, l in ipairs(rep:violation_lines()) do
    if not l:find("^TERMINATION") then say("%s", l) end
  end
  if #rep.errors > 0 then
    say("errors: %d handler error%s (nodes %s failed)", #rep.errors,
      #rep.errors == 1 and "" or "s", concat(rep.failed, ", "))
    for _, e in ipairs(rep.errors) do say("  %s", tostring(e.message or e)) end
  end
  say("seed %d; replay: %s", rep.seed, rep.replay)
  io.stdout:write(concat(out, "\n"), "\n")
  return true   -- the seed is printed: no aside on stderr
end

local report = sim:run { until_ms = UNTIL, stop_when_decided = false }
local analysis = finish(report)
report:print(function(rep) return fmt_report(rep, analysis) end)
-- Exit with the worst verdict: the checker's, or the script's own
-- termination check (the checker counts decided slots, which no-op
-- entries pad).  Exiting here also gives the status under plain lua5.4.
local status = consensus.status()
if status == 0 and report.status == 3 then status = 3 end
if status ~= 0 then os.exit(status) end
