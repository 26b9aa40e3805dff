"""Build once per cluster, on one machine: several $RTENV_HOMEs (nodes) share one directory store.
The first node that needs a Python env builds it and publishes it; the others fetch it instead of
installing, and nodes asking at once build it once. The multi-host version of these checks, with
network stores, is tests/cluster."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import PY, Rtenv, assert_ok, stop_agent
from pyindex import PackageIndex, build_wheel, find_uv

UV = find_uv(PY)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("wheels")
    return [build_wheel(out, "sharedpkg", "1.0",
                        console_scripts={"sharedtool": "sharedpkg.cli:main"},
                        extra_files={"sharedpkg/cli.py":
                                     "import sys\ndef main():\n    print(sys.prefix)\n"}),
            build_wheel(out, "otherpkg", "2.0")]


@pytest.fixture
def cluster(rtenv_bin, tmp_path, wheels):
    """Three nodes (homes) on one shared store, each installer run logged per node."""
    store = tmp_path / "shared-store"
    log = tmp_path / "uv-calls.log"
    wrapper = tmp_path / "uv-logging"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s %s\\n" "$RTENV_TEST_NODE" "$*" >> "{log}"\n'
                       f'exec "{UV}" "$@"\n')
    wrapper.chmod(0o755)
    nodes = []
    for i in range(3):
        fake_home = tmp_path / f"fake-home-{i}"
        fake_home.mkdir()
        node = Rtenv(rtenv_bin, tmp_path / f"node-{i}", fake_home)
        for k in list(node.env):
            if k.startswith(("PIP_", "UV_")) or k.startswith("RTENV_") and k != "RTENV_HOME":
                del node.env[k]
        node.env.update(RTENV_STORE=f"file://{store}", RTENV_PYTHON=PY, RTENV_UV=str(wrapper),
                        UV_HTTP_RETRIES="0", RTENV_TEST_NODE=f"node-{i}")
        nodes.append(node)
    with PackageIndex() as index:
        for w in wheels:
            index.add(w)
        yield {"nodes": nodes, "index": index, "log": log, "store": store}
    for node in nodes:
        stop_agent(node.home)


def installs(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if " pip install " in line]


def spec(index, *reqs) -> dict:
    return {"pip": [f"--index-url {index.url}", *reqs]}


PROBE = "import sharedpkg, sys, subprocess; print(sharedpkg.__version__, sys.prefix); " \
        "print(subprocess.run(['sharedtool'], capture_output=True, text=True).stdout.strip())"


def run_probe(node: Rtenv, runtime_env) -> tuple[str, str, str]:
    p = node.run(runtime_env, "python", "-c", PROBE, timeout=120)
    assert_ok(p)
    first, tool = p.stdout.strip().splitlines()[-2:]
    version, prefix = first.split(" ", 1)
    return version, prefix, tool


def test_an_env_built_on_one_node_is_fetched_by_the_others(cluster):
    nodes, index, log = cluster["nodes"], cluster["index"], cluster["log"]
    env = spec(index, "sharedpkg==1.0")
    version, prefix0, tool0 = run_probe(nodes[0], env)
    assert version == "1.0"
    assert str(nodes[0].home) in prefix0 and tool0 == prefix0
    built = installs(log)
    assert len(built) == 1 and built[0].startswith("node-0 "), built
    wheel_requests = [r for r in index.requests if r.endswith(".whl")]
    assert len(wheel_requests) == 1, index.requests

    for node in nodes[1:]:
        node.env["PYTHONDONTWRITEBYTECODE"] = "1"  # the probe's imports write no bytecode
        version, prefix, tool = run_probe(node, env)
        assert version == "1.0"
        # The fetched venv is the node's own, relocated: its scripts run its own python.
        assert str(node.home) in prefix and tool == prefix, (prefix, tool)
    assert len(installs(log)) == 1, installs(log)  # no other node ran an installer
    assert len([r for r in index.requests if r.endswith(".whl")]) == 1, index.requests
    ready = json.loads(next((nodes[2].home / "pyenvs").glob("*.ready")).read_text())
    assert ready["fetched_from"] == f"file://{cluster['store']}"
    # Bytecode is not published; the node that fetched the env compiles its own (in the
    # background, once the env is ready).
    fetched = Path(prefix)
    deadline = time.monotonic() + 30
    while not list(fetched.glob("lib/python*/site-packages/**/__pycache__/*.pyc")):
        assert time.monotonic() < deadline, f"no bytecode in {prefix}"
        time.sleep(0.1)
    # Nothing that names the index (or its credentials) was published.
    records = list((cluster["store"] / "records" / "pyenvs").glob("*.json"))
    assert len(records) == 1 and not list((cluster["store"] / "records").rglob("*.lease"))


def test_nodes_asking_at_once_build_once(cluster):
    nodes, index, log = cluster["nodes"], cluster["index"], cluster["log"]
    env = spec(index, "sharedpkg==1.0", "otherpkg==2.0")
    # Resolve once first, so the three runs ask for the same locked env at the same moment.
    assert_ok(nodes[0]("lock", "-e", json.dumps(env), timeout=60))
    results: list = [None] * 3

    def go(i):
        results[i] = nodes[i].run(env, "python", "-c", "import sharedpkg, otherpkg; "
                                  "print(otherpkg.__version__)", timeout=120)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in results:
        assert_ok(p)
        assert p.stdout.strip().splitlines()[-1] == "2.0"
    assert len(installs(log)) == 1, installs(log)


def test_an_expired_lease_of_a_dead_builder_is_taken_over(cluster):
    nodes, index, log = cluster["nodes"], cluster["index"], cluster["log"]
    env = spec(index, "otherpkg==2.0")
    p = nodes[0].run(env, "python", "-c", "import otherpkg", timeout=120)
    assert_ok(p)
    key = next(path.name[:-len(".ready")] for path in (nodes[0].home / "pyenvs").glob("*.ready"))
    records = cluster["store"] / "records" / "pyenvs"
    (records / f"{key}.json").unlink()  # as if it was never published
    lease = records / f"{key}.lease"
    # A builder that died holding the lease, which runs out in 1.5 s.
    lease.write_text(json.dumps({"holder": "deadhost:1", "expires_ms":
                                 int(time.time() * 1000) + 1500}))
    started = time.monotonic()
    p = nodes[1].run(env, "python", "-c", "import otherpkg", timeout=120)
    assert_ok(p)
    assert time.monotonic() - started >= 1.0  # it waited for the lease to run out
    assert len(installs(log)) == 2 and installs(log)[1].startswith("node-1 "), installs(log)
    # Node 1's agent built it, published it and gave its lease back.
    record = json.loads((records / f"{key}.json").read_text())
    agent_pid = (nodes[1].home / "agent.pid").read_text().strip()
    assert record["built_by"].endswith(":" + agent_pid), record
    assert not lease.exists()


def test_a_local_store_publishes_nothing(rtenv_bin, tmp_path, wheels):
    fake_home = tmp_path / "fake"
    fake_home.mkdir()
    node = Rtenv(rtenv_bin, tmp_path / "home", fake_home)
    for k in list(node.env):
        if k.startswith(("PIP_", "UV_", "RTENV_")) and k != "RTENV_HOME":
            del node.env[k]
    node.env.update(RTENV_PYTHON=PY, RTENV_UV=UV)
    try:
        with PackageIndex() as index:
            index.add(wheels[1])
            assert_ok(node.run(spec(index, "otherpkg==2.0"), "python", "-c", "import otherpkg",
                               timeout=120))
        assert not (tmp_path / "home" / "store" / "records").exists()
    finally:
        stop_agent(node.home)


def test_the_store_can_be_chosen_in_config_json(rtenv, tmp_path):
    shared = tmp_path / "configured-store"
    rtenv.home.mkdir(parents=True, exist_ok=True)
    (rtenv.home / "config.json").write_text(json.dumps({"store": f"file://{shared}"}))
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('configured')\n")
    out = rtenv.pack(project)
    assert any(shared.glob("??/*")), "nothing was packed into the configured store"
    assert not any((rtenv.home / "store").glob("??/*")), "the home's own store was used"
    # RTENV_STORE still wins over the file.
    other = tmp_path / "env-store"
    p = rtenv("pack", str(project), env={"RTENV_STORE": f"file://{other}"})
    assert_ok(p)
    assert any(other.glob("??/*"))
    assert out


@pytest.mark.parametrize("bad", ['{"format": "x"}', '{"format": null}', '[1, 2]', '{"format":',
                                 '{"format": 1, "package": 7, "python_version": {}}'])
def test_a_malformed_record_in_the_store_is_a_clear_fallback_not_a_wedged_env(cluster, bad):
    nodes, index, log = cluster["nodes"], cluster["index"], cluster["log"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    records = cluster["store"] / "records" / "pyenvs"
    (record,) = records.glob("*.json")
    record.write_text(bad)
    # Another node meets the malformed record: it says so and builds the env itself, and the
    # agent keeps answering (the same env again, and others).
    p = nodes[1].run(env, "python", "-c", "import sharedpkg; print(sharedpkg.__version__)",
                     flags=("-v",), timeout=120)
    assert_ok(p)
    assert p.stdout.strip() == "1.0"
    assert len(installs(log)) == 2, installs(log)
    again = nodes[1].run(env, "python", "-c", "print('again')", timeout=60)
    assert_ok(again)
    other = nodes[1].run(spec(index, "otherpkg==2.0"), "python", "-c", "import otherpkg",
                         timeout=120)
    assert_ok(other)
