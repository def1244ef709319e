-- consensus.cli: command-line options, shared by the consensus-lua host
-- and by scripts run under the stock lua5.4 interpreter.
--
-- Host options may come before or after SCRIPT; every other argument after
-- SCRIPT belongs to the script, which declares its own options with
-- consensus.options{...}.  A usage error is raised as a table with
-- fields 'message' and 'exit' (2): the host prints it as one line.

local M = {}

local error, ipairs, pairs, pcall = error, ipairs, pairs, pcall
local setmetatable, tonumber, tostring, type = setmetatable, tonumber, tostring, type
local concat, sort = table.concat, table.sort
local format, rep = string.format, string.rep
local math_type, floor, huge = math.type, math.floor, math.huge
local require = require


local _ENV = nil

-- name, metavariable, kind, help, default
M.HOST = {
  { "nodes", "N", "int", "number of nodes", 4 },
  { "faulty", "F", "int", "number of faulty (Byzantine) nodes", 0 },
  { "seed", "S", "int", "random seed; the same seed replays the same run", 1 },
  { "threads", "N", "int", "worker threads (default: number of cores)", nil },
  { "rounds", "R", "int", "rounds (decisions per node) the script runs", 1 },
  { "until", "MS", "num", "end of virtual time, in ms", 60000 },
  { "latency", "SPEC", "string", "network latency: 10, uniform:5:20, normal:10:2, exp:10 or pareto:5:1.5 (ms)" },
  { "loss", "P", "num", "probability that a message is lost" },
  { "duplicate", "P", "num", "probability that a message is delivered twice" },
  { "attack", "NAME", "string", "the faulty nodes run this attacker library strategy" },
  { "byzantine", "IDS", "string", "which nodes are faulty, e.g. 0,3 (default: chosen by the seed)" },
  { "attacker", "FILE", "string", "the faulty nodes run the attacker hooks FILE returns" },
  { "budget", "N", "int", "VM instructions a handler call may run: exact, but slower (default: none)" },
  { "watchdog", "S", "num", "wall-clock seconds a handler call may run without --budget (0: none)", 5 },
  { "heal_at", "MS", "num", "end every network fault and crash at this time" },
  { "partition", "SPEC", "string", "split the network, e.g. 0,1|2,3,4@100-400 (';' for more)" },
  { "crash", "SPEC", "string", "crash a node: ID@AT or ID@AT-RESTART (';' for more)" },
  { "trace", "FILE", "string", "write every event to FILE as JSON Lines" },
  { "shiviz", "FILE", "string", "write a log ShiViz opens (vector clocks)" },
  { "svg", "FILE", "string", "draw a space-time diagram of the run" },
  { "window", "FROM-TO", "string", "the span of virtual time --svg draws, in ms" },
  { "sweep", "SPEC", "string", "run every combination, e.g. 'nodes=4,7 faulty=0..2 seed=1..5'" },
  { "csv", "FILE", "string", "a sweep's results, one row per run" },
  { "plot", "FILE", "string", "a sweep's results drawn as SVG" },
  { "jobs", "J", "int", "parallel runs in a sweep" },
  { "shard", "K/N", "string", "run the K-th of N slices of a sweep" },
  { "data_dir", "DIR", "string", "keep node.store and decisions in DIR (survives kill -9)" },
  { "check_determinism", nil, "flag", "run twice in two processes and compare the traces" },
  { "memory", "BYTES", "int", "memory cap of one node state", 67108864 },
  { "max_msg", "BYTES", "int", "size cap of one message", 1048576 },
  { "inbox", "N", "int", "messages pending per node (0: no cap)", 0 },
  { "live", nil, "flag", "run in wall-clock time, a thread per node (not reproducible)" },
  { "fifo", nil, "flag", "links deliver in send order (no overtaking on a link)" },
  { "allow", "LIBS", "string", "give node states io, os or debug on purpose, e.g. io,os" },
  { "json", nil, "flag", "print one JSON object per run instead of the report" },
  { "quiet", nil, "flag", "print no report (the exit status still tells)" },
  { "strict", nil, "flag", "stop the run at the first handler error (exit 2)" },
  { "help", nil, "flag", "show this help and exit" },
  { "version", nil, "flag", "show the version and exit" },
}


local usage_mt = { __tostring = function(e) return "consensus-lua: " .. e.message end }

-- Raise a usage error (exit status 2).
function M.usage_error(msg)
  error(setmetatable({ message = msg, exit = 2 }, usage_mt), 0)
end

local function dashed(name) return (name:gsub("_", "-")) end

