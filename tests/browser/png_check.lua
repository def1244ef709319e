-- png_check.lua: is a screenshot a picture, not a blank page?
--
--   lua5.4 tests/browser/png_check.lua SHOT.png WIDTH HEIGHT [#rrggbb ...]
--
-- Decodes the PNG (8-bit grey, grey+alpha, RGB or RGBA, not interlaced:
-- what Chromium writes) with a small inflate in plain Lua, then checks
-- the size, that enough pixels are not white, that there are many
-- colours (anti-aliased lines and text), and that each colour named on
-- the command line covers at least 20 pixels exactly (the SVG's legend
-- swatches).  Prints what it found; exits 1 on a failed check.

local function band(a, b) return a & b end
local function bor(a, b) return a | b end
local function lsh(a, n) return a << n end
local function rsh(a, n) return a >> n end

---------------------------------------------------------------- inflate

-- Inflate a raw DEFLATE stream (RFC 1951) starting at byte 'pos' of
-- 'src'; returns the output as a table of byte values.
local function inflate(src, pos)
  local out, n = {}, 0
  local bitbuf, bitcnt = 0, 0

  local function bits(need)
    while bitcnt < need do
      local b = src:byte(pos)
      if not b then error("inflate: input ends early") end
      pos = pos + 1
      bitbuf = bor(bitbuf, lsh(b, bitcnt))
      bitcnt = bitcnt + 8
    end
    local v = band(bitbuf, lsh(1, need) - 1)
    bitbuf = rsh(bitbuf, need)
    bitcnt = bitcnt - need
    return v
  end

  -- A canonical Huffman code from code lengths (puff.c's construct).
  local function build(lengths, count_of_symbols)
    local count, symbol, offs = {}, {}, {}
    for len = 0, 15 do count[len] = 0 end
    for s = 0, count_of_symbols - 1 do count[lengths[s] or 0] = count[lengths[s] or 0] + 1 end
    offs[1] = 0
    for len = 1, 14 do offs[len + 1] = offs[len] + count[len] end
    for s = 0, count_of_symbols - 1 do
      local len = lengths[s] or 0
      if len ~= 0 then
        symbol[offs[len]] = s
        offs[len] = offs[len] + 1
      end
    end
    return { count = count, symbol = symbol }
  end

  local function decode(h)
    local code, first, index = 0, 0, 0
    local count = h.count
    for len = 1, 15 do
      code = bor(code, bits(1))
      local c = count[len]
      if code - c < first then return h.symbol[index + (code - first)] end
      index = index + c
      first = lsh(first + c, 1)
      code = lsh(code, 1)
    end
    error("inflate: bad Huffman code")
  end

  local LBASE = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                  67, 83, 99, 115, 131, 163, 195, 227, 258 }
  local LEXT = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 }
  local DBASE = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                  1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 }
  local DEXT = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11,
                 12, 12, 13, 13 }

  local function codes(lit, dist)
    while true do
      local sym = decode(lit)
      if sym < 256 then
        n = n + 1
        out[n] = sym
      elseif sym == 256 then
        return
      else
        sym = sym - 257
        if sym >= 29 then error("inflate: bad length symbol") end
        local len = LBASE[sym + 1] + bits(LEXT[sym + 1])
        local ds = decode(dist)
        if ds >= 30 then error("inflate: bad distance symbol") end
        local d = DBASE[ds + 1] + bits(DEXT[ds + 1])
        if d > n then error("inflate: distance too far back") end
        for _ = 1, len do
          n = n + 1
          out[n] = out[n - d]
        end
      end
    end
  end

  local fixed_lit, fixed_dist
  local ORDER = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 }
  repeat
    local last = bits(1)
    local kind = bits(2)
    if kind == 0 then
      bitbuf, bitcnt = 0, 0                     -- to a byte boundary
      local len = src:byte(pos) + 256 * src:byte(pos + 1)
      pos = pos + 4
      for k = 0, len - 1 do
        n = n + 1
        out[n] = src:byte(pos + k)
      end
      pos = pos + len
    elseif kind == 1 then
      if not fixed_lit then
        local l = {}
        for s = 0, 143 do l[s] = 8 end
        for s = 144, 255 do l[s] = 9 end
        for s = 256, 279 do l[s] = 7 end
        for s = 280, 287 do l[s] = 8 end
        fixed_lit = build(l, 288)
        local d = {}
        for s = 0, 29 do d[s] = 5 end
        fixed_dist = build(d, 30)
      end
      codes(fixed_lit, fixed_dist)
    elseif kind == 2 then
      local nlen, ndist, ncode = bits(5) + 257, bits(5) + 1, bits(4) + 4
      local cl = {}
      for k = 1, 19 do cl[ORDER[k]] = 0 end
      for k = 1, ncode do cl[ORDER[k]] = bits(3) end
      local lencode = build(cl, 19)
      local lengths, k = {}, 0
      while k < nlen + ndist do
        local sym = decode(lencode)
        if sym < 16 then
          lengths[k] = sym
          k = k + 1
        else
          local v, times = 0
          if sym == 16 then
            if k == 0 then error("inflate: repeat with no length") end
            v, times = lengths[k - 1], 3 + bits(2)
          elseif sym == 17 then
            times = 3 + bits(3)
          else
            times = 11 + bits(7)
          end
          for _ = 1, times do
            lengths[k] = v
            k = k + 1
          end
        end
      end
      local lit, dist = {}, {}
      for s = 0, nlen - 1 do lit[s] = lengths[s] end
      for s = 0, ndist - 1 do dist[s] = lengths[nlen + s] end
      codes(build(lit, nlen), build(dist, ndist))
    else
      error("inflate: bad block type")
    end
  until last == 1
  return out, n
