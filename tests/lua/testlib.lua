-- testlib: helpers shared by the Lua tests (plain asserts, no framework).
--
-- Tests run under the host from the repository root; CTest sets CS_HOST
-- (the consensus-lua binary), CS_LUA (stock lua5.4) and CS_BUILD (the
-- build directory holding consensus.so).

local M = {}

M.host = os.getenv("CS_HOST") or "build/consensus-lua"
M.lua = os.getenv("CS_LUA") or "lua5.4"
M.build = os.getenv("CS_BUILD") or "build"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

-- Run a shell command; return stdout, stderr and the exit status.
function M.run(cmd)
  local errfile = os.tmpname()
  local p = assert(io.popen(cmd .. " 2>" .. quote(errfile), "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  local f = io.open(errfile, "r")
  local err = f and f:read("a") or ""
  if f then f:close() end
  os.remove(errfile)
  return out, err, code
end

-- Run the host with the given argument list (strings, quoted here).
function M.host_run(...)
  local parts = { quote(M.host) }
  for _, a in ipairs { ... } do parts[#parts + 1] = quote(a) end
  return M.run(table.concat(parts, " "))
end

-- Write 'text' to a fresh temporary file and return its name.
function M.temp_script(text)
  local base = os.tmpname()
  os.remove(base)
  local name = base .. ".lua"
  local f = assert(io.open(name, "w"))
  f:write(text)
  f:close()
  return name
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- assert a == b with both shown on failure.
function M.eq(a, b, what)
  if a ~= b then
    error(string.format("%s: expected %s, got %s", what or "value",
      tostring(b), tostring(a)), 2)
  end
end

-- Fail unless 'text' contains 'needle' (plain).
function M.has(text, needle, what)
  if not tostring(text):find(needle, 1, true) then
    error(string.format("%s: %q not found in:\n%s", what or "text", needle, text), 2)
  end
end

-- Run named cases: { {name, fn}, ... }; report and fail at the end.
function M.cases(list)
  local failed = 0
  for _, c in ipairs(list) do
    local ok, err = pcall(c[2])
    if ok then
      io.write("ok   ", c[1], "\n")
    else
      failed = failed + 1
      io.write("FAIL ", c[1], "\n  ", tostring(err), "\n")
    end
  end
  io.write(string.format("%d passed, %d failed\n", #list - failed, failed))
  -- Exit explicitly: the runs above may have violated checks on purpose,
  -- which would otherwise set the host's exit status.
  os.exit(failed > 0 and 1 or 0)
end

-- The raw text of a scalar field of a JSON line ("true", "3", "\"x\"");
-- fails the test when the field is missing.
function M.field(json, name)
  local v = json:match('"' .. name .. '":([^,}%]]+)')
  assert(v, "no field '" .. name .. "' in " .. json)
  return v
end

-- Drop the "threads":N field, the only one that names the thread count.
function M.strip_threads(json)
  return (json:gsub('"threads":%d+,', ""))
end

return M