-- Convert 'text' for option 'name' of kind 'kind'.
local function convert(name, kind, text)
  if kind == "int" then
    local v = tonumber(text)
    if v == nil or v ~= floor(v) or math_type(floor(v)) ~= "integer" then
      M.usage_error(format("--%s needs an integer, got '%s'", dashed(name), text))
    end
    return floor(v)
  elseif kind == "num" then
    local v = tonumber(text)
    if v == nil or v ~= v then
      M.usage_error(format("--%s needs a number, got '%s'", dashed(name), text))
    end
    return v
  end
  return text
end

-- Split "--name=value" / "--name".
local function split(a)
  local name, value = a:match("^%-%-([%w][%w%-_]*)=(.*)$")
  if name then return (name:gsub("%-", "_")), value end
  name = a:match("^%-%-([%w][%w%-_]*)$")
  if name then return (name:gsub("%-", "_")), nil end
  return nil
end

-- Parse args[i..] against 'specs' (name -> {kind, ...}).  Returns opts and
-- the list of arguments it did not take.  Unknown options go to 'rest'
-- when keep_unknown, else they are errors.
local function parse(args, first, specs, opts, keep_unknown, stop_at_positional)
  local rest = {}
  local i = first
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do rest[#rest + 1] = args[j] end
      return opts, rest, nil
    end
    local name, value = split(a)
    local spec = name and specs[name]
    local negated = false
    if name and not spec and name:sub(1, 3) == "no_" and specs[name:sub(4)]
        and specs[name:sub(4)].kind == "flag" then
      spec, negated, name = specs[name:sub(4)], true, name:sub(4)
    end
    if spec then
      if spec.kind == "flag" then
        if value ~= nil then
          M.usage_error(format("--%s takes no value", dashed(name)))
        end
        opts[name] = not negated
      else
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then
            M.usage_error(format("--%s needs a value", dashed(name)))
          end
        end
        opts[name] = convert(name, spec.kind, value)
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" and not keep_unknown then
      M.usage_error(format("unknown option '%s' (see --help)", a))
    elseif stop_at_positional and a:sub(1, 1) ~= "-" then
      return opts, rest, i
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return opts, rest, nil
end

local function host_specs()
  local specs = {}
  for _, o in ipairs(M.HOST) do specs[o[1]] = { kind = o[3] } end
  return specs
end

-- Check the host options' values against each other.
function M.check(opts)
  if opts.nodes ~= nil and opts.nodes < 1 then
    M.usage_error(format("--nodes must be at least 1, got %d", opts.nodes))
  end
  if opts.faulty ~= nil and opts.faulty < 0 then
    M.usage_error("--faulty must be at least 0")
  end
  if opts.nodes and opts.faulty and opts.faulty > opts.nodes then
    M.usage_error(format("--faulty (%d) cannot exceed --nodes (%d)", opts.faulty, opts.nodes))
  end
  if opts.threads ~= nil and (opts.threads < 1 or opts.threads > 1024) then
    M.usage_error("--threads must be between 1 and 1024")
  end
  if opts.rounds ~= nil and opts.rounds < 1 then
    M.usage_error("--rounds must be at least 1")
  end
  if opts["until"] ~= nil and opts["until"] <= 0 then
    M.usage_error("--until must be a positive number of ms")
  end
  for _, p in ipairs { "loss", "duplicate" } do
    if opts[p] ~= nil and not (opts[p] >= 0 and opts[p] <= 1) then
      M.usage_error(format("--%s must be a probability between 0 and 1", p))
    end
  end
  if opts.window ~= nil then
    local ok, err = require("consensus.viz").parse_window(opts.window)
    if not ok then M.usage_error(err) end
  end
  for _, name in ipairs { "memory", "max_msg", "inbox" } do
    if opts[name] ~= nil and opts[name] < 0 then
      M.usage_error(format("--%s must be at least 0 (0: no cap)", dashed(name)))
    end
  end
  if opts["until"] ~= nil and not (opts["until"] < 9e12) then
    M.usage_error("--until must be a finite number of ms")
  end
  if opts.latency ~= nil then
    local ok, lat = pcall(require("consensus").latency, opts.latency)
    if not ok then M.usage_error("--latency: " .. tostring(lat):gsub("^.-:%d+: ", "")) end
    if not (lat.a > 0) then
      M.usage_error("--latency: the smallest latency must be above 0 ms (it is the scheduler's lookahead)")
    end
    if lat.kind == 1 and not (lat.b >= lat.a) then
      M.usage_error("--latency: uniform:A:B needs B >= A")
    end
  end
  if type(opts.allow) == "string" then
    for name in opts.allow:gmatch("[^,]+") do
      if name ~= "io" and name ~= "os" and name ~= "debug" then
        M.usage_error(format("--allow: unknown library '%s' (io, os or debug)", name))
      end
    end
  end
  if opts.budget ~= nil and opts.budget ~= 0 and opts.budget < 1000 then
    M.usage_error("--budget must be at least 1000 (or 0: no instruction budget)")
  end
  if opts.watchdog ~= nil and not (opts.watchdog >= 0 and opts.watchdog < huge) then
    M.usage_error("--watchdog must be a number of seconds >= 0 (0: no watchdog)")
  end
  if type(opts.byzantine) == "string" then
    local ids = {}
    for item in opts.byzantine:gmatch("[^,]+") do
      local id = tonumber(item)
      if id == nil or math_type(id) ~= "integer" or id < 0 or (opts.nodes and id >= opts.nodes) then
        M.usage_error(format("--byzantine: '%s' is not a node id%s", item,
          opts.nodes and format(" (0..%d)", opts.nodes - 1) or ""))
      end
      ids[#ids + 1] = id
    end
    opts.byzantine = ids
    if opts.faulty == nil or opts.faulty < #ids then opts.faulty = #ids end
  end
end

-- Host mode: argv holds the host's arguments.  Returns opts (host options
-- given), script (or nil) and the script's own arguments.
function M.parse_host(argv)
  local specs = host_specs()
  local opts, after, at = parse(argv, 1, specs, {}, false, true)
  local script, rest = nil, {}
  if not at and #after > 0 then
    -- "--" ended the options: the next argument is SCRIPT, the rest its own
    script = after[1]
    for i = 2, #after do rest[#rest + 1] = after[i] end
  elseif at then
    script = argv[at]
    local _, r = parse(argv, at + 1, specs, opts, true, false)
    rest = r
  end
  M.check(opts)
  return opts, script, rest
end

-- Parse a script's own arguments against its spec: { name = {default,
-- help}, ... }.  Host options may still be among them (plain lua5.4).
function M.parse_script(args, spec, opts, with_host)
  local specs = with_host and host_specs() or {}
  for name, s in pairs(spec) do
    local d = s[1]
    local kind = type(d) == "boolean" and "flag"
      or math_type(d) == "integer" and "int"
      or type(d) == "number" and "num" or "string"
    specs[name] = { kind = kind }
  end
  parse(args, 1, specs, opts, false, false)
  if with_host then M.check(opts) end
  return opts
