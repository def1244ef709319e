-- buggy/pbft_commit_2f.lua: PBFT that commits after 2f PREPAREs instead
-- of 2f+1 COMMITs.  A deliberately broken variant, for the checker to
-- catch (tests/lua/test_buggy_pbft.lua); docs/protocols/pbft.md explains.
--
-- It is scripts/pbft_like.lua with one rule changed, patched in as text
-- when this script loads, so the two never drift apart:
--
--   correct  a replica executes (v, s, d) once q (= 2f+1) replicas sent
--            COMMIT for it: then f+1 honest replicas are prepared, and
--            every quorum of VIEW-CHANGEs holds one of their certificates;
--   buggy    it executes as soon as it is prepared (the PRE-PREPARE and
--            2f PREPAREs), skipping the commit phase.
--
-- Being prepared is safe within a view (two prepared digests for one
-- (v, s) would need two intersecting quorums), but it does not survive a
-- view change: a replica can be prepared alone.  --twofaced builds that
-- run: the Byzantine primary 0 sends the real batch to q-F replicas and a
-- null one to the rest, its accomplices prepare the real one for the
-- lowest honest replica z only, and replica 1, primary of view 1, leaves
-- z's VIEW-CHANGE out of its NEW-VIEW.  z has executed a batch that the
-- other honest replicas never see, and their orders differ:
--
--   consensus-lua scripts/buggy/pbft_commit_2f.lua --nodes 7 --faulty 2 --twofaced
--
-- exits 1 (agreement violated), and scripts/pbft_like.lua with the same
-- options exits 0.  All the options of pbft_like.lua work here.

local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local path = dir .. "/../pbft_like.lua"
local f = assert(io.open(path, "r"), "cannot open " .. path)
local src = f:read("a")
f:close()

local function patch(old, new)
  local at = src:find(old, 1, true)
  assert(at and not src:find(old, at + 1, true),
    "pbft_commit_2f: expected exactly one '" .. old .. "' in " .. path)
  src = src:sub(1, at - 1) .. new .. src:sub(at + #old)
end

-- the bug
patch("if e.exec_d == nil and (ve.nc[d] or 0) >= q then -- the commit rule",
      "if e.exec_d == nil and ve.pp_d == d and (ve.np[d] or 0) >= q - 1 then -- BUG: prepared is not committed")
-- and its name in the reports
patch('name = "PBFT"', 'name = "PBFT, buggy: commits after 2f prepares"')
patch('say("=== PBFT: normal case, view changes, checkpoints, client replies ===")',
      'say("=== PBFT, buggy: commits after 2f prepares instead of 2f+1 commits ===")')

local chunk = assert(load(src, "@" .. path .. " (patched by scripts/buggy/pbft_commit_2f.lua)"))
return chunk(...)
