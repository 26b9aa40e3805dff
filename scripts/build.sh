#!/usr/bin/env bash
# Configures and builds rtenv into build/ (or $BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
# The suite builds rtenv several ways (plain, sanitizers) and clones may sit anywhere: ccache,
# with paths taken relative to the checkout, lets them share compiled objects.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" "$@" >/dev/null
fi
# NINJA_TARGETS: space-separated targets (default: all).
read -r -a targets <<< "${NINJA_TARGETS:-all}"
# ninja's progress lines are dropped; its status is the script's (pipefail).
ninja -C "$build" "${targets[@]}" | { grep -v '^\[' || true; }
