-- consensus.attackers: Byzantine behaviour around an honest protocol.
--
-- attackers.wrap(protocol, hooks) returns a protocol that runs 'protocol'
-- (the honest code) but lets hooks interfere with what it sends, what it
-- receives, how it starts and its timers.  The strategies (silent, flip,
-- delay, ...) are wraps with ready-made hooks; from_options builds the
-- attacker the command line asks for (--attack NAME, --attacker FILE).
--
-- Design.  The honest handlers get a proxy node: a table whose send and
-- broadcast go through hooks.outgoing, one destination at a time (a
-- broadcast fans out to every node, so each copy can be rewritten for its
-- destination), and whose other fields fall back to the real node
-- (__index) and land on it when written (__newindex), so the honest state
-- (node.votes = ...) persists between calls and node.now still reads the
-- clock.  The proxy shows node.byzantine = false: the wrapped code takes
-- its honest path, and the hooks alone misbehave.
--
-- A protocol is copied into every node's state (README, "A protocol ...
-- is copied"), with its functions and their upvalues.  So a wrap is pure
-- data and functions, and its per-node state (the proxy, a strategy's
-- queue) lives in upvalue tables that each node gets its own copy of.
-- The handlers must not close over this module's table or a function
-- stored in it: the copy maps those to the node state's package.loaded,
-- where this module is not loaded.  Internal helpers are therefore
-- locals; the exported helpers (attackers.copy, ...) are separate
-- closures around them.
--
-- Positional messages (node:post, post_all, post_others) reach the hooks
-- in their table form, {type = T, n = k, a1, ..., ak}, marked with the
-- metatable POSTED; copy keeps the mark, and send_msg posts a marked
-- table again (node:post) and sends any other one as a table (node:send).
-- So a posted message a hook passes on, rewrites in place or holds stays
-- positional, and reaches the receiver's on[type].  The wrap's own 'on'
-- handlers show each delivered positional message to 'incoming' the same
-- way and hand the result to the honest on[type] or receive.  The field
-- heuristics (flip, garble, ...) name fields; in a posted message the
-- fields are positions, so they act on it only when given positions
-- (vote_fields = {3}).
--
-- Timers whose name starts with "__attack" belong to the attacker: the
-- honest timer handler never sees them.  Messages whose type starts with
-- "__" are the attacker's too (collude's side channel).

local cli = require "consensus.cli"
local require = require

local error, ipairs, pairs, pcall = error, ipairs, pairs, pcall
local rawget, setmetatable, tostring, type = rawget, setmetatable, tostring, type
local getmetatable, select = getmetatable, select
local loadfile = loadfile           -- nil in node states; main state only
local format, reverse, sub = string.format, string.reverse, string.sub
local concat, remove, sort, unpack = table.concat, table.remove, table.sort, table.unpack
local math_type = math.type

local _ENV = nil

local M = {}

---------------------------------------------------------------- helpers

-- Field names the strategies' heuristics recognise (top-level fields of
-- a table message only).  A strategy's opts may replace each list.
local VOTE_FIELDS = { "yes", "vote", "accept", "accepted", "ok", "granted",
                      "vote_granted" }
local VALUE_FIELDS = { "value", "v", "val", "digest", "d" }
local COUNTER_FIELDS = { "round", "view", "term", "seq", "slot", "attempt",
                         "epoch", "height", "n" }

-- The mark of a positional message's table form (see the top).
local POSTED = { __name = "consensus.posted" }

-- The table form of the positional message (type, ...), marked.
local function pack(mtype, ...)
  return setmetatable({ type = mtype, n = select("#", ...), ... }, POSTED)
end

-- By name, not identity: each node state holds its own copy of POSTED
-- (an upvalue of the wrap) and, if a hook requires this module there,
-- the module's own.
local function is_posted(m)
  if type(m) ~= "table" then return false end
  local mt = getmetatable(m)
  return type(mt) == "table" and rawget(mt, "__name") == "consensus.posted"
end

-- Send 'm' to 'to': a marked table as the positional message it stands
-- for, anything else as a table message.
local function send_msg(node, to, m)
  if is_posted(m) then
    return node:post(to, m.type, unpack(m, 1, m.n))
  end
  return node:send(to, m)
