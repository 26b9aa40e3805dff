#!/usr/bin/env bash
# Builds the Python package's wheel (python/, with the rtenv, rtenv-full and rtenv-agent
# binaries) into build-wheel/dist/ (or $WHEEL_DIR) and prints the wheel's path on its last line.
# Extra arguments go to cmake, as with scripts/build.sh. Needs what scripts/setup.sh installs
# (scikit-build-core and build besides the toolchain); nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
out=${WHEEL_DIR:-$PWD/build-wheel/dist}
# CMake's build tree: build-wheel/, beside build/. With scripts/build.sh's ccache settings and
# build type (python/pyproject.toml), the compiler runs from the same depth below the checkout
# with the same flags, so the objects build.sh compiled are ccache hits here.
# scikit-build-core would take the compilers Python was built with (sysconfig's gcc, g++), and
# ccache hashes the compiler's name: the ones CMake picks by itself for build.sh (cc, c++) unless
# the caller chose.
export CC=${CC:-cc} CXX=${CXX:-c++}
if command -v ccache >/dev/null; then
  export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
settings=(-C "build-dir=$PWD/build-wheel")
if [ $# -gt 0 ]; then
  settings+=(-C "cmake.args=$(IFS=';'; echo "$*")")
fi
mkdir -p "$out"
rm -f "$out"/rtenv-*.whl
"$py" -m build --wheel --no-isolation --outdir "$out" "${settings[@]}" python >"$out/build.log" 2>&1 || {
  tail -n 40 "$out/build.log" >&2
  echo "build_wheel: building the wheel failed; the whole log is $out/build.log" >&2
  exit 1
}
ls "$out"/rtenv-*.whl
