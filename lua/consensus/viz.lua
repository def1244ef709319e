-- consensus.viz: pictures of a run, drawn from its trace (docs/trace.md).
--
--   --shiviz FILE  a log for ShiViz: each traced event of a node becomes a
--                  ShiViz event with a vector clock; a delivery merges the
--                  clock its sender had when it sent.
--   --svg FILE     a space-time diagram: one lifeline per node, an arrow
--                  per message coloured by type, crosses for drops, marks
--                  for decisions, timers, crashes, restarts and pauses,
--                  partitions shaded, Byzantine nodes marked.
--
-- Both read the JSON Lines trace once, front to back, without loading it:
-- ShiViz keeps one clock per node and one per message in flight; the SVG
-- keeps at most MAX_MESSAGES arrows and MAX_MARKS marks (past that it
-- draws the beginning and says so in the picture).  Several runs in one
-- process go to one ShiViz file, one execution each, and to numbered SVG
-- files (run.svg, run-2.svg, ...).

local M = {}

local error, ipairs, pairs, pcall, select = error, ipairs, pairs, pcall, select
local tonumber, tostring, type = tonumber, tostring, type
local concat, sort = table.concat, table.sort
local format, byte, sub, find, match, gsub =
  string.format, string.byte, string.sub, string.find, string.match, string.gsub
local floor, max, min, log, huge = math.floor, math.max, math.min, math.log, math.huge
local math_type = math.type
local utf8_char, utf8_len = utf8.char, utf8.len
local io_open = io.open
local os_getenv, os_execute = os.getenv, os.execute
local require = require

local _ENV = nil

local MAX_MESSAGES = 400        -- arrows drawn before the picture stops
local MAX_MARKS = 3000          -- timer, log, decision ... marks likewise

---------------------------------------------------------------- JSON