end

function M.help(spec, script)
  local lines = {
    "Usage: consensus-lua [OPTION]... SCRIPT [SCRIPT-OPTION]...",
    "Run the consensus scenario SCRIPT (a Lua file) on simulated nodes and",
    "check agreement, validity and termination among the honest ones.",
    "",
    "Options (before or after SCRIPT):",
  }
  local function add(name, meta, text, default)
    local left = "  --" .. dashed(name) .. (meta and (" " .. meta) or "")
    if default ~= nil then text = text .. format(" (default %s)", tostring(default)) end
    if #left < 24 then
      lines[#lines + 1] = left .. rep(" ", 24 - #left) .. text
    else
      lines[#lines + 1] = left
      lines[#lines + 1] = rep(" ", 24) .. text
    end
  end
  for _, o in ipairs(M.HOST) do add(o[1], o[2], o[4], o[5]) end
  if spec then
    local names = {}
    for name in pairs(spec) do names[#names + 1] = name end
    if #names > 0 then
      sort(names)
      lines[#lines + 1] = ""
      lines[#lines + 1] = format("Options of %s:", script or "the script")
      for _, name in ipairs(names) do
        local d = spec[name][1]
        local meta
        if type(d) == "number" then meta = "N" elseif type(d) ~= "boolean" then meta = "TEXT" end
        add(name, meta, spec[name][2] or "", type(d) ~= "boolean" and d or nil)
      end
    end
  end
  for _, l in ipairs {
    "",
    "Exit status:",
    "  0  every run's checks hold",
    "  1  a safety property (agreement, validity, integrity) was violated",
    "  2  usage error, missing file, script error or a handler error",
    "  3  termination was not reached (an honest node did not decide)",
    "",
    "Example:",
    "  consensus-lua scripts/pbft_like.lua --nodes 7 --faulty 2 --seed 42",
    "  consensus-lua scripts/majority_vote.lua --nodes 5 --faulty 1 --json",
  } do lines[#lines + 1] = l end
  return concat(lines, "\n")
end

return M