end

-- A deep copy of plain data (messages are acyclic plain data); the copy
-- of a posted message's table form is marked too.
local function copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[copy(k)] = copy(x) end
  if is_posted(v) then setmetatable(t, POSTED) end
  return t
end

-- A value other than v, the same for the same (v, salt): numbers + salt,
-- strings reversed (salt 1) or tagged, booleans negated.  Tables and nil
-- stay as they are.
local function lie(v, salt)
  salt = salt or 1
  local t = type(v)
  if t == "number" then
    return v + salt
  elseif t == "string" then
    if salt == 1 then
      local r = reverse(v)
      if r ~= v then return r end
    end
    return v .. "~" .. tostring(salt)
  elseif t == "boolean" then
    return not v
  end
  return v
end

-- Is 'r' (what outgoing returned) a list of messages rather than one
-- message?  A non-empty array of tables with no 'type' field.
local function is_list(r)
  return type(r) == "table" and r.type == nil and type(r[1]) == "table"
end

local function is_attack_timer(name)
  return type(name) == "string" and sub(name, 1, 8) == "__attack"
end

local function is_attack_msg(msg)
  return type(msg) == "table" and type(msg.type) == "string"
    and sub(msg.type, 1, 2) == "__"
end

-- Rewrite msg (a private copy) for a lie: vote fields negated, value
-- fields changed with 'salt'.  Returns msg.
local function tell_lie(msg, salt, vote_fields, value_fields)
  if type(msg) ~= "table" then return msg end
  for _, k in ipairs(vote_fields) do
    if type(msg[k]) == "boolean" then msg[k] = not msg[k] end
  end
  for _, k in ipairs(value_fields) do
    if msg[k] ~= nil then msg[k] = lie(msg[k], salt) end
  end
  return msg
end

local function check_opts(opts, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("%s: opts must be a table, got %s", what, type(opts)), 3)
  end
  return opts
end

local function check_number(v, default, what, name)
  if v == nil then return default end
  if type(v) ~= "number" or v < 0 then
    error(format("%s: opts.%s must be a number >= 0, got %s", what, name, tostring(v)), 3)
  end
  return v
end

local function check_list(v, default, what, name)
  if v == nil then return default end
  if type(v) ~= "table" then
    error(format("%s: opts.%s must be a list, got %s", what, name, type(v)), 3)
  end
  return v
end

---------------------------------------------------------------- wrap

local HOOKS = { "outgoing", "incoming", "start", "timer" }

