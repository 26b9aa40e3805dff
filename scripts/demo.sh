#!/usr/bin/env bash
# Sets up what is missing, builds rtenv, and runs the demo job twice in its runtime_env:
# the first run packs and materializes, the second is a cache hit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
rtenv=$PWD/build/src/cli/rtenv

export RTENV_HOME=${RTENV_HOME:-$(mktemp -d /tmp/rtenv-demo.XXXXXX)}
cd examples/demo
echo "== runtime_env (examples/demo/runtime_env.yaml):"
grep -v '^#' runtime_env.yaml
for run in first second; do
  echo
  echo "== $run run: rtenv run -v --runtime-env runtime_env.yaml -- python3 main.py"
  start=$(date +%s%N)
  # main.py is found relative to cwd, which rtenv sets to the working_dir copy.
  "$rtenv" run -v --runtime-env runtime_env.yaml -- python3 main.py
  end=$(date +%s%N)
  echo "($run run took $(( (end - start) / 1000000 )) ms in all, Python included)"
done
echo
echo "State is in $RTENV_HOME (packages in pkgs/, blobs in store/)."
