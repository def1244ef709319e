-- consensus.sweep: run a script over every combination of parameters
-- (docs/sweeps.md).
--
--   consensus-lua --sweep 'nodes=4,7,10 faulty=0..3 seed=1..20' \
--                 --jobs 4 --csv out.csv --plot out.svg SCRIPT
--
-- Each combination is one run of the host in a process of its own, with
-- --json and the combination's values as options; --jobs J runs J at once
-- (xargs -P).  Results are read back in combination order, whatever order
-- the processes finished in, so the CSV is the same for any J.  --shard
-- K/N keeps every N-th combination starting with the K-th, and the
-- 'index' column lets the shards' CSVs be merged back in order.

local consensus = require "consensus"
local cli = require "consensus.cli"
local viz = require "consensus.viz"

local M = {}

local error, ipairs, pairs, pcall, tonumber, tostring, type =
  error, ipairs, pairs, pcall, tonumber, tostring, type
local concat, sort = table.concat, table.sort
local format, gsub, match, gmatch, rep, sub =
  string.format, string.gsub, string.match, string.gmatch, string.rep, string.sub
local floor, max, min, huge, log = math.floor, math.max, math.min, math.huge, math.log
local math_type = math.type
local io_open, io_popen, stderr, stdout = io.open, io.popen, io.stderr, io.stdout
local os_execute, os_getenv = os.execute, os.getenv

local _ENV = nil

---------------------------------------------------------------- the spec

-- Host options a sweep decides itself, or that would make parallel runs
-- write over each other's files.
local NOT_SWEPT = {
  sweep = true, csv = true, plot = true, jobs = true, shard = true, json = true,
  quiet = true, help = true, version = true, check_determinism = true,
}
local DROPPED = { trace = true, svg = true, shiviz = true, window = true, data_dir = true }

local host_kind = {}
for _, o in ipairs(cli.HOST) do host_kind[o[1]] = o[3] end