-- The proxy node the honest handlers see.  'node' is the node the
-- wrapped handler got (the real node, or an outer wrap's proxy).
local function make_proxy(node, outgoing, show_byzantine)
  local proxy = {}
  local function send_one(to, msg)
    local out = outgoing(node, to, msg)
    if out == nil then return end
    if is_list(out) then
      for _, m in ipairs(out) do send_msg(node, to, m) end
    else
      send_msg(node, to, out)
    end
  end
  if outgoing then
    -- Each destination gets its own copy: hooks may change it freely,
    -- and the honest code's own tables stay as they were.
    proxy.send = function(_, to, msg) send_one(to, copy(msg)) end
    proxy.broadcast = function(_, msg, self)
      local me, with_self = node.id, self == nil or self
      for to = 0, node.n - 1 do
        if to ~= me or with_self then send_one(to, copy(msg)) end
      end
    end
    proxy.post = function(_, to, mtype, ...) send_one(to, pack(mtype, ...)) end
    local function post_many(with_self, mtype, ...)
      local me = node.id
      for to = 0, node.n - 1 do
        if to ~= me or with_self then send_one(to, pack(mtype, ...)) end
      end
    end
    proxy.post_all = function(_, mtype, ...) post_many(true, mtype, ...) end
    proxy.post_others = function(_, mtype, ...) post_many(false, mtype, ...) end
  else
    proxy.send = function(_, to, msg) return node:send(to, msg) end
    proxy.broadcast = function(_, msg, self) return node:broadcast(msg, self) end
    proxy.post = function(_, ...) return node:post(...) end
    proxy.post_all = function(_, ...) return node:post_all(...) end
    proxy.post_others = function(_, ...) return node:post_others(...) end
  end
  if not show_byzantine then proxy.byzantine = false end
  return setmetatable(proxy, { __index = node, __newindex = node })
end

-- attackers.wrap(protocol, hooks) -> protocol
--
-- hooks (all optional):
--   outgoing(node, to, msg) -> msg | nil | {msg, ...}: one message the
--     honest code sends to 'to' (a private copy): send it (changed or
--     not), drop it (nil), or send a list of messages instead;
--   incoming(node, msg, from) -> msg | nil: pass a message to the honest
--     code (changed or not) or ignore it (nil);
--   start(node, honest): replaces start; honest() runs the honest start;
--   timer(node, name, honest): replaces timer, for every timer, the
--     attacker's "__attack..." ones included; honest([name]) runs the
--     honest handler (never for "__attack..." timers);
--   show_byzantine = true: the honest code sees the real node.byzantine
--     (default: false, so it takes its honest path).
-- In hooks, 'node' is the node itself: its send and broadcast go out
-- directly, not through outgoing.
function M.wrap(protocol, hooks)
  if type(protocol) ~= "table" then
    error(format("wrap: a protocol is a table of handlers, got %s", type(protocol)), 2)
  end
  hooks = hooks or {}
  if type(hooks) ~= "table" then
    error(format("wrap: hooks must be a table, got %s", type(hooks)), 2)
  end
  for _, h in ipairs(HOOKS) do
    if hooks[h] ~= nil and type(hooks[h]) ~= "function" then
      error(format("wrap: hooks.%s must be a function, got %s", h, type(hooks[h])), 2)
    end
  end
  local honest_start, honest_receive = protocol.start, protocol.receive
  local honest_timer, honest_on = protocol.timer, protocol.on
  local outgoing, incoming = hooks.outgoing, hooks.incoming
  local h_start, h_timer = hooks.start, hooks.timer
  local show_byzantine = hooks.show_byzantine == true
  -- Does the honest side take "__attack" timers (an inner wrap does)?
  local inner_takes = rawget(protocol, "__attackers") == true
  -- node -> its proxy; each node state has its own copy of this table.
  local proxies = {}

  local function proxy_of(node)
    local p = proxies[node]
    if p == nil then
      p = make_proxy(node, outgoing, show_byzantine)
      proxies[node] = p
    end
    return p
  end

  local w = {}
  for k, v in pairs(protocol) do w[k] = v end
  w.__attackers = true

  function w.start(node)
    local p = proxy_of(node)
    local function honest()
      if honest_start then return honest_start(p) end
    end
    if h_start then return h_start(node, honest) end
    return honest()
  end

  -- A message after 'incoming': a posted one to the honest on[type] when
  -- there is one, anything else to the honest receive.
  local function dispatch(node, msg, from)
    if is_posted(msg) and type(honest_on) == "table" then
      local h = honest_on[msg.type]
      if type(h) == "function" then
        return h(proxy_of(node), from, unpack(msg, 1, msg.n))
      end
    end
    if honest_receive then return honest_receive(proxy_of(node), msg, from) end
  end

  function w.receive(node, msg, from)
    if incoming then
      msg = incoming(node, msg, from)
      if msg == nil then return end
    end
    return dispatch(node, msg, from)
  end

  -- The honest on[type], each behind incoming and the proxy.  (Types the
  -- honest 'on' gains later go to receive, in table form.)
  if type(honest_on) == "table" then
    w.on = {}
    for mtype, h in pairs(honest_on) do
      if incoming then
        w.on[mtype] = function(node, from, ...)
          local msg = incoming(node, pack(mtype, ...), from)
          if msg == nil then return end
          return dispatch(node, msg, from)
        end
      else
        w.on[mtype] = function(node, from, ...) return h(proxy_of(node), from, ...) end
      end
    end
  end

  function w.timer(node, name)
    local function honest(n)
      if n == nil then n = name end
      if honest_timer and (inner_takes or not is_attack_timer(n)) then
        return honest_timer(proxy_of(node), n)
      end
    end
    if h_timer then return h_timer(node, name, honest) end
    return honest()
  end

  return w
end

---------------------------------------------------------------- strategies

local strategies = {}

-- silent: does nothing at all (no start, no message, no timer).
function strategies.silent(protocol, opts)
  check_opts(opts, "silent")
  if type(protocol) ~= "table" then
    error(format("silent: a protocol is a table of handlers, got %s", type(protocol)), 2)
  end
  return { __attackers = true }
end

-- crash_after: honest until opts.ms virtual ms (default 50) or until it
-- sent opts.messages messages, then it stops: it sends, receives and
-- handles timers no more.  With only opts.messages, time does not count.
function strategies.crash_after(protocol, opts)
  opts = check_opts(opts, "crash_after")
  local limit = check_number(opts.messages, nil, "crash_after", "messages")
  local ms = check_number(opts.ms, limit == nil and 50 or nil, "crash_after", "ms")
  local st = { sent = 0, crashed = false }
  local function down(node)
    if not st.crashed and ((ms and node.now >= ms) or (limit and st.sent >= limit)) then
      st.crashed = true
    end
    return st.crashed
  end
  return M.wrap(protocol, {
    start = function(node, honest) if not down(node) then honest() end end,
    outgoing = function(node, _, msg)
      if down(node) then return nil end
      st.sent = st.sent + 1
      return msg
    end,
    incoming = function(node, msg) if not down(node) then return msg end end,
    timer = function(node, _, honest) if not down(node) then honest() end end,
  })
end

-- flip: votes the opposite.  In every message it sends, the vote fields
-- (booleans) are negated and the value fields changed (numbers + 1,
-- strings reversed).  opts.vote_fields, opts.value_fields replace the
-- lists.  Messages to itself stay honest.
function strategies.flip(protocol, opts)
  opts = check_opts(opts, "flip")
  local votes = check_list(opts.vote_fields, VOTE_FIELDS, "flip", "vote_fields")
  local values = check_list(opts.value_fields, VALUE_FIELDS, "flip", "value_fields")
  return M.wrap(protocol, {
    outgoing = function(node, to, msg)
      if to == node.id then return msg end
      return tell_lie(msg, 1, votes, values)
    end,
  })
end

-- equivocate: tells different peers different things.  Messages to the
-- victims (opts.victims, default: the odd ids) carry a lie (vote fields
-- negated, value fields changed); the others get the honest message.
function strategies.equivocate(protocol, opts)
  opts = check_opts(opts, "equivocate")
  local victims = check_list(opts.victims, nil, "equivocate", "victims")
  local votes = check_list(opts.vote_fields, VOTE_FIELDS, "equivocate", "vote_fields")
  local values = check_list(opts.value_fields, VALUE_FIELDS, "equivocate", "value_fields")
  local st = {}
  local function is_victim(to)
    if victims == nil then return to % 2 == 1 end
    if st.set == nil then
      st.set = {}
      for _, id in ipairs(victims) do st.set[id] = true end
    end
    return st.set[to] == true
  end
  return M.wrap(protocol, {
    outgoing = function(node, to, msg)
      if to == node.id or not is_victim(to) then return msg end
      return tell_lie(msg, 1, votes, values)
    end,
  })
end

-- delay: holds every message it sends for opts.ms (default 100) virtual
-- ms, then sends it, in order.  Uses the timer "__attack_delay".
function strategies.delay(protocol, opts)
  opts = check_opts(opts, "delay")
  local ms = check_number(opts.ms, 100, "delay", "ms")
  local queue = { first = 1, last = 0 }
  local function release(node)
    local now = node.now
    while queue.first <= queue.last do
      local e = queue[queue.first]
      -- timers tick in whole microseconds
      if e.due > now + 1e-6 then
        node:set_timer("__attack_delay", e.due - now)
        return
      end
      queue[queue.first] = nil
      queue.first = queue.first + 1
      send_msg(node, e.to, e.msg)
    end
  end
  return M.wrap(protocol, {
    outgoing = function(node, to, msg)
      local was_empty = queue.first > queue.last
      queue.last = queue.last + 1
      queue[queue.last] = { due = node.now + ms, to = to, msg = msg }
      if was_empty then node:set_timer("__attack_delay", ms) end
      return nil
    end,
    timer = function(node, name, honest)
      if name == "__attack_delay" then return release(node) end
      return honest()
    end,
  })
end

-- replay: behaves honestly, and keeps the last opts.keep (default 32)
-- messages it sent or received.  Every opts.every ms (default 20), for
-- opts.times ticks (default 25), it sends opts.burst (default 2) of them,
-- drawn at random, to random peers.  Uses the timer "__attack_replay".
function strategies.replay(protocol, opts)
  opts = check_opts(opts, "replay")
  local keep = check_number(opts.keep, 32, "replay", "keep")
  local every = check_number(opts.every, 20, "replay", "every")
  local times = check_number(opts.times, 25, "replay", "times")
  local burst = check_number(opts.burst, 2, "replay", "burst")
  local seen = { ticks = 0 }
  local function record(msg)
    if is_attack_msg(msg) then return end
    seen[#seen + 1] = copy(msg)
    if #seen > keep then remove(seen, 1) end
  end
  return M.wrap(protocol, {
    start = function(node, honest)
      if times > 0 then node:set_timer("__attack_replay", every) end
      return honest()
    end,
    outgoing = function(_, _, msg) record(msg); return msg end,
    incoming = function(_, msg) record(msg); return msg end,
    timer = function(node, name, honest)
      if name ~= "__attack_replay" then return honest() end
      seen.ticks = seen.ticks + 1
      if #seen > 0 and node.n > 1 then
        for _ = 1, burst do
          local msg = seen[node:random(1, #seen)]
          local to = node:random(0, node.n - 2)
          if to >= node.id then to = to + 1 end      -- never itself
          send_msg(node, to, msg)
        end
      end
      if seen.ticks < times then node:set_timer("__attack_replay", every) end
    end,
  })
end

-- garble: small mutations.  Each message it sends to another node
-- (with probability opts.p, default 1) has one field changed, drawn at
-- random among those present: a counter field (round, view, term, seq,
-- slot, attempt, epoch, height, n) moves by +1 or -1, a value field takes
-- an older value seen in that field (sent or received), or value + 1 if
-- none.
function strategies.garble(protocol, opts)
  opts = check_opts(opts, "garble")
  local p = check_number(opts.p, 1, "garble", "p")
  local counters = check_list(opts.counter_fields, COUNTER_FIELDS, "garble", "counter_fields")
  local values = check_list(opts.value_fields, VALUE_FIELDS, "garble", "value_fields")
  local history = {}          -- value field -> older values, oldest first
  local function record(msg)
    if type(msg) ~= "table" then return end
    for _, k in ipairs(values) do
      local v = msg[k]
      if v ~= nil and type(v) ~= "table" then
        local h = history[k]
        if h == nil then h = {}; history[k] = h end
        if h[#h] ~= v then
          h[#h + 1] = v
          if #h > 8 then remove(h, 1) end
        end
      end
    end
  end
  local function older(k, v)
    local h = history[k]
    if h then
      for i = #h, 1, -1 do
        if h[i] ~= v and type(h[i]) == type(v) then return h[i] end
      end
    end
    return lie(v, 1)
  end
  return M.wrap(protocol, {
    incoming = function(_, msg) record(msg); return msg end,
    outgoing = function(node, to, msg)
      record(msg)
      if type(msg) ~= "table" or to == node.id then return msg end
      if p < 1 and node:random() >= p then return msg end
      local fields = {}
      local posted = is_posted(msg)
      for _, k in ipairs(counters) do
        -- a posted message's n is its argument count, not a counter
        if math_type(msg[k]) and not (posted and k == "n") then
          fields[#fields + 1] = { k, true }
        end
      end
      for _, k in ipairs(values) do
        local v = msg[k]
        if v ~= nil and type(v) ~= "table" then fields[#fields + 1] = { k, false } end
      end
      if #fields == 0 then return msg end
      local f = fields[node:random(1, #fields)]
      local k = f[1]
      if f[2] then
        msg[k] = msg[k] + (node:random(0, 1) == 0 and -1 or 1)
      else
        msg[k] = older(k, msg[k])
      end
      return msg
    end,
  })
end

-- selective: misbehaves toward some peers only: opts.targets (default the
-- lower half of the ids, 0 .. n//2 - 1).  opts.action says how: "drop"
-- (default), "flip" or "equivocate" (both: vote fields negated, value
-- fields changed), or a function(node, to, msg) -> msg | nil | list.
-- Every other destination gets the honest message.
function strategies.selective(protocol, opts)
  opts = check_opts(opts, "selective")
  local targets = check_list(opts.targets, nil, "selective", "targets")
  local action = opts.action or "drop"
  if type(action) ~= "function" and action ~= "drop" and action ~= "flip"
      and action ~= "equivocate" then
    error(format("selective: opts.action must be \"drop\", \"flip\", \"equivocate\" or a function, got %s",
      tostring(action)), 2)
  end
  local votes = check_list(opts.vote_fields, VOTE_FIELDS, "selective", "vote_fields")
  local values = check_list(opts.value_fields, VALUE_FIELDS, "selective", "value_fields")
  local st = {}
  local function is_target(node, to)
    if to == node.id then return false end
    if targets == nil then return to < node.n // 2 end
    if st.set == nil then
      st.set = {}
      for _, id in ipairs(targets) do st.set[id] = true end
    end
    return st.set[to] == true
  end
  return M.wrap(protocol, {
    outgoing = function(node, to, msg)
      if not is_target(node, to) then return msg end
      if action == "drop" then return nil end
      if type(action) == "function" then return action(node, to, msg) end
      return tell_lie(msg, 1, votes, values)
    end,
  })
end

-- collude: the attackers opts.ids (every colluding node id) share a side
-- channel, messages { type = "__collude", ... } sent only to each other,
-- and agree on a common lie: the lowest id draws a salt and a victim
-- parity and tells the others.  Every message a colluder sends to an
-- honest victim (an id of that parity) then carries the same lie (vote
-- fields negated, value fields changed by the salt); the others get the
-- honest message.  Until the plan arrives a colluder holds what it sends
-- to honest nodes, then sends it, lie applied.  The honest code never
-- sees "__collude" messages, and honest nodes never receive them.
function strategies.collude(protocol, opts)
  opts = check_opts(opts, "collude")
  local ids = opts.ids
  if type(ids) ~= "table" then
    error("collude: opts.ids, the list of colluding node ids, is required", 2)
  end
  local votes = check_list(opts.vote_fields, VOTE_FIELDS, "collude", "vote_fields")
  local values = check_list(opts.value_fields, VALUE_FIELDS, "collude", "value_fields")
  -- ids may still grow until the run starts (from_options fills it as
  -- the engine names the faulty nodes): read it in the node only.
  local st = { held = {} }
  local function members()
    if st.members == nil then
      local set, low = {}, nil
      for _, id in ipairs(ids) do
        set[id] = true
        if low == nil or id < low then low = id end
      end
      st.members, st.low = set, low
    end
    return st.members
  end
  local function apply(to, msg)
    local plan = st.plan
    if members()[to] or to % 2 ~= plan.parity then return msg end
    return tell_lie(msg, plan.salt, votes, values)
  end
  return M.wrap(protocol, {
    start = function(node, honest)
      local set = members()
      if st.low == nil or st.low == node.id or not set[node.id] then
        -- the coalition's leader (or a node acting alone) draws the plan
        st.plan = { salt = node:random(1, 1000), parity = node:random(0, 1) }
        for _, id in ipairs(ids) do
          if id ~= node.id then
            node:send(id, { type = "__collude", salt = st.plan.salt,
                            parity = st.plan.parity })
          end
        end
      end
      return honest()
    end,
    incoming = function(node, msg, from)
      if type(msg) == "table" and msg.type == "__collude" then
        if from == st.low and members()[from] and st.plan == nil then
          st.plan = { salt = msg.salt, parity = msg.parity }
          for _, h in ipairs(st.held) do send_msg(node, h[1], apply(h[1], h[2])) end
          st.held = {}
        end
        return nil
      end
      return msg
    end,
    outgoing = function(node, to, msg)
      if to == node.id or members()[to] then return msg end
      if st.plan == nil then
        st.held[#st.held + 1] = { to, msg }
        return nil
      end
      return apply(to, msg)
    end,
  })
end

local names = {}
for name in pairs(strategies) do names[#names + 1] = name end
sort(names)

-- attackers.strategy(name) -> function(protocol, opts) -> protocol, or nil
function M.strategy(name)
  return strategies[name]
end

-- attackers.names() -> the strategy names, sorted
function M.names()
  local out = {}
  for i, n in ipairs(names) do out[i] = n end
  return out
end

-- attackers.flip(protocol, opts) and so on.  (No handler closes over a
-- strategy function, so these may be the functions themselves.)
for _, name in ipairs(names) do M[name] = strategies[name] end

-- Helpers for hooks written by hand (in the main state; in a node, get
-- them with require "consensus.attackers" inside the hook).
function M.copy(v) return copy(v) end
function M.lie(v, salt) return lie(v, salt) end
function M.is_list(r) return is_list(r) end
function M.pack(mtype, ...) return pack(mtype, ...) end
function M.is_posted(m) return is_posted(m) end
function M.send(node, to, m) return send_msg(node, to, m) end
function M.tell_lie(msg, salt, vote_fields, value_fields)
  return tell_lie(msg, salt, vote_fields or VOTE_FIELDS, value_fields or VALUE_FIELDS)
end

-- The default field lists, as copies: a handler that closes over one of
-- these module fields could not be copied into a node (see the top).
M.VOTE_FIELDS = copy(VOTE_FIELDS)
M.VALUE_FIELDS = copy(VALUE_FIELDS)
M.COUNTER_FIELDS = copy(COUNTER_FIELDS)

---------------------------------------------------------------- options

-- A usage error, exit status 2: raised for the host (cli), or printed by
-- the main module under the stock interpreter.
local function usage_error(msg)
  local main = require "consensus"
  if main.usage_error then main.usage_error(msg) end
  cli.usage_error(msg)
end

local function load_hooks(file)
  if loadfile == nil then
    usage_error("--attacker: cannot load files here")
  end
  local chunk, err = loadfile(file)
  if not chunk then usage_error("--attacker: " .. tostring(err)) end
  local ok, hooks = pcall(chunk)
  if not ok then
    usage_error(format("--attacker %s: %s", file, tostring(hooks)))
  end
  if type(hooks) ~= "table" then
    usage_error(format("--attacker %s: the file must return a table of hooks "
      .. "(outgoing, incoming, start, timer), got %s", file, type(hooks)))
  end
  for _, h in ipairs(HOOKS) do
    if hooks[h] ~= nil and type(hooks[h]) ~= "function" then
      usage_error(format("--attacker %s: hooks.%s must be a function, got %s",
        file, h, type(hooks[h])))
    end
  end
  return hooks
end

-- attackers.from_options(o [, ids]) -> make(protocol, id) -> protocol
-- o.attack names a strategy, o.attacker is a file returning hooks; with
-- both, the strategy runs inside the file's hooks.  'ids' lists the
-- faulty nodes (for collude); make adds every id it is called with, and
-- the list is read only once the run starts.
function M.from_options(o, ids)
  if not (o.attack or o.attacker) then return nil end
  local fn, hooks
  if o.attack then
    fn = strategies[o.attack]
    if fn == nil then
      usage_error(format("unknown attack '%s' (known: %s)", tostring(o.attack),
        concat(names, ", ")))
    end
  end
  if o.attacker then hooks = load_hooks(o.attacker) end
  local all, seen = {}, {}
  local function add(id)
    if not seen[id] then
      seen[id] = true
      all[#all + 1] = id
      sort(all)
    end
  end
  for _, id in ipairs(ids or {}) do add(id) end
  return function(protocol, id)
    if id ~= nil then add(id) end
    local p = protocol
    if fn then p = fn(p, { ids = all }) end
    if hooks then p = M.wrap(p, hooks) end
    return p
  end
end

return M
