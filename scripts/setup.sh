#!/usr/bin/env bash
# Installs what rtenv needs to build and test on Debian 12, when it is missing.
# Idempotent: a second run installs nothing and takes a few seconds.
set -euo pipefail

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git zip unzip hyperfine
  libssl-dev libzstd-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libfmt-dev
  libarchive-dev libsqlite3-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev clang-format iproute2
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  python3 python3-venv openjdk-17-jdk-headless
  # scripts/fuzz.sh: clang, and libFuzzer with clang's sanitizer runtimes, which Debian 12 ships
  # in libclang-rt-14-dev (only recommended by clang-14, so not installed without it here).
  clang libclang-rt-14-dev
  # tests/slurm and bench/slurm: a real Slurm (controller, two node daemons on this host) with
  # munge, and the SPANK header the plugin builds against. Nothing of it starts by itself.
  slurmctld slurmd slurm-client munge libslurm-dev
  # tests/e2e: `rtenv completion zsh` is tried in zsh.
  zsh
  # tests/e2e/test_image.py: images built from the static busybox, zstd layers, served by a
  # docker-registry on 127.0.0.1. bench/image: its peers (skopeo, umoci, bubblewrap, podman).
  busybox-static zstd docker-registry skopeo umoci bubblewrap podman
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python tooling for the end-to-end tests.
py=${PYTHON:-python3}
if ! "$py" -c 'import pytest' 2>/dev/null; then
  echo "setup: installing pytest"
  "$py" -m pip install -q pytest
fi

# wheel: setuptools on Debian 12 builds `pip install ./python` (the Python package's test) only
# with it (without: "invalid command 'bdist_wheel'").
if ! "$py" -c 'import wheel' 2>/dev/null; then
  echo "setup: installing wheel"
  "$py" -m pip install -q 'wheel==0.45.1'
fi

# scikit-build-core and build: the Python package's build backend and the frontend
# scripts/build_wheel.sh runs (`python -m build --wheel --no-isolation python/`: the wheel with the
# three binaries, built by CMake). Pinned: the versions the wheel was built and tested with.
if ! "$py" -c 'import scikit_build_core, build; from importlib.metadata import version as v
assert (v("scikit-build-core"), v("build")) == ("1.1.2", "1.6.1")' 2>/dev/null; then
  echo "setup: installing scikit-build-core and build (the Python package's wheel)"
  "$py" -m pip install -q 'scikit-build-core==1.1.2' 'build==1.6.1'
fi

# uv: what installs the pip/uv fields' packages (rtenv falls back to pip without it; the tests
# exercise both). Pinned: the version the tests and benchmarks were measured with.
if ! "$py" -c 'import uv' 2>/dev/null; then
  echo "setup: installing uv"
  "$py" -m pip install -q 'uv==0.13.9'
fi

# moto's server: the S3 endpoint on 127.0.0.1 that the S3 store's unit tests run against.
# Pinned: the version those tests were written and run with.
if ! "$py" -c 'import moto.server' 2>/dev/null; then
  echo "setup: installing moto (S3 server for the store tests)"
  "$py" -m pip install -q 'moto[server]==5.2.1'
fi

# jsonschema: python/tests checks `rtenv schema` with it (Ray 2.60 depends on it too). Pinned: the
# version those tests were written and run with.
if ! "$py" -c 'import jsonschema' 2>/dev/null; then
  echo "setup: installing jsonschema"
  "$py" -m pip install -q 'jsonschema==4.26.0'
fi

# py-rattler: the conda implementation the `conda` field drives in a helper process (docs/conda.md).
# Pinned: the version the conda tests and benchmarks were written and measured with.
if ! "$py" -c 'import rattler' 2>/dev/null; then
  echo "setup: installing py-rattler (conda solver and installer)"
  "$py" -m pip install -q 'py-rattler==0.28.0'
fi

# Ray: the engine the Python package's plugin is tested and benchmarked against. Pinned: the
# version tests/ray and bench/ray were written and measured with.
if ! "$py" -c 'import ray, aiohttp; assert ray.__version__ == "2.60.0"' 2>/dev/null; then
  echo "setup: installing Ray 2.60.0 (a few minutes)"
  "$py" -m pip install -q 'ray[default]==2.60.0'
fi

# A wheelhouse of Ray 2.60.0 and its dependencies (RTENV_WHEELHOUSE, default
# ~/.cache/rtenv-wheels): tests/ray/test_ray_venv_deployment.py installs Ray into a venv of its own
# from it, offline (--no-index --find-links), to run a cluster from that venv.
wheelhouse=${RTENV_WHEELHOUSE:-$HOME/.cache/rtenv-wheels}
if ! ls "$wheelhouse"/ray-2.60.0-*.whl >/dev/null 2>&1 || [ ! -f "$wheelhouse/.complete-ray-2.60.0" ]; then
  echo "setup: downloading Ray 2.60.0's wheels into $wheelhouse"
  mkdir -p "$wheelhouse"
  "$py" -m pip download -q -d "$wheelhouse" 'ray[default]==2.60.0'
  touch "$wheelhouse/.complete-ray-2.60.0"
fi
