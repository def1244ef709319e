-- soak.lua: a long run at a steady load, to see that memory stays flat.
--
-- N nodes (default 200) each start --tokens tokens (default 50).  A token
-- is a small message; whoever receives it passes it on to a peer the
-- node's random stream picks, until the token has made its share of
-- --messages hops (default 10^7 in all).  So the load in flight is
-- constant (N * tokens messages) and the run ends by itself when every
-- token is spent: no event left.  Latency is constant (--hop ms, default
-- 10), so the run lasts messages / (N * tokens) * hop ms of virtual time.
--
-- A scenario action samples VmRSS (/proc/self/status; the main state may
-- read it) --samples times across the run and prints one line per sample.
-- The warm-up is the first --warmup percent of the run, and at least 30
-- hops (each node state's garbage collector needs a few cycles to reach
-- its steady size).  After it the resident set must not grow by more than
-- --max-growth percent over the largest warm-up sample (growth below
-- --slack KiB always passes: a few pages are a big share of a small run);
-- else the last line says FAIL and the exit status is 1.
--
--   consensus-lua bench/soak.lua                       # 10^7 messages, n=200
--   consensus-lua bench/soak.lua --messages 200000     # a short one
--
-- The last line is
--   soak: PASS|FAIL messages=M nodes=N wall_s=W msgs_per_s=R rss_kib=A..B growth_pct=G
-- bench/soak.sh runs it, and a short one under valgrind or LeakSanitizer.

local consensus = require "consensus"

local opts = consensus.options({
  messages = { 10000000, "messages (hops) in all" },
  tokens = { 50, "tokens each node starts" },
  hop = { 10, "ms one hop takes (constant latency)" },
  samples = { 20, "RSS samples across the run" },
  warmup = { 20, "percent of the run that is warm-up (at least 30 hops)" },
  max_growth = { 10, "percent RSS may grow after the warm-up" },
  slack = { 4096, "KiB of growth always allowed" },
  payload = { 32, "bytes of filler in each token" },
  flat = { true, "check that memory stays flat (--no-flat: under a leak checker)" },
}, { nodes = 200 })

local N = opts.nodes
local TOKENS = N * opts.tokens
local HOPS = opts.messages // TOKENS            -- hops per token
local EXTRA = opts.messages - HOPS * TOKENS     -- the first EXTRA get one more
local SPAN = (HOPS + 1) * opts.hop              -- virtual ms of the run
local FILLER = string.rep("x", opts.payload)
local WARM = math.max(SPAN * opts.warmup / 100, 30 * opts.hop)

local function wall()
  local p = io.popen("date +%s.%N")
  local s = p:read("a")
  p:close()
  return tonumber(s) or os.clock()
end

local function rss_kib()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local Soak = {}

function Soak.start(node)
  node.passed = 0
  for k = 1, opts.tokens do
    local id = node.id * opts.tokens + k - 1      -- 0 .. TOKENS-1
    local left = HOPS + (id < EXTRA and 1 or 0)
    if left > 0 then
      node:send(node:random(0, node.n - 1),
        { type = "TOKEN", id = id, left = left - 1, filler = FILLER })
    end
  end
end

function Soak.receive(node, msg)
  node.passed = node.passed + 1
  if msg.left > 0 then
    msg.left = msg.left - 1
    node:send(node:random(0, node.n - 1), msg)
  end
end

local sim = consensus.sim {
  nodes = N, faulty = 0, slots = 0, name = "soak",
  network = { latency = opts.hop },
}
sim:spawn(Soak)

local samples = {}
local t0, c0 = wall(), os.clock()
for i = 1, opts.samples do
  local at = SPAN * i / (opts.samples + 1)
  sim:at(at, function()
    local kib = rss_kib()
    samples[#samples + 1] = { t = at, kib = kib }
    io.stdout:write(string.format("sample %2d: t=%9.1f ms wall=%7.2f s rss=%d KiB\n",
      i, at, wall() - t0, kib))
    io.stdout:flush()
  end)
end

local report = sim:run { stop_when_decided = false }
local secs, cpu = wall() - t0, os.clock() - c0

-- Baseline: the largest RSS of the warm-up; growth: the largest later
-- sample against it.
local base, top, low = 0, 0, math.huge
for _, s in ipairs(samples) do
  if s.t <= WARM then
    if s.kib > base then base = s.kib end
  else
    if s.kib > top then top = s.kib end
  end
  if s.kib < low then low = s.kib end
end
if base == 0 and #samples > 0 then base = samples[1].kib end
local growth = (base > 0 and top > 0) and (top - base) * 100 / base or 0
local flat = top - base <= opts.slack or growth <= opts.max_growth
local ok = report.delivered == opts.messages and report.messages == opts.messages
  and #report.errors == 0 and (flat or not opts.flat)

if not ok and report.delivered ~= opts.messages then
  io.stderr:write(string.format("soak: expected %d messages, %d sent, %d delivered\n",
    opts.messages, report.messages, report.delivered))
end
local after = #samples - (function()
  local k = 0
  for _, s in ipairs(samples) do if s.t <= WARM then k = k + 1 end end
  return k
end)()
if after == 0 and opts.flat then
  io.stderr:write("soak: no sample after the warm-up; run more --messages\n")
  ok = false
end
print(string.format("soak: %s messages=%d nodes=%d tokens=%d threads=%d wall_s=%.2f "
  .. "cpu_s=%.2f msgs_per_s=%.0f msgs_per_cpu_s=%.0f rss_kib=%d..%d warm_kib=%d "
  .. "growth_pct=%.1f sim_ms=%.0f",
  ok and "PASS" or "FAIL", report.delivered, N, TOKENS, report.threads, secs, cpu,
  report.delivered / secs, report.delivered / cpu, low == math.huge and 0 or low, math.max(top, base), base,
  growth, report.sim_time_ms))
-- Close the state on the way out, so that a leak checker sees only real
-- leaks.
if not ok then os.exit(1, true) end
