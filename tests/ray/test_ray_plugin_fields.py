"""py_executable and java_jars under Ray, on the shared two-node cluster: the worker starts with the
env's interpreter, and a task's processes find the env's jars on CLASSPATH (Ray's own Java
workers build their own class path: docs/runtime_env.md §7a)."""

from __future__ import annotations

import ray

import rtenv.ray
from javatools import make_jar
from ray_testlib import PY


@ray.remote(num_cpus=0.5)
def interpreter():
    import os
    import sys

    return {"node_id": ray.get_runtime_context().get_node_id(), "executable": sys.executable,
            "wrapped": os.environ.get("RTENV_TEST_WRAPPED")}


@ray.remote(num_cpus=0.5)
def run_java():
    import os
    import subprocess

    p = subprocess.run(["java", "Main"], capture_output=True, text=True)
    return {"node_id": ray.get_runtime_context().get_node_id(),
            "classpath": os.environ.get("CLASSPATH"), "out": p.stdout, "err": p.stderr}


def test_py_executable_starts_the_worker_on_every_node(cluster, tmp_path):
    # A wrapper interpreter: the worker runs through it only if Ray started it with the env's
    # py_executable (it marks the environment, then runs the test's Python).
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\nRTENV_TEST_WRAPPED=1 exec "{PY}" "$@"\n')
    wrapper.chmod(0o755)
    env = rtenv.ray.runtime_env(py_executable=str(wrapper))
    for node in cluster.rc.nodes:
        r = ray.get(interpreter.options(runtime_env=env, **cluster.on(node)).remote(), timeout=180)
        assert r["node_id"] == cluster.rc.node_id(node)
        assert r["wrapped"] == "1", r
    # Without it, the same task runs in the cluster's own interpreter.
    r = ray.get(interpreter.options(runtime_env=cluster.job_env).remote(), timeout=180)
    assert r["wrapped"] is None, r


def test_java_jars_reach_the_class_path_of_a_tasks_processes(cluster, tmp_path):
    jar = make_jar(tmp_path, tmp_path / "main.jar", "", "Main",
                   'public static void main(String[] a) '
                   '{ System.out.println("hello from a jar on " + System.getenv("CLASSPATH")); }')

    env = rtenv.ray.runtime_env(java_jars=[str(jar)])
    # Packed on the driver: the env names the jar in the store, not the local path.
    (uri,) = env["rtenv"]["java_jars"]
    assert uri.startswith("rtenv://sha256/") and uri.endswith("/main.jar"), env
    for node in cluster.rc.nodes:
        r = ray.get(run_java.options(runtime_env=env, **cluster.on(node)).remote(), timeout=180)
        assert r["node_id"] == cluster.rc.node_id(node)
        entries = r["classpath"].split(":")
        mine = [e for e in entries if e.endswith("/main.jar")]
        assert mine and mine[0].startswith(str(cluster.home(node) / "pkgs")), r
        assert r["out"].startswith("hello from a jar on "), r
