-- baseline_lua.lua: the allvote workload on a hand-written pure-Lua
-- discrete-event simulator, the baseline consensus-lua is measured against.
--
-- One Lua state, one binary min-heap of events ordered by (at, seq),
-- messages as plain tables (a broadcast shares one table among its
-- receivers, as a pure-Lua simulator naturally would), one handler table
-- per node.  It is what a person would write in an afternoon: no
-- isolation, no codec, no checks beyond the counts.
--
--   lua5.4 bench/baseline_lua.lua --nodes 64 --rounds 20
--
-- Prints the same last line as bench/allvote.lua:
--   messages=M decisions=D msgs_per_s=X
-- and exits 1 when a count is not the expected one.

local N, ROUNDS, GAP = 64, 10, 1
do
  local i = 1
  while arg[i] do
    local a, v = arg[i], tonumber(arg[i + 1])
    if a == "--nodes" and v then N = v
    elseif a == "--rounds" and v then ROUNDS = v
    elseif a == "--gap" and v then GAP = v
    else io.stderr:write("usage: baseline_lua.lua [--nodes N] [--rounds R] [--gap MS]\n"); os.exit(2) end
    i = i + 2
  end
end

local function wall()
  local p = io.popen("date +%s.%N")
  local s = p and p:read("l")
  if p then p:close() end
  return tonumber(s) or os.clock()
end

------------------------------------------------------------- the engine

-- Events are tables { at, seq, dst, src, msg, timer }; the heap is an
-- array of them.
local heap, hn, seq = {}, 0, 0
local now = 0
local delivered, sent, decisions = 0, 0, 0
local LATENCY = 1

local function less(a, b)
  if a.at ~= b.at then return a.at < b.at end
  return a.seq < b.seq
end

local function push(ev)
  hn = hn + 1
  local i = hn
  while i > 1 do
    local p = i // 2
    local pe = heap[p]
    if not less(ev, pe) then break end
    heap[i] = pe
    i = p
  end
  heap[i] = ev
end

local function pop()
  local top = heap[1]
  local last = heap[hn]
  heap[hn] = nil
  hn = hn - 1
  if hn > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > hn then break end
      local ce = heap[c]
      if c < hn and less(heap[c + 1], ce) then c = c + 1; ce = heap[c] end
      if not less(ce, last) then break end
      heap[i] = ce
      i = c
    end
    heap[i] = last
  end
  return top
end

local Node = {}
Node.__index = Node

function Node:send(to, msg)
  sent = sent + 1
  seq = seq + 1
  push { at = now + LATENCY, seq = seq, dst = to, src = self.id, msg = msg }
end

function Node:broadcast(msg, self_too)
  for to = 0, self.n - 1 do
    if to ~= self.id or self_too ~= false then self:send(to, msg) end
  end
end

function Node:set_timer(name, ms)
  seq = seq + 1
  push { at = now + ms, seq = seq, dst = self.id, src = self.id, timer = name }
end

function Node:decide(value, slot)
  decisions = decisions + 1
  self.decided[slot] = value
end

------------------------------------------------------------ the protocol

local AllVote = {}

local function begin_round(node, r)
  local v = 1000 + r
  node.round = r
  node:broadcast({ type = "PROPOSE", round = r, value = v }, false)
  node:broadcast { type = "VOTE", round = r, value = v, yes = true }
end

function AllVote.start(node)
  node.votes = {}
  node.quorum = 2 * node.n // 3 + 1
  if node.id == 0 then begin_round(node, 1) end
end

function AllVote.receive(node, msg, from)
  if msg.type == "VOTE" then
    local r = msg.round
    if not msg.yes or msg.value ~= 1000 + r then return end
    local votes = node.votes
    local c = (votes[r] or 0) + 1
    votes[r] = c < node.n and c or nil
    if c == node.quorum then
      node:decide(msg.value, r)
      if node.id == 0 and r < ROUNDS then node:set_timer("next", GAP) end
    end
  elseif msg.type == "PROPOSE" then
    node:broadcast { type = "VOTE", round = msg.round, value = msg.value, yes = true }
  end
end

function AllVote.timer(node, name)
  if name == "next" then begin_round(node, node.round + 1) end
end

---------------------------------------------------------------- the run

local t0 = wall()
local nodes = {}
for id = 0, N - 1 do
  nodes[id] = setmetatable({ id = id, n = N, decided = {} }, Node)
end
for id = 0, N - 1 do AllVote.start(nodes[id]) end
while hn > 0 do
  local ev = pop()
  now = ev.at
  local node = nodes[ev.dst]
  if ev.timer then
    AllVote.timer(node, ev.timer)
  else
    delivered = delivered + 1
    AllVote.receive(node, ev.msg, ev.src)
  end
end
local secs = wall() - t0

local expect_msgs, expect_dec = ROUNDS * (N * N + N - 1), ROUNDS * N
local ok = delivered == expect_msgs and sent == expect_msgs and decisions == expect_dec
print(string.format("baseline_lua: nodes=%d rounds=%d wall_s=%.4f cpu_s=%.4f sim_ms=%g",
  N, ROUNDS, secs, os.clock(), now))
if not ok then
  io.stderr:write(string.format("baseline_lua: expected %d messages and %d decisions, "
    .. "got %d sent, %d delivered, %d decisions\n", expect_msgs, expect_dec, sent,
    delivered, decisions))
end
print(string.format("messages=%d decisions=%d msgs_per_s=%.0f", delivered, decisions,
  delivered / secs))
os.exit(ok and 0 or 1)
