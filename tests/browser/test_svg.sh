#!/bin/sh
# test_svg.sh: draw a run with --svg, open the picture in headless
# Chromium, and check the screenshot is a picture (png_check.lua): the
# right size, not blank, many colours, and the legend's exact colours.
#
#   CS_HOST=build/consensus-lua CS_LUA=lua5.4 tests/browser/test_svg.sh
#
# Without a browser it says so loudly and exits 77, which CTest reports as
# skipped (SKIP_RETURN_CODE 77), never as passed; with CS_REQUIRE_BROWSER=1
# (CI) a missing browser fails the test.  Run from the repository root.
set -u

host=${CS_HOST:-build/consensus-lua}
lua=${CS_LUA:-lua5.4}
here=$(dirname "$0")

browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  msg="no chromium found; the SVG was NOT checked in a browser (apt-get install chromium)"
  if [ "${CS_REQUIRE_BROWSER:-0}" = 1 ]; then
    echo "FAIL $msg (CS_REQUIRE_BROWSER=1)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "SKIPPED: $msg"
  echo "test_svg.sh: SKIPPED: $msg" >&2
  exit 77
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
failed=0
passed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }

# A run with two message types, decisions, timers, a crash and restart
# and a Byzantine node.
cat > "$dir/scene.lua" <<'EOF'
local consensus = require "consensus"
local sim = consensus.sim{ nodes = 5, seed = 2, network = { latency = "uniform:5:20" } }
sim:spawn{
  start = function(node) node:propose(1); node.r = 0; node:set_timer("round", 10) end,
  timer = function(node)
    node.r = node.r + 1
    node:broadcast { type = node.r % 2 == 1 and "ODD" or "EVEN", r = node.r }
    if node.r < 4 then node:set_timer("round", 10) else node:decide(1) end
  end,
}
sim:byzantine({3})
sim:crash(2, { at = 15, restart = 25 })
sim:run():print()
EOF

if "$host" "$dir/scene.lua" --trace "$dir/run.jsonl" --svg "$dir/run.svg" --quiet; then
  ok "consensus-lua --svg wrote the picture"
else
  fail "consensus-lua --svg (exit $?)"
fi

profile="$dir/profile"
mkdir -p "$profile"
# --no-sandbox: CI runs as root in a container.  --disable-dev-shm-usage:
# containers have a small /dev/shm.  The rest keeps it off the network.
if timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic \
     --no-first-run --disable-background-networking --disable-component-update \
     --disable-sync --disable-dev-shm-usage --hide-scrollbars \
     --user-data-dir="$profile" --screenshot="$dir/shot.png" --window-size=1200,800 \
     "file://$dir/run.svg" >"$dir/browser.log" 2>&1 && [ -s "$dir/shot.png" ]; then
  ok "$browser took a screenshot"
else
  fail "$browser took no screenshot; its output:"
  tail -20 "$dir/browser.log"
fi

# The legend's swatches: ODD and EVEN (the first two type colours), the
# decision mark, the Byzantine row's tint.
if [ -s "$dir/shot.png" ] && "$lua" "$here/png_check.lua" "$dir/shot.png" 1200 800 \
     '#1f77b4' '#ff7f0e' '#f2c200' '#fbe3e0'; then
  ok "the screenshot shows the picture"
else
  fail "the screenshot shows the picture"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
