-- consensus.api: the friendly half of the consensus module, in Lua.
--
-- luaopen_consensus (C) builds the module table with the codec and the raw
-- simulation box, then calls this chunk's function with that table to add
-- options(), sim() and the report.  Nothing here is on the message path:
-- it configures a run, hands it to C, and turns the results into a report.

local cli = require "consensus.cli"
local json = require "consensus.json"

local error, ipairs, pairs, pcall = error, ipairs, pairs, pcall
local setmetatable, tonumber, tostring, type = setmetatable, tonumber, tostring, type
local concat, sort, format = table.concat, table.sort, string.format
local math_type, floor = math.type, math.floor
local table_unpack = table.unpack
local stdout, stderr = io.stdout, io.stderr
local os_exit, os_tmpname, os_remove = os.exit, os.tmpname, os.remove
local global_arg = arg
local require, next = require, next

local _ENV = nil

return function(M)
  -- Process-wide state of this main state: the options once parsed, the
  -- worst exit status so far, and what the host told us.
  local state = { opts = nil, status = 0, hosted = nil }
  M._state = state

  -- exit status ranks: 2 (error) > 1 (safety) > 3 (termination) > 0
  local rank = { [0] = 0, [3] = 1, [1] = 2, [2] = 3 }
  local function worsen(status)
    if rank[status] > rank[state.status] then state.status = status end
  end

  function M.status() return state.status end

  -- Stop with a usage error (one line on stderr, exit status 2): for a
  -- script that finds its own options wrong.
  function M.usage_error(msg)
    if state.hosted then cli.usage_error(msg) end
    stderr:write("consensus-lua: ", tostring(msg), "\n")
    os_exit(2)
  end

  -- Exit the process with the worst status of the runs so far (useful at
  -- the end of a script run by the stock lua5.4 interpreter).
  function M.exit() os_exit(state.status) end

  local function host_defaults(opts, defaults)
    for _, o in ipairs(cli.HOST) do
      local name, default = o[1], o[5]
      if opts[name] == nil then
        if defaults and defaults[name] ~= nil then
          opts[name] = defaults[name]
        elseif default ~= nil then
          opts[name] = default
        end
      end
    end
    opts.until_ms = opts["until"]
    return opts
  end

  -- consensus.options(spec, defaults) -> opts
  -- spec declares the script's own options: { requests = {10, "help"} };
  -- defaults replace the host's defaults (e.g. { faulty = 1 }).  The
  -- first call parses the command line; later calls return the same table.
  function M.options(spec, defaults)
    if state.opts then return state.opts end
    spec = spec or {}
    if type(spec) ~= "table" then error("options: spec must be a table", 2) end
    state.spec = spec
    local opts
    local hosted = state.hosted
    local script = hosted and hosted.script or (global_arg and global_arg[0])
    local function parse()
      if hosted then
        opts = {}
        for k, v in pairs(hosted.opts) do opts[k] = v end
        cli.parse_script(hosted.args, spec, opts, false)
      else
        local args = {}
        for i = 1, #(global_arg or {}) do args[i] = global_arg[i] end
        opts = cli.parse_script(args, spec, {}, true)
      end
    end
    if hosted then
      parse()
    else
      local ok, err = pcall(parse)
      if not ok then
        stderr:write(tostring(err), "\n")
        os_exit(2)
      end
    end
    if opts.help then
      stdout:write(cli.help(spec, script), "\n")
      os_exit(0)
    end
    for name, s in pairs(spec) do
      if opts[name] == nil then opts[name] = s[1] end
    end
    host_defaults(opts, defaults)
    if hosted then
      cli.check(opts)
    end
    state.opts = opts
    return opts
  end

  ---------------------------------------------------------------- network

  local kinds = { const = 0, constant = 0, uniform = 1, normal = 2, exp = 3,
                  exponential = 3, pareto = 4 }

  -- A latency spec: 10, "10", "uniform:5:20", {"uniform", 5, 20}.
  function M.latency(spec)
    if type(spec) == "number" then return { kind = 0, a = spec } end
    local parts = {}
    if type(spec) == "string" then
      for p in spec:gmatch("[^:]+") do parts[#parts + 1] = p end
      if #parts == 1 and tonumber(parts[1]) then return { kind = 0, a = tonumber(parts[1]) } end
    elseif type(spec) == "table" then
      parts = spec
    else
      error("latency must be a number, a string such as 'uniform:5:20' or a table", 3)
    end
    local kind = kinds[parts[1]]
    local a, b = tonumber(parts[2]), tonumber(parts[3])
    if kind == nil or a == nil or (kind == 1 and b == nil) or (kind == 2 and b == nil)
        or (kind == 4 and b == nil) then
      error(format("bad latency '%s' (try 10, uniform:5:20, normal:10:2, exp:10 or pareto:5:1.5)",
        type(spec) == "string" and spec or tostring(parts[1])), 3)
    end
    return { kind = kind, a = a, b = b or 0, min = tonumber(parts.min) or 0 }
  end

  ---------------------------------------------------------------- the sim

  local Sim = {}
  Sim.__index = Sim
  M.Sim = Sim

  local function check_int(v, what, lo, hi)
    if math_type(v) ~= "integer" and not (type(v) == "number" and v == floor(v)) then
      error(format("sim: %s must be an integer, got %s", what, tostring(v)), 3)
    end
    if v < lo or (hi and v > hi) then
      error(format("sim: %s must be between %d and %s, got %d", what, lo,
        hi and tostring(hi) or "any", v), 3)
    end
    return floor(v)
  end

  -- consensus.sim{nodes, faulty, seed, threads, network = {latency, loss,
  -- duplicate}, until_ms, slots, validity, strict, name}
  function M.sim(cfg)
    cfg = cfg or {}
    if type(cfg) ~= "table" then error("sim: expected a table of settings", 2) end
    local o = M.options()
    local s = setmetatable({}, Sim)
    s.nodes = check_int(cfg.nodes or o.nodes, "nodes", 1, 1000000)
    s.faulty = check_int(cfg.faulty or o.faulty, "faulty", 0, s.nodes)
    s.seed = check_int(cfg.seed or o.seed, "seed", -(1 << 62), nil)
    s.threads = check_int(cfg.threads or o.threads or M._ncpu(), "threads", 1, 1024)
    s.until_ms = cfg.until_ms or o.until_ms
    s.slots = check_int(cfg.slots or 1, "slots", 0, nil)
    -- The command line's network options override the script's.
    local net = cfg.network or {}
    s.latency = M.latency(o.latency or net.latency or 10)
    s.loss = o.loss or net.loss or 0
    s.duplicate = o.duplicate or net.duplicate or 0
    s.budget = o.budget
    s.validity = cfg.validity ~= false
    s.strict = cfg.strict or o.strict or false
    s.budget = cfg.budget or s.budget
    s.watchdog = cfg.watchdog or o.watchdog
    s.memory = cfg.memory or o.memory
    s.max_msg = cfg.max_msg or o.max_msg
    s.name = cfg.name
    local overflows = { drop_newest = 0, drop_random = 1, block = 2 }
    s.inbox = check_int(cfg.inbox or o.inbox or 0, "inbox", 0, nil)
    s.overflow = overflows[cfg.overflow or "drop_newest"]
    if s.overflow == nil then
      error("sim: overflow must be drop_newest, drop_random or block", 2)
    end
    s.trace = o.trace or cfg.trace
    -- Libraries given to node states on purpose: sim{allow = {"io"}} or
    -- --allow io,os.  Each breaks isolation or determinism.
    local bits = { io = 1, os = 2, debug = 4 }
    s.allow = 0
    local allow = cfg.allow or {}
    if type(o.allow) == "string" then
      allow = {}
      for name in o.allow:gmatch("[^,]+") do allow[#allow + 1] = name end
    end
    for _, name in ipairs(allow) do
      if not bits[name] then
        error(format("sim: allow: unknown library '%s' (io, os or debug)", tostring(name)), 2)
      end
      s.allow = s.allow | bits[name]
    end
    s.live = cfg.live or o.live or false
    s.fifo = cfg.fifo or o.fifo or false
    s.data_dir = cfg.data_dir or o.data_dir
    s.protocols, s.byz, s.actions, s.setup = {}, {}, {}, {}
    return s
  end

  -- Faults.  Before the run they are recorded and applied when it starts
  -- (at t = 0, or at their own time); from a scenario action (sim:at)
  -- they act at once.
  local function apply(self, fn)
    if self.box and self.running then
      fn(self.box)
    elseif self.ran then
      error("the simulation has ended", 3)
    else
      self.setup[#self.setup + 1] = fn
    end
    return self
  end

  local function ids_of(list, what)
    if type(list) == "number" then return { list } end
    if type(list) ~= "table" then error(what .. ": expected a list of node ids", 3) end
    return list
  end

  -- sim:partition({0, 1}, {2, 3, 4}): messages between groups are lost;
  -- nodes in no group form one more group.
  function Sim:partition(...)
    local groups = { ... }
    for i, g in ipairs(groups) do groups[i] = ids_of(g, "partition") end
    return apply(self, function(box) box:_partition(groups) end)
  end

  -- sim:cut(from_ids, to_ids): one way; messages from 'from' to 'to' are lost.
  function Sim:cut(from, to)
    from, to = ids_of(from, "cut"), ids_of(to, "cut")
    return apply(self, function(box) box:_cut(from, to) end)
  end

  -- sim:heal(): every partition and cut ends.
  function Sim:heal()
    return apply(self, function(box) box:_heal() end)
  end

  -- sim:link(from, to, latency): this link's own latency (nil: the
  -- network's again).
  function Sim:link(from, to, latency)
    from = check_int(from, "link: node id", 0, self.nodes - 1)
    to = check_int(to, "link: node id", 0, self.nodes - 1)
    local lat = latency ~= nil and M.latency(latency) or nil
    return apply(self, function(box) box:_link(from, to, lat) end)
  end

  local function at_of(self, opts)
    local now = (self.box and self.running) and self.box:_now() or 0
    return opts.at or now
  end

  -- sim:crash(id, {at =, restart =, lose_unsynced =}): the node stops; it
  -- comes back at 'restart' (ms) with a fresh state and its node.store.
  function Sim:crash(id, opts)
    id = check_int(id, "crash: node id", 0, self.nodes - 1)
    opts = opts or {}
    return apply(self, function(box)
      local at = at_of(self, opts)
      box:_crash(id, at, opts.lose_unsynced)
      if opts.restart then
        if opts.restart < at then error("crash: restart must come after the crash", 0) end
        box:_restart(id, opts.restart)
      end
    end)
  end

  -- sim:restart(id, {at =}): a crashed node comes back.
  function Sim:restart(id, opts)
    id = check_int(id, "restart: node id", 0, self.nodes - 1)
    opts = opts or {}
    return apply(self, function(box) box:_restart(id, at_of(self, opts)) end)
  end

  -- sim:pause(id, {at =, ms =}): the node stalls; what arrives meanwhile
  -- waits.
  function Sim:pause(id, opts)
    id = check_int(id, "pause: node id", 0, self.nodes - 1)
    opts = opts or {}
    if type(opts.ms) ~= "number" then error("pause: give the duration as {ms = ...}", 2) end
    return apply(self, function(box) box:_pause(id, at_of(self, opts), opts.ms) end)
  end

  -- sim:clock(id, {skew = ms, drift = fraction}): the node's clock and
  -- timers run off real time.
  function Sim:clock(id, opts)
    id = check_int(id, "clock: node id", 0, self.nodes - 1)
    opts = opts or {}
    return apply(self, function(box) box:_clock(id, opts.skew or 0, opts.drift or 0) end)
  end

  -- --partition 'A|B@FROM-TO' (ids comma-separated, groups split by |;
  -- the span is optional) and --crash ID@AT[-RESTART], each repeatable
  -- with ';'.  Bad specs are usage errors (exit 2).
  local function num(text, what)
    local v = tonumber(text)
    if v == nil or v < 0 then cli.usage_error(format("%s: '%s' is not a time in ms", what, tostring(text))) end
    return v
  end

  local function id_of(self, text, what)
    local id = tonumber(text)
    if id == nil or math_type(id) ~= "integer" or id < 0 or id >= self.nodes then
      cli.usage_error(format("%s: '%s' is not a node id (0..%d)", what, tostring(text), self.nodes - 1))
    end
    return id
  end

  function Sim:apply_cli_faults(o)
    -- A script that declares an option of the same name owns it.
    local own = state.spec or {}
    if type(o.partition) == "string" and not own.partition then
      for spec in o.partition:gmatch("[^;]+") do
        local groups_text, span = spec:match("^([^@]+)@?(.*)$")
        local groups = {}
        for g in (groups_text or ""):gmatch("[^|]+") do
          local ids = {}
          for id in g:gmatch("[^,]+") do ids[#ids + 1] = id_of(self, id, "--partition") end
          groups[#groups + 1] = ids
        end
        if #groups < 2 then cli.usage_error("--partition needs two groups or more, e.g. 0,1|2,3@100-400") end
        local from, to = 0, nil
        if span ~= "" then
          local a, b = span:match("^([^-]+)-?(.*)$")
          from = num(a, "--partition")
          if b ~= "" then to = num(b, "--partition") end
        end
        self:at(from, function(s) s:partition(table_unpack(groups)) end)
        if to then self:at(to, function(s) s:heal() end) end
      end
    end
    if type(o.crash) == "string" and not own.crash then
      for spec in o.crash:gmatch("[^;]+") do
        local id, at, restart = spec:match("^(%d+)@([%d.]+)%-?([%d.]*)$")
        if not id then cli.usage_error(format("--crash: '%s' is not ID@AT or ID@AT-RESTART", spec)) end
        self:crash(id_of(self, id, "--crash"), { at = num(at, "--crash"),
          restart = restart ~= "" and num(restart, "--crash") or nil })
      end
    end
  end

  -- Is the node crashed right now?  (From a scenario action.)
  function Sim:down(id)
    return self.box ~= nil and self.running and self.box:_down(id) or false
  end

  -- The notes nodes made so far, in time order (from a scenario action:
  -- what the nodes have said up to now).
  function Sim:notes()
    return self.box and self.box:_notes() or {}
  end

  -- The virtual time of the running simulation (ms).
  function Sim:now()
    return (self.box and self.running) and self.box:_now() or 0
  end

  -- The faulty node ids: --byzantine's list, else the 'faulty' ids the
  -- seed picks, sorted.
  function Sim:faulty_ids()
    local o = M.options()
    if type(o.byzantine) == "table" and self.faulty == o.faulty then
      return o.byzantine
    end
    return M._choose(self.seed, self.nodes, self.faulty)
  end

  local function check_protocol(p, what)
    if type(p) ~= "table" then
      error(format("%s: a protocol is a table of handlers, got %s", what, type(p)), 3)
    end
    for _, h in ipairs { "start", "receive", "timer" } do
      if p[h] ~= nil and type(p[h]) ~= "function" then
        error(format("%s: protocol.%s must be a function", what, h), 3)
      end
    end
    if p.on ~= nil then
      if type(p.on) ~= "table" then
        error(format("%s: protocol.on must be a table of handlers, got %s", what,
          type(p.on)), 3)
      end
      for k, v in pairs(p.on) do
        if type(k) ~= "string" or type(v) ~= "function" then
          error(format("%s: protocol.on.%s must be a function, got %s", what,
            tostring(k), type(v)), 3)
        end
      end
    end
  end

  -- Every node without a protocol of its own runs 'protocol'.
  function Sim:spawn(protocol)
    check_protocol(protocol, "spawn")
    self.default = protocol
    return self
  end

  -- Nodes 'ids' (default: the seed's faulty set) are Byzantine and run
  -- 'protocol' (default: the spawned one).
  function Sim:byzantine(ids, protocol)
    ids = ids or self:faulty_ids()
    if type(ids) == "number" then ids = { ids } end
    if protocol ~= nil then check_protocol(protocol, "byzantine") end
    for _, id in ipairs(ids) do
      id = check_int(id, "byzantine node id", 0, self.nodes - 1)
      self.byz[id] = true
      self.protocols[id] = protocol
    end
    return self
  end

  -- Run fn(sim) at virtual time 'ms', at a window barrier.
  function Sim:at(ms, fn)
    if type(ms) ~= "number" or ms < 0 then error("at: time must be a number >= 0 (ms)", 2) end
    if type(fn) ~= "function" then error("at: expected a function", 2) end
    if self.running then
      -- from a running action: schedule it in the running simulation
      if ms < self.box:_now() then error("at: that time is in the past", 2) end
      local fns = self.fns
      fns[#fns + 1] = function() fn(self) end
      self.box:_at(ms, #fns)
    else
      self.actions[#self.actions + 1] = { ms, fn }
    end
    return self
  end

  local Report = {}
  Report.__index = Report
  M.Report = Report

  local function replay_cmd(self)
    local hosted = state.hosted
    local parts = {}
    if hosted then
      parts[1] = "consensus-lua " .. hosted.script
      for _, a in ipairs(hosted.args) do parts[#parts + 1] = a end
    else
      parts[1] = "lua5.4 " .. tostring(global_arg and global_arg[0] or "SCRIPT")
      for i = 1, #(global_arg or {}) do parts[#parts + 1] = global_arg[i] end
    end
    parts[#parts + 1] = format("--nodes %d --faulty %d --seed %d", self.nodes, self.faulty, self.seed)
    -- The host options that change the run, when given.
    local o = M.options()
    local defaults = { budget = 0, watchdog = 5, memory = 67108864, max_msg = 1048576,
                       inbox = 0, ["until"] = 60000 }
    for _, name in ipairs { "latency", "loss", "duplicate", "attack", "attacker", "budget",
                            "watchdog",
                            "memory", "max_msg", "inbox", "until", "partition", "crash",
                            "heal_at" } do
      if o[name] ~= nil and o[name] ~= defaults[name] then
        parts[#parts + 1] = format("--%s %s", (name:gsub("_", "-")), tostring(o[name]))
      end
    end
    if o.strict then parts[#parts + 1] = "--strict" end
    if type(o.byzantine) == "table" then
      parts[#parts + 1] = "--byzantine " .. concat(o.byzantine, ",")
    end
    return concat(parts, " ")
  end

  local function build_report(self, r, slots)
    local rep = setmetatable({}, Report)
    rep.script = state.hosted and state.hosted.script or (global_arg and global_arg[0])
    rep.name = self.name
    rep.seed, rep.nodes = self.seed, self.nodes
    rep.threads, rep.slots = self.threads, slots
    rep.byzantine = {}
    for id in pairs(self.byz) do rep.byzantine[#rep.byzantine + 1] = id end
    sort(rep.byzantine)
    -- a script may make nodes Byzantine without saying --faulty
    rep.faulty = #rep.byzantine > self.faulty and #rep.byzantine or self.faulty
    rep.messages, rep.delivered, rep.dropped = r.sent, r.delivered, r.dropped
    rep.duplicated, rep.bytes, rep.timers = r.duplicated, r.bytes, r.timers
    rep.drops = { loss = r.dropped - r.dropped_partition - r.dropped_down - r.dropped_overflow,
                  partition = r.dropped_partition, down = r.dropped_down,
                  overflow = r.dropped_overflow }
    rep.crashes, rep.restarts = r.crashes, r.restarts
    rep.by_type = r.by_type
    rep.counters = r.counters
    rep.recovered = r.recovered
    rep.forgeries_detected = r.forgeries_detected
    rep.proposals = r.proposals
    rep.sim_time_ms = r.end_ms
    rep.failed = r.failed
    rep.errors = r.errors
    rep.notes = r.notes
    rep.violations = r.violations
    rep.decision_list = r.decisions
    local failed = {}
    for _, id in ipairs(r.failed) do failed[id] = true end
    rep.honest, rep.decided = 0, 0
    for id = 0, self.nodes - 1 do
      if not self.byz[id] then
        rep.honest = rep.honest + 1
        if not failed[id] and r.decided_by_node[id] >= slots then
          rep.decided = rep.decided + 1
        end
      end
    end
    local bad = {}
    for _, v in ipairs(r.violations) do bad[v.kind] = true end
    rep.agreement = not (bad.agreement or bad.integrity)
    rep.uniqueness = not bad.uniqueness
    rep.validity = not bad.validity
    rep.termination = not bad.termination
    -- per slot: the first honest decision and how many honest nodes made it
    local by_slot, slots_seen = {}, {}
    for _, d in ipairs(r.decisions) do
      if not self.byz[d.node] then
        local e = by_slot[d.slot]
        if not e then
          e = { slot = d.slot, value = d.value, nodes = 0, t = d.t }
          by_slot[d.slot] = e
          slots_seen[#slots_seen + 1] = d.slot
        end
        e.nodes = e.nodes + 1
      end
    end
    sort(slots_seen)
    rep.decisions = {}
    for i, slot in ipairs(slots_seen) do rep.decisions[i] = by_slot[slot] end
    if #r.errors > 0 or r.action_error then
      rep.status = 2
    elseif not (rep.agreement and rep.validity and rep.uniqueness) then
      rep.status = 1
    elseif not rep.termination then
      rep.status = 3
    else
      rep.status = 0
    end
    rep.replay = replay_cmd(self)
    rep.live = self.live or nil
    rep.metrics = M.metrics(rep)
    return rep
  end

  -- Latency from the first honest proposal of a slot to each honest
  -- decision of it (p50, p99, max, in ms), decisions per second of virtual
  -- time, and the protocol's own counters.
  function M.metrics(rep)
    local byz = {}
    for _, id in ipairs(rep.byzantine) do byz[id] = true end
    -- (proposals are honest ones already; 'any' ones count for every slot)
    local first, any = {}, nil
    for _, p in ipairs(rep.proposals or {}) do
      if p.slot == nil then
        if any == nil or p.t < any then any = p.t end
      elseif first[p.slot] == nil or p.t < first[p.slot] then
        first[p.slot] = p.t
      end
    end
    local lat, honest_decisions = {}, 0
    for _, d in ipairs(rep.decision_list) do
      if not byz[d.node] then
        honest_decisions = honest_decisions + 1
        local from = first[d.slot] or any
        if from then lat[#lat + 1] = d.t - from end
      end
    end
    sort(lat)
    local function pct(p)
      if #lat == 0 then return nil end
      local i = floor(p * (#lat - 1) + 0.5) + 1
      return floor(lat[i] * 1000 + 0.5) / 1000
    end
    local secs = rep.sim_time_ms / 1000
    return {
      latency_ms = #lat > 0 and { p50 = pct(0.5), p99 = pct(0.99), max = pct(1) } or nil,
      decisions_per_s = secs > 0 and floor(honest_decisions / secs * 1000 + 0.5) / 1000 or nil,
      counters = next(rep.counters or {}) ~= nil and rep.counters or nil,
    }
  end

  -- Run the simulation once.  opts: until_ms, slots (decisions each honest
  -- node must make), stop_when_decided (default true).
  function Sim:run(opts)
    opts = opts or {}
    if self.ran then error("run: a simulation runs once; make a new one", 2) end
    self:apply_cli_faults(M.options())
    self.ran = true
    local slots = opts.slots or self.slots
    local box = M._sim {
      nodes = self.nodes, faulty = self.faulty, seed = self.seed,
      threads = self.threads, until_ms = opts.until_ms or self.until_ms,
      slots = slots, latency = self.latency, loss = self.loss,
      duplicate = self.duplicate, validity = self.validity,
      stop_when_decided = opts.stop_when_decided ~= false,
      strict = self.strict, budget = self.budget, watchdog = self.watchdog,
      memory = self.memory,
      max_msg = self.max_msg, inbox = self.inbox, overflow = self.overflow,
      allow = self.allow, fifo = self.fifo,
      trace = (self.trace or M.options().svg or M.options().shiviz) ~= nil,
      live = self.live,
    }
    self.box = box
    -- --heal-at MS: every network fault and crash ends then.
    local o0 = M.options()
    if o0.heal_at then
      self:at(o0.heal_at, function(s)
        s:heal()
        for id = 0, s.nodes - 1 do
          if s:down(id) then s:restart(id) end
        end
      end)
    end
    for id in pairs(self.byz) do box:_byzantine(id) end
    local protocols = {}
    for id = 0, self.nodes - 1 do
      local p = self.protocols[id] or self.default
      if p == nil then
        error("run: no protocol for node " .. id .. "; call sim:spawn(protocol) first", 2)
      end
      protocols[id] = p
    end
    -- --attack NAME / --attacker FILE: the faulty nodes run an attacker
    -- around their protocol.
    local o = M.options()
    if (o.attack or o.attacker) and not self.no_attack then
      local attackers = require "consensus.attackers"
      local make = attackers.from_options(o)
      for _, id in ipairs(self:faulty_ids()) do
        self.byz[id] = true
        box:_byzantine(id)
        protocols[id] = make(protocols[id], id)
      end
    end
    local fns = {}
    self.fns = fns
    for i, a in ipairs(self.actions) do
      box:_at(a[1], i)
      local fn = a[2]
      fns[i] = function() fn(self) end
    end
    -- Faults set before the run take effect at t = 0, before any node
    -- starts, from an action: so they are in the trace too.
    if #self.setup > 0 then
      local setup = self.setup
      fns[#fns + 1] = function() for _, fn in ipairs(setup) do fn(box) end end
      box:_at(0, #fns)
    end
    self.running = true
    -- --svg and --shiviz draw from a trace: a temporary one unless --trace.
    local viz = o.svg or o.shiviz
    local trace_path = self.trace
    if viz and not trace_path then trace_path = os_tmpname() end
    local ok, r = pcall(box._run, box, protocols, fns, self.name or "protocol", trace_path,
      self.data_dir)
    self.running = false
    if not ok then
      if viz and not self.trace then os_remove(trace_path) end
      -- A file or directory that cannot be used, or a memory cap too small
      -- for a node state, is the user's input: one line, exit status 2.
      local text = tostring(r)
      if text:find("^cannot write trace file") or text:find("^data directory")
          or text:find("^run: cannot create node") then
        cli.usage_error(text)
      end
      error(r, 0)
    end
    if r.action_error then
      worsen(2)
      -- The message carries its traceback already: raise it as an object
      -- the host prints as it is.
      error(setmetatable({ message = "scenario action failed: " .. tostring(r.action_error) },
        { __tostring = function(e) return e.message end }), 0)
    end
    local rep = build_report(self, r, slots)
    worsen(rep.status)
    self.report = rep
    if viz then
      local vok, err = pcall(function()
        require("consensus.viz").render(rep, trace_path, o)
      end)
      if not self.trace then os_remove(trace_path) end
      if not vok then error(err, 0) end
    end
    return rep
  end

  ---------------------------------------------------------------- report

  local JSON_KEYS = {
    "script", "seed", "nodes", "faulty", "byzantine", "threads", "messages",
    "delivered", "dropped", "duplicated", "bytes", "drops", "by_type", "crashes",
    "restarts", "forgeries_detected", "sim_time_ms", "slots",
    "honest", "decided", "agreement", "validity", "termination", "uniqueness",
    "status", "metrics", "recovered", "live", "extra",
    "violations", "decisions", "errors", "failed",
  }

  function Report:json()
    local copy = {}
    for _, k in ipairs(JSON_KEYS) do copy[k] = self[k] end
    -- Lists must stay lists even when empty.
    local lists = { byzantine = true, violations = true, decisions = true,
                    errors = true, failed = true }
    return (json.encode(copy, JSON_KEYS):gsub('"(%w+)":{}', function(k)
      return lists[k] and ('"' .. k .. '":[]') or nil
    end))
  end

  local function show(v)
    if type(v) == "string" then return format("%q", v) end
    if type(v) == "table" then return json.encode(v) end
    return tostring(v)
  end
  M.show = show

  function Report:violation_lines()
    local out = {}
    for _, v in ipairs(self.violations) do
      if v.kind == "agreement" then
        out[#out + 1] = format("AGREEMENT VIOLATED in slot %d at t=%.3f ms: node %d decided %s, node %d decided %s",
          v.slot, v.t, v.node, show(v.value), v.other, show(v.other_value))
      elseif v.kind == "integrity" then
        out[#out + 1] = format("INTEGRITY VIOLATED in slot %d at t=%.3f ms: node %d changed its decision from %s to %s",
          v.slot, v.t, v.node, show(v.other_value), show(v.value))
      elseif v.kind == "uniqueness" then
        out[#out + 1] = format("UNIQUENESS VIOLATED at t=%.3f ms: nodes %d and %d both claimed %s",
          v.t, v.other, v.node, show(v.value))
      elseif v.kind == "validity" then
        out[#out + 1] = format("VALIDITY VIOLATED in slot %d at t=%.3f ms: node %d decided %s, "
          .. "which no honest node proposed", v.slot, v.t, v.node, show(v.value))
      else
        out[#out + 1] = format("TERMINATION NOT REACHED: node %d decided %d of %d slots by t=%.3f ms",
          v.node, v.slot, self.slots, v.t)
      end
    end
    return out
  end

  -- The checks line, one line per violation and the handler errors, for
  -- the summary and for scripts with a report of their own.  'color'
  -- (text, kind) -> text is optional.
  function Report:check_lines(color)
    color = color or function(text) return text end
    local L = {}
    local function ok(b) return b and color("OK", "ok") or color("VIOLATED", "bad") end
    L[1] = format("checks: agreement %s, validity %s, termination %s%s",
      ok(self.agreement), ok(self.validity),
      self.termination and color("OK", "ok") or color("NOT REACHED", "warn"),
      self.uniqueness and "" or (", uniqueness " .. ok(false)))
    for _, l in ipairs(self:violation_lines()) do L[#L + 1] = color(l, "bad") end
    if #self.errors > 0 then
      L[#L + 1] = format("errors: %d handler error%s (nodes %s failed)", #self.errors,
        #self.errors == 1 and "" or "s", concat(self.failed, ", "))
    end
    return L
  end

  function Report:summary()
    local L = {}
    L[#L + 1] = format("=== %s ===", self.name or self.script or "consensus-lua")
    local byz = #self.byzantine > 0 and format(" (Byzantine: %s)", concat(self.byzantine, ", ")) or ""
    L[#L + 1] = format("seed %d, %d nodes, %d faulty%s", self.seed, self.nodes, self.faulty, byz)
    if self.live then
      L[#L + 1] = "live run: wall-clock time on a thread per node, not reproducible"
    end
    L[#L + 1] = format("messages: %d sent, %d delivered, %d dropped, %d bytes",
      self.messages, self.delivered, self.dropped, self.bytes)
    L[#L + 1] = format("virtual time: %.3f ms", self.sim_time_ms)
    local m = self.metrics
    if m and m.latency_ms then
      L[#L + 1] = format("latency proposal to decision: p50 %.3f ms, p99 %.3f ms, max %.3f ms",
        m.latency_ms.p50, m.latency_ms.p99, m.latency_ms.max)
    end
    local types = {}
    for name, c in M.sorted_pairs(self.by_type or {}) do
      types[#types + 1] = format("%s %d", name, c.messages)
    end
    if #types > 0 then L[#L + 1] = "by type: " .. concat(types, ", ") end
    local counters = {}
    for name, n in M.sorted_pairs(self.counters or {}) do
      counters[#counters + 1] = format("%s %d", name, n)
    end
    if #counters > 0 then L[#L + 1] = "counters: " .. concat(counters, ", ") end
    local d = self.drops
    if d and self.dropped > 0 then
      L[#L + 1] = format("drops: %d loss, %d partition, %d at crashed nodes, %d inbox overflow",
        d.loss, d.partition, d.down, d.overflow)
    end
    L[#L + 1] = format("decided: %d of %d honest nodes decided %d slot%s",
      self.decided, self.honest, self.slots, self.slots == 1 and "" or "s")
    for _, l in ipairs(self:check_lines(require("consensus.viz").color)) do L[#L + 1] = l end
    L[#L + 1] = "replay: " .. self.replay
    return concat(L, "\n") .. "\n"
  end

  -- Print the report: JSON with --json, nothing with --quiet, else
  -- fmt(report) when given (a script's own format), else the summary.
  function Report:print(fmt)
    local o = M.options()
    if o.json then
      stdout:write(self:json(), "\n")
    elseif o.quiet then
      return self
    elseif fmt then
      -- A script's own format may not show the seed: unless it returns
      -- true (it printed the seed itself), say it aside on stderr.
      local seed_shown = fmt(self)
      if self.live then
        stderr:write("live run: wall-clock time on a thread per node, not reproducible\n")
      elseif not seed_shown then
        stderr:write(format("seed %d; replay: %s\n", self.seed, self.replay))
      end
    else
      stdout:write(self:summary())
    end
    stdout:flush()
    return self
  end
end
