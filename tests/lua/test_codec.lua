-- test_codec.lua - consensus.encode / consensus.decode, the message codec.
--
-- Round trips of every value kind, canonical encoding, the error messages
-- of encode (they name the field path) and decode's refusal of malformed
-- bytes.  When CS_LUA names the stock interpreter, a canonical encoding is
-- also compared with one made in another process (string hashes, hence
-- pairs() order, differ between processes).

local consensus = require "consensus"
local encode, decode = consensus.encode, consensus.decode

-- Values equal in kind, number subtype and content; nan equals nan and
-- -0.0 differs from 0.0; the decoded side 'b' carries no metatable.
local function same(a, b)
  if type(a) ~= type(b) or math.type(a) ~= math.type(b) then
    return false
  end
  if type(a) == "number" then
    if a ~= a then return b ~= b end
    if a == 0 and b == 0 then return 1 / a == 1 / b end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  if getmetatable(b) ~= nil then return false end
  for k, v in next, a do
    if not same(v, rawget(b, k)) then return false end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local function nest(depth)
  local t = {}
  for _ = 2, depth do t = {t} end
  return t
end

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t)
end

local shared = {1, 2}

-- {name, value}
local roundtrips = {
  {"nil", nil},
  {"false", false},
  {"true", true},
  {"zero", 0},
  {"small", 127},
  {"byte", 128},
  {"minus one", -1},
  {"minus 33", -33},
  {"maxinteger", math.maxinteger},
  {"mininteger", math.mininteger},
  {"float one", 1.0},
  {"float", 0.1},
  {"minus zero", -0.0},
  {"inf", math.huge},
  {"minus inf", -math.huge},
  {"nan", 0 / 0},
  {"2^63", 2.0 ^ 63},
  {"empty string", ""},
  {"embedded zeros", "a\0b\0"},
  {"every byte", all_bytes()},
  {"long string", string.rep("xy", 50000)},
  {"empty table", {}},
  {"array with a hole", {1, nil, 3}},
  {"vote", {type = "VOTE", round = 3, value = 42, yes = true}},
  {"mixed keys", {[1.5] = "f", [true] = "t", [false] = "f", [-7] = "n",
                  [0] = "z", [math.mininteger] = "min", [2.0 ^ 70] = "big",
                  ["two words"] = {}, ["a\0b"] = 1, [1] = "one",
                  list = {1, 2, {3, {4}}}}},
  {"long array", (function()
    local t = {}
    for i = 1, 1000 do t[i] = i * 0.5 end
    return t
  end)()},
  {"many keys", (function()
    local t = {}
    for i = 1, 300 do t["k" .. i] = {i} end
    return t
  end)()},
  {"64 levels", nest(64)},
  {"shared table", {a = shared, b = shared, c = {shared}}},
}

for _, case in ipairs(roundtrips) do
  local name, v = case[1], case[2]
  local s = encode(v)
  assert(type(s) == "string", name)
  assert(same(v, decode(s)), name)
  assert(same(v, decode(encode(v, true))), name .. " (canonical)")
end

-- integer and float subtypes survive
assert(math.type(decode(encode(1))) == "integer")
assert(math.type(decode(encode(1.0))) == "float")
assert(math.type(decode(encode({1.0}))[1]) == "float")

-- a hole inside an array stays a hole
do
  local t = decode(encode({1, nil, 3}))
  assert(t[1] == 1 and t[2] == nil and t[3] == 3)
end

-- a shared table arrives as two copies
do
  local t = decode(encode({a = shared, b = shared}))
  assert(t.a ~= t.b and same(t.a, t.b))
end

-- metatables are neither sent nor consulted
do
  local trap = function() error("metamethod called") end
  local v = setmetatable({x = 1}, {__index = trap, __newindex = trap,
                                   __pairs = trap, __len = trap})
  local t = decode(encode(v))
  assert(getmetatable(t) == nil and t.x == 1)
end

-- canonical: equal tables give equal bytes whatever the insertion order
do
  local a, b = {}, {}
  for i = 1, 200 do a["k" .. i] = i end
  for i = 1, 50 do a[i] = i end
  a[1.5], a[true], a[false], a.sub = 1, 2, 3, {z = 1, a = 2}
  b.sub = {a = 2, z = 1}
  for i = 1, 400 do b["tmp" .. i] = i end
  b[false], b[true], b[1.5] = 3, 2, 1
  for i = 50, 1, -1 do b[i] = i end
  for i = 200, 1, -1 do b["k" .. i] = i end
  for i = 1, 400 do b["tmp" .. i] = nil end
  assert(encode(a, true) == encode(b, true))
  assert(same(a, decode(encode(b, true))))
end

-- canonical order: booleans, then numbers by value, then strings bytewise
assert(encode({b = 1, a = 2, [10] = 3, [true] = 4, [-1] = 5}, true)
       == "\xc6\x00\x05\xc2\x04\xff\x05\x0a\x03\x81a\x02\x81b\x01")
