-- consensus.json: a small JSON encoder with a deterministic key order.
--
-- Objects are written with their keys sorted (or in the order given by a
-- 'keys' list), so the same value gives the same bytes in every process.
-- A table whose keys are exactly 1..n is an array; an empty table is {}.

local M = {}

local pairs, ipairs, type, tostring, sort = pairs, ipairs, type, tostring, table.sort
local concat, format, math_type = table.concat, string.format, math.type
local huge = math.huge

local _ENV = nil

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or format("\\u%04x", c:byte())
  end) .. '"'
end

local function num(v)
  if math_type(v) == "integer" then return tostring(v) end
  if v ~= v or v == huge or v == -huge then return "null" end
  if v == (v // 1) and v > -1e15 and v < 1e15 then return format("%d", v // 1) end
  return format("%.14g", v)
end

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local encode

local function is_array(t)
  local n = #t
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n and n > 0
end

function encode(v, out, keys, depth)
  local t = type(v)
  if depth > 100 then out[#out + 1] = '"<too deep>"'; return end
  if v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif t == "number" then out[#out + 1] = num(v)
  elseif t == "string" then out[#out + 1] = str(v)
  elseif t == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, nil, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local ks = keys
      if not ks then
        ks = {}
        for k in pairs(v) do ks[#ks + 1] = k end
        sort(ks, key_less)
      end
      out[#out + 1] = "{"
      local first = true
      for _, k in ipairs(ks) do
        if v[k] ~= nil then
          if not first then out[#out + 1] = "," end
          first = false
          out[#out + 1] = str(tostring(k))
          out[#out + 1] = ":"
          encode(v[k], out, nil, depth + 1)
        end
      end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = str("<" .. t .. ">")
  end
end

-- Encode 'v'.  'keys', if given, orders the top-level object's fields.
function M.encode(v, keys)
  local out = {}
  encode(v, out, keys, 0)
  return concat(out)
end

return M
