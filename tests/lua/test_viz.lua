-- test_viz: the --trace schema (docs/trace.md), the --shiviz log against
-- ShiViz's rules, and the --svg picture (well-formed XML, one lifeline per
-- node, --window, the cap on messages).

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

---------------------------------------------------------------- JSON

-- An independent JSON parser (not the one viz.lua uses).  null is NULL, so
-- a key given as null is still seen.
local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function parse_json(s)
  local i = 1
  local function ws() i = s:find("[^ \t\r\n]", i) or #s + 1 end
  local function die(msg) error(("JSON: %s at byte %d of %s"):format(msg, i, s), 0) end
  local val
  local function str()
    local out = {}
    i = i + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then die("unterminated string") end
      if c == '"' then i = i + 1; return table.concat(out) end
      if c:byte() < 32 then die("raw control character") end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if e == "u" then
          local h = s:sub(i + 2, i + 5)
          if not h:match("^%x%x%x%x$") then die("bad \\u") end
          out[#out + 1] = utf8.char(tonumber(h, 16))
          i = i + 6
        elseif map[e] then
          out[#out + 1] = map[e]
          i = i + 2
        else
          die("bad escape")
        end
      else
        out[#out + 1] = c
        i = i + 1
      end
    end
  end
  function val()
    ws()
    local c = s:sub(i, i)
    if c == "{" then
      local o = {}
      i = i + 1; ws()
      if s:sub(i, i) == "}" then i = i + 1; return o end
      repeat
        ws()
        if s:sub(i, i) ~= '"' then die("key expected") end
        local k = str()
        ws()
        if s:sub(i, i) ~= ":" then die("':' expected") end
        i = i + 1
        if o[k] ~= nil then die("duplicate key " .. k) end
        o[k] = val()
        ws()
        c = s:sub(i, i); i = i + 1
      until c ~= ","
      if c ~= "}" then die("'}' expected") end
      return o
    elseif c == "[" then
      local a = {}
      i = i + 1; ws()
      if s:sub(i, i) == "]" then i = i + 1; return a end
      repeat
        a[#a + 1] = val()
        ws()
        c = s:sub(i, i); i = i + 1
      until c ~= ","
      if c ~= "]" then die("']' expected") end
      return a
    elseif c == '"' then
      return str()
    elseif s:sub(i, i + 3) == "true" then i = i + 4; return true
    elseif s:sub(i, i + 4) == "false" then i = i + 5; return false
    elseif s:sub(i, i + 3) == "null" then i = i + 4; return NULL
    end
    local n = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not n or not tonumber(n) then die("value expected") end
    i = i + #n
    return tonumber(n)
  end
  local v = val()
  ws()
  if i <= #s then die("trailing text") end
  return v
end

---------------------------------------------------------------- XML

-- Well-formed XML: one root, balanced tags, quoted attributes, known
-- entities, no stray '<' or '&'.  Returns the element count per name.
local function check_xml(text)
  local count, stack, i, roots = {}, {}, 1, 0
  local function text_ok(s)
    assert(not s:find("<", 1, true), "stray '<'")
    for ent in s:gmatch("&([^;]*);?") do
      assert(ent == "amp" or ent == "lt" or ent == "gt" or ent == "quot" or ent == "apos"
        or ent:match("^#%d+$") or ent:match("^#x%x+$"), "bad entity &" .. ent)
    end
    for amp in s:gmatch("&[^;]*") do assert(amp:find("^&[#%w]+$"), "stray '&'") end
  end
  text = text:gsub("^<%?xml.-%?>", "")
  while i <= #text do
    local lt = text:find("<", i, true)
    if not lt then
      assert(not text:sub(i):find("%S"), "text after the root element")
      break
    end
    local between = text:sub(i, lt - 1)
    if #stack == 0 then
      assert(not between:find("%S"), "text outside the root element")
    else
      text_ok(between)
    end
    if text:sub(lt, lt + 3) == "<!--" then
      local e = text:find("-->", lt + 4, true)
      assert(e, "unterminated comment")
      i = e + 3
    else
      local gt = text:find(">", lt, true)
      assert(gt, "unterminated tag")
      local tag = text:sub(lt + 1, gt - 1)
      if tag:sub(1, 1) == "/" then
        local name = tag:match("^/([%w:_%-]+)%s*$")
        assert(name, "bad end tag <" .. tag .. ">")
        assert(stack[#stack] == name, ("</%s> closes <%s>"):format(name, tostring(stack[#stack])))
        stack[#stack] = nil
      else
        local self_closing = tag:sub(-1) == "/"
        if self_closing then tag = tag:sub(1, -2) end
        local name, attrs = tag:match("^([%w:_%-]+)(.*)$")
        assert(name, "bad tag <" .. tag .. ">")
        -- attributes: name="value" with no '<' inside and valid entities
        local rest = attrs:gsub('%s+([%w:_%-]+)%s*=%s*"([^"<]*)"', function(_, v)
          text_ok(v)
          return ""
        end)
        assert(not rest:find("%S"), ("bad attributes in <%s>: %s"):format(name, rest))
        if #stack == 0 then roots = roots + 1 end
        count[name] = (count[name] or 0) + 1
        if not self_closing then stack[#stack + 1] = name end
      end
      i = gt + 1
    end
  end
  assert(#stack == 0, "unclosed <" .. tostring(stack[#stack]) .. ">")
  assert(roots == 1, "expected one root element, got " .. roots)
  return count
end

local function count_of(text, needle)
  local n, pos = 0, 1
  while true do
    local a, b = text:find(needle, pos, true)
    if not a then return n end
    n, pos = n + 1, b + 1
  end
end

---------------------------------------------------------------- scenarios

-- Every kind of trace event: loss, duplicates, a partition, a cut, a
-- crash and restart, a pause that overflows a small inbox, logs, a
-- handler error, decisions, a Byzantine node.
local FAULTS = [[
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 5, seed = 3, inbox = 4,
  network = { latency = "uniform:5:20", loss = 0.1, duplicate = 0.1 } }
sim:spawn{
  start = function(node)
    node:propose(7)
    node.ticks = 0
    node:set_timer("tick", 10)
  end,
  timer = function(node, name)
    node.ticks = node.ticks + 1
    node:broadcast { type = node.ticks % 2 == 0 and "PING" or "PONG", k = node.ticks }
    if node.ticks == 3 then node:log("tick %d", node.ticks) end
    if node.ticks == 4 and node.id == 4 then error("boom") end
    if node.ticks < 8 then node:set_timer("tick", 10) else node:decide(7) end
  end,
  receive = function(node, msg, from) end,
}
sim:byzantine({1})
sim:at(1, function(s) s:partition({0, 1}, {2, 3}) end)
sim:at(25, function(s) s:heal(); s:cut({0}, {2}) end)
sim:at(35, function(s) s:heal() end)
sim:crash(3, { at = 12, restart = 30 })
sim:pause(2, { at = 40, ms = 30 })
sim:run():print()
]]

-- Two runs; nodes 3 and 4 never do anything.
local TWO_RUNS = [[
local consensus = require "consensus"
for run = 1, 2 do
  local sim = consensus.sim{ nodes = 5, seed = run, slots = 0, network = { latency = "uniform:5:20" } }
  sim:spawn{
    start = function(node)
      if node.id <= 2 then
        node:propose(1)
        if node.id == 0 then
          for to = 0, 2 do node:send(to, { type = "HELLO" }) end
        end
      end
    end,
    receive = function(node, msg, from)
      if msg.type == "HELLO" and node.id ~= 0 then node:send(0, { type = "ACK" }) end
      node:decide(1)
    end,
  }
  sim:run{ until_ms = 200, stop_when_decided = false }:print()
end
]]

-- Every node broadcasts once per 10 ms for --rounds rounds (n*n*rounds
-- messages), alternating types ODD and EVEN, then decides.
local ROUNDS = [[
local consensus = require "consensus"
local opts = consensus.options({}, { nodes = 4, rounds = 5 })
local R = opts.rounds
local sim = consensus.sim{ network = { latency = "uniform:5:20" } }
sim:spawn{
  start = function(node) node:propose(1); node.r = 0; node:set_timer("round", 10) end,
  timer = function(node)
    node.r = node.r + 1
    node:broadcast { type = node.r % 2 == 1 and "ODD" or "EVEN", r = node.r }
    if node.r < R then node:set_timer("round", 10) else node:decide(1) end
  end,
}
sim:run():print()
]]

local function tmp(ext)
  local n = os.tmpname()
  os.remove(n)
  return n .. ext
end

local function read_lines(path)
  local lines = {}
  for l in io.lines(path) do lines[#lines + 1] = l end
  return lines
end

-- Run a scenario text with the given arguments; return stdout, stderr, status.
local function run_script(text, ...)
  local path = t.temp_script(text)
  local out, err, code = t.host_run(path, ...)
  os.remove(path)
  return out, err, code
end

---------------------------------------------------------------- the schema

-- Fields each event has (besides "ev"); "?" marks an optional one.
local INT, NUM, STR, STR_OR_NULL, ANY, NULLV, LIST = "int", "num", "str", "str|null", "any", "null", "list"
local MSG = { t = NUM, node = INT, peer = INT, type = STR_OR_NULL, size = INT, msg = STR }
local function with(base, extra)
  local r = {}
  for k, v in pairs(base) do r[k] = v end
  for k, v in pairs(extra) do r[k] = v end
  return r
end
local SCHEMA = {
  run = { seed = INT, nodes = INT, faulty = INT, byzantine = LIST },
  send = with(MSG, { arrive = NUM }),
  duplicate = with(MSG, { arrive = NUM }),
  deliver = MSG,
  drop = with(MSG, { reason = STR }),
  timer = { t = NUM, node = INT, name = STR },
  decide = { t = NUM, node = INT, slot = INT, value = ANY },
  crash = { t = NUM, node = INT },
  restart = { t = NUM, node = INT },
  pause = { t = NUM, node = INT, ms = NUM },
  log = { t = NUM, node = INT, text = STR },
  error = { t = NUM, node = INT, message = STR },
  partition = { t = NUM, group = LIST },
  cut = { t = NUM, node = NULLV },
  heal = { t = NUM, node = NULLV },
  ["end"] = { t = NUM },
}

local function has_type(v, ty)
  if ty == ANY then return v ~= nil end
  if ty == INT then return math.type(v) == "integer" end
  if ty == NUM then return type(v) == "number" end
  if ty == STR then return type(v) == "string" end
  if ty == STR_OR_NULL then return type(v) == "string" or v == NULL end
  if ty == NULLV then return v == NULL end
  if ty == LIST then return type(v) == "table" and v ~= NULL end
  return false
end

-- Check a trace file line by line; returns the events and counts per kind.
local function check_trace(path)
  local lines = read_lines(path)
  assert(#lines >= 2, "a trace has at least its run and end lines")
  local events, kinds = {}, {}
  local n, last_t, sends, delivered = nil, -1, {}, {}
  for ln, line in ipairs(lines) do
    local ok, ev = pcall(parse_json, line)
    assert(ok, ("line %d does not parse: %s"):format(ln, tostring(ev)))
    local where = ("line %d (%s)"):format(ln, line)
    assert(type(ev) == "table" and type(ev.ev) == "string", where .. ": no \"ev\"")
    local schema = SCHEMA[ev.ev]
    assert(schema, where .. ": unknown event")
    for k, ty in pairs(schema) do
      assert(has_type(ev[k], ty), ("%s: field %s should be %s"):format(where, k, ty))
    end
    for k in pairs(ev) do
      assert(k == "ev" or schema[k], ("%s: field %s is not in the schema"):format(where, k))
    end
    if ln == 1 then
      assert(ev.ev == "run", "the first line is the run header")
      n = ev.nodes
      for _, id in ipairs(ev.byzantine) do assert(math.type(id) == "integer" and id >= 0 and id < n) end
    else
      assert(ev.ev ~= "run", where .. ": a second run header")
      assert(ev.t >= last_t, where .. ": time goes back")
      last_t = ev.t
    end
    if ln == #lines then assert(ev.ev == "end", "the last line is the end") end
    if ev.node ~= nil and ev.node ~= NULL then
      assert(ev.node >= 0 and ev.node < n, where .. ": node out of range")
    end
    if ev.peer ~= nil then assert(ev.peer >= 0 and ev.peer < n, where .. ": peer out of range") end
    if ev.msg then
      local src = tonumber(ev.msg:match("^(%d+):%d+$"))
      assert(src, where .. ": msg is not src:seq")
      if ev.ev == "send" or ev.ev == "duplicate" then
        assert(src == ev.node, where .. ": a send's msg names its sender")
        assert(ev.arrive > ev.t, where .. ": arrives after it is sent")
        assert(sends[ev.msg] == nil, where .. ": msg id used twice")
        sends[ev.msg] = ev
      elseif ev.ev == "deliver" then
        local s = sends[ev.msg]
        assert(s, where .. ": delivered but never sent")
        assert(s.node == ev.peer and s.peer == ev.node, where .. ": delivered to another node")
        assert(ev.t >= s.arrive, where .. ": delivered before it arrives")
        assert(not delivered[ev.msg], where .. ": delivered twice")
        delivered[ev.msg] = true
      else
        local ok_reason = { loss = true, partition = true, down = true, overflow = true }
        assert(ok_reason[ev.reason], where .. ": unknown drop reason")
        if ev.reason == "loss" or ev.reason == "partition" then
          assert(src == ev.node, where .. ": dropped at the sender")
        else
          assert(src == ev.peer, where .. ": dropped at the receiver")
          assert(sends[ev.msg], where .. ": dropped at the receiver but never sent")
        end
      end
    end
    if ev.ev == "partition" then assert(#ev.group == n, where .. ": one group per node") end
    events[#events + 1] = ev
    kinds[ev.ev] = (kinds[ev.ev] or 0) + 1
  end
  return events, kinds
end

---------------------------------------------------------------- ShiViz

-- Check a --shiviz file against what ShiViz's default parser and its
-- graph builder require.  Returns the executions: { label, events }.
local function check_shiviz(path)
  local text = t.read(path)
  local execs, cur = {}, nil
  local lines = {}
  for l in (text .. (text:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local i = 1
  while i <= #lines do
    local label = lines[i]:match("^=== (.*) ===$")
    if label then
      cur = { label = label, events = {} }
      execs[#execs + 1] = cur
      i = i + 1
    else
      assert(cur, "the log starts with an execution delimiter line")
      local ev, hostline = lines[i], lines[i + 1]
      assert(hostline, ("line %d: an event without its host line"):format(i))
      -- ShiViz: (?<event>.*)\n(?<host>\S*) (?<clock>{.*})
      local host, clock = hostline:match("^(%S*) ({.*})$")
      assert(host, ("line %d: not 'host {clock}': %s"):format(i + 1, hostline))
      assert(not ev:match("^%S* {"), ("line %d: an event line that looks like a host line"):format(i))
      local ok, c = pcall(parse_json, clock)
      assert(ok and type(c) == "table", ("line %d: clock is not a JSON object"):format(i + 1))
      for h, v in pairs(c) do
        assert(h:match("^node%d+$"), "host names are nodeN")
        assert(math.type(v) == "integer" and v >= 1, "clock entries are positive integers")
      end
      cur.events[#cur.events + 1] = { text = ev, host = host, clock = c }
      i = i + 2
    end
  end
  for _, x in ipairs(execs) do
    local own, prev = {}, {}
    for k, e in ipairs(x.events) do
      local c = e.clock
      assert(c[e.host], ("%s event %d: its own host is missing from the clock"):format(x.label, k))
      -- own entry: 1, 2, 3 ... without a gap
      own[e.host] = (own[e.host] or 0) + 1
      t.eq(c[e.host], own[e.host], ("%s event %d (%s): own clock entry"):format(x.label, k, e.host))
      -- a host's clock never goes back
      for h, v in pairs(prev[e.host] or {}) do
        assert((c[h] or 0) >= v, ("%s event %d: clock entry %s went back"):format(x.label, k, h))
      end
      -- it never names an event not yet written
      for h, v in pairs(c) do
        assert(v <= (own[h] or 0), ("%s event %d: names %s:%d before that event"):format(x.label, k, h, v))
      end
      prev[e.host] = c
    end
    -- every host named in a clock has events of its own
    for _, e in ipairs(x.events) do
      for h in pairs(e.clock) do
        assert(own[h], ("%s: clock names %s, which has no events"):format(x.label, h))
      end
    end
  end
  return execs
end

local cases = {}

cases[#cases + 1] = { "trace: every line parses and follows the schema", function()
  local trace = tmp(".jsonl")
  local _, err = run_script(FAULTS, "--trace", trace)
  local _, kinds = check_trace(trace)
  for _, k in ipairs { "run", "send", "deliver", "drop", "duplicate", "timer", "decide", "crash",
                       "restart", "pause", "log", "error", "partition", "cut", "heal", "end" } do
    assert(kinds[k], "the scenario traced no '" .. k .. "' event (stderr: " .. err .. ")")
  end
  -- drop reasons
  local reasons = {}
  for _, ev in ipairs((check_trace(trace))) do
    if ev.ev == "drop" then reasons[ev.reason] = true end
  end
  for _, r in ipairs { "loss", "partition", "down", "overflow" } do
    assert(reasons[r], "no drop for reason " .. r)
  end
  os.remove(trace)
end }

cases[#cases + 1] = { "trace: the trace agrees with the report", function()
  local trace = tmp(".jsonl")
  local out = run_script(ROUNDS, "--trace", trace, "--json", "--nodes", "5")
  local _, kinds = check_trace(trace)
  local rep = parse_json(out:match("[^\n]+"))
  t.eq(kinds.send, rep.messages, "sends in the trace = messages in the report")
  t.eq(kinds.deliver, rep.delivered, "deliveries")
  t.eq(kinds.decide, 5, "decisions")
  os.remove(trace)
end }

cases[#cases + 1] = { "shiviz: clocks follow ShiViz's rules (faults, Byzantine, errors)", function()
  local trace, log = tmp(".jsonl"), tmp(".log")
  run_script(FAULTS, "--trace", trace, "--shiviz", log)
  local execs = check_shiviz(log)
  t.eq(#execs, 1, "one execution")
  t.has(execs[1].label, "Byzantine node1", "the label names the Byzantine node")
  -- one ShiViz event per node event of the trace
  local node_events = 0
  for _, ev in ipairs((check_trace(trace))) do
    if ev.node ~= nil and ev.node ~= NULL and ev.ev ~= "cut" and ev.ev ~= "heal" then
      node_events = node_events + 1
    end
  end
  t.eq(#execs[1].events, node_events, "events")
  os.remove(trace); os.remove(log)
end }

cases[#cases + 1] = { "shiviz: a delivery merges the sender's clock", function()
  local log = tmp(".log")
  local trace = tmp(".jsonl")
  run_script(ROUNDS, "--trace", trace, "--shiviz", log, "--quiet", "--rounds", "10")
  local execs = check_shiviz(log)
  -- find a delivery and the matching send; the delivery's clock covers it
  local send_clock = {}
  local checked = 0
  for _, e in ipairs(execs[1].events) do
    local msg = e.text:match("^t=[%d.]+ send %S+ to %S+ %(msg (%d+:%d+)")
    if msg then send_clock[msg] = e.clock end
    local dmsg = e.text:match("^t=[%d.]+ deliver %S+ from %S+ %(msg (%d+:%d+)")
    if dmsg then
      local sc = assert(send_clock[dmsg], "a delivery before its send")
      for h, v in pairs(sc) do assert((e.clock[h] or 0) >= v, "delivery clock covers the send") end
      checked = checked + 1
    end
  end
  assert(checked > 100, "deliveries checked: " .. checked)
  t.eq(#execs, 1, "one execution")
  os.remove(log); os.remove(trace)
end }

cases[#cases + 1] = { "shiviz: two runs, two executions; idle nodes never appear", function()
  local log = tmp(".log")
  local _, err, code = run_script(TWO_RUNS, "--shiviz", log, "--quiet", "--trace", tmp(".jsonl"))
  t.eq(code, 0, "exit (stderr: " .. err .. ")")
  local execs = check_shiviz(log)
  t.eq(#execs, 2, "executions")
  t.has(execs[1].label, "run 1", "label 1")
  t.has(execs[2].label, "run 2", "label 2")
  local text = t.read(log)
  assert(not text:find("node3", 1, true) and not text:find("node4", 1, true),
    "nodes with no events are not named")
  os.remove(log)
end }

cases[#cases + 1] = { "svg: well-formed, one lifeline per node, an arrow per message", function()
  local trace, svg = tmp(".jsonl"), tmp(".svg")
  run_script(FAULTS, "--trace", trace, "--svg", svg)
  local text = t.read(svg)
  local count = check_xml(text)
  t.eq(count.svg, 1, "one svg element")
  t.eq(count_of(text, 'class="lifeline"'), 5, "lifelines")
  local sends = 0
  for _, ev in ipairs((check_trace(trace))) do
    if ev.ev == "send" or ev.ev == "duplicate" or (ev.ev == "drop" and
        (ev.reason == "loss" or ev.reason == "partition")) then
      sends = sends + 1
    end
  end
  -- every message is drawn (self-messages as arcs, lost ones as stubs)
  t.eq(count_of(text, 'class="msg'), sends, "messages drawn")
  for _, needle in ipairs { "PING", "PONG", "node1 (byz)", 'class="partition"', 'class="cut"',
                            'class="mark decide"', 'class="mark crash"', 'class="mark restart"',
                            'class="mark timer"', 'class="mark error"', 'class="pause"' } do
    t.has(text, needle, "svg")
  end
  os.remove(trace); os.remove(svg)
end }

cases[#cases + 1] = { "svg: --svg alone (no --trace) draws the run", function()
  local svg = tmp(".svg")
  local _, err, code = run_script(ROUNDS, "--svg", svg, "--quiet")
  t.eq(code, 0, "exit (stderr: " .. err .. ")")
  local text = t.read(svg)
  check_xml(text)
  t.eq(count_of(text, 'class="lifeline"'), 4, "lifelines")
  t.eq(count_of(text, 'class="msg'), 4 * 4 * 5, "messages")
  t.has(text, "ODD (48)", "legend: type and count")
  t.has(text, "EVEN (32)", "legend: type and count")
  os.remove(svg)
end }

cases[#cases + 1] = { "svg: --window zooms into a span of virtual time", function()
  local trace, whole, part = tmp(".jsonl"), tmp(".svg"), tmp(".svg")
  run_script(ROUNDS, "--trace", trace, "--svg", whole, "--quiet")
  run_script(ROUNDS, "--svg", part, "--window", "20-40", "--quiet")
  local a, b = t.read(whole), t.read(part)
  check_xml(b)
  t.eq(count_of(b, 'class="lifeline"'), 4, "lifelines")
  t.has(b, "virtual time 20.000 to 40.000 ms", "the span")
  t.has(b, "window 20.000-40.000 ms", "the note")
  local na, nb = count_of(a, 'class="msg'), count_of(b, 'class="msg')
  assert(nb > 0 and nb < na, ("fewer messages in the window: %d of %d"):format(nb, na))
  -- the messages that touch [20, 40]: sent in it or in flight across it
  local expect = 0
  for _, ev in ipairs((check_trace(trace))) do
    if ev.ev == "send" and ev.t <= 40 and ev.arrive >= 20 then expect = expect + 1 end
  end
  t.eq(nb, expect, "messages drawn in the window")
  -- a narrow window: most messages cross it from edge to edge
  local narrow = tmp(".svg")
  run_script(ROUNDS, "--svg", narrow, "--window", "22-24", "--quiet")
  local nt = t.read(narrow)
  check_xml(nt)
  local across = 0
  for _, ev in ipairs((check_trace(trace))) do
    if ev.ev == "send" and ev.t <= 24 and ev.arrive >= 22 then across = across + 1 end
  end
  t.eq(count_of(nt, 'class="msg'), across, "messages drawn in the narrow window")
  os.remove(narrow)
  -- every drawn coordinate stays inside the plot area
  for x1, x2 in b:gmatch('<line class="msg" x1="([%d.]+)" y1="[%d.]+" x2="([%d.]+)"') do
    for _, x in ipairs { x1, x2 } do
      local v = tonumber(x)
      assert(v >= 120 - 0.05 and v <= 1170 + 0.05, "x inside the window: " .. x)
    end
  end
  local _, err, code = run_script(ROUNDS, "--svg", part, "--window", "40-20")
  assert(code ~= 0, "a window ending before it starts is an error")
  t.has(err, "--window", "stderr")
  os.remove(trace); os.remove(whole); os.remove(part)
end }

cases[#cases + 1] = { "svg: past 400 messages the picture says what it left out", function()
  local svg = tmp(".svg")
  local _, err, code = run_script(ROUNDS, "--nodes", "10", "--svg", svg, "--quiet")
  t.eq(code, 0, "exit (stderr: " .. err .. ")")
  local text = t.read(svg)
  check_xml(text)
  t.eq(count_of(text, 'class="lifeline"'), 10, "lifelines")
  t.eq(count_of(text, 'class="msg'), 400, "arrows drawn")
  t.has(text, "showing the first 400 of 500 messages", "the note")
  os.remove(svg)
end }

cases[#cases + 1] = { "svg: a second run goes to FILE-2.svg", function()
  local base = tmp("")
  local _, err, code = run_script(TWO_RUNS, "--svg", base .. ".svg", "--quiet")
  t.eq(code, 0, "exit (stderr: " .. err .. ")")
  check_xml(t.read(base .. ".svg"))
  local second = t.read(base .. "-2.svg")
  check_xml(second)
  t.has(second, "run 2", "the second run's title")
  os.remove(base .. ".svg"); os.remove(base .. "-2.svg")
end }

cases[#cases + 1] = { "the XML check itself rejects broken SVG", function()
  check_xml('<svg a="1"><g><text>a &amp; b</text></g><line/></svg>\n')
  for _, bad in ipairs {
    "<svg><g></svg>", "<svg></g></svg>", "<svg a=1/>", "<svg>a < b</svg>",
    "<svg>AT&T</svg>", "<svg/><svg/>", '<svg a="x<y"/>', "<svg>",
  } do
    assert(not pcall(check_xml, bad), "accepted: " .. bad)
  end
end }

cases[#cases + 1] = { "viz: window parsing and colour off the terminal", function()
  local viz = require "consensus.viz"
  local w = viz.parse_window("100-250")
  t.eq(w.from, 100, "from"); t.eq(w.to, 250, "to")
  w = viz.parse_window("100-")
  t.eq(w.from, 100, "open end"); t.eq(w.to, nil, "open end")
  for _, bad in ipairs { "x", "250-100", "-", "1-2-3" } do
    local r, msg = viz.parse_window(bad)
    t.eq(r, nil, "bad window " .. bad)
    t.has(msg, "--window", "message")
  end
end }

cases[#cases + 1] = { "viz: colour only on a terminal and never with NO_COLOR", function()
  local path = t.temp_script('io.write(require("consensus.viz").color("OK", "ok"), "\\n")\n')
  local out = t.run(t.quote(t.host) .. " " .. t.quote(path))
  t.eq(out, "OK\n", "plain into a pipe")
  -- script(1) (util-linux) gives the host a terminal, where there are ptys.
  local _, _, has_pty = t.run("script -qec true /dev/null")
  if has_pty == 0 then
    local cmd = "script -qec " .. t.quote(t.quote(t.host) .. " " .. t.quote(path)) .. " /dev/null"
    local tty = t.run("env -u NO_COLOR TERM=xterm " .. cmd)
    t.has(tty, "\27[32mOK\27[0m", "coloured on a terminal")
    local nc = t.run("NO_COLOR=1 TERM=xterm " .. cmd)
    t.has(nc, "OK", "NO_COLOR output")
    assert(not nc:find("\27", 1, true), "no escape codes with NO_COLOR")
  end
  os.remove(path)
end }

t.cases(cases)
