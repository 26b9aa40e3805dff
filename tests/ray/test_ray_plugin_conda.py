"""conda under Ray: a task whose env is rtenv.ray.runtime_env(conda={...}) runs in the conda env's
own interpreter on each node, with Ray importable from it.

The channel is built by the test (tests/e2e/condachannel.py): a Python interpreter package, a
`noarch: python` package, and `rayhost`, a package holding one `.pth` file that points the env's
Python at the Ray installed on this machine: what a conda env needs to run Ray workers is Ray
importable from its interpreter, at the cluster's Ray version and the driver's Python minor
version (docs/ray.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

import rtenv.ray
from condachannel import Pkg, channel_url, standard_channel


@ray.remote(num_cpus=0.5)
def where():
    import os
    import sys

    import greet

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "conda_prefix": os.environ.get("CONDA_PREFIX"),
        "greet": greet.__file__,
    }


@pytest.fixture(scope="module")
def ray_conda_channel(tmp_path_factory) -> Path:
    site = Path(ray.__file__).resolve().parents[1]
    rayhost = Pkg("rayhost", "1.0", depends=["python"],
                  files={"lib/python3.11/dist-packages/rayhost.pth": f"{site}\n"})
    return standard_channel(tmp_path_factory.mktemp("conda-ray"), with_python=True,
                            python_cache=tmp_path_factory.mktemp("python-pkg"), extra=[rayhost])


def test_a_task_runs_in_the_conda_envs_interpreter_on_every_node(cluster, ray_conda_channel):
    env = rtenv.ray.runtime_env(conda={"channels": [channel_url(ray_conda_channel)],
                                       "dependencies": ["python", "greet", "rayhost"]})
    # Solved on the driver: the env names its lock, not the dict.
    assert set(env["rtenv"]["conda"]) == {"rtenv_lock", "platform"}, env
    for node in cluster.rc.nodes:
        r = ray.get(where.options(runtime_env=env, **cluster.on(node)).remote(), timeout=240)
        assert r["node_id"] == cluster.rc.node_id(node)
        prefix = r["conda_prefix"]
        assert prefix and prefix.startswith(str(cluster.home(node) / "conda" / "envs")), r
        assert r["prefix"] == prefix, r
        assert r["executable"].startswith(prefix), r
        assert r["greet"].startswith(prefix), r