-- "nodes=4,7 faulty=0..2 loss=0,0.05" -> { {name=, values={...}}, ... }
-- Values stay text, as typed.  a..b is every integer from a to b;
-- a..b..s steps by s.
function M.parse_spec(spec)
  local params, seen = {}, {}
  for item in gmatch(spec, "%S+") do
    local name, list = match(item, "^([%a_][%w_%-]*)=(.+)$")
    if not name then
      cli.usage_error(format("--sweep: '%s' is not NAME=VALUES (e.g. nodes=4,7 seed=1..10)", item))
    end
    name = gsub(name, "%-", "_")
    if NOT_SWEPT[name] or DROPPED[name] then
      cli.usage_error(format("--sweep: --%s cannot be swept", gsub(name, "_", "-")))
    end
    if seen[name] then cli.usage_error(format("--sweep: '%s' is given twice", name)) end
    seen[name] = true
    local values = {}
    for v in gmatch(list, "[^,]+") do
      local a, b, s = match(v, "^(-?%d+)%.%.(-?%d+)%.%.(%d+)$")
      if not a then a, b = match(v, "^(-?%d+)%.%.(-?%d+)$") end
      if a then
        a, b, s = tonumber(a), tonumber(b), tonumber(s) or 1
        if b < a or s < 1 then
          cli.usage_error(format("--sweep: empty range '%s' in %s", v, name))
        end
        if (b - a) // s >= 1000000 then
          cli.usage_error(format("--sweep: range '%s' is too long", v))
        end
        for x = a, b, s do values[#values + 1] = tostring(x) end
      elseif match(v, "%.%.") then
        cli.usage_error(format("--sweep: bad range '%s' in %s (write a..b or a..b..step, integers)", v, name))
      else
        values[#values + 1] = v
      end
    end
    if #values == 0 then cli.usage_error(format("--sweep: no values for %s", name)) end
    params[#params + 1] = { name = name, values = values }
  end
  if #params == 0 then cli.usage_error("--sweep: no parameters (e.g. --sweep 'nodes=4,7 seed=1..5')") end
  return params
end

-- Every combination, the first parameter varying slowest.  Each is a list
-- of values in parameter order.
function M.combinations(params)
  local out, cur = {}, {}
  local function rec(i)
    if i > #params then
      local c = {}
      for k = 1, #params do c[k] = cur[k] end
      out[#out + 1] = c
      return
    end
    for _, v in ipairs(params[i].values) do
      cur[i] = v
      rec(i + 1)
    end
  end
  rec(1)
  return out
end

-- "K/N" -> k, n
local function parse_shard(s)
  local k, n = match(s, "^%s*(%d+)%s*/%s*(%d+)%s*$")
  k, n = tonumber(k), tonumber(n)
  if not k or n < 1 or k < 1 or k > n then
    cli.usage_error(format("--shard needs K/N with 1 <= K <= N, got '%s'", s))
  end
  return k, n
end

---------------------------------------------------------------- commands

local function quote(s)
  return "'" .. gsub(tostring(s), "'", "'\\''") .. "'"
end

local function dashed(name) return (gsub(name, "_", "-")) end

local function value_text(v)
  if math_type(v) == "float" and v == floor(v) and v > -1e15 and v < 1e15 then
    return format("%d", floor(v))
  end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return concat(parts, ",")
  end
  return tostring(v)
end

-- Options for one value of a parameter: "--name value", or for a flag
-- "--name" / "--no-name" (true / false).
local function option_args(name, value, out)
  local kind = host_kind[name]
  if kind == "flag" or (kind == nil and (value == "true" or value == "false")) then
    if value == "true" then
      out[#out + 1] = "--" .. dashed(name)
    elseif value == "false" then
      out[#out + 1] = "--no-" .. dashed(name)
    else
      cli.usage_error(format("--sweep: %s is a flag: give true or false, got '%s'", name, value))
    end
  else
    out[#out + 1] = "--" .. dashed(name)
    out[#out + 1] = value
  end
end

-- The path of this executable: the host may tell (consensus._exe), else
-- /proc (the shell io.popen starts is our child), else $CS_HOST, else
-- consensus-lua from PATH.
function M.exe()
  if type(consensus._exe) == "string" and consensus._exe ~= "" then return consensus._exe end
  local p = io_popen("readlink /proc/$PPID/exe 2>/dev/null")
  if p then
    local path = p:read("l")
    p:close()
    if path and path ~= "" and not match(path, "/sh$") and not match(path, "/dash$")
        and not match(path, "/bash$") then
      return path
    end
  end
  return os_getenv("CS_HOST") or "consensus-lua"
end

---------------------------------------------------------------- results

-- One run's JSON object -> flat { column = scalar }.
-- metrics.latency_ms.p50 -> latency_p50, drops.loss -> drops_loss, a list
-- -> its length, by_type and counters -> "NAME=n;..." (sorted).
local function kv_text(t, field)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  for i, k in ipairs(keys) do
    local v = t[k]
    if field and type(v) == "table" then v = v[field] end
    if type(v) == "table" then v = "{...}" end
    keys[i] = k .. "=" .. value_text(v)
  end
  return concat(keys, ";")
end

local function is_list(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- Left out: the same in every row, or no part of the result.
local SKIP = { script = true, threads = true }

local function flatten_field(row, k, v)
  if k == "metrics" and type(v) == "table" then
    local lat = type(v.latency_ms) == "table" and v.latency_ms or {}
    row.latency_p50, row.latency_p99, row.latency_max = lat.p50, lat.p99, lat.max
    row.decisions_per_s = v.decisions_per_s
    row.counters = type(v.counters) == "table" and kv_text(v.counters) or nil
    for mk, mv in pairs(v) do
      if mk ~= "latency_ms" and mk ~= "decisions_per_s" and mk ~= "counters"
          and type(mv) ~= "table" then
        row[mk] = mv
      end
    end
  elseif k == "by_type" and type(v) == "table" then
    row.by_type = kv_text(v, "messages")
  elseif type(v) == "table" then
    if is_list(v) then
      row[k] = #v
    else
      for sk, sv in pairs(v) do
        row[k .. "_" .. tostring(sk)] = type(sv) == "table" and kv_text(sv) or sv
      end
    end
  else
    row[k] = v
  end
end

function M.flatten(obj)
  local row = {}
  for k, v in pairs(obj) do
    if not SKIP[k] then flatten_field(row, k, v) end
  end
  return row
end

-- The columns in this order; any others follow, sorted.
local ORDER = {
  "seed", "nodes", "faulty", "byzantine", "status", "agreement", "validity",
  "termination", "uniqueness", "honest", "decided", "slots", "messages",
  "delivered", "dropped", "duplicated", "bytes", "drops_loss", "drops_partition",
  "drops_down", "drops_overflow", "crashes", "restarts", "sim_time_ms",
  "latency_p50", "latency_p99", "latency_max", "decisions_per_s", "decisions",
  "violations", "errors", "failed", "by_type", "counters",
}

local function csv_field(v)
  if v == nil then return "" end
  local s
  if type(v) == "boolean" then
    s = v and "true" or "false"
  elseif math_type(v) == "float" then
    s = format("%.14g", v)
  else
    s = tostring(v)
  end
  if match(s, '[,"\r\n]') then s = '"' .. gsub(s, '"', '""') .. '"' end
  return s
end
M.csv_field = csv_field

-- The CSV text: header, then one line per row.
function M.csv(params, rows)
  local cols = { "index" }
  local taken = { index = true, run = true, error = true }
  for _, p in ipairs(params) do
    cols[#cols + 1] = p.name
    taken[p.name] = true
  end
  cols[#cols + 1] = "run"
  for _, c in ipairs(ORDER) do
    if not taken[c] then cols[#cols + 1] = c; taken[c] = true end
  end
  local extra, seen = {}, {}
  for _, r in ipairs(rows) do
    for k in pairs(r.result) do
      if not taken[k] and not seen[k] then seen[k] = true; extra[#extra + 1] = k end
    end
  end
  sort(extra)
  for _, c in ipairs(extra) do cols[#cols + 1] = c end
  cols[#cols + 1] = "error"
  local lines = { concat(cols, ",") }
  for _, r in ipairs(rows) do
    local f = {}
    for i, c in ipairs(cols) do
      local v
      if c == "index" then v = r.index
      elseif c == "run" then v = r.run
      elseif c == "error" then v = r.error
      elseif r.params[c] ~= nil then v = r.params[c]
      else v = r.result[c] end
      f[i] = csv_field(v)
    end
    lines[#lines + 1] = concat(f, ",")
  end
  return concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------- running

local function read_all(path)
  local f = io_open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function write_all(path, text)
  local f, err = io_open(path, "wb")
  if not f then error("sweep: cannot write " .. tostring(err), 0) end
  f:write(text)
  f:close()
end

local function progress(done, total, on)
  if not on then return end
  local width = 30
  local filled = total > 0 and floor(width * done / total) or width
  stderr:write(format("\rsweep [%s%s] %d/%d", rep("#", filled), rep(".", width - filled), done, total))
  if done == total then stderr:write("\n") end
  stderr:flush()
end

-- Run the commands (lists of arguments), at most 'jobs' at once; returns
-- for each its stdout, stderr and exit status.
function M.run_all(cmds, jobs, show_progress)
  local p = io_popen("mktemp -d 2>/dev/null || echo /tmp/cs-sweep-$$")
  local dir = p:read("l")
  p:close()
  os_execute("mkdir -p " .. quote(dir))
  local list = {}
  for i, args in ipairs(cmds) do
    local q = {}
    for j, a in ipairs(args) do q[j] = quote(a) end
    write_all(format("%s/%d.sh", dir, i), format("exec %s >%s 2>%s\n", concat(q, " "),
      quote(format("%s/%d.out", dir, i)), quote(format("%s/%d.err", dir, i))))
    list[i] = tostring(i)
  end
  write_all(dir .. "/list", concat(list, "\n") .. "\n")
  -- Each job prints "i status" when it ends: short lines, written whole.
  write_all(dir .. "/job.sh", 'sh "$1/$2.sh" </dev/null; echo "$2 $?"\n')
  local status = {}
  local done = 0
  progress(0, #cmds, show_progress)
  local pipe = io_popen(format("xargs -P %d -n 1 sh %s %s < %s", jobs, quote(dir .. "/job.sh"),
    quote(dir), quote(dir .. "/list")), "r")
  for line in pipe:lines() do
    local i, rc = match(line, "^(%d+) (%d+)$")
    if i then
      status[tonumber(i)] = tonumber(rc)
      done = done + 1
      progress(done, #cmds, show_progress)
    end
  end
  pipe:close()
  local results = {}
  for i = 1, #cmds do
    results[i] = { out = read_all(format("%s/%d.out", dir, i)),
                   err = read_all(format("%s/%d.err", dir, i)), status = status[i] }
  end
  os_execute("rm -rf " .. quote(dir))
  return results
end

---------------------------------------------------------------- the plot

local PALETTE = viz.PALETTE

local function tick_step(span, want)
  local raw = span / want
  if raw <= 0 then return 1 end
  local mag = 10 ^ floor(log(raw, 10))
  for _, m in ipairs { 1, 2, 5, 10 } do
    if m * mag >= raw then return m * mag end
  end
  return 10 * mag
end

local function xml(s)
  return (gsub(tostring(s), "[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                                          ['"'] = "&quot;", ["'"] = "&#39;" }))
end

-- One panel: series = { {label=, points={{x,y},...}}, ... }.
local function panel(out, x0, y0, w, h, title, xlabel, ylabel, series, ymax_fixed)
  local xmin, xmax, ymin, ymax = huge, -huge, 0, -huge
  for _, s in ipairs(series) do
    for _, p in ipairs(s.points) do
      xmin, xmax = min(xmin, p[1]), max(xmax, p[1])
      ymax = max(ymax, p[2])
    end
  end
  out[#out + 1] = format('<g class="panel"><text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>\n',
    x0, y0 - 26, xml(title))
  local pw, ph = w - 60, h - 40
  local l, b = x0 + 50, y0 + ph
  out[#out + 1] = format('<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#999999"/>\n',
    l, y0, pw, ph)
  if xmin == huge then
    out[#out + 1] = format('<text x="%d" y="%d">no data</text></g>\n', l + 10, y0 + 20)
    return
  end
  if ymax_fixed then ymax = ymax_fixed end
  if ymax <= ymin then ymax = ymin + 1 end
  if xmax == xmin then xmin, xmax = xmin - 1, xmax + 1 end
  local function X(v) return l + (v - xmin) / (xmax - xmin) * pw end
  local function Y(v) return b - (v - ymin) / (ymax - ymin) * ph end
  local ys = tick_step(ymax - ymin, 5)
  local v = ymin
  while v <= ymax + ys * 1e-9 do
    out[#out + 1] = format('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/><text x="%d" y="%.1f" ' ..
        'text-anchor="end" font-size="10">%s</text>\n',
      l, Y(v), l + pw, Y(v), l - 4, Y(v) + 3, xml(format("%g", v)))
    v = v + ys
  end
  local xs = max(1, tick_step(xmax - xmin, 6))
  v = floor(xmin / xs + 0.999999) * xs
  while v <= xmax + xs * 1e-9 do
    out[#out + 1] = format('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999"/><text x="%.1f" y="%d" ' ..
        'text-anchor="middle" font-size="10">%s</text>\n',
      X(v), b, X(v), b + 4, X(v), b + 15, xml(format("%g", v)))
    v = v + xs
  end
  out[#out + 1] = format('<text x="%.1f" y="%d" text-anchor="middle" font-size="11">%s</text>\n',
    l + pw / 2, b + 28, xml(xlabel))
  out[#out + 1] = format('<text x="%d" y="%.1f" text-anchor="middle" font-size="11" transform="rotate(-90 %d ' ..
      '%.1f)">%s</text>\n',
    x0 + 10, y0 + ph / 2, x0 + 10, y0 + ph / 2, xml(ylabel))
  for i, s in ipairs(series) do
    local c = PALETTE[(i - 1) % #PALETTE + 1]
    local pts = {}
    for j, p in ipairs(s.points) do pts[j] = format("%.1f,%.1f", X(p[1]), Y(p[2])) end
    out[#out + 1] = format('<polyline class="series" points="%s" fill="none" stroke="%s" stroke-width="2"/>\n',
      concat(pts, " "), c)
    for _, p in ipairs(s.points) do
      out[#out + 1] = format('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s = %g, %s = %g</title>' ..
          '</circle>\n',
        X(p[1]), Y(p[2]), c, xml(s.label), xml(xlabel), p[1], xml(ylabel), p[2])
    end
    -- The key: one row above the plot area.
    if i <= 6 then
      local lx = l + (i - 1) * 56
      out[#out + 1] = format('<rect class="key" x="%d" y="%d" width="12" height="8" fill="%s"/><text x="%d" ' ..
          'y="%d" font-size="10">%s</text>\n',
        lx, y0 - 14, c, lx + 15, y0 - 6, xml(s.label))
    end
  end
  out[#out + 1] = "</g>\n"
end

-- Group rows: series by 'sk', x by 'xk'; y = f(list of rows).
local function group(rows, sk, xk, f)
  local by = {}
  for _, r in ipairs(rows) do
    local s, x = r.result[sk], r.result[xk]
    if type(s) == "number" and type(x) == "number" then
      by[s] = by[s] or {}
      by[s][x] = by[s][x] or {}
      local l = by[s][x]
      l[#l + 1] = r.result
    end
  end
  local keys = {}
  for s in pairs(by) do keys[#keys + 1] = s end
  sort(keys)
  local series = {}
  for _, s in ipairs(keys) do
    local xs = {}
    for x in pairs(by[s]) do xs[#xs + 1] = x end
    sort(xs)
    local pts = {}
    for _, x in ipairs(xs) do
      local y = f(by[s][x])
      if y then pts[#pts + 1] = { x, y } end
    end
    if #pts > 0 then series[#series + 1] = { key = s, points = pts } end
  end
  return series
end

local function mean(list, field)
  local sum, n = 0, 0
  for _, r in ipairs(list) do
    if type(r[field]) == "number" then sum, n = sum + r[field], n + 1 end
  end
  return n > 0 and sum / n or nil
end

-- The plot: success rate against faulty for each n; messages and the
-- median latency against n for each f.
function M.plot(rows, title)
  local out = {}
  local W, H = 1200, 420
  out[#out + 1] = format('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
      'font-family="sans-serif" font-size="12">\n',
    W, H, W, H)
  out[#out + 1] = format("<title>%s</title>\n", xml(title))
  out[#out + 1] = format('<rect width="%d" height="%d" fill="#ffffff"/>\n', W, H)
  out[#out + 1] = format('<text x="12" y="22" font-size="16" font-weight="bold">%s</text>\n', xml(title))
  local ok = group(rows, "nodes", "faulty", function(list)
    local good = 0
    for _, r in ipairs(list) do if r.status == 0 then good = good + 1 end end
    return good / #list
  end)
  for _, s in ipairs(ok) do s.label = "n = " .. value_text(s.key) end
  panel(out, 10, 90, 390, 310, "runs with every check OK", "faulty", "fraction", ok, 1)
  local msgs = group(rows, "faulty", "nodes", function(list) return mean(list, "messages") end)
  for _, s in ipairs(msgs) do s.label = "f = " .. value_text(s.key) end
  panel(out, 405, 90, 390, 310, "messages sent (mean)", "nodes", "messages", msgs)
  local lat = group(rows, "faulty", "nodes", function(list) return mean(list, "latency_p50") end)
  for _, s in ipairs(lat) do s.label = "f = " .. value_text(s.key) end
  panel(out, 800, 90, 390, 310, "latency p50 (mean, ms)", "nodes", "ms", lat)
  out[#out + 1] = "</svg>\n"
  return concat(out)
end

---------------------------------------------------------------- main

-- exit status ranks, as for runs: 2 > 1 > 3 > 0
local RANK = { [0] = 0, [3] = 1, [1] = 2, [2] = 3 }

function M.main(opts, script, rest)
  local params = M.parse_spec(opts.sweep)
  local f = io_open(script, "r")
  if not f then cli.usage_error(format("cannot open %s", script)) end
  f:close()
  local jobs = opts.jobs or consensus._ncpu()
  if jobs < 1 then cli.usage_error("--jobs must be at least 1") end
  local shard_k, shard_n = 1, 1
  if opts.shard then shard_k, shard_n = parse_shard(opts.shard) end

  -- The options every run gets: the host options given, minus the ones
  -- the sweep sets or that would write one file from many runs.
  local base, names = {}, {}
  for name in pairs(opts) do
    if host_kind[name] and not NOT_SWEPT[name] then names[#names + 1] = name end
  end
  sort(names)
  local swept = {}
  for _, p in ipairs(params) do swept[p.name] = true end
  local dropped = {}
  for _, name in ipairs(names) do
    local v = opts[name]
    if DROPPED[name] then
      dropped[#dropped + 1] = "--" .. dashed(name)
    elseif not swept[name] then
      if host_kind[name] == "flag" then
        if v then base[#base + 1] = "--" .. dashed(name) end
      else
        base[#base + 1] = "--" .. dashed(name)
        base[#base + 1] = value_text(v)
      end
    end
  end
  if #dropped > 0 and not opts.quiet then
    stderr:write(format("consensus-lua: sweep: %s ignored (every run would write the same file)\n",
      concat(dropped, ", ")))
  end
  -- Runs go side by side: one thread each unless --threads says.
  if opts.threads == nil then
    base[#base + 1] = "--threads"
    base[#base + 1] = "1"
  end

  -- Combinations; skip those the host would refuse (faulty > nodes).
  local all = M.combinations(params)
  local idx = {}
  for i, p in ipairs(params) do idx[p.name] = i end
  local combos, skipped = {}, 0
  for _, c in ipairs(all) do
    local nodes = idx.nodes and tonumber(c[idx.nodes]) or opts.nodes
    local faulty = idx.faulty and tonumber(c[idx.faulty]) or opts.faulty
    if nodes and faulty and faulty > nodes then
      skipped = skipped + 1
    else
      combos[#combos + 1] = c
    end
  end
  local mine = {}
  for i, c in ipairs(combos) do
    if (i - 1) % shard_n + 1 == shard_k then mine[#mine + 1] = { index = i, values = c } end
  end

  local exe = M.exe()
  local cmds = {}
  for i, m in ipairs(mine) do
    local args = { exe, script }
    for _, a in ipairs(base) do args[#args + 1] = a end
    for _, a in ipairs(rest) do args[#args + 1] = a end
    for k, p in ipairs(params) do option_args(p.name, m.values[k], args) end
    args[#args + 1] = "--json"
    cmds[i] = args
  end
  local show = os_execute("test -t 2") == true and not opts.quiet
  local results = M.run_all(cmds, jobs, show)

  local rows, worst = {}, 0
  local counts = {}
  for i, m in ipairs(mine) do
    local res = results[i]
    local pv = {}
    for k, p in ipairs(params) do
      local v = m.values[k]
      pv[p.name] = tonumber(v) or v
    end
    local runs = 0
    for line in gmatch(res.out, "[^\n]+") do
      if sub(line, 1, 1) == "{" then
        local ok, obj = pcall(viz.decode, line)
        if ok and type(obj) == "table" and obj.status ~= nil then
          runs = runs + 1
          rows[#rows + 1] = { index = m.index, params = pv, run = runs, result = M.flatten(obj) }
        end
      end
    end
    local st = res.status or 2
    if runs == 0 then
      local msg = match(res.err, "[^\n]+") or (st == 0 and "no JSON report" or "no output")
      rows[#rows + 1] = { index = m.index, params = pv, run = 1, result = { status = st ~= 0 and st or 2 },
                          error = msg }
      if st == 0 then st = 2 end
    end
    if RANK[st] == nil then st = 2 end
    if RANK[st] > RANK[worst] then worst = st end
    counts[st] = (counts[st] or 0) + 1
  end

  local text = M.csv(params, rows)
  if opts.csv then
    write_all(opts.csv, text)
  else
    stdout:write(text)
    stdout:flush()
  end
  if opts.plot then
    write_all(opts.plot, M.plot(rows, format("%s: %s", script, opts.sweep)))
  end
  if not opts.quiet then
    local parts = {}
    for _, st in ipairs { 0, 1, 3, 2 } do
      if counts[st] then
        parts[#parts + 1] = format("%d %s", counts[st],
          ({ [0] = "ok", [1] = "unsafe", [3] = "not terminated", [2] = "failed" })[st])
      end
    end
    stderr:write(format("consensus-lua: sweep: %d of %d combinations%s%s; %s\n", #mine, #combos,
      shard_n > 1 and format(" (shard %d/%d)", shard_k, shard_n) or "",
      skipped > 0 and format(", %d skipped (faulty > nodes)", skipped) or "",
      #parts > 0 and concat(parts, ", ") or "no runs"))
  end
  return worst
end

return M