assert(#encode({type = "VOTE", round = 3, value = 42, yes = true}) == 32)

-- errors name the field path; {make value, expected message}
local errors = {
  {function() return {votes = {{}, {}, {sig = print}}} end,
   "value.votes[3].sig: cannot send a function"},
  {function() local t = {a = {}}; t.a.b = t; return t end,
   "value.a.b: cyclic table"},
  {function() return nest(65) end, "value: nesting deeper than 64"},
  {function() return string.rep("x", 16 * 1024 * 1024) end,
   "value: message too large (16777221 bytes, limit 16777216)"},
  {function() return {[{}] = 1} end,
   "value: table key must be a string, number or boolean (got table)"},
  {function() return {x = {[print] = 1}} end,
   "value.x: table key must be a string, number or boolean (got function)"},
  {function() return {["two words"] = {[1.5] = coroutine.create(print)}} end,
   'value["two words"][1.5]: cannot send a thread'},
  {function() return print end, "value: cannot send a function"},
}
if io and io.stdout then
  errors[#errors + 1] = {function() return {peer = io.stdout} end,
                         "value.peer: cannot send a userdata"}
end

for i, case in ipairs(errors) do
  local v = case[1]()
  for _, canonical in ipairs({false, true}) do
    local ok, err = pcall(encode, v, canonical)
    assert(not ok, "error case " .. i .. " did not fail")
    assert(err == case[2], ("error case %d:\n got  %s\n want %s")
           :format(i, tostring(err), case[2]))
  end
end

-- a table shared 2^60 times over: encode stops at twice the limit
do
  local t = {}
  for _ = 1, 60 do t = {t, t} end
  local ok, err = pcall(encode, t)
  assert(not ok and err == "value: message too large (more than 33554432 "
         .. "bytes, limit 16777216)", err)
end

-- the encoder still works after an error
assert(decode(encode("after")) == "after")

do
  local ok, err = pcall(encode)
  assert(not ok and err:find("bad argument #1", 1, true), err)
  ok, err = pcall(decode, {})
  assert(not ok and err:find("string expected", 1, true), err)
end

-- decode refuses malformed bytes with one message
local malformed = {
  "",                                   -- nothing
  "\x01\x01",                           -- trailing byte
  "\xc7",                               -- unused tag
  "\xc6\x05\x00\x01",                   -- array longer than the input
  "\xc6\x00\x01\xc0\x01",               -- nil key
  "\xc6\x00\x01\xc3\0\0\0\0\0\0\xf8\x7f\x01",   -- nan key
  "\xc6\x00\x01\xc6\x00\x00\x01",       -- table key
  "\xc5\x80\x94\xeb\xdc\x03x",          -- string longer than the input
  "\xc4\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",   -- varint over 64 bits
  string.rep("\xc6\x01\x00", 65) .. "\xc0",         -- 65 levels
}
for i, s in ipairs(malformed) do
  local ok, err = pcall(decode, s)
  assert(not ok and err == "decode: malformed message",
         "malformed case " .. i)
end
assert(same(decode(string.rep("\xc6\x01\x00", 64) .. "\xc0"), nest(64)))

-- every truncation of a valid message is malformed
do
  local s = encode({type = "VOTE", v = {1, nil, "x"}, f = 2.5, n = -1000})
  for i = 0, #s - 1 do
    assert(not pcall(decode, s:sub(1, i)), "truncation " .. i)
  end
end

-- random bytes: a value or the malformed error, never anything else
do
  local x = 88172645463325252             -- xorshift64, fixed seed
  local function rand()
    x = x ~ (x << 13)
    x = x ~ (x >> 7)
    x = x ~ (x << 17)
    return x
  end
  local tags = {0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0x81, 0xff, 0x02}
  for _ = 1, 3000 do
    local bytes = {}
    for j = 1, rand() % 40 do
      local r = rand()
      bytes[j] = r % 2 == 0 and tags[(r >> 1) % #tags + 1] or (r >> 8) % 256
    end
    local ok, err = pcall(decode, string.char(table.unpack(bytes)))
    assert(ok or err == "decode: malformed message", err)
  end
end

-- canonical bytes are the same in another process
local lua = os.getenv("CS_LUA")
if lua and lua ~= "" and io and io.popen then
  local build = [[
    local t = {}
    for i = 1, 100 do t["key" .. i] = i end
    t[1.5], t[true], t.nested = "f", "t", {z = 1, a = {2, 3}, m = "x"}
    return t
  ]]
  local chunk = "local c = require(\"consensus\") "
    .. "local s = c.encode((function() " .. build .. " end)(), true) "
    .. "io.write((s:gsub(\".\", function(ch) "
    .. "return string.format(\"%02x\", ch:byte()) end)))"
  local p = assert(io.popen(lua .. " -e '" .. chunk .. "'"))
  local theirs = p:read("a")
  p:close()
  local ours = encode(assert(load(build))(), true):gsub(".", function(ch)
    return string.format("%02x", ch:byte())
  end)
  assert(theirs == ours, "canonical bytes differ between processes")
end

print("test_codec.lua: ok")
