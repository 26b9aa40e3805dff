#!/usr/bin/env bash
# Configures and builds rtenv into build/ (or $BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
# NINJA_TARGETS: space-separated targets (default: all).
read -r -a targets <<< "${NINJA_TARGETS:-all}"
ninja -C "$build" "${targets[@]}" | grep -v '^\[' || true
test "${PIPESTATUS[0]}" -eq 0
