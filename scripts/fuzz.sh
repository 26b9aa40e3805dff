#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) with clang, ASan and UBSan into build-fuzz/ and runs
# each for a bounded time on a temporary copy of its seed corpus (what it finds on the way is
# not kept). Fails on any crash, leak, timeout or out-of-memory, printing the reproducer's path
# (and the command that replays it). Installs nothing: scripts/setup.sh does.
#
#   scripts/fuzz.sh [target...]   targets: spec manifest records http_head image (default: all)
#   FUZZ_SECONDS=30               how long each target runs
set -euo pipefail
cd "$(dirname "$0")/.."
all_targets=(spec manifest records http_head image)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
seconds=${FUZZ_SECONDS:-30}
build=build-fuzz

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
NINJA_TARGETS="$(printf 'fuzz_%s ' "${targets[@]}")" BUILD_DIR=$build bash scripts/build.sh \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DRTENV_FUZZ=ON -DRTENV_TESTS=OFF

work=$(mktemp -d "${TMPDIR:-/tmp}/rtenv-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
# One target: its verdict in $work/<target>.verdict (its status, then what to print).
run_one() {
  local t=$1 artifacts=$PWD/$build/artifacts/$1 log=$PWD/$build/logs/$1.log status=0 start=$SECONDS
  mkdir -p "$artifacts" "$(dirname "$log")" "$work/$t"
  cp -r fuzz/corpus/"$t"/. "$work/$t/"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "$work/$t" >"$log" 2>&1 || status=$?
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  {
    echo "$status"
    if [ "$status" -eq 0 ]; then
      echo "fuzz: $t: ok (${runs:-?} inputs, ${cov:-cov: ?}, $((SECONDS - start)) s)"
    else
      echo "fuzz: $t: FAILED (exit $status after $((SECONDS - start)) s); the end of $log:"
      tail -n 40 "$log"
      local reproducer
      reproducer=$(grep -o "Test unit written to .*" "$log" | tail -1 |
                   sed 's/^Test unit written to //' || true)
      if [ -n "$reproducer" ]; then
        echo "fuzz: $t: reproducer: $reproducer"
        echo "fuzz: $t: replay it with: $build/fuzz/fuzz_$t $reproducer"
      fi
    fi
  } >"$work/$t.verdict"
}

# One target per core at a time: each still gets a core of its own for its time.
cores=$(nproc)
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$cores" ]; do wait -n || true; done
  run_one "$t" &
done
wait
failed=()
for t in "${targets[@]}"; do
  if [ "$(head -n 1 "$work/$t.verdict")" = 0 ]; then
    tail -n +2 "$work/$t.verdict"
  else
    failed+=("$t")
    tail -n +2 "$work/$t.verdict" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
