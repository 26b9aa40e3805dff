"""Fixtures for the Ray tests: one real two-node Ray cluster for the session (head + w1, each
node with its own $RTENV_HOME and rtenv agent, one shared store), a package index on 127.0.0.1
with tiny wheels (tests/e2e/pyindex.py), and a driver connected with a job env.

The package and binary under test: run by the python of a venv that the rtenv wheel is
installed in (scripts/test.sh), that package and the binaries it installed (ray_testlib.INSTALLED;
$RTENV_BIN still overrides them); otherwise the repository's python/ and $RTENV_BIN, or
<repo>/build/src/cli/rtenv. Nothing reaches the network but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(HERE))

from ray_testlib import BROKEN_MESSAGE, INSTALLED, JOB_ENV_VARS, PY, for_nodes  # noqa: E402

if not INSTALLED:
    sys.path.insert(0, str(REPO / "python"))

from pyindex import PackageIndex, build_failing_sdist, build_wheel, find_uv  # noqa: E402
from raycluster import RayCluster, driver_connected, node_resource  # noqa: E402

DEFAULT_BIN = REPO / "build" / "src" / "cli" / "rtenv"
UV = find_uv(PY)


def _binary() -> Path:
    if os.environ.get("RTENV_BIN"):
        return Path(os.environ["RTENV_BIN"])
    if INSTALLED:
        import rtenv

        own = rtenv._cli.own_binary()
        if not own:
            pytest.fail(f"the rtenv package installed at {Path(rtenv.__file__).parent} has no "
                        "binaries of its own: install it from its wheel "
                        "(scripts/build_wheel.sh)", pytrace=False)
        return Path(own)
    return DEFAULT_BIN


@pytest.fixture(scope="session")
def rtenv_bin() -> str:
    """The rtenv binary under test (the installed package's own, $RTENV_BIN or build/'s)."""
    path = _binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"rtenv binary not found or not executable at {path}; build it "
                    f"(scripts/build.sh) or set RTENV_BIN", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def index(tmp_path_factory):
    out = tmp_path_factory.mktemp("dists")
    with PackageIndex() as ix:
        for path in (
            build_wheel(out, "conflict", "1.0"),
            build_wheel(out, "conflict", "2.0"),
            build_wheel(out, "warmpkg", "1.0"),
            build_wheel(out, "actorpkg", "1.0"),
            build_failing_sdist(out, "brokenbuild", "0.1", message=BROKEN_MESSAGE),
        ):
            ix.add(path)
        yield ix


class Cluster:
    """What the tests get: the RayCluster, the job env the driver was started with, the index."""

    def __init__(self, rc: RayCluster, job_env: dict, index: PackageIndex):
        self.rc = rc
        self.job_env = job_env
        self.index = index

    def home(self, node: str) -> Path:
        return self.rc.homes[node]

    def rtenv(self, node: str, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "RTENV_HOME": str(self.rc.homes[node])}
        return subprocess.run([self.rc.rtenv_bin, *args], env=env, capture_output=True,
                              text=True, timeout=60)

    def env_list(self, node: str) -> dict:
        p = self.rtenv(node, "env", "list", "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def uv_calls(self, node: str) -> list[str]:
        log = self.rc.homes[node] / "uv-calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def installs(self, node: str) -> list[str]:
        return [c for c in self.uv_calls(node) if c.startswith("pip install")]

    def pip(self, *reqs: str) -> list[str]:
        return [f"--index-url {self.index.url}", *reqs]

    def on(self, node: str) -> dict:
        """Task options that place it on `node`."""
        return {"resources": {node_resource(node): 1}}


@pytest.fixture(scope="session")
def cluster(rtenv_bin, index):
    import rtenv.ray

    root = Path(tempfile.mkdtemp(prefix="rtray-", dir="/tmp"))  # short: Ray's socket paths
    wrapper = root / "uv-logging"
    wrapper.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "$RTENV_HOME/uv-calls.log"\nexec "{UV}" "$@"\n')
    wrapper.chmod(0o755)
    rc = RayCluster(root, **for_nodes(rtenv_bin), nodes={"head": 2, "w1": 2}, uv=str(wrapper),
                    extra_env={"UV_HTTP_RETRIES": "0", "RTENV_FAILURE_TTL": "2"})
    started = time.monotonic()
    job_env = rtenv.ray.runtime_env(env_vars=JOB_ENV_VARS)
    with driver_connected(rc, root, job_env):
        print(f"cluster up in {time.monotonic() - started:.1f} s", file=sys.stderr)
        yield Cluster(rc, job_env, index)
