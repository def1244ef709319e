-- consensus.selfcheck: consensus-lua --check-determinism SCRIPT [OPTION]...
--
-- Runs the scenario three times, each in a process of its own, with
-- --trace into a temporary file and --json:
--
--   run 1   --threads T
--   run 2   --threads T, another process (so Lua's string-hash salt,
--           hence pairs() order over string keys, differs from run 1's)
--   run 3   --threads U, another thread count (U = 1, or 4 when T = 1)
--
-- T is --threads when given, else the number of cores.  The traces are
-- compared line by line against run 1's; the reports on stdout too (less
-- their "threads" field), and the exit statuses.  Run 1's trace is hashed
-- with 64-bit FNV-1a.
--
-- Exit status of this mode (it says whether the runs agree, not whether
-- the protocol is correct; the runs' own status is printed):
--   0  deterministic: "deterministic: N events, hash H" on stdout
--   1  not deterministic: the first differing trace line (its number and
--      both versions) on stderr; the traces are kept for a look
--   2  could not check: usage error, a run that failed before writing a
--      trace (its stderr is shown), a crashed run, no host binary found
--
-- The host binary is the one running (/proc/$PPID/exe, read by a child
-- shell), else $CS_HOST, else consensus-lua on PATH; each candidate must
-- answer --version.  --trace, --json, --quiet and --threads given to the
-- check are not passed on (the check sets its own); --data-dir DIR is:
-- every run gets its own copy of DIR (or a fresh directory when DIR does
-- not exist), so runs cannot see each other's files.  A script that runs
-- several simulations leaves only the last one's trace (each run of a sim
-- rewrites the file); the reports of all of them are still compared.

local M = {}

local cli = require "consensus.cli"
local consensus = require "consensus"

local json = require "consensus.json"

local ipairs, tostring = ipairs, tostring
local format, byte = string.format, string.byte
local concat = table.concat
local popen, open, stdout, stderr = io.popen, io.open, io.stdout, io.stderr
local getenv, tmpname, remove = os.getenv, os.tmpname, os.remove

local _ENV = nil

local FNV_OFFSET = -3750763034362895579     -- 0xcbf29ce484222325
local FNV_PRIME = 0x100000001b3
local SHOW = 400                            -- bytes of a line shown

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- 64-bit FNV-1a of 'line', continuing from h (integers wrap).
local function fnv(h, line)
  local n = #line
  local i = 1
  while i + 7 <= n do
    local a, b, c, d, e, f, g, k = byte(line, i, i + 7)
    h = (h ~ a) * FNV_PRIME; h = (h ~ b) * FNV_PRIME
    h = (h ~ c) * FNV_PRIME; h = (h ~ d) * FNV_PRIME
    h = (h ~ e) * FNV_PRIME; h = (h ~ f) * FNV_PRIME
    h = (h ~ g) * FNV_PRIME; h = (h ~ k) * FNV_PRIME
    i = i + 8
  end
  for j = i, n do h = (h ~ byte(line, j)) * FNV_PRIME end
  return h
end
M.fnv = function(s) return format("%016x", fnv(FNV_OFFSET, s)) end

-- Run a shell command; stdout as text, stderr in a file.  Returns out,
-- err, the exit status and whether a signal ended it.
local function run(cmd)
  local errfile = tmpname()
  local p = popen(cmd .. " 2>" .. quote(errfile), "r")
  if p == nil then return "", "cannot start a shell", 127, false end
  local out = p:read("a")
  local _, how, code = p:close()
  local f = open(errfile, "rb")
  local err = f and f:read("a") or ""
  if f then f:close() end
  remove(errfile)
  -- A shell reports a child killed by signal s as 128 + s.
  local signal = how == "signal" or (code ~= nil and code > 128 and code < 160)
  return out, err, code, signal
end

