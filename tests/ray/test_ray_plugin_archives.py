"""Archives and local:// directories under Ray, on the shared two-node cluster: a working_dir
given as the URL of a .tar.gz is fetched and packed on the driver and runs on the worker node; a
local:// directory is used in place on the node, at job and at task level; a gs:// URI is refused
on the driver."""

from __future__ import annotations

import io
import tarfile

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import rtenv.ray
from httpfiles import Server


@ray.remote(num_cpus=0.5)
def look():
    import os

    import inplace_mod

    with open("marker-from-the-task.txt", "w") as f:
        f.write("written by the task\n")
    return {"node_id": ray.get_runtime_context().get_node_id(), "cwd": os.getcwd(),
            "files": sorted(os.listdir(".")), "module": inplace_mod.VALUE,
            "module_file": inplace_mod.__file__}


def _tarball(path, files):
    with tarfile.open(path, "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def _on(cluster, node):
    return NodeAffinitySchedulingStrategy(node_id=cluster.rc.node_id(node), soft=False)


def test_tarball_url_and_local_directories_on_the_worker_node(cluster, tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    _tarball(www / "job.tar.gz", {"project/data.txt": "payload\n", "project/sub/x.txt": "x\n"})
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "inplace_mod.py").write_text("VALUE = 'module in place'\n")
    server = Server(www)
    try:
        env = rtenv.ray.runtime_env(working_dir=f"{server.url}/job.tar.gz",
                                    py_modules=[f"local://{shared}"])
    finally:
        server.close()
    # The tarball was fetched and packed on the driver: the node reads it from the store.
    assert env["rtenv"]["working_dir"].startswith("rtenv://sha256/")
    assert env["rtenv"]["py_modules"] == [f"local://{shared}"]
    got = ray.get(look.options(runtime_env=env, scheduling_strategy=_on(cluster, "w1")).remote(),
                  timeout=120)
    assert got["node_id"] == cluster.rc.node_id("w1")
    assert got["cwd"].startswith(str(cluster.home("w1") / "pkgs")), got["cwd"]
    assert got["files"] == ["data.txt", "marker-from-the-task.txt", "sub"]  # wrapper stripped
    assert got["module"] == "module in place"
    assert got["module_file"] == str(shared / "inplace_mod.py")


def test_local_working_dir_used_in_place_at_task_level(cluster, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "inplace_mod.py").write_text("VALUE = 'working_dir in place'\n")
    # A task env of URIs only (no packing): local:// is a URI.
    env = {"rtenv": {"working_dir": f"local://{app}"}}
    got = ray.get(look.options(runtime_env=env, scheduling_strategy=_on(cluster, "w1")).remote(),
                  timeout=120)
    assert got["cwd"] == str(app)
    assert got["module"] == "working_dir in place"
    # Not a copy: what the task wrote is in the directory itself.
    assert (app / "marker-from-the-task.txt").read_text() == "written by the task\n"


def test_gs_uri_is_refused_on_the_driver_saying_what_to_use(cluster):
    with pytest.raises(ValueError) as e:
        rtenv.ray.runtime_env(working_dir="gs://bucket/project.zip")
    assert "rtenv does not fetch gs:// URIs" in str(e.value)
    assert "https://storage.googleapis.com" in str(e.value)
