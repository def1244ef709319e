#!/usr/bin/env bash
# bench/soak.sh - the soak of issue 7: a long steady run whose memory must
# stay flat, and a short one that must be clean under a leak checker.
#
#   bench/soak.sh                 10^7 messages at n=200, RSS sampled (minutes)
#   bench/soak.sh --short         10^6 messages at n=200 (a smoke test)
#   bench/soak.sh --valgrind      10^5 messages at n=200 under
#                                 valgrind --leak-check=full
#   bench/soak.sh --asan          the same short run with an AddressSanitizer
#                                 build (LeakSanitizer at exit)
#
# Options:
#   --build DIR     build directory with consensus-lua (default: build; for
#                   --asan: build-asan).  Built (RelWithDebInfo, or with
#                   CS_SANITIZE=address for --asan) when the binary is missing.
#   --messages M    override the message count of the mode
#   --threads N     worker threads (default: the number of cores)
#   -- ARGS         passed on to bench/soak.lua (e.g. --tokens 20)
#
# It is a benchmark, not a test: CTest does not run it.  The exit status
# is 0 when the run passes (memory flat; no leak or error reported), 1
# otherwise.  The last line of bench/soak.lua's output has the numbers:
#   soak: PASS messages=... wall_s=... cpu_s=... rss_kib=LOW..HIGH growth_pct=G
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
mode=full
build=
messages=
threads=
extra=()

while [ $# -gt 0 ]; do
  case "$1" in
    --short) mode=short; shift ;;
    --valgrind) mode=valgrind; shift ;;
    --asan) mode=asan; shift ;;
    --build) build=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

case $mode in
  full)     : "${messages:=10000000}"; san="" ;;
  short)    : "${messages:=1000000}"; san="" ;;
  valgrind) : "${messages:=100000}"; san="" ;;
  asan)     : "${messages:=100000}"; san=address ;;
esac
if [ -z "$build" ]; then
  if [ "$mode" = asan ]; then build=$root/build-asan; else build=$root/build; fi
fi
host=$build/consensus-lua
if [ ! -x "$host" ]; then
  echo "=== building $host ===" >&2
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCS_SANITIZE="$san" >/dev/null
  cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target consensus-lua >&2
fi

args=(bench/soak.lua --messages "$messages")
[ -n "$threads" ] && args+=(--threads "$threads")
args+=("${extra[@]}")
cd "$root"

echo "=== soak ($mode): $host ${args[*]} ===" >&2
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')" >&2
case $mode in
  full|short)
    /usr/bin/time -f "time: %e s wall, %U s user, %S s sys, peak RSS %M KiB" \
      "$host" "${args[@]}"
    ;;
  valgrind)
    command -v valgrind >/dev/null || { echo "soak.sh: valgrind not found" >&2; exit 2; }
    # Under valgrind RSS says nothing: only leaks and memory errors count.
    log=$(mktemp)
    status=0
    valgrind --leak-check=full --show-leak-kinds=definite,indirect \
             --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
             --log-file="$log" "$host" "${args[@]}" --no-flat || status=$?
    grep -E "in use at exit|All heap blocks|definitely lost|indirectly lost|possibly lost|still reachable|ERROR SUMMARY" "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
      echo "soak.sh: valgrind found a problem (exit status $status); its log: $log" >&2
      exit 1
    fi
    rm -f "$log"
    echo "valgrind: clean (no definite or indirect leak, no memory error)" >&2
    ;;
  asan)
    ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$host" "${args[@]}" --no-flat
    echo "asan: clean (LeakSanitizer found no leak)" >&2
    ;;
esac
