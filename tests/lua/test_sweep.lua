-- test_sweep: --sweep runs every combination in processes of its own and
-- writes one CSV row per run; --jobs does not change the CSV; --shard
-- slices add up to the whole; --plot draws well-formed SVG.

package.path = "tests/lua/?.lua;" .. package.path
local t = require "testlib"

local MV = "scripts/majority_vote.lua"

local function tmp(ext)
  local n = os.tmpname()
  os.remove(n)
  return n .. ext
end

-- RFC 4180 CSV -> list of rows (lists of fields).
local function parse_csv(text)
  local rows, row, field, i = {}, {}, {}, 1
  local quoted = false
  while i <= #text do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1
        else quoted = false end
      else
        field[#field + 1] = c
      end
    elseif c == '"' then
      assert(#field == 0, "a quote inside an unquoted field")
      quoted = true
    elseif c == "," then
      row[#row + 1] = table.concat(field); field = {}
    elseif c == "\n" then
      row[#row + 1] = table.concat(field); field = {}
      rows[#rows + 1] = row; row = {}
    elseif c ~= "\r" then
      field[#field + 1] = c
    end
    i = i + 1
  end
  assert(not quoted, "unterminated quoted field")
  assert(#field == 0 and #row == 0, "the last line has no newline")
  return rows
end

-- The CSV as a header and a list of records (column -> text).
local function records(text)
  local rows = parse_csv(text)
  local header = assert(rows[1], "no header")
  local recs = {}
  for k = 2, #rows do
    t.eq(#rows[k], #header, "fields in row " .. (k - 1))
    local r = {}
    for j, name in ipairs(header) do r[name] = rows[k][j] end
    recs[#recs + 1] = r
  end
  return header, recs
end

-- Well-formed XML (balanced tags, quoted attributes, one root).
local function check_xml(text)
  local stack, roots, count = {}, 0, {}
  text = text:gsub("^<%?xml.-%?>", "")
  for between, tag in text:gmatch("([^<]*)<([^>]*)>") do
    assert(not between:find("&[^#%w]") and not between:find("&[#%w]+[^;#%w]"), "stray '&'")
    if tag:sub(1, 1) == "/" then
      local name = tag:match("^/([%w:_%-]+)%s*$")
      assert(name and stack[#stack] == name, "</" .. tostring(name) .. "> closes <" .. tostring(stack[#stack]) .. ">")
      stack[#stack] = nil
    elseif tag:sub(1, 3) ~= "!--" then
      local self_closing = tag:sub(-1) == "/"
      local name, attrs = (self_closing and tag:sub(1, -2) or tag):match("^([%w:_%-]+)(.*)$")
      assert(name, "bad tag <" .. tag .. ">")
      local rest = attrs:gsub('%s+[%w:_%-]+%s*=%s*"[^"<]*"', "")
      assert(not rest:find("%S"), "bad attributes in <" .. name .. ">")
      if #stack == 0 then roots = roots + 1 end
      count[name] = (count[name] or 0) + 1
      if not self_closing then stack[#stack + 1] = name end
    end
  end
  assert(#stack == 0, "unclosed <" .. tostring(stack[#stack]) .. ">")
  assert(roots == 1, "one root element")
  return count
end

-- A protocol with an option of its own (--delay) that takes that long
-- to decide; with --explode it raises instead.
local OWN = [[
local consensus = require "consensus"
local opts = consensus.options({ delay = { 10, "ms before deciding" }, explode = { false, "raise" } })
local D, EXPLODE = opts.delay, opts.explode
local sim = consensus.sim{}
sim:spawn{
  start = function(node) node:propose(1); node:set_timer("go", D) end,
  timer = function(node)
    if EXPLODE then error("asked to explode") end
    node:decide(1)
  end,
}
sim:run():print()
]]

local cases = {}
local whole                 -- the CSV of the first sweep, for comparisons

cases[#cases + 1] = { "a sweep writes one row per run with the right columns", function()
  local csv, plot = tmp(".csv"), tmp(".svg")
  local _, err, code = t.host_run("--sweep", "nodes=4,5 seed=1..3", "--csv", csv, "--plot", plot,
    "--jobs", "1", MV)
  t.eq(code, 0, "exit (stderr: " .. err .. ")")
  t.has(err, "sweep: 6 of 6 combinations", "summary")
  whole = t.read(csv)
  local header, recs = records(whole)
  t.eq(#recs, 6, "rows")
  t.eq(table.concat(header, ",", 1, 4), "index,nodes,seed,run", "the first columns")
  local cols = {}
  for _, c in ipairs(header) do cols[c] = true end
  for _, c in ipairs { "faulty", "status", "agreement", "validity", "termination", "messages",
                       "delivered", "dropped", "latency_p50", "latency_p99", "latency_max",
                       "decisions_per_s", "drops_loss", "by_type", "byzantine", "error" } do
    assert(cols[c], "column " .. c .. " missing from: " .. table.concat(header, ","))
  end
  assert(not cols.threads, "no threads column (it changes no result)")
  -- combinations in order, the first parameter varying slowest
  local expect = { { 4, 1 }, { 4, 2 }, { 4, 3 }, { 5, 1 }, { 5, 2 }, { 5, 3 } }
  for k, r in ipairs(recs) do
    t.eq(tonumber(r.index), k, "index")
    t.eq(tonumber(r.nodes), expect[k][1], "nodes of row " .. k)
    t.eq(tonumber(r.seed), expect[k][2], "seed of row " .. k)
    t.eq(r.run, "1", "run")
    t.eq(r.status, "0", "status")
    t.eq(r.agreement, "true", "agreement")
    assert(tonumber(r.messages) > 0, "messages")
    t.eq(r.error, "", "no error")
  end
  -- the same as one run by hand
  local one = t.host_run(MV, "--nodes", "5", "--seed", "2", "--json")
  t.has(one, '"messages":' .. recs[5].messages .. ",", "row 5 = the run by hand")
  local count = check_xml(t.read(plot))
  t.eq(count.svg, 1, "the plot is one svg")
  assert((count.polyline or 0) >= 2, "the plot has lines")
  os.remove(csv); os.remove(plot)
end }

cases[#cases + 1] = { "--jobs 2 gives the same CSV as --jobs 1", function()
  local csv = tmp(".csv")
  local _, err, code = t.host_run("--sweep", "nodes=4,5 seed=1..3", "--csv", csv, "--jobs", "2", MV)
  t.eq(code, 0, "exit (stderr: " .. err .. ")")
  t.eq(t.read(csv), assert(whole, "the first case ran"), "CSV")
  os.remove(csv)
end }

cases[#cases + 1] = { "--shard 1/2 and 2/2 add up to the whole", function()
  local a, b = tmp(".csv"), tmp(".csv")
  local _, e1, c1 = t.host_run("--sweep", "nodes=4,5 seed=1..3", "--csv", a, "--shard", "1/2", MV)
  local _, e2, c2 = t.host_run("--sweep", "nodes=4,5 seed=1..3", "--csv", b, "--shard", "2/2", MV)
  t.eq(c1, 0, "exit 1 (stderr: " .. e1 .. ")")
  t.eq(c2, 0, "exit 2 (stderr: " .. e2 .. ")")
  t.has(e1, "(shard 1/2)", "summary")
  local ha, ra = records(t.read(a))
  local hb, rb = records(t.read(b))
  local hw, rw = records(whole)
  t.eq(table.concat(ha, ","), table.concat(hw, ","), "header of shard 1")
  t.eq(table.concat(hb, ","), table.concat(hw, ","), "header of shard 2")
  t.eq(#ra + #rb, #rw, "rows")
  -- merged by index, the shards are the whole, field for field
  local by_index = {}
  for _, r in ipairs(ra) do by_index[tonumber(r.index)] = r end
  for _, r in ipairs(rb) do
    assert(not by_index[tonumber(r.index)], "an index in both shards")
    by_index[tonumber(r.index)] = r
  end
  for k, r in ipairs(rw) do
    for _, c in ipairs(hw) do t.eq(by_index[k][c], r[c], ("row %d, %s"):format(k, c)) end
  end
  -- docs/sweeps.md's merge gives the whole, byte for byte
  local merged = t.run(("{ head -n 1 %s; tail -q -n +2 %s %s | sort -t, -k1,1n; }"):format(
    t.quote(a), t.quote(a), t.quote(b)))
  t.eq(merged, whole, "merged CSV")
  os.remove(a); os.remove(b)
end }

cases[#cases + 1] = { "combinations with faulty > nodes are skipped", function()
  local out, err, code = t.host_run("--sweep", "nodes=2 faulty=1..3", MV)
  local _, recs = records(out)
  t.eq(#recs, 2, "rows (CSV on stdout without --csv)")
  t.eq(recs[1].faulty .. recs[2].faulty, "12", "faulty values kept")
  assert(code == 0 or code == 3, "exit " .. tostring(code) .. ": " .. err)
  t.has(err, "1 skipped (faulty > nodes)", "summary on stderr")
end }

cases[#cases + 1] = { "script options are swept; failed runs are rows with their error", function()
  local path = t.temp_script(OWN)
  local out, err, code = t.host_run("--sweep", "delay=5,50 explode=false,true", path)
  t.eq(code, 2, "exit: a run failed (stderr: " .. err .. ")")
  local header, recs = records(out)
  t.eq(table.concat(header, ",", 1, 4), "index,delay,explode,run", "columns")
  t.eq(#recs, 4, "rows")
  t.eq(recs[1].status, "0", "delay 5, no crash")
  t.eq(recs[1].sim_time_ms, "5", "decided at 5 ms")
  t.eq(recs[3].sim_time_ms, "50", "decided at 50 ms")
  t.eq(recs[2].status, "2", "a handler error is status 2")
  t.eq(recs[2].errors, "4", "every node failed")
  os.remove(path)
  -- a script that cannot run at all: a row with the message
  local broken = t.temp_script("local x = = 1\n")
  local bout, _, bcode = t.host_run("--sweep", "seed=1", broken)
  t.eq(bcode, 2, "exit")
  local _, brecs = records(bout)
  t.eq(#brecs, 1, "one row")
  t.eq(brecs[1].status, "2", "status")
  t.has(brecs[1].error, "near '='", "the error")
  os.remove(broken)
end }

cases[#cases + 1] = { "bad sweeps are usage errors", function()
  for _, c in ipairs {
    { { "--sweep", "nodes", MV }, "is not NAME=VALUES" },
    { { "--sweep", "seed=5..1", MV }, "empty range" },
    { { "--sweep", "seed=1..2 seed=3", MV }, "given twice" },
    { { "--sweep", "jobs=1,2", MV }, "cannot be swept" },
    { { "--sweep", "seed=1", "--shard", "3/2", MV }, "--shard needs K/N" },
    { { "--sweep", "seed=1", "scripts/no_such_script.lua" }, "cannot open" },
  } do
    local out, err, code = t.host_run(table.unpack(c[1]))
    t.eq(code, 2, "exit for " .. table.concat(c[1], " "))
    t.has(err, c[2], "stderr")
    t.eq(out, "", "nothing on stdout")
  end
end }

t.cases(cases)
