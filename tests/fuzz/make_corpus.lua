-- make_corpus.lua - write the seed corpus of the fuzz targets.
--
--   LUA_CPATH="build/?.so;;" lua5.4 tests/fuzz/make_corpus.lua [DIR]
--
-- DIR defaults to tests/fuzz/corpus.  Writes DIR/fuzz_decode/* (encodings
-- of typical messages, plain and canonical), DIR/fuzz_transfer/* (Lua
-- source and generator programs, see fuzz_transfer.c) and
-- DIR/fuzz_options/* (argv lists, NUL-separated).  Needs consensus.so from
-- a normal build (the fuzz build's module is instrumented and does not
-- load in the stock interpreter).

local consensus = require "consensus"

local dir = arg[1] or "tests/fuzz/corpus"

local function write(target, name, bytes)
  local path = dir .. "/" .. target .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

-- fuzz_decode: messages a protocol sends, and values a checker compares
local messages = {
  propose = { type = "PROPOSE", round = 1, value = 42 },
  vote = { type = "VOTE", round = 3, value = 42, yes = true },
  pbft = { type = "PREPARE", view = 0, seq = 17, digest = "d41d8cd98f00b204",
           from = 5 },
  nested = { type = "COMMIT", cert = { { id = 1, sig = "aa" },
             { id = 2, sig = "bb" }, { id = 3, sig = ("x"):rep(70) } } },
  numbers = { 0, -1, 127, 128, -32, -33, 2^53, 0.5, -0.0, 1/0, -1/0,
              math.maxinteger, math.mininteger, 0/0 },
  holes = { 1, nil, 3, [10] = "ten", [2.5] = "float", [true] = false },
  log = { type = "LOG", entries = { "a", "b", "c", "d", "e", "f", "g" } },
  deep = { { { { { { { { "deep" } } } } } } } },
  scalar_int = 7,
  scalar_str = "hello",
  scalar_nil = nil,
  empty = {},
}
local wide = { type = "WIDE" }
for i = 1, 140 do wide["k" .. i] = i end
messages.wide = wide
for name, v in pairs(messages) do
  write("fuzz_decode", name, consensus.encode(v))
  write("fuzz_decode", name .. "_c", consensus.encode(v, true))
end
-- positional messages (node:post), which consensus.encode cannot make:
-- 0xc7, the type as a short string, the value count, the values
local posted = {
  post_vote = "\xc7\x84VOTE\x03\x03\x2a\xc2",              -- VOTE(3, 42, true)
  post_holes = "\xc7\x81X\x04\xc0\x01\xc0\xc0",            -- X(nil, 1, nil, nil)
  post_table = "\xc7\x87PREPARE\x02" .. consensus.encode { 1, { a = "b" } } .. "\x91digest-digest-dig",
  post_empty = "\xc7\x84PING\x00",
}
for name, bytes in pairs(posted) do write("fuzz_decode", name, bytes) end

-- fuzz_transfer: byte 0 mode, byte 1 memory slack, byte 2 root slot
local function src(mode, text) return string.char(mode, 40, 0) .. text end
local sources = {
  src_protocol = [[
local consensus = require "consensus"
local Vote = {}
local quorum = 3
function Vote.start(node) node.votes = 0 end
function Vote.receive(node, msg, from)
  if msg.type == "VOTE" then
    node.votes = node.votes + 1
    if node.votes == quorum then node:decide(msg.value) end
  end
end
return Vote]],
  src_shared = [[
local n = 0
local function inc() n = n + 1 return n end
local function get() return n end
g_counter = { inc = inc }
return { inc = inc, get = get, sort = table.sort, floor = math.floor }]],
  src_cycle = [[
local t = setmetatable({}, { __index = string })
t.self = t
t.f = function() return t end
return t]],
  src_bad = [[
local co = coroutine.create(function() end)
return { ok = 1, handler = function() return co end }]],
  src_io = [[return { open = io.open, out = io.stdout }]],
}
for name, text in pairs(sources) do
  write("fuzz_transfer", name, src(0, text))
  write("fuzz_transfer", name .. "_node", src(4 + 16, text))
end
-- generator programs: op % 20, slot, arguments (see gen_op)
local function gen(mode, root, ...)
  return string.char(mode, 16, root, ...)
end
write("fuzz_transfer", "gen_table", gen(1, 0,
  4, 0, 0x22,           -- P1 = {}
  2, 1, 3, 97, 98, 99,  -- P2 = "abc"
  0, 2, 5, 3,           -- P3 = 40
  5, 0, 1, 2,           -- P1[P2] = P3
  5, 0, 2, 0,           -- P1[P3] = P1 (a cycle)
  7, 0, 0))             -- setmetatable(P1, P1)
write("fuzz_transfer", "gen_closures", gen(1 + 16, 3,
  4, 0, 0,              -- P1 = {}
  8, 1, 0, 0, 1,        -- P2 = factory 1 (shared upvalue) over P1
  8, 2, 0, 1, 9,        -- P3 = factory 9 (two closures, one upvalue)
  5, 3, 1, 2,           -- P4[...]: P4 is nil, skipped
  4, 3, 0,              -- P4 = {}
  5, 3, 0, 1,           -- P4[P1] = P2
  5, 3, 1, 2,           -- P4[P2] = P3
  12, 1, 1, 0))         -- join upvalues of P2 and P2
write("fuzz_transfer", "gen_library", gen(1 + 4, 0,
  4, 0, 0,
  9, 1, 2,              -- math.floor
  9, 2, 6,              -- io.open
  9, 3, 10,             -- a thread
  10, 1, 1,             -- global g1 = P2
  5, 0, 1, 1,
  5, 0, 2, 2))
write("fuzz_transfer", "gen_deep", gen(1, 0,
  16, 0, 120, 100, 5,   -- 220 nested tables
  17, 1, 90, 90, 0))    -- a chain of 180 closures
write("fuzz_transfer", "gen_data", gen(1 + 16, 0,
  4, 0, 0x11,           -- P1 = {}
  4, 1, 0,              -- P2 = {}
  2, 2, 4, 116, 121, 112, 101,  -- P3 = "type"
  1, 3, 1,              -- P4 = -0.0
  0, 4, 0xff, 40,       -- P5 = -2^40
  5, 0, 2, 3,           -- P1.type = -0.0
  6, 0, 9, 4,           -- P1[1] = P5
  6, 0, 11, 2,          -- P1[3] = "type" (a hole at 2)
  5, 1, 4, 1,           -- P2[P5] = P2 (a cycle: P2 is not data) ...
  5, 0, 3, 0,           -- P1[-0.0 -> 0] = P1 (... nor is P1 now)
  4, 1, 0,              -- P2 = {} again
  5, 1, 2, 2,           -- P2.type = "type"
  5, 0, 0, 1))          -- P1[P1] = P2: a table key, not data either
write("fuzz_transfer", "gen_plain", gen(1 + 16, 0,
  4, 0, 0x11,           -- P1 = {}
  4, 1, 0,              -- P2 = {}
  2, 2, 4, 116, 121, 112, 101,  -- P3 = "type"
  1, 3, 1,              -- P4 = -0.0
  0, 4, 0xff, 40,       -- P5 = -2^40
  5, 0, 2, 3,           -- P1.type = -0.0
  6, 0, 9, 4,           -- P1[1] = P5
  6, 0, 11, 2,          -- P1[3] = "type" (a hole at 2)
  5, 1, 2, 2,           -- P2.type = "type"
  5, 0, 4, 1,           -- P1[P5] = P2
  1, 5, 10,             -- P6 = nan
  5, 1, 3, 5))          -- P2[0] = nan
write("fuzz_transfer", "gen_odd", gen(1 + 4, 0,
  4, 0, 0,              -- P1 = {}
  4, 1, 0,              -- P2 = {}
  14, 1, 8,             -- math.floor = P2 (a table where 'to' has a function)
  7, 0, 1,              -- setmetatable(P1, P2)
  19, 2, 4))            -- P3 = a light userdata (the root with byte 2 = 2)
write("fuzz_transfer", "gen_light", gen(1, 2, 19, 2, 4))
write("fuzz_transfer", "gen_oom", gen(1 + 32, 0,
  15, 0, 40,            -- 320 keys
  8, 1, 0, 0, 6))

-- fuzz_options: argv lists
local argvs = {
  script = { "scripts/pbft_like.lua" },
  full = { "--nodes", "7", "--faulty=2", "--seed", "42", "scripts/x.lua",
           "--requests", "50", "--json" },
  net = { "--latency", "uniform:5:20", "--loss=0.01", "--duplicate", "0.1",
          "s.lua", "--until", "1500.5" },
  byz = { "--nodes=5", "--byzantine", "0,3", "--attack", "equivocate", "s.lua" },
  flags = { "--quiet", "--no-json", "--strict", "--threads", "2", "s.lua",
            "--", "--not-an-option" },
  help = { "--help" },
  bad = { "--nodes", "x" },
  unknown = { "--frobnicate", "s.lua" },
  script_opts = { "s.lua", "--count", "3", "--rate=0.5", "--verbose",
                  "--label", "l", "count", "rate" },
  -- each of cli.check's refusals
  check_faulty = { "--nodes", "3", "--faulty", "5", "s.lua" },
  check_negative = { "--faulty=-1", "s.lua" },
  check_zero = { "--nodes=0", "s.lua" },
  check_ranges = { "--threads", "0", "--rounds", "0", "--until", "-5", "s.lua" },
  check_prob = { "--loss", "1.5", "--duplicate=-0.1", "--budget", "10" },
  check_byz = { "--nodes", "4", "--byzantine", "1,x,7", "s.lua" },
}
for name, list in pairs(argvs) do
  write("fuzz_options", name, table.concat(list, "\0"))
end
