-- test_pbft.lua: scripts/pbft_like.lua end to end, through the host.
--
-- Run from the repository root with CS_HOST set to the consensus-lua
-- binary (ctest does both):
--   CS_HOST=$PWD/build/consensus-lua ./build/consensus-lua tests/lua/test_pbft.lua
-- Set CS_UPDATE_GOLDEN=1 to record tests/golden/pbft_like.txt again.

local HOST = os.getenv("CS_HOST")
assert(HOST and HOST ~= "", "set CS_HOST to the consensus-lua binary")

local SCRIPT = "scripts/pbft_like.lua"
local GOLDEN = "tests/golden/pbft_like.txt"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run the script with 'args'; returns its stdout and exit code.
-- stderr goes to /dev/null unless 'keep_stderr' (then it is merged).
local function run(args, keep_stderr)
  local cmd = quote(HOST) .. " " .. SCRIPT .. " " .. args
    .. (keep_stderr and " 2>&1" or " 2>/dev/null")
  local pipe = assert(io.popen(cmd, "r"))
  local out = pipe:read("a")
  local ok, how, code = pipe:close()
  assert(how == "exit", cmd .. ": ended by " .. tostring(how) .. " " .. tostring(code))
  return out, code, cmd
end

local function field(json, name)
  local v = json:match('"' .. name .. '":([^,}%]]+)')
  assert(v, "no field '" .. name .. "' in " .. json)
  return v
end

local checked = 0

---------------------------------------------------------------- correctness

-- Up to f silent backups: every honest replica executes every request.
local seeds = { 1, 2, 7 }
for _, n in ipairs { 4, 7, 10 } do
  local fmax = (n - 1) // 3
  for f = 0, fmax do
    for _, seed in ipairs(seeds) do
      local args = string.format("--nodes %d --faulty %d --seed %d --json", n, f, seed)
      local out, code, cmd = run(args)
      local where = cmd .. "\n" .. out
      assert(code == 0, "exit " .. tostring(code) .. ": " .. where)
      assert(field(out, "status") == "0", where)
      assert(field(out, "agreement") == "true", where)
      assert(field(out, "validity") == "true", where)
      assert(field(out, "termination") == "true", where)
      assert(field(out, "slots") == "10", where)
      assert(field(out, "honest") == tostring(n - f), where)
      assert(field(out, "decided") == field(out, "honest"), where)
      -- the silent replicas are backups, never the primary (node 0)
      local byz = out:match('"byzantine":%[([%d,]*)%]')
      assert(byz, where)
      local count = 0
      for id in byz:gmatch("%d+") do
        assert(id ~= "0", "node 0 chosen as silent: " .. where)
        count = count + 1
      end
      assert(count == f, where)
      checked = checked + 1
    end
  end
end

-- --requests sets the number of slots to decide.
do
  local out, code = run("--nodes 7 --faulty 2 --requests 25 --json")
  assert(code == 0 and field(out, "slots") == "25" and field(out, "decided") == "5", out)
  checked = checked + 1
end

-- More silent replicas than f: no quorum, so no termination (exit 3),
-- and still no safety violation.
do
  local out, code = run("--nodes 4 --faulty 2 --json")
  assert(code == 3, "expected exit 3, got " .. tostring(code) .. ": " .. out)
  assert(field(out, "status") == "3", out)
  assert(field(out, "termination") == "false", out)
  assert(field(out, "agreement") == "true", out)
  checked = checked + 1
end

---------------------------------------------------------------- determinism

local function without_threads(json)
  return (json:gsub('"threads":%d+,?', ""))
end

for _, args in ipairs {
  "--nodes 4 --faulty 1 --seed 3",
  "--nodes 10 --faulty 3 --seed 11 --requests 30 --interval 1",
} do
  local one = run(args .. " --json --threads 1")
  local two = run(args .. " --json --threads 2")
  local again = run(args .. " --json --threads 2")
  assert(one ~= "", args)
  assert(without_threads(one) == without_threads(two),
    "--threads 1 and 2 differ for " .. args .. ":\n" .. one .. two)
  assert(two == again, "two runs differ for " .. args .. ":\n" .. two .. again)
  -- the human report too
  local h1 = run(args .. " --threads 1")
  local h2 = run(args .. " --threads 2")
  assert(h1 == h2, "human reports differ for " .. args .. ":\n" .. h1 .. h2)
  checked = checked + 1
end

---------------------------------------------------------------- usage

do
  local out, code = run("--bogus", true)
  assert(code == 2, "--bogus: expected exit 2, got " .. tostring(code))
  assert(out:find("bogus", 1, true), "--bogus: message should name it: " .. out)
  out, code = run("--requests", true)
  assert(code == 2, "--requests without a value: expected exit 2, got " .. tostring(code))
  out, code = run("--requests 0", true)
  assert(code == 2, "--requests 0: expected exit 2, got " .. tostring(code))
  checked = checked + 1
end

---------------------------------------------------------------- golden

do
  local out, code = run("--threads 1")
  assert(code == 0, "default run: exit " .. tostring(code))
  if os.getenv("CS_UPDATE_GOLDEN") == "1" then
    local f = assert(io.open(GOLDEN, "wb"))
    f:write(out)
    f:close()
    print("recorded " .. GOLDEN)
  end
  local f = io.open(GOLDEN, "rb")
  assert(f, "missing " .. GOLDEN .. " (record it with CS_UPDATE_GOLDEN=1)")
  local want = f:read("a")
  f:close()
  if out ~= want then
    local tmp = os.tmpname()
    local g = assert(io.open(tmp, "wb"))
    g:write(out)
    g:close()
    error(string.format("%s: output of 'consensus-lua %s --threads 1' differs;\n"
      .. "  see: diff -u %s %s\n"
      .. "  if the change is intended: CS_UPDATE_GOLDEN=1 CS_HOST=%s %s tests/lua/test_pbft.lua",
      GOLDEN, SCRIPT, GOLDEN, tmp, HOST, HOST), 0)
  end
  checked = checked + 1
end

print(string.format("test_pbft: %d checks passed", checked))
