-- luacheck configuration (luacheck 1.x, Debian package lua-check).
-- Run it with tools/lint, or: luacheck --no-color lua scripts examples tests
std = "lua54"
codes = true

-- Lua code is indented by 2 and wraps near 100 columns; long string
-- templates (SVG, report lines) may run to 120.
max_line_length = 120

-- Protocol handlers have fixed signatures (start(node), receive(node, msg,
-- from), timer(node, name), attacker hooks): unused arguments are normal.
unused_args = false

-- Library modules end their header with `local _ENV = nil` to catch stray
-- globals (the project style): that local is never read, on purpose.  And
-- `not (x > 0)` is the NaN-safe way to reject a bad number (581).
ignore = { "211/_ENV", "581" }

exclude_files = {
  "build/**", "build-*/**", "build.luarocks/**", "tests/fuzz/corpus/**",
  "tests/fuzz/crashes/**",
}

-- A node state is a fresh Lua state: a global set there is the node's own.
-- The isolation tests set one on purpose.
files["tests/lua/test_engine.lua"] = { globals = { "SHARED" } }
