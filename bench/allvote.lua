-- allvote.lua: the throughput workload of issue 6, as a scenario.
--
-- N nodes, constant latency 1 ms.  In round r, leader 0 proposes v and
-- sends PROPOSE(r, v) to nodes 1..N-1 and VOTE(r, v, yes) to all N nodes.
-- Every other node, on PROPOSE, sends VOTE(r, v, yes) to all N nodes,
-- itself included.  A node decides slot r when it holds more than 2N/3
-- matching votes.  Each round delivers N^2 + N - 1 messages.
--
-- "The next round starts once all nodes have decided": with a constant
-- latency of 1 ms every node decides round r at the same virtual time
-- (PROPOSE at t0+1, the votes at t0+2), so the leader starts round r+1 on
-- a timer of --gap ms (default 1) set when it decides.  No message of
-- round r is in flight by then, and no extra message is sent: a round is
-- exactly N^2 + N - 1 messages.
--
--   consensus-lua bench/allvote.lua --nodes 64 --rounds 20 --threads 1
--
-- --args runs the same workload with positional messages: node:post_all
-- and post_others("VOTE", r, v, true) and handlers in P.on, so no message
-- table is built on either side.  The counts are the same.
--
-- The last line is
--   messages=M decisions=D msgs_per_s=X
-- (M delivered messages, D decisions, X = M / wall seconds of sim:run); the
-- line before it has the details (wall and CPU seconds, peak RSS).  The
-- exit status is 1 when a count is not the expected one or a check fails.

local consensus = require "consensus"

local opts = consensus.options({
  gap = { 1, "ms the leader waits after deciding before the next round" },
  args = { false, "positional messages (node:post_all and P.on) instead of tables" },
}, { nodes = 64, rounds = 10 })

local N, ROUNDS, GAP = opts.nodes, opts.rounds, opts.gap

-- Wall-clock seconds.  os.clock() is process CPU time (all threads), so it
-- cannot measure a --threads 2 run; date(1) is outside the timed region
-- but for the fork, which costs well under a millisecond.
local function wall()
  local p = io.popen("date +%s.%N")
  local s = p and p:read("l")
  if p then p:close() end
  return tonumber(s) or os.clock()
end

local function peak_rss_kib()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0, tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local AllVote = {}

local function begin_round(node, r)
  local v = 1000 + r
  node.round = r
  node:propose(v, r)
  node:broadcast({ type = "PROPOSE", round = r, value = v }, false)
  node:broadcast { type = "VOTE", round = r, value = v, yes = true }
end

function AllVote.start(node)
  node.votes = {}                       -- round -> yes votes for its value
  node.quorum = 2 * node.n // 3 + 1     -- more than 2N/3
  if node.id == 0 then begin_round(node, 1) end
end

function AllVote.receive(node, msg, from)
  if msg.type == "VOTE" then
    local r = msg.round
    if not msg.yes or msg.value ~= 1000 + r then return end
    local votes = node.votes
    local c = (votes[r] or 0) + 1
    votes[r] = c < node.n and c or nil  -- the last vote of a round frees it
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

-- The same protocol with positional messages: VOTE(round, value, yes)
-- and PROPOSE(round, value).
local ArgsVote = { on = {} }

local function begin_round_args(node, r)
  local v = 1000 + r
  node.round = r
  node:propose(v, r)
  node:post_others("PROPOSE", r, v)
  node:post_all("VOTE", r, v, true)
end

function ArgsVote.start(node)
  node.votes = {}
  node.quorum = 2 * node.n // 3 + 1
  if node.id == 0 then begin_round_args(node, 1) end
end

function ArgsVote.on.VOTE(node, _, r, value, yes)
  if not yes or value ~= 1000 + r then return end
  local votes = node.votes
  local c = (votes[r] or 0) + 1
  votes[r] = c < node.n and c or nil
  if c == node.quorum then
    node:decide(value, r)
    if node.id == 0 and r < ROUNDS then node:set_timer("next", GAP) end
  end
end

function ArgsVote.on.PROPOSE(node, _, r, value)
  node:post_all("VOTE", r, value, true)
end

function ArgsVote.timer(node, name)
  if name == "next" then begin_round_args(node, node.round + 1) end
end

local sim = consensus.sim { name = "allvote", network = { latency = 1 },
                            slots = ROUNDS }
sim:spawn(opts.args and ArgsVote or AllVote)
local _, rss0 = peak_rss_kib()
local c0, w0 = os.clock(), wall()
local report = sim:run { slots = ROUNDS, until_ms = ROUNDS * (GAP + 2) + 10 }
local w1, c1 = wall(), os.clock()
local hwm = peak_rss_kib()

local decisions = #report.decision_list
local expect_msgs = ROUNDS * (N * N + N - 1)
local expect_dec = ROUNDS * N
local secs = w1 - w0
local ok = report.delivered == expect_msgs and report.messages == expect_msgs
           and decisions == expect_dec and report.status == 0

print(string.format("allvote: nodes=%d rounds=%d threads=%d wall_s=%.4f cpu_s=%.4f "
  .. "vmhwm_kib=%d rss_before_kib=%d kib_per_node=%.1f sim_ms=%g status=%d%s",
  N, ROUNDS, report.threads, secs, c1 - c0, hwm, rss0, hwm / N,
  report.sim_time_ms, report.status, opts.args and " args" or ""))
if not ok then
  io.stderr:write(string.format("allvote: expected %d messages and %d decisions, "
    .. "got %d sent, %d delivered, %d decisions (status %d)\n", expect_msgs,
    expect_dec, report.messages, report.delivered, decisions, report.status))
end
print(string.format("messages=%d decisions=%d msgs_per_s=%.0f",
  report.delivered, decisions, report.delivered / secs))
os.exit(ok and 0 or 1)