-- A small JSON decoder for trace lines.  null is M.null inside arrays
-- (so lists keep their length) and absent inside objects.
local null = {}
M.null = null

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b",
                  f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode(s)
  local pos = 1
  local value

  local function fail(what)
    error(format("bad JSON at byte %d: %s", pos, what), 0)
  end

  local function skip()
    pos = find(s, "[^ \t\r\n]", pos) or #s + 1
  end

  local function string_at()
    local parts, i = {}, pos + 1
    while true do
      local j = find(s, '["\\%c]', i)
      if not j then fail("unterminated string") end
      parts[#parts + 1] = sub(s, i, j - 1)
      local c = byte(s, j)
      if c == 34 then
        pos = j + 1
        return concat(parts)
      elseif c ~= 92 then
        pos = j
        fail("control character in a string")
      end
      local e = sub(s, j + 1, j + 1)
      if e == "u" then
        local cp = tonumber(sub(s, j + 2, j + 5), 16)
        if not cp or #sub(s, j + 2, j + 5) < 4 then pos = j; fail("bad \\u escape") end
        local used = 6
        if cp >= 0xD800 and cp < 0xDC00 and sub(s, j + 6, j + 7) == "\\u" then
          local lo = tonumber(sub(s, j + 8, j + 11), 16)
          if lo and lo >= 0xDC00 and lo < 0xE000 then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            used = 12
          end
        end
        parts[#parts + 1] = utf8_char(cp)
        i = j + used
      else
        local r = escapes[e]
        if not r then pos = j; fail("bad escape") end
        parts[#parts + 1] = r
        i = j + 2
      end
    end
  end

  function value()
    skip()
    local c = sub(s, pos, pos)
    if c == "{" then
      local obj = {}
      pos = pos + 1
      skip()
      if sub(s, pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        skip()
        if sub(s, pos, pos) ~= '"' then fail("expected a key") end
        local k = string_at()
        skip()
        if sub(s, pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        local v = value()
        if v ~= null then obj[k] = v end
        skip()
        c = sub(s, pos, pos)
        pos = pos + 1
        if c == "}" then return obj end
        if c ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      local arr = {}
      pos = pos + 1
      skip()
      if sub(s, pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value()
        skip()
        c = sub(s, pos, pos)
        pos = pos + 1
        if c == "]" then return arr end
        if c ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
      end
    elseif c == '"' then
      return string_at()
    elseif c == "t" and sub(s, pos, pos + 3) == "true" then
      pos = pos + 4
      return true
    elseif c == "f" and sub(s, pos, pos + 4) == "false" then
      pos = pos + 5
      return false
    elseif c == "n" and sub(s, pos, pos + 3) == "null" then
      pos = pos + 4
      return null
    else
      local num = match(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      local v = num and tonumber(num)
      if v == nil then fail("unexpected '" .. c .. "'") end
      pos = pos + #num
      return v
    end
  end

  local v = value()
  skip()
  if pos <= #s then fail("trailing characters") end
  return v
end
M.decode = decode

-- Iterate over a trace file: for ev, lineno in trace_events(path).
-- skip(line), when given, may take a line on its own (return true) so
-- that it is not decoded.
local function trace_events(path, skip)
  local f, err = io_open(path, "r")
  if not f then error("cannot read trace " .. tostring(err), 0) end
  local n = 0
  return function()
    local line
    repeat
      line = f:read("l")
      if line ~= nil and line ~= "" then n = n + 1 end
    until line == nil or (line ~= "" and not (skip and skip(line)))
    if line == nil then
      f:close()
      return nil
    end
    local ok, ev = pcall(decode, line)
    if not ok or type(ev) ~= "table" then
      f:close()
      error(format("%s:%d: %s", path, n, ok and "not an object" or ev), 0)
    end
    return ev, n
  end
end
M.trace_events = trace_events

---------------------------------------------------------------- helpers

-- Text safe for one line of a log: no line breaks, valid UTF-8.
local function one_line(s)
  s = gsub(tostring(s), "[%c]", " ")
  if not utf8_len(s) then s = gsub(s, "[\128-\255]", "?") end
  return s
end

local function fmt_ms(t)
  if t == nil then return "?" end
  return format("%.3f", t)
end

-- A short text for a decided value (JSON-like).
local function show_value(v, depth)
  depth = depth or 0
  if v == nil or v == null then return "null" end
  if type(v) == "string" then return format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 2 then return "{...}" end
  local parts, keys = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for i, k in ipairs(keys) do
    if i > 8 then parts[#parts + 1] = "..."; break end
    local key = math_type(k) == "integer" and "" or (tostring(k) .. "=")
    parts[#parts + 1] = key .. show_value(v[k], depth + 1)
  end
  return "{" .. concat(parts, ",") .. "}"
end

local function host(id) return "node" .. tostring(id) end

---------------------------------------------------------------- window

-- "FROM-TO" in ms -> { from =, to = } (either may be nil: "100-",
-- "-250"), or nil and a message.
function M.parse_window(s)
  local a, b = match(tostring(s), "^%s*([%d%.]*)%s*%-%s*([%d%.]*)%s*$")
  local from, to = tonumber(a), tonumber(b)
  if a == nil or (a ~= "" and from == nil) or (b ~= "" and to == nil)
      or (from == nil and to == nil) then
    return nil, format("--window needs FROM-TO in ms (e.g. 100-250), got '%s'", tostring(s))
  end
  if from and to and to <= from then
    return nil, format("--window: the end (%s) must come after the start (%s)", b, a)
  end
  return { from = from, to = to }
end

---------------------------------------------------------------- ShiViz

-- The regular expressions to type into ShiViz (docs/trace.md).
M.SHIVIZ_PARSER = [[(?<event>.*)\n(?<host>\S*) (?<clock>{.*})]]
M.SHIVIZ_DELIMITER = [[^=== (?<trace>.*) ===$]]

local function clock_json(c)
  local ids = {}
  for id in pairs(c) do ids[#ids + 1] = id end
  sort(ids)
  for i, id in ipairs(ids) do ids[i] = format('"node%d":%d', id, c[id]) end
  return "{" .. concat(ids, ",") .. "}"
end

-- Write one execution: a "=== label ===" line, then two lines per event
-- (the event, then "nodeN {clock}").  Returns the number of events.
function M.shiviz(trace_path, out, label)
  local clocks, sent, count = {}, {}, 0
  out:write("=== ", one_line(label), " ===\n")

  -- A node's event: its own entry counts its events from 1.
  local function event(id, t, text)
    local c = clocks[id]
    if c == nil then c = {}; clocks[id] = c end
    c[id] = (c[id] or 0) + 1
    count = count + 1
    out:write("t=", fmt_ms(t), " ", one_line(text), "\n", host(id), " ", clock_json(c), "\n")
    return c
  end

  local function copy(c)
    local r = {}
    for k, v in pairs(c) do r[k] = v end
    return r
  end

  for ev in trace_events(trace_path) do
    local k, id, t = ev.ev, ev.node, ev.t
    local kind = ev.type or "(untyped)"
    if k == "send" or k == "duplicate" then
      local c = event(id, t, format("%s %s to %s (msg %s, %d B, arrives %s)",
        k, kind, host(ev.peer), ev.msg, ev.size or 0, fmt_ms(ev.arrive)))
      sent[ev.msg] = copy(c)
    elseif k == "deliver" then
      -- Merge the sender's clock at the send, then tick.
      local c = clocks[id]
      if c == nil then c = {}; clocks[id] = c end
      local s = sent[ev.msg]
      if s then
        for h, v in pairs(s) do
          if (c[h] or 0) < v then c[h] = v end
        end
        sent[ev.msg] = nil
      end
      event(id, t, format("deliver %s from %s (msg %s, %d B)", kind, host(ev.peer),
        ev.msg, ev.size or 0))
    elseif k == "drop" then
      local r = ev.reason or "unknown"
      if r == "down" or r == "overflow" then
        -- Lost at the receiver: a local event there, nothing merged.
        sent[ev.msg] = nil
        event(id, t, format("lost %s from %s (msg %s, %s)", kind, host(ev.peer), ev.msg,
          r == "down" and "node crashed" or "inbox full"))
      else
        event(id, t, format("drop %s to %s (msg %s, %s)", kind, host(ev.peer), ev.msg, r))
      end
    elseif k == "timer" then
      event(id, t, "timer " .. tostring(ev.name))
    elseif k == "decide" then
      event(id, t, format("decide slot %s = %s", tostring(ev.slot), show_value(ev.value)))
    elseif k == "crash" or k == "restart" then
      event(id, t, k)
    elseif k == "pause" then
      event(id, t, format("pause for %s ms", fmt_ms(ev.ms)))
    elseif k == "log" then
      event(id, t, "log: " .. tostring(ev.text))
    elseif k == "error" then
      event(id, t, "error: " .. match(tostring(ev.message), "^[^\n]*"))
    end
    -- run, end, partition, cut and heal belong to no node: not events.
  end
  return count
end

---------------------------------------------------------------- SVG

-- Message type colours (no red: red marks drops).
local PALETTE = {
  "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
  "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31",
}
M.PALETTE = PALETTE
local DROP = "#d62728"
local BYZ = "#c0392b"

local function xml(s)
  s = one_line(s)
  return (gsub(s, "[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                ['"'] = "&quot;", ["'"] = "&#39;" }))
end

local function clip_text(s, n)
  s = one_line(s)
  if #s > n then s = sub(s, 1, n - 1) .. "~" end
  return s
end

-- A step for about 'want' ticks over 'span': 1, 2 or 5 times a power of 10.
local function tick_step(span, want)
  local raw = span / want
  local mag = 10 ^ floor(log(raw, 10))
  for _, m in ipairs { 1, 2, 5, 10 } do
    if m * mag >= raw then return m * mag end
  end
  return 10 * mag
end

local function num(v) return format("%.1f", v) end

-- Read the trace and collect what the picture shows.
local function collect(trace_path, from, to)
  local d = {
    header = nil, end_t = nil, last_t = 0,
    arrows = {}, by_msg = {}, early = {}, marks = {}, spans = {},
    types = {}, sent_in_window = 0, drawn = 0, marks_left_out = 0,
    cutoff = nil,
  }
  local lo = from or -huge
  local function hi() return d.cutoff or to or huge end
  local open_part, open_cut                  -- spans still open

  local function add_mark(m)
    if m.t < lo or m.t > hi() then return end
    if #d.marks >= MAX_MARKS then
      d.marks_left_out = d.marks_left_out + 1
      return
    end
    d.marks[#d.marks + 1] = m
  end

  local function new_arrow(ev, kind)
    local a = { src = ev.node, dst = ev.peer, type = ev.type or "(untyped)", t0 = ev.t,
                t1 = ev.arrive, kind = kind, msg = ev.msg, size = ev.size }
    return a
  end

  local function take(a)
    if d.drawn >= MAX_MESSAGES then return false end
    d.drawn = d.drawn + 1
    d.arrows[#d.arrows + 1] = a
    if a.msg then d.by_msg[a.msg] = a end
    d.types[a.type] = (d.types[a.type] or 0) + 1
    return true
  end

  -- Past the end of the picture most lines need no decoding: a send is
  -- counted, a delivery matters only for an arrow drawn, marks are out.
  local SPAN = { crash = true, restart = true, partition = true, cut = true, heal = true,
                 ["end"] = true }
  local function skip(line)
    local limit = d.cutoff or to
    if limit == nil then return false end
    local t = tonumber(match(line, '^{"t":([%d.]+)'))
    if t == nil or t <= limit then return false end
    d.last_t = max(d.last_t, t)
    local k = match(line, '"ev":"(%a+)"')
    if SPAN[k] then return false end
    local reason = k == "drop" and match(line, '"reason":"(%a+)"')
    if k == "send" or k == "duplicate" or reason == "loss" or reason == "partition" then
      if t <= (to or huge) then d.sent_in_window = d.sent_in_window + 1 end
      return true
    end
    if k == "deliver" or k == "drop" then
      local msg = match(line, '"msg":"([^"]*)"')
      return d.by_msg[msg] == nil and d.early[msg] == nil
    end
    return true
  end

  for ev in trace_events(trace_path, skip) do
    local k, t = ev.ev, ev.t
    if t then d.last_t = max(d.last_t, t) end
    if k == "run" then
      d.header = ev
    elseif k == "end" then
      d.end_t = t
    elseif k == "send" or k == "duplicate" or (k == "drop" and
        (ev.reason == "loss" or ev.reason == "partition")) then
      local kind = k == "drop" and "lost" or k
      if t < lo then
        -- Sent before the window: drawn only if it lands inside.
        if kind ~= "lost" and ev.arrive and ev.arrive >= lo then
          d.early[ev.msg] = new_arrow(ev, kind)
        end
      elseif t <= (to or huge) then
        d.sent_in_window = d.sent_in_window + 1
        if d.cutoff == nil then
          if d.drawn < MAX_MESSAGES then
            take(new_arrow(ev, kind))
          else
            d.cutoff = t        -- the picture ends here
          end
        end
      end
    elseif k == "deliver" or k == "drop" then
      -- The end of a message: delivered, or lost at a crashed node or a
      -- full inbox.
      local a = d.by_msg[ev.msg]
      if a == nil and d.early[ev.msg] then
        -- Sent before the window, ends in it or after it: drawn.
        a = d.early[ev.msg]
        d.early[ev.msg] = nil
        if t < lo or not take(a) then a = nil end
      end
      if a then
        a.t1 = t
        a.done = k == "deliver" and "delivered" or "dropped"
        d.by_msg[ev.msg] = nil
      end
    elseif k == "timer" then
      add_mark { kind = "timer", node = ev.node, t = t, text = "timer " .. tostring(ev.name) }
    elseif k == "decide" then
      add_mark { kind = "decide", node = ev.node, t = t,
                 text = format("decide slot %s = %s", tostring(ev.slot), show_value(ev.value)),
                 label = show_value(ev.value) }
    elseif k == "crash" or k == "restart" then
      add_mark { kind = k, node = ev.node, t = t, text = k }
      -- Crash spans are drawn on the lifeline whatever the window.
      d.down = d.down or {}
      if k == "crash" then
        d.down[#d.down + 1] = { node = ev.node, t0 = t }
      else
        for i = #d.down, 1, -1 do
          local s = d.down[i]
          if s.node == ev.node and s.t1 == nil then s.t1 = t; break end
        end
      end
    elseif k == "pause" then
      d.pauses = d.pauses or {}
      d.pauses[#d.pauses + 1] = { node = ev.node, t0 = t, t1 = t + (ev.ms or 0) }
      add_mark { kind = "pause", node = ev.node, t = t, text = format("pause %s ms", fmt_ms(ev.ms)) }
    elseif k == "log" then
      add_mark { kind = "log", node = ev.node, t = t, text = "log: " .. tostring(ev.text) }
    elseif k == "error" then
      add_mark { kind = "error", node = ev.node, t = t,
                 text = "error: " .. match(tostring(ev.message), "^[^\n]*") }
    elseif k == "partition" or k == "cut" then
      -- A partition replaces the one before; a cut adds to what there is.
      if k == "partition" and open_part then open_part.t1 = t end
      local s = { kind = k, t0 = t, group = ev.group }
      d.spans[#d.spans + 1] = s
      if k == "partition" then
        open_part = s
      else
        open_cut = open_cut or {}
        open_cut[#open_cut + 1] = s
      end
    elseif k == "heal" then
      if open_part then open_part.t1 = t; open_part = nil end
      for _, s in ipairs(open_cut or {}) do s.t1 = t end
      open_cut = nil
    end
  end
  -- Sent before the window and never delivered: in flight across it.
  local rest = {}
  for _, a in pairs(d.early) do rest[#rest + 1] = a end
  sort(rest, function(a, b)
    if a.t0 ~= b.t0 then return a.t0 < b.t0 end
    return a.msg < b.msg
  end)
  for _, a in ipairs(rest) do take(a) end
  d.early = {}
  return d
end

-- The SVG text of a run's trace.  opts: window = "FROM-TO" (ms), title.
function M.svg(trace_path, opts)
  opts = opts or {}
  local from, to
  if opts.window then
    local win, err = M.parse_window(opts.window)
    if not win then error(err, 0) end
    from, to = win.from, win.to
  end
  local d = collect(trace_path, from, to)
  local hdr = d.header or {}
  local n = hdr.nodes or opts.nodes or 0
  if n == 0 then
    for _, a in ipairs(d.arrows) do n = max(n, a.src + 1, a.dst + 1) end
  end
  local byz = {}
  for _, id in ipairs(hdr.byzantine or {}) do byz[id] = true end
  local end_t = d.end_t or d.last_t
  local t0 = from or 0
  local t1 = d.cutoff or to or end_t
  if t1 <= t0 then t1 = t0 + 1 end

  -- Layout: title, legend, then the rows, then the time axis.
  local W = 1200
  local left, right = 120, 30
  local pw = W - left - right
  local rh = max(10, min(80, floor(560 / max(n, 1))))
  local font = rh >= 16 and 12 or 9

  local tnames = {}
  for name in pairs(d.types) do tnames[#tnames + 1] = name end
  sort(tnames)
  local color, dash = {}, {}
  for i, name in ipairs(tnames) do
    color[name] = PALETTE[(i - 1) % #PALETTE + 1]
    local round = (i - 1) // #PALETTE
    if round == 1 then dash[name] = "6 3" elseif round > 1 then dash[name] = "2 2" end
  end

  local out = {}
  local function w(...) for i = 1, select("#", ...) do out[#out + 1] = select(i, ...) end end

  -- Legend rows: the types (with their counts), then the marks.
  local legend_items = {}
  for _, name in ipairs(tnames) do
    legend_items[#legend_items + 1] = { kind = "type", name = name,
      text = format("%s (%d)", clip_text(name, 24), d.types[name]) }
  end
  -- Only the kinds of marks the picture has.
  local present = {}
  for _, m in ipairs(d.marks) do present[m.kind] = true end
  for _, a in ipairs(d.arrows) do
    if a.kind == "lost" or a.done == "dropped" then present.drop = true end
    if a.kind == "duplicate" then present.duplicate = true end
  end
  for _, s in ipairs(d.spans) do present[s.kind] = true end
  if #(hdr.byzantine or {}) > 0 then present.byz = true end
  for _, it in ipairs {
    { kind = "decide", text = "decision" }, { kind = "timer", text = "timer" },
    { kind = "crash", text = "crash" }, { kind = "restart", text = "restart" },
    { kind = "drop", text = "dropped message" }, { kind = "duplicate", text = "duplicate" },
    { kind = "pause", text = "pause" }, { kind = "error", text = "handler error" },
    { kind = "log", text = "log" }, { kind = "partition", text = "partition" },
    { kind = "cut", text = "cut" }, { kind = "byz", text = "Byzantine node" },
  } do
    if present[it.kind] then legend_items[#legend_items + 1] = it end
  end
  local per_row = 6
  local legend_rows = (#legend_items + per_row - 1) // per_row
  local top = 58 + legend_rows * 20 + 14
  local ph = n * rh
  local H = top + ph + 44

  local function x_of(t) return left + (t - t0) / (t1 - t0) * pw end
  local function y_of(id) return top + id * rh + rh / 2 end

  w(format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
      'font-family="sans-serif" font-size="%d">\n',
    W, H, W, H, font))
  local title = opts.title or "consensus-lua run"
  w("<title>", xml(title), "</title>\n")
  -- Arrowheads, one per colour (SVG 1.1 markers cannot take the line's).
  w("<defs>\n")
  for i, c in ipairs(PALETTE) do
    w(format('<marker id="h%d" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" ' ..
        'orient="auto"><path d="M0,0L8,4L0,8z" fill="%s"/></marker>\n', i, c))
  end
  w('<pattern id="cut" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' ..
    '<rect width="8" height="8" fill="#f3e8fb"/>' ..
    '<line x1="0" y1="0" x2="0" y2="8" stroke="#c9a6e4" stroke-width="3"/></pattern>\n')
  w("</defs>\n")
  w(format('<rect width="%d" height="%d" fill="#ffffff"/>\n', W, H))

  -- Title lines.
  local sub1 = format("seed %s, %d nodes, %s faulty%s", tostring(hdr.seed or "?"), n,
    tostring(hdr.faulty or "?"),
    #(hdr.byzantine or {}) > 0 and (", Byzantine: " .. concat(hdr.byzantine, ", ")) or "")
  w(format('<text x="12" y="22" font-size="16" font-weight="bold">%s</text>\n', xml(title)))
  local span = format("virtual time %s to %s ms", fmt_ms(t0), fmt_ms(t1))
  local note
  if d.cutoff then
    note = format("showing the first %d of %d messages (up to t = %s ms); use --window FROM-TO to see more",
      d.drawn, d.sent_in_window, fmt_ms(d.cutoff))
  elseif from or to then
    note = format("window %s-%s ms of a %s ms run: %d messages sent in it", fmt_ms(t0),
      fmt_ms(to or end_t), fmt_ms(end_t), d.sent_in_window)
  else
    note = format("%d messages", d.sent_in_window)
  end
  if d.marks_left_out > 0 then
    note = note .. format("; %d marks left out", d.marks_left_out)
  end
  w(format('<text x="12" y="40" font-size="12">%s; %s</text>\n', xml(sub1), xml(span)))
  w(format('<text id="note" x="12" y="56" font-size="12" fill="%s">%s</text>\n',
    d.cutoff and "#b03a2e" or "#333333", xml(note)))

  -- Mark shapes, shared by the picture and the legend.
  local function mark_shape(kind, x, y, s)
    if kind == "decide" then
      return format('<path d="M%s,%sL%s,%sL%s,%sL%s,%sz" fill="#f2c200" stroke="#6b5200" stroke-width="1"/>',
        num(x), num(y - s), num(x + s), num(y), num(x), num(y + s), num(x - s), num(y))
    elseif kind == "timer" then
      return format('<circle cx="%s" cy="%s" r="%s" fill="#ffffff" stroke="#555555" stroke-width="1.2"/>',
        num(x), num(y), num(s * 0.6))
    elseif kind == "crash" then
      return format('<rect x="%s" y="%s" width="%s" height="%s" fill="#000000"/>',
        num(x - s * 0.7), num(y - s * 0.7), num(s * 1.4), num(s * 1.4))
    elseif kind == "restart" then
      return format('<path d="M%s,%sL%s,%sL%s,%sz" fill="#1a9641"/>',
        num(x - s * 0.7), num(y - s), num(x + s), num(y), num(x - s * 0.7), num(y + s))
    elseif kind == "drop" then
      return format('<path d="M%s,%sL%s,%sM%s,%sL%s,%s" stroke="%s" stroke-width="2"/>',
        num(x - s * 0.6), num(y - s * 0.6), num(x + s * 0.6), num(y + s * 0.6),
        num(x - s * 0.6), num(y + s * 0.6), num(x + s * 0.6), num(y - s * 0.6), DROP)
    elseif kind == "pause" then
      return format('<rect x="%s" y="%s" width="%s" height="%s" fill="#f39c12" fill-opacity="0.7"/>',
        num(x - s), num(y - 3), num(2 * s), "6")
    elseif kind == "error" then
      return format('<circle cx="%s" cy="%s" r="%s" fill="%s"/><text x="%s" y="%s" fill="#ffffff" font-size="%d" ' ..
          'font-weight="bold" text-anchor="middle">!</text>',
        num(x), num(y), num(s * 0.8), DROP, num(x), num(y + s * 0.5), floor(s * 1.4))
    elseif kind == "log" then
      return format('<rect x="%s" y="%s" width="2" height="%s" fill="#2c3e50"/>',
        num(x - 1), num(y - s * 0.8), num(s * 1.6))
    end
    return ""
  end

  -- Legend.
  w('<g id="legend">\n')
  for i, it in ipairs(legend_items) do
    local col, row = (i - 1) % per_row, (i - 1) // per_row
    local x, y = 12 + col * 195, 66 + row * 20
    if it.kind == "type" then
      w(format('<rect class="swatch" x="%d" y="%d" width="18" height="10" fill="%s"/>', x, y + 2, color[it.name]))
    elseif it.kind == "partition" then
      w(format('<rect x="%d" y="%d" width="18" height="12" fill="#fde9c8" stroke="#e0a040"/>', x, y + 1))
    elseif it.kind == "cut" then
      w(format('<rect x="%d" y="%d" width="18" height="12" fill="url(#cut)" stroke="#9b59b6"/>', x, y + 1))
    elseif it.kind == "duplicate" then
      w(format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#555555" stroke-width="1.5" stroke-dasharray="5 ' ..
          '2"/>', x, y + 7, x + 18, y + 7))
    elseif it.kind == "byz" then
      w(format('<rect x="%d" y="%d" width="18" height="12" fill="#fbe3e0" stroke="%s"/>', x, y + 1, BYZ))
    else
      w(mark_shape(it.kind, x + 9, y + 7, 6))
    end
    w(format('<text x="%d" y="%d">%s</text>\n', x + 24, y + 11, xml(it.text)))
  end
  w("</g>\n")

  -- Byzantine rows are tinted.
  for id = 0, n - 1 do
    if byz[id] then
      w(format('<rect class="byzantine" x="%d" y="%s" width="%d" height="%d" fill="#fbe3e0"/>\n',
        left, num(y_of(id) - rh / 2 + 1), pw, rh - 2))
    end
  end

  -- Shaded spans: partitions and cuts, clipped to the picture.
  local function clamp_x(t) return x_of(max(t0, min(t1, t))) end
  w('<g id="faults">\n')
  for _, s in ipairs(d.spans) do
    local a, b = s.t0, s.t1 or end_t
    if b >= t0 and a <= t1 then
      local xa, xb = clamp_x(a), clamp_x(b)
      local desc = s.kind
      if s.group then
        local groups, order = {}, {}
        for id, g in ipairs(s.group) do
          if not groups[g] then groups[g] = {}; order[#order + 1] = g end
          local list = groups[g]
          list[#list + 1] = id - 1
        end
        sort(order)
        local parts = {}
        for _, g in ipairs(order) do parts[#parts + 1] = "{" .. concat(groups[g], ",") .. "}" end
        desc = "partition " .. concat(parts, " ")
      end
      desc = format("%s from %s to %s ms", desc, fmt_ms(a), s.t1 and fmt_ms(b) or "the end")
      w(format('<rect class="%s" x="%s" y="%d" width="%s" height="%d" fill="%s" fill-opacity="0.55" stroke="%s" ' ..
          'stroke-width="0.5"><title>%s</title></rect>\n',
        s.kind, num(xa), top - 4, num(max(1, xb - xa)), ph + 8,
        s.kind == "cut" and "url(#cut)" or "#fbd9a0",
        s.kind == "cut" and "#9b59b6" or "#e0a040", xml(desc)))
      w(format('<text x="%s" y="%d" font-size="10" fill="#8a5a00">%s</text>\n', num(xa + 2), top - 6,
        xml(clip_text(desc, max(4, floor((xb - xa) / 6))))))
    end
  end
  w("</g>\n")

  -- Lifelines, Byzantine rows tinted; a crashed node's line is dotted
  -- until it restarts.
  w('<g id="lifelines">\n')
  for id = 0, n - 1 do
    local y = y_of(id)
    w(format('<line class="lifeline" data-node="%d" x1="%d" y1="%s" x2="%d" y2="%s" stroke="%s" stroke-width="1.5"/>\n',
      id, left, num(y), left + pw, num(y), byz[id] and BYZ or "#444444"))
    w(format('<text x="%d" y="%s" text-anchor="end" fill="%s"%s>%s</text>\n', left - 8,
      num(y + font / 3), byz[id] and BYZ or "#000000", byz[id] and ' font-weight="bold"' or "",
      xml(host(id) .. (byz[id] and " (byz)" or ""))))
  end
  for _, s in ipairs(d.down or {}) do
    local a, b = s.t0, s.t1 or end_t
    if b >= t0 and a <= t1 then
      local y = y_of(s.node)
      w(format('<line class="down" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#ffffff" stroke-width="3"/>',
        num(clamp_x(a)), num(y), num(clamp_x(b)), num(y)))
      w(format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#999999" stroke-width="1.5" stroke-dasharray="2 4"/>\n',
        num(clamp_x(a)), num(y), num(clamp_x(b)), num(y)))
    end
  end
  for _, s in ipairs(d.pauses or {}) do
    if s.t1 >= t0 and s.t0 <= t1 then
      local y = y_of(s.node)
      w(format('<rect class="pause" x="%s" y="%s" width="%s" height="6" fill="#f39c12" fill-opacity="0.6">' ..
          '<title>%s</title></rect>\n',
        num(clamp_x(s.t0)), num(y - 3), num(max(1, clamp_x(s.t1) - clamp_x(s.t0))),
        xml(format("%s paused from %s to %s ms", host(s.node), fmt_ms(s.t0), fmt_ms(s.t1)))))
    end
  end
  w("</g>\n")

  -- Time axis.
  local axis_y = top + ph + 6
  w('<g id="axis">\n')
  w(format('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000000"/>\n', left, axis_y, left + pw, axis_y))
  local step = tick_step(t1 - t0, 10)
  local first = floor(t0 / step + 0.999999) * step
  local k = 0
  while first + k * step <= t1 + step * 1e-9 and k < 100 do
    local t = first + k * step
    local x = x_of(t)
    w(format('<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#000000"/>', num(x), axis_y, num(x), axis_y + 5))
    w(format('<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#eeeeee"/>', num(x), top, num(x), top + ph))
    w(format('<text x="%s" y="%d" text-anchor="middle">%s</text>\n', num(x), axis_y + 18,
      xml(format("%g", floor(t * 1000 + 0.5) / 1000))))
    k = k + 1
  end
  w(format('<text x="%d" y="%d" text-anchor="end">ms</text>\n', left + pw, axis_y + 34))
  w("</g>\n")

  -- Messages.
  w('<g id="messages" fill="none" stroke-width="1.3">\n')
  local pal_index = {}
  for i, c in ipairs(PALETTE) do pal_index[c] = i end
  local sorted_arrows = d.arrows
  for _, a in ipairs(sorted_arrows) do
    local c = color[a.type]
    local ys, yd = y_of(a.src), y_of(a.dst)
    local ta, tb = a.t0, a.t1 or a.t0
    local dasharray = dash[a.type]
    if a.kind == "duplicate" then dasharray = "5 2" end
    local about = format("%s %s -> %s, sent %s ms", a.type, host(a.src), host(a.dst), fmt_ms(a.t0))
    if a.kind == "lost" then
      -- Lost at the sender: a stub towards the receiver and a cross.
      local x = x_of(ta)
      local dy = (yd - ys) * 0.3
      if a.src == a.dst then dy = -rh * 0.3 end
      local x2, y2 = x + 10, ys + dy
      w(format('<g class="msg lost"><title>%s, lost (%s)</title><line x1="%s" y1="%s" x2="%s" y2="%s" ' ..
          'stroke="%s"/>%s</g>\n',
        xml(about), "loss or partition", num(x), num(ys), num(x2), num(y2), c, mark_shape("drop", x2, y2, 4)))
    else
      local status
      if a.done == "delivered" then
        status = format(", delivered %s ms", fmt_ms(tb))
      elseif a.done == "dropped" then
        status = format(", lost at %s ms (receiver down or inbox full)", fmt_ms(tb))
      else
        status = format(", due %s ms, not delivered by the end", fmt_ms(tb))
        dasharray = "1 3"
      end
      -- Clip to [t0, t1], moving along the line.
      local ca, cb = max(ta, t0), min(tb, t1)
      local function y_at(t)
        if tb == ta then return yd end
        return ys + (yd - ys) * (t - ta) / (tb - ta)
      end
      local inside = tb <= t1 and a.done ~= nil
      local head = (inside and a.done == "delivered") and format(' marker-end="url(#h%d)"', pal_index[c]) or ""
      local style = format('stroke="%s"%s%s', c, dasharray and format(' stroke-dasharray="%s"', dasharray) or "", head)
      if a.src == a.dst then
        -- A loop above the lifeline, at least 6 px wide.
        local x1, x2 = x_of(ca), x_of(cb)
        if x2 - x1 < 6 then
          if x1 + 6 <= left + pw then x2 = x1 + 6 else x1 = x2 - 6 end
        end
        local y = ys
        w(format('<path class="msg" d="M%s,%sC%s,%s %s,%s %s,%s" %s><title>%s%s</title></path>\n',
          num(x1), num(y), num(x1), num(y - rh * 0.7), num(x2), num(y - rh * 0.7), num(x2), num(y),
          style, xml(about), xml(status)))
      else
        w(format('<line class="msg" x1="%s" y1="%s" x2="%s" y2="%s" %s><title>%s%s</title></line>\n',
          num(x_of(ca)), num(y_at(ca)), num(x_of(cb)), num(y_at(cb)), style, xml(about), xml(status)))
      end
      if inside and a.done == "dropped" then
        w(mark_shape("drop", x_of(tb), yd, 5), "\n")
      end
    end
  end
  w("</g>\n")

  -- Marks on the lifelines (pauses are drawn as bars above).
  w('<g id="marks">\n')
  -- A decision's value is written beside it where there is room.
  local label_end = {}
  for _, m in ipairs(d.marks) do
    if m.kind ~= "pause" then
      local x, y = x_of(m.t), y_of(m.node)
      local s = m.kind == "decide" and min(7, rh * 0.3) or min(5, rh * 0.25)
      w(format('<g class="mark %s"><title>%s: %s at %s ms</title>%s</g>', m.kind, host(m.node),
        xml(m.text), fmt_ms(m.t), mark_shape(m.kind, x, y, s)))
      if m.kind == "decide" and rh >= 16 and x >= (label_end[m.node] or -huge) then
        local text = clip_text(m.label, 14)
        w(format('<text x="%s" y="%s" font-size="10" fill="#6b5200">%s</text>', num(x + s + 2),
          num(y - s), xml(text)))
        label_end[m.node] = x + s + 8 + 6 * #text
      end
      w("\n")
    end
  end
  w("</g>\n")
  w("</svg>\n")
  return concat(out)
end

---------------------------------------------------------------- render

-- Files written so far by this process: path -> runs.
local written = {}

local function write_file(path, text, mode)
  local f, err = io_open(path, mode or "w")
  if not f then error("cannot write " .. tostring(err), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then error("cannot write " .. path .. ": " .. tostring(werr), 0) end
end

-- The label of a run: its name or script, the seed, the Byzantine nodes.
local function run_label(rep, k)
  local name = rep.name or rep.script or "consensus-lua"
  local byz = {}
  for i, id in ipairs(rep.byzantine or {}) do byz[i] = host(id) end
  return format("%s run %d seed %s%s", one_line(name), k, tostring(rep.seed),
    #byz > 0 and (" Byzantine " .. concat(byz, ",")) or "")
end

-- run.svg for the first run of the process, run-2.svg for the second ...
local function numbered(path, k)
  if k == 1 then return path end
  local stem, ext = match(path, "^(.*)(%.[^./]*)$")
  if not stem then return path .. "-" .. k end
  return stem .. "-" .. k .. ext
end

-- Called by Sim:run after a run with --svg or --shiviz: rep is the
-- report, trace_path the run's trace, o the options.
function M.render(rep, trace_path, o)
  if o.svg and o.window then
    local win, err = M.parse_window(o.window)
    if not win then require("consensus.cli").usage_error(err) end
  end
  if o.shiviz then
    local k = (written[o.shiviz] or 0) + 1
    written[o.shiviz] = k
    local f, err = io_open(o.shiviz, k == 1 and "w" or "a")
    if not f then error("--shiviz: cannot write " .. tostring(err), 0) end
    local ok, e = pcall(M.shiviz, trace_path, f, run_label(rep, k))
    f:close()
    if not ok then error(e, 0) end
  end
  if o.svg then
    local key = "svg:" .. o.svg
    local k = (written[key] or 0) + 1
    written[key] = k
    local title = format("%s, run %d", rep.name or rep.script or "consensus-lua", k)
    write_file(numbered(o.svg, k), M.svg(trace_path, { window = o.window, title = title,
                                                       nodes = rep.nodes }))
  end
end

---------------------------------------------------------------- colour

-- Terminal colour: only on a terminal and never when NO_COLOR is set
-- (https://no-color.org).  fd: 1 (stdout, the default) or 2.
local tty = {}
function M.color_enabled(fd)
  fd = fd or 1
  local nc = os_getenv("NO_COLOR")
  if nc ~= nil and nc ~= "" then return false end
  if os_getenv("TERM") == "dumb" then return false end
  if tty[fd] == nil then
    tty[fd] = os_execute("test -t " .. floor(fd)) == true
  end
  return tty[fd]
end

local SGR = { ok = "32", good = "32", bad = "1;31", error = "1;31", warn = "33", dim = "2" }

-- viz.color("OK", "ok") -> "\27[32mOK\27[0m" on a terminal, else "OK".
function M.color(text, kind, fd)
  local code = SGR[kind]
  if code == nil or not M.color_enabled(fd) then return text end
  return "\27[" .. code .. "m" .. text .. "\27[0m"
end

return M