-- The consensus-lua binary to run: the one running, else $CS_HOST, else
-- PATH's.
local function find_host()
  local candidates = {}
  local p = popen('readlink "/proc/$PPID/exe" 2>/dev/null', "r")
  if p then
    local exe = p:read("l")
    p:close()
    if exe and exe ~= "" then candidates[#candidates + 1] = exe end
  end
  local env = getenv("CS_HOST")
  if env and env ~= "" then candidates[#candidates + 1] = env end
  candidates[#candidates + 1] = "consensus-lua"
  for _, c in ipairs(candidates) do
    local out, _, code = run(quote(c) .. " --version")
    if code == 0 and out:sub(1, 14) == "consensus-lua " then return c end
  end
  return nil
end

-- The check's own argv minus what the check sets itself.  --data-dir's
-- value becomes a placeholder each run fills in.  Returns the list and
-- the --data-dir value (or nil).
local STRIP = { check_determinism = true, trace = true, json = true,
                quiet = true, threads = true }
local DATA_DIR = {}                     -- the placeholder

local function child_args(argv)
  local kinds = {}
  for _, o in ipairs(cli.HOST) do kinds[o[1]] = o[3] end
  local out, data_dir = {}, nil
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--" then
      for j = i, #argv do out[#out + 1] = argv[j] end
      break
    end
    local name, value = a:match("^%-%-([%w][%w%-_]*)=(.*)$")
    if not name then name = a:match("^%-%-([%w][%w%-_]*)$") end
    local key = name and name:gsub("%-", "_")
    if key and not kinds[key] and key:sub(1, 3) == "no_"
        and kinds[key:sub(4)] == "flag" then
      key = key:sub(4)
    end
    local kind = key and kinds[key]
    if kind and STRIP[key] then
      if kind ~= "flag" and value == nil then i = i + 1 end
    elseif kind and key == "data_dir" then
      if value == nil then
        i = i + 1
        value = argv[i]
      end
      data_dir = value
      out[#out + 1] = "--data-dir"
      out[#out + 1] = DATA_DIR
    else
      out[#out + 1] = a
    end
    i = i + 1
  end
  return out, data_dir
end

local function exists(path)
  local f = open(path, "rb")
  if f then f:close() return true end
  return false
end

-- A data directory of this run's own: a copy of 'src', or a fresh name.
local function private_dir(src)
  local dir = tmpname()
  remove(dir)
  if src and exists(src) then
    local _, err, code = run(format("cp -a %s %s", quote(src), quote(dir)))
    if code ~= 0 then
      cli.usage_error(format("--check-determinism: cannot copy --data-dir %s: %s",
        src, (err:gsub("\n+$", ""))))
    end
  end
  return dir
end

local function clip(line)
  if line == nil then return "(end of trace)" end
  line = line:gsub("\n$", "")
  if #line > SHOW then line = line:sub(1, SHOW) .. "..." end
  return line
end

local function first_lines(text, n)
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do
    if #lines == n then lines[#lines + 1] = "  ..." break end
    lines[#lines + 1] = "  " .. l
  end
  while #lines > 0 and lines[#lines] == "  " do lines[#lines] = nil end
  return concat(lines, "\n")
end

-- Compare the three traces line by line.  Returns nil, events, hash when
-- they agree, else the run that differs, the line number and both lines.
local function compare(paths)
  local f = {}
  for k, path in ipairs(paths) do
    f[k] = open(path, "rb")
    if f[k] == nil then return k, 0, nil, nil end
  end
  local h, lineno, events = FNV_OFFSET, 0, 0
  local bad, at, l1, lk
  while true do
    local a = f[1]:read("L")
    local b, c = f[2]:read("L"), f[3]:read("L")
    if a == nil and b == nil and c == nil then break end
    lineno = lineno + 1
    if a ~= b then bad, at, l1, lk = 2, lineno, a, b break end
    if a ~= c then bad, at, l1, lk = 3, lineno, a, c break end
    h = fnv(h, a)
    if a:sub(1, 11) ~= '{"ev":"run"' and not a:find(',"ev":"end"}', 1, true) then
      events = events + 1
    end
  end
  for k = 1, 3 do f[k]:close() end
  if bad then return bad, at, l1, lk end
  return nil, events, format("%016x", h)
end

local function strip_threads(s)
  return (s:gsub('"threads":%d+,', ""))
end

local function first_diff_line(a, b)
  local i = 0
  local ia, ib = (a .. "\n"):gmatch("([^\n]*)\n"), (b .. "\n"):gmatch("([^\n]*)\n")
  while true do
    local x, y = ia(), ib()
    i = i + 1
    if x ~= y then return i, x, y end
    if x == nil then return nil end
  end
end

-- main(opts, script, rest, argv) -> exit status (see the top).
-- (The script's own arguments are in argv, in place.)
function M.main(opts, script, _, argv)
  local host = find_host()
  if host == nil then
    cli.usage_error("--check-determinism: cannot find the consensus-lua binary "
      .. "(tried /proc/$PPID/exe, $CS_HOST and PATH)")
  end
  local base, data_dir = child_args(argv)
  local t1 = opts.threads or consensus._ncpu()
  if t1 > 1024 then t1 = 1024 end
  local t2 = t1 == 1 and 4 or 1
  local runs = {
    { threads = t1, what = format("--threads %d", t1) },
    { threads = t1, what = format("--threads %d, another process", t1) },
    { threads = t2, what = format("--threads %d", t2) },
  }
  local traces, dirs = {}, {}
  local function cleanup(keep_traces)
    for _, p in ipairs(traces) do
      if not keep_traces then remove(p) end
    end
    for _, d in ipairs(dirs) do run("rm -rf " .. quote(d)) end
  end
  for k, r in ipairs(runs) do
    r.trace = tmpname()
    traces[k] = r.trace
    local parts = { quote(host), "--threads", tostring(r.threads),
                    "--trace", quote(r.trace), "--json" }
    for _, a in ipairs(base) do
      if a == DATA_DIR then
        local d = private_dir(data_dir)
        dirs[#dirs + 1] = d
        a = d
      end
      parts[#parts + 1] = quote(a)
    end
    r.cmd = concat(parts, " ")
    r.out, r.err, r.code, r.signal = run(r.cmd)
    if r.signal then
      cleanup(false)
      stderr:write(format("consensus-lua: --check-determinism: run %d (%s) crashed "
        .. "(exit status %s):\n%s\n", k, r.what, tostring(r.code), first_lines(r.err, 20)))
      return 2
    end
    -- A run that wrote no trace failed early (usage, script error) or ran
    -- no simulation: nothing to compare, and no point in the next run.
    local f = open(r.trace, "rb")
    local empty = f == nil or f:read(1) == nil
    if f then f:close() end
    if empty then
      cleanup(false)
      if r.code ~= 0 and r.err ~= "" then
        stderr:write(format("consensus-lua: --check-determinism: run %d failed before "
          .. "writing a trace (exit status %d):\n%s\n", k, r.code, first_lines(r.err, 20)))
      else
        stderr:write(format("consensus-lua: --check-determinism: run %d wrote no trace: "
          .. "%s ran no simulation, or its sim{trace = ...} overrides --trace\n",
          k, script))
      end
      return 2
    end
  end
  local bad, at, l1, lk = compare(traces)
  if bad then
    cleanup(true)
    stderr:write(format("consensus-lua: not deterministic: %s: the traces of run 1 (%s) "
      .. "and run %d (%s) differ first at line %d (event %d):\n  run 1: %s\n  run %d: %s\n"
      .. "traces kept: %s %s\n",
      script, runs[1].what, bad, runs[bad].what, at, at - 1, clip(l1), bad, clip(lk),
      runs[1].trace, runs[bad].trace))
    return 1
  end
  local events, hash = at, l1
  cleanup(false)
  -- Same traces: the reports and statuses must agree as well.
  for k = 2, 3 do
    local r = runs[k]
    local n, x, y = first_diff_line(strip_threads(runs[1].out), strip_threads(r.out))
    if n then
      stderr:write(format("consensus-lua: not deterministic: %s: the traces agree, but "
        .. "the reports of run 1 (%s) and run %d (%s) differ first at line %d:\n"
        .. "  run 1: %s\n  run %d: %s\n", script, runs[1].what, k, r.what, n,
        clip(x), k, clip(y)))
      return 1
    end
    if r.code ~= runs[1].code then
      stderr:write(format("consensus-lua: not deterministic: %s: run 1 (%s) exited %d, "
        .. "run %d (%s) exited %d\n", script, runs[1].what, runs[1].code, k, r.what, r.code))
      return 1
    end
  end
  if opts.json then
    stdout:write(json.encode({ deterministic = true, script = script, events = events,
      hash = hash, threads = { t1, t2 }, status = runs[1].code }), "\n")
  elseif not opts.quiet then
    stdout:write(format("deterministic: %d events, hash %s\n", events, hash))
    stdout:write(format("  (3 runs of %s: 2 processes with --threads %d, 1 with --threads %d; "
      .. "each exited %d)\n", script, t1, t2, runs[1].code))
  end
  stdout:flush()
  return 0
end

M._child_args = child_args      -- for tests

return M
