"""Ray running from a venv, as most clusters run it: Ray 2.60.0 and rtenv's wheel (the Python
package and the three binaries) installed into a venv of their own (offline, from the wheelhouse
scripts/setup.sh fills, and $RTENV_WHEEL), a two-node cluster started with that venv's Ray and
the plugin, and a task in an rtenv `pip` env on each node. The worker must run the venv's Ray (not
the one the test interpreter has), the env's own package, and a package installed only in the Ray
venv, as Ray's own `pip` field allows; every node runs the binaries the wheel put in the venv,
with no RTENV_BIN.

The cluster runs in a driver process of the venv's interpreter (this process has imported the
test interpreter's Ray, which must not start it); that process starts the cluster with
raycluster.py, runs the tasks, prints what they saw as one JSON line, and stops the cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pyindex import PackageIndex, build_wheel, find_uv
from ray_testlib import HERE, PY, rtenv_wheel

UV = find_uv(PY)
RAY_VERSION = "2.60.0"
WHEELHOUSE = Path(os.environ.get("RTENV_WHEELHOUSE", Path.home() / ".cache" / "rtenv-wheels"))

DRIVER = r'''
import json, os, sys
sys.path.insert(0, sys.argv[1])  # tests/ray: raycluster.py
from pathlib import Path
from raycluster import RayCluster, driver_connected, node_resource
import ray
import rtenv.ray

root, index_url, uv = Path(sys.argv[2]), sys.argv[3], sys.argv[4]


@ray.remote(num_cpus=0.5)
def probe():
    import sys
    import envpkg
    import ray
    import venvmarker
    return {"node_id": ray.get_runtime_context().get_node_id(), "ray": ray.__file__,
            "ray_version": ray.__version__, "venvmarker": venvmarker.__file__,
            "envpkg": envpkg.__file__, "prefix": sys.prefix, "executable": sys.executable}


# PYTHONPATH empty: the nodes import rtenv from the venv, not from the repository; no RTENV_BIN:
# they run the binaries the rtenv wheel installed in the venv's bin/.
rc = RayCluster(root, rtenv_bin=None, package_dir=None, nodes={"head": 2, "w1": 2}, uv=uv,
                extra_env={"PYTHONPATH": "", "UV_HTTP_RETRIES": "0"})
with driver_connected(rc, root, {}):
    env = rtenv.ray.runtime_env(pip=[f"--index-url {index_url}", "envpkg"])
    results = {}
    for node in rc.nodes:
        r = ray.get(probe.options(runtime_env=env, resources={node_resource(node): 1}).remote(),
                    timeout=300)
        r["expected_node_id"] = rc.node_id(node)
        results[node] = r
    agents = {}
    for node, home in rc.homes.items():
        pid = (home / "agent.pid").read_text().strip()
        agents[node] = os.readlink(f"/proc/{pid}/exe")
    out = {"env": env, "results": results, "agents": agents, "driver_rtenv": rc.rtenv_bin,
           "homes": {n: str(h) for n, h in rc.homes.items()}}
print("RESULT " + json.dumps(out))
'''


def _wheelhouse_ray() -> Path:
    found = sorted(WHEELHOUSE.glob(f"ray-{RAY_VERSION}-*.whl"))
    if not found:
        why = (f"no Ray {RAY_VERSION} wheel in {WHEELHOUSE} (RTENV_WHEELHOUSE): run "
               "scripts/setup.sh, which downloads Ray's wheels there; this test installs Ray into "
               "a venv from it, offline")
        if os.environ.get("CI"):
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return found[0]


@pytest.fixture(scope="module")
def ray_venv(tmp_path_factory):
    """A venv with Ray, rtenv's wheel (its Python package and binaries) and `venvmarker`
    installed (nothing else of the test interpreter visible in it); its directory."""
    _wheelhouse_ray()
    work = tmp_path_factory.mktemp("ray-venv")
    wheels = work / "wheels"
    build_wheel(wheels, "venvmarker", "1.0")
    shutil.copy(rtenv_wheel(), wheels)
    venv = work / "venv"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
           "UV_CACHE_DIR": str(work / "uv-cache")}
    subprocess.run([UV, "venv", "--quiet", "--python", PY, str(venv)], env=env, check=True,
                   capture_output=True, timeout=120)
    p = subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--offline",
         "--no-index", "--find-links", str(WHEELHOUSE), "--find-links", str(wheels),
         f"ray[default]=={RAY_VERSION}", "rtenv", "venvmarker"],
        env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"installing Ray into the venv failed: {p.stderr}"
    shutil.rmtree(work / "uv-cache", ignore_errors=True)
    yield venv
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def venv_cluster_run(ray_venv):
    """What the tasks saw on each node of a cluster started from the venv."""
    with PackageIndex() as index:
        index.add(build_wheel(Path(tempfile.mkdtemp(prefix="rtvenv-dists-")), "envpkg", "1.0"))
        root = Path(tempfile.mkdtemp(prefix="rtvenv-", dir="/tmp"))  # short: Ray's socket paths
        # The environment of a node's operator: none of this test run's Python or rtenv settings.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTHON", "RTENV_", "PIP_", "UV_", "VIRTUAL_ENV", "RAY_"))}
        env["PATH"] = f"{ray_venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        try:
            p = subprocess.run(
                [str(ray_venv / "bin" / "python"), "-c", DRIVER, str(HERE), str(root),
                 index.url, UV],
                env=env, capture_output=True, text=True, timeout=900)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT ")]
        assert p.returncode == 0 and lines, (
            f"the driver in the Ray venv failed ({p.returncode}):\n{p.stdout[-4000:]}\n"
            f"{p.stderr[-8000:]}")
        return json.loads(lines[-1][len("RESULT "):])


def test_a_task_imports_the_venvs_ray_and_packages_on_every_node(ray_venv, venv_cluster_run):
    site_packages = next(ray_venv.glob("lib/python3*/site-packages"))
    env = venv_cluster_run["env"]
    # The driver's lock names the venv's python: the nodes layer on that venv.
    assert env["rtenv"]["pip"]["python"] == str(ray_venv / "bin" / "python"), env
    for node, r in venv_cluster_run["results"].items():
        home = Path(venv_cluster_run["homes"][node])
        assert r["node_id"] == r["expected_node_id"], r
        assert r["ray_version"] == RAY_VERSION, r
        # Ray and the marker from the Ray venv, not from the test interpreter's site-packages.
        assert r["ray"].startswith(str(site_packages)), r
        assert r["venvmarker"].startswith(str(site_packages)), r
        # The env's own package from the env this node's rtenv agent built.
        assert Path(r["prefix"]).parent == home / "pyenvs", r
        assert r["envpkg"].startswith(r["prefix"]), r
        assert r["executable"].startswith(r["prefix"]), r


def test_every_node_runs_the_binaries_the_wheel_installed_in_the_venv(ray_venv,
                                                                       venv_cluster_run):
    # No RTENV_BIN and no rtenv on the nodes' PATH but the venv's bin/: the driver's helper and
    # each node's plugin found the package's own binaries, and the agents they started are the
    # venv's rtenv-agent.
    assert venv_cluster_run["driver_rtenv"] == str(ray_venv / "bin" / "rtenv")
    assert venv_cluster_run["agents"] == {
        node: str(ray_venv / "bin" / "rtenv-agent") for node in venv_cluster_run["homes"]}
