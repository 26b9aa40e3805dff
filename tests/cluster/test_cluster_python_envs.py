"""A pip env is built once per cluster: one node runs the installer and publishes the venv in the
store; the other nodes fetch it from there. Counted with a logging uv on every node (its
`uv pip install` runs) and the package index's request log (each wheel's downloads)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter

from pyindex import build_wheel

# Imports the env's packages and prints their versions.
IMPORT = "import importlib, sys; print(*(importlib.import_module(m).__version__ for m in sys.argv[1:]))"


class Packages:
    """Three packages new to the cluster (one depending on another), in the index."""

    def __init__(self, servers, request):
        tag = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]
        base, lib, app = f"cl{tag}base", f"cl{tag}lib", f"cl{tag}app"
        self.wheels = [
            build_wheel(servers.index_dir, base, "1.0", payload_bytes=200_000).name,
            build_wheel(servers.index_dir, lib, "2.1", payload_bytes=100_000).name,
            build_wheel(servers.index_dir, app, "0.3", deps=[f"{base}>=1"]).name,
        ]
        self.requirements = [lib, app]
        self.modules = [base, lib, app]
        self.versions = ["1.0", "2.1", "0.3"]


def _locked_spec(machines, servers, pkgs: Packages) -> dict:
    """The env as the client submits it: its requirements resolved to pins (which reads the
    index's pages and METADATA files, not the wheels)."""
    return machines.client.lock({"pip": [f"--index-url {servers.index_url}", *pkgs.requirements]})


def _assert_built_once(machines, servers, pkgs: Packages, runs) -> None:
    for node, p in runs:
        assert p.returncode == 0, f"{node.name}: exit {p.returncode}\n{p.stderr}"
        assert p.stdout.split() == pkgs.versions, f"{node.name} imported {p.stdout!r}"
    installs = {n.name: n.installs() for n in machines.nodes}
    builders = [name for name, calls in installs.items() if calls]
    assert len(builders) == 1 and len(installs[builders[0]]) == 1, (
        f"expected one `uv pip install` in the cluster, got {installs}")
    downloads = Counter(servers.index_downloads())
    assert {w: downloads[w] for w in pkgs.wheels} == {w: 1 for w in pkgs.wheels}, (
        f"each wheel should be downloaded from the index once: {dict(downloads)}")


def test_a_pip_env_is_installed_once_and_fetched_by_the_other_nodes(machines, servers, request):
    pkgs = Packages(servers, request)
    spec = _locked_spec(machines, servers, pkgs)
    runs = [(node, node.run(spec, "python", "-c", IMPORT, *pkgs.modules))
            for node in machines.nodes]  # one after the other
    _assert_built_once(machines, servers, pkgs, runs)
    assert machines.nodes[0].installs(), "the first node to ask should have built the env"


def test_three_nodes_asking_at_once_build_the_env_once(machines, servers, request):
    pkgs = Packages(servers, request)
    spec = _locked_spec(machines, servers, pkgs)
    procs = [(node, node.popen("run", "-e", json.dumps(spec), "--", "python", "-c", IMPORT,
                               *pkgs.modules)) for node in machines.nodes]
    runs = []
    for node, proc in procs:
        out, err = proc.communicate(timeout=180)
        runs.append((node, subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
    _assert_built_once(machines, servers, pkgs, runs)