end

---------------------------------------------------------------- PNG

local function u32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function read_png(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  assert(s:sub(1, 8) == "\137PNG\r\n\26\n", "not a PNG file")
  local pos, idat = 9, {}
  local w, h, depth, ctype, interlace
  while pos <= #s do
    local len, kind = u32(s, pos), s:sub(pos + 4, pos + 7)
    local data = s:sub(pos + 8, pos + 7 + len)
    if kind == "IHDR" then
      w, h = u32(data, 1), u32(data, 5)
      depth, ctype, interlace = data:byte(9), data:byte(10), data:byte(13)
    elseif kind == "IDAT" then
      idat[#idat + 1] = data
    elseif kind == "IEND" then
      break
    end
    pos = pos + 12 + len
  end
  assert(w, "no IHDR chunk")
  assert(depth == 8, "only 8-bit PNGs are handled, got " .. tostring(depth))
  assert(interlace == 0, "interlaced PNGs are not handled")
  local channels = ({ [0] = 1, [2] = 3, [4] = 2, [6] = 4 })[ctype]
  assert(channels, "colour type " .. tostring(ctype) .. " is not handled")
  local z = table.concat(idat)
  assert(z:byte(1) & 0x0f == 8, "not a zlib stream")
  local raw, n = inflate(z, 3)
  local stride = w * channels
  assert(n >= h * (stride + 1), ("image data too short: %d bytes for %dx%d"):format(n, w, h))
  -- Undo the filters, row by row, into one table of byte values.
  local px = {}
  local k = 0
  for y = 0, h - 1 do
    local ftype = raw[y * (stride + 1) + 1]
    local base = y * (stride + 1) + 1
    local prev = (y - 1) * stride
    for x = 1, stride do
      local v = raw[base + x]
      local a = x > channels and px[y * stride + x - channels] or 0
      local b = y > 0 and px[prev + x] or 0
      local c = (x > channels and y > 0) and px[prev + x - channels] or 0
      if ftype == 1 then
        v = v + a
      elseif ftype == 2 then
        v = v + b
      elseif ftype == 3 then
        v = v + (a + b) // 2
      elseif ftype == 4 then
        local p = a + b - c
        local pa, pb, pc = math.abs(p - a), math.abs(p - b), math.abs(p - c)
        if pa <= pb and pa <= pc then v = v + a elseif pb <= pc then v = v + b else v = v + c end
      elseif ftype ~= 0 then
        error("bad filter type " .. tostring(ftype))
      end
      k = k + 1
      px[k] = v & 0xff
    end
  end
  return w, h, channels, px
end

---------------------------------------------------------------- checks

local path, want_w, want_h = arg[1], tonumber(arg[2]), tonumber(arg[3])
if not (path and want_w and want_h) then
  io.stderr:write("usage: png_check.lua SHOT.png WIDTH HEIGHT [#rrggbb ...]\n")
  os.exit(2)
end
local w, h, channels, px = read_png(path)
local colours, distinct, nonwhite = {}, 0, 0
for i = 0, w * h - 1 do
  local r, g, b
  if channels >= 3 then
    r, g, b = px[i * channels + 1], px[i * channels + 2], px[i * channels + 3]
  else
    r = px[i * channels + 1]
    g, b = r, r
  end
  local key = (r << 16) | (g << 8) | b
  local c = colours[key]
  if not c then distinct = distinct + 1 end
  colours[key] = (c or 0) + 1
  if key ~= 0xffffff then nonwhite = nonwhite + 1 end
end

local failed = 0
local function check(ok, what)
  io.write(ok and "ok   " or "FAIL ", what, "\n")
  if not ok then failed = failed + 1 end
end
local frac = nonwhite / (w * h)
check(w == want_w and h == want_h, ("size %dx%d (want %dx%d)"):format(w, h, want_w, want_h))
check(frac > 0.005 and frac < 0.95, ("%.1f%% of the pixels are not white"):format(100 * frac))
check(distinct >= 16, ("%d distinct colours"):format(distinct))
for i = 4, #arg do
  local hex = arg[i]:match("^#?(%x%x%x%x%x%x)$")
  local key = hex and tonumber(hex, 16)
  local got = key and colours[key] or 0
  check(got >= 20, ("colour %s covers %d pixels"):format(arg[i], got))
end
os.exit(failed == 0 and 0 or 1)
