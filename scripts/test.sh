#!/usr/bin/env bash
# The whole test suite: unit tests (GoogleTest, warnings as errors), the same unit tests under
# AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer, the parsers of
# untrusted input fuzzed (libFuzzer, a bounded time each), and the end-to-end tests (pytest)
# against the real binary. Sets up whatever is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== build (warnings are errors)"
BUILD_DIR=build bash scripts/build.sh -DRTENV_WERROR=ON
echo "== unit tests"
ctest --test-dir build --output-on-failure -j2

echo "== unit tests under ASan + UBSan"
# Only the unit tests run under the sanitizers: build just them.
NINJA_TARGETS="$(printf 'rtenv_%s_tests ' util spec config store pack env agent)" \
  BUILD_DIR=build-asan bash scripts/build.sh -DRTENV_WERROR=ON -DRTENV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j2

echo "== unit tests under ThreadSanitizer"
NINJA_TARGETS="$(printf 'rtenv_%s_tests ' util spec config store pack env agent)" \
  BUILD_DIR=build-tsan bash scripts/build.sh -DRTENV_WERROR=ON -DRTENV_SANITIZE=thread
TSAN_OPTIONS="second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp" \
  ctest --test-dir build-tsan --output-on-failure -j2

echo "== fuzzing the parsers of untrusted input (libFuzzer, ASan + UBSan)"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh

echo "== end-to-end tests"
RTENV_BIN=$PWD/build/src/cli/rtenv python3 -m pytest -q tests/e2e

echo "== differential test against Ray's own runtime_env validation"
RTENV_BIN=$PWD/build/src/cli/rtenv python3 -m pytest -q tests/differential

if [ -d tests/cluster ]; then
  echo "== cluster tests (nodes in network namespaces)"
  RTENV_BIN=$PWD/build/src/cli/rtenv python3 -m pytest -q tests/cluster
fi

echo "== Slurm tests (a real Slurm on this host: slurmctld, munged, two slurmd)"
RTENV_BIN=$PWD/build/src/cli/rtenv python3 -m pytest -q tests/slurm

echo "== Python package (python/, against build/)"
RTENV_BIN=$PWD/build/src/cli/rtenv python3 -m pytest -q python/tests

echo "== the wheel: built once, installed into a fresh venv, rtenv run from it, Ray against it"
# ccache makes it nearly all hits of the build above (same flags, scripts/build_wheel.sh).
wheel=$(bash scripts/build_wheel.sh -DRTENV_WERROR=ON | tail -n 1)
venv=$PWD/build-wheel/venv
rm -rf "$venv"
# The system's site-packages stay visible: Ray, pytest and the test tools come from there, rtenv
# (its code and its binaries) from the wheel.
python3 -m venv --system-site-packages --without-pip "$venv"
python3 -m pip --python "$venv/bin/python" install -q --no-deps --no-index "$wheel"
smoke_home=$(mktemp -d)
env -u RTENV_BIN PATH=/usr/bin:/bin RTENV_HOME="$smoke_home" \
  "$venv/bin/rtenv" run -e '{"env_vars": {"WHEEL_SMOKE": "ok"}}' -- sh -c 'test "$WHEEL_SMOKE" = ok'
rm -rf "$smoke_home"
# No RTENV_BIN: the tests, the driver and every node's plugin use the package's own binaries.
env -u RTENV_BIN RTENV_WHEEL="$wheel" "$venv/bin/python" -m pytest -q tests/ray
