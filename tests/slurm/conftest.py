"""Fixtures of the Slurm tests: a real Slurm on this host (slurmcluster.py: munged, slurmctld and
two slurmd as the nodes n1 and n2) with rtenv's SPANK plugin in its plugstack.conf, and a package
index on 127.0.0.1.

The plugin is configured as an admin would (docs/slurm.md): the `rtenv` binary, a node-local
home per node and user (`home=<root>/nodes/%n/%u`: the two nodes share this host's disk, so each
gets its own home, agent and cache, as separate machines would) and the cluster store
(`RTENV_STORE=<root>/store`, a shared directory). The submitting side has a home of its own.

Needs root (slurmd runs tasks as the submitting user, and the daemons run as root here); without
it, or without Slurm installed (scripts/setup.sh installs it), every test is skipped with the
reason. The binary is $RTENV_BIN, or <repo>/build/src/cli/rtenv; the plugin is found beside the
build ($RTENV_SPANK, or <build>/src/slurm/rtenv_spank.so).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "e2e"))

from pyindex import PackageIndex, build_wheel, find_uv, logging_uv  # noqa: E402
from slurmcluster import NODES, SlurmCluster, SlurmUnavailable, missing_programs  # noqa: E402

REPO = HERE.parents[1]
PY = sys.executable or "python3"


def _binary() -> Path:
    return Path(os.environ.get("RTENV_BIN", str(REPO / "build" / "src" / "cli" / "rtenv")))


def _plugin() -> Path:
    if os.environ.get("RTENV_SPANK"):
        return Path(os.environ["RTENV_SPANK"])
    return _binary().parents[2] / "src" / "slurm" / "rtenv_spank.so"


class Slurm:
    """The cluster, the submitting side's environment, and the nodes' rtenv homes."""

    def __init__(self, cluster: SlurmCluster, root: Path, binary: str):
        self.cluster = cluster
        self.root = root
        self.binary = binary
        self.submit_home = root / "submit"
        self.store = root / "store"
        # What the submitting user's shell has: no RTENV_* or PYTHON* settings of the machine, the
        # test interpreter and its uv for envs (the nodes get them through the job's environment).
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("RTENV_", "PYTHON", "PIP_", "UV_", "SLURM_"))}
        # uv through a stand-in that logs its calls: the tests count the venv installs.
        uv, self.uv_log = logging_uv(root, find_uv(PY))
        self.env.update(RTENV_HOME=str(self.submit_home), RTENV_PYTHON=PY,
                        RTENV_UV=str(uv), UV_HTTP_RETRIES="0")

    def venv_installs(self) -> int:
        """How many `uv pip install` have run so far, on the nodes and the submitting side."""
        if not self.uv_log.exists():
            return 0
        return sum(1 for line in self.uv_log.read_text().splitlines()
                   if line.startswith("pip install"))

    def node_home(self, node: str) -> Path:
        return self.root / "nodes" / node / "root"

    def run(self, argv, env=None, timeout=300, **kw):
        e = dict(self.env)
        e.update(env or {})
        return self.cluster.run([str(a) for a in argv], env=e, timeout=timeout, **kw)

    def popen(self, argv, env=None, **kw):
        e = self.cluster.env(self.env)
        e.update(env or {})
        return subprocess.Popen([str(a) for a in argv], env=e, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    def env_list(self, node: str) -> dict:
        """`rtenv env list --json` on a node (its home; starts no agent of its own if one runs)."""
        e = dict(self.env)
        e["RTENV_HOME"] = str(self.node_home(node))
        e["RTENV_STORE"] = str(self.store)
        r = subprocess.run([self.binary, "env", "list", "--json"], env=e, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def holders(self, node: str) -> list[str]:
        return sorted(h for env in self.env_list(node)["envs"] for h in env["holders"])

    def wait_job_state(self, job: str, states: set[str], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            r = self.run(["squeue", "-h", "-j", job, "-o", "%T"])
            state = r.stdout.strip()
            if state in states or (not state and "GONE" in states):
                return state or "GONE"
            time.sleep(0.2)
        raise AssertionError(f"job {job} is {state or 'gone'}, not {states}, after {timeout} s")

    def stop_agents(self) -> None:
        """Stops every user's agent on both nodes (as that user)."""
        for home in sorted(self.root.glob("nodes/*/*")):
            e = dict(self.env, RTENV_HOME=str(home))
            owner = home.stat().st_uid
            argv = [self.binary, "agent", "stop"]
            if owner != os.geteuid():
                import pwd
                argv = ["runuser", "-u", pwd.getpwuid(owner).pw_name, "--", *argv]
            subprocess.run(argv, env=e, capture_output=True, timeout=90)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the Slurm tests run Slurm's daemons, which need root")
    missing = missing_programs()
    if missing:
        pytest.skip(f"Slurm is not installed here ({', '.join(missing)} missing; "
                    "scripts/setup.sh installs it)")
    binary, plugin = _binary(), _plugin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"rtenv binary not found at {binary}: build it or set RTENV_BIN",
                    pytrace=False)
    if not plugin.is_file():
        pytest.fail(f"the SPANK plugin is not at {plugin}: build it (it needs libslurm-dev, which "
                    "scripts/setup.sh installs) or set RTENV_SPANK", pytrace=False)
    # Short paths: the agents' sockets live in the homes (a socket path is at most 107 bytes).
    # Open to every user, as a node's /var/tmp and a shared store are: one test submits as
    # `nobody`. The store is a directory all users may write (on a real cluster: a group with
    # setgid directories, or S3 / rtenv's blob server, docs/slurm.md).
    root = Path(tempfile.mkdtemp(prefix="rtenv-slurm-", dir="/tmp"))
    root.chmod(0o755)
    for shared in ("store", "nodes", *(f"nodes/{n}" for n in NODES)):
        (root / shared).mkdir(mode=0o1777)
        (root / shared).chmod(0o1777)
    plugstack = (f"required {plugin} rtenv={binary} home={root}/nodes/%n/%u "
                 f"RTENV_STORE={root}/store\n")
    # The plugin-less way (docs/slurm.md): the shipped TaskProlog and Epilog, with the same
    # settings. The TaskProlog acts only for jobs that set RTENV_TASK_ENV; the Epilog, which
    # would release any job's holders, only while the file `fallback-epilog` exists (so the tests
    # of the plugin's own epilog see it alone).
    hooks = []
    for name in ("task_prolog", "epilog"):
        wrapper = root / f"{name}.sh"
        gate = f"[ -e {root}/fallback-epilog ] || exit 0\n" if name == "epilog" else ""
        wrapper.write_text(f"#!/bin/bash\n{gate}export RTENV={binary} "
                           f"RTENV_NODE_HOME={root}/nodes/%n/%u RTENV_NODE_STORE={root}/store\n"
                           f"exec /bin/bash {REPO}/src/slurm/{name}.sh\n")
        wrapper.chmod(0o755)
        hooks.append(wrapper)
    cluster = SlurmCluster(root / "slurm", plugstack=plugstack,
                           extra_conf=f"TaskProlog={hooks[0]}\nEpilog={hooks[1]}")
    try:
        cluster.start()
    except SlurmUnavailable as e:
        cluster.stop()
        pytest.skip(f"Slurm could not start here: {e}")
    s = Slurm(cluster, root, str(binary))
    try:
        yield s
    finally:
        cluster.stop()
        s.stop_agents()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def index(tmp_path_factory):
    """A package index with versions of `slurmpkg`, which conflict."""
    out = tmp_path_factory.mktemp("dists")
    with PackageIndex() as ix:
        for v in ("1.0", "1.1", "2.0", "3.0"):
            ix.add(build_wheel(out, "slurmpkg", v))
        yield ix
