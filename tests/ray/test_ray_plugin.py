"""rtenv as Ray's runtime env: the `rtenv` plugin on a real two-node cluster (head + w1, each with
its own rtenv home and agent), envs built on the driver with rtenv.ray.runtime_env()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray
from ray.exceptions import RuntimeEnvSetupError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import rtenv
import rtenv.ray
from ray_testlib import BROKEN_MESSAGE, JOB_ENV_VARS, PY


@ray.remote(num_cpus=0.5)
def probe(*modules, sleep=0.0):
    """What a task sees: node, interpreter, cwd, env vars, module versions, time window."""
    import importlib
    import os
    import sys
    import time

    start = time.time()
    versions = {}
    for m in modules:
        try:
            mod = importlib.import_module(m)
            versions[m] = getattr(mod, "__version__", None) or getattr(mod, "VALUE", None)
        except ImportError as e:
            versions[m] = f"ImportError: {e}"
    time.sleep(sleep)
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "executable": sys.executable,
        "prefix": sys.prefix,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "versions": versions,
        "start": start,
        "end": time.time(),
        "pid": os.getpid(),
    }


def get(ref, timeout=120):
    return ray.get(ref, timeout=timeout)


# ---- the binaries ----------------------------------------------------------------------------


def test_every_node_runs_the_binaries_under_test(cluster):
    # Run from the wheel's venv (scripts/test.sh), the nodes have no RTENV_BIN: each node's
    # plugin finds the package's own binaries, and the agent it starts is the rtenv-agent beside
    # them. Otherwise the nodes run $RTENV_BIN's.
    bindir = Path(cluster.rc.rtenv_bin).parent
    env = rtenv.ray.runtime_env(env_vars={"BINARIES": "under test"})
    for node in cluster.rc.nodes:
        r = get(probe.options(runtime_env=env, **cluster.on(node)).remote())
        assert r["env"]["BINARIES"] == "under test"
        assert ("RTENV_BIN" in r["env"]) == (cluster.rc.node_rtenv_bin is not None), r["env"]
        pid = (cluster.home(node) / "agent.pid").read_text().strip()
        assert os.readlink(f"/proc/{pid}/exe") == str(bindir / "rtenv-agent")


# ---- Python packages -------------------------------------------------------------------------


def test_conflicting_versions_run_concurrently_each_with_its_own(cluster):
    env1 = rtenv.ray.runtime_env(pip=cluster.pip("conflict==1.0"))
    env2 = rtenv.ray.runtime_env(pip=cluster.pip("conflict==2.0"))
    # Resolved on the driver: the pins travel, the nodes resolve nothing.
    assert env1["rtenv"]["pip"]["locked"] is True
    assert any(l.startswith("conflict==1.0 --hash=sha256:") for l in env1["rtenv"]["pip"]["packages"])

    # Both envs ready on w1 first, so the two tasks overlap in time for sure.
    get([probe.options(runtime_env=e, **cluster.on("w1")).remote() for e in (env1, env2)])
    refs = [probe.options(runtime_env=e, **cluster.on("w1")).remote("conflict", sleep=1.5)
            for e in (env1, env2)]
    r1, r2 = get(refs)
    assert r1["versions"]["conflict"] == "1.0"
    assert r2["versions"]["conflict"] == "2.0"
    assert r1["prefix"] != r2["prefix"], "two pinned sets must be two venvs"
    for r in (r1, r2):
        assert r["prefix"].startswith(str(cluster.home("w1") / "pyenvs")), r["prefix"]
        assert r["env"]["VIRTUAL_ENV"] == r["prefix"]
        assert r["node_id"] == cluster.rc.node_id("w1")
    assert r1["start"] < r2["end"] and r2["start"] < r1["end"], "the tasks did not overlap"
    assert r1["pid"] != r2["pid"]
    # The worker kept Ray importable (it ran a Ray task) and the job's env_vars (a task env
    # without env_vars inherits nothing else of the job's: Ray replaces the whole `rtenv` key).
    assert "JOB_A" not in r1["env"]


def test_second_task_same_env_installs_nothing(cluster, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "warm_mod.py").write_text("VALUE = 'warm'\n")
    env = rtenv.ray.runtime_env(working_dir=str(wd), pip=cluster.pip("warmpkg==1.0"))
    before = len(cluster.installs("w1"))
    first = get(probe.options(runtime_env=env, **cluster.on("w1")).remote("warmpkg", "warm_mod"))
    assert first["versions"] == {"warmpkg": "1.0", "warm_mod": "warm"}
    installs = cluster.installs("w1")
    assert len(installs) == before + 1, installs
    envs_before = cluster.env_list("w1")

    @ray.remote(num_cpus=0.5)
    def another():
        import warm_mod
        import warmpkg

        return {"warmpkg": warmpkg.__version__, "warm_mod": warm_mod.VALUE}

    second = get(another.options(runtime_env=env, **cluster.on("w1")).remote())
    assert second == first["versions"]
    assert cluster.installs("w1") == installs, "the second task installed again"

    # A new job (another driver) with the same env: the node's rtenv agent answers from what is
    # on the node; nothing is installed, not even resolved.
    script = textwrap.dedent(f"""
        import json, ray, rtenv.ray
        ray.init(address={cluster.rc.address!r}, logging_level="ERROR", log_to_driver=False)
        env = rtenv.ray.runtime_env(working_dir={str(wd)!r}, pip={cluster.pip('warmpkg==1.0')!r})
        @ray.remote(num_cpus=0.5, resources={cluster.on('w1')['resources']!r})
        def f():
            import warmpkg, warm_mod
            return warmpkg.__version__, warm_mod.VALUE
        print(json.dumps(ray.get(f.options(runtime_env=env).remote(), timeout=120)))
    """)
    p = subprocess.run([PY, "-c", script], capture_output=True, text=True, timeout=180,
                       env=dict(os.environ))
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == ["1.0", "warm"]
    assert cluster.installs("w1") == installs, "a new job installed the env again"
    envs_after = cluster.env_list("w1")
    ready = lambda info: sorted(e["env_id"] for e in info["envs"] if e["state"] == "ready")
    assert ready(envs_after) == ready(envs_before)
    # The env is held by this node's Ray agent (a `job:ray-...` holder) until Ray evicts it.
    held = [e for e in envs_after["envs"] if any(h.startswith("job:ray-") for h in e["holders"])]
    assert held, envs_after
    # Only w1 installed it: the head's agent never saw the env.
    assert not any("warmpkg" in c for c in cluster.uv_calls("head"))


# ---- env_vars, merge, actors -----------------------------------------------------------------


@ray.remote(num_cpus=0)
class EnvActor:
    def env(self, *names):
        import os

        return {n: os.environ.get(n) for n in names}

    def nested(self, *names, override=None):
        """A task started from inside the actor: with no env of its own, or with one built
        relative to the actor's (`override` env_vars)."""
        import rtenv.ray

        options = {}
        if override is not None:
            options["runtime_env"] = rtenv.ray.runtime_env(
                base=ray.get_runtime_context().runtime_env, env_vars=override)
        return ray.get(probe.options(**options).remote())["env"]


def test_actor_sees_its_env_vars(cluster):
    env = rtenv.ray.runtime_env(env_vars={"ACTOR_VAR": "actor-value",
                                          "FROM_NODE": "${RTENV_HOME}/x",
                                          "UNSET_EXPANDS_EMPTY": "a${RTENV_NO_SUCH_VAR_}b"})
    actor = EnvActor.options(runtime_env=env, **cluster.on("w1")).remote()
    try:
        got = get(actor.env.remote("ACTOR_VAR", "FROM_NODE", "UNSET_EXPANDS_EMPTY"))
    finally:
        ray.kill(actor)
    assert got == {"ACTOR_VAR": "actor-value",
                   # `${NAME}` expands from the node's environment: w1's own RTENV_HOME.
                   "FROM_NODE": f"{cluster.home('w1')}/x",
                   "UNSET_EXPANDS_EMPTY": "ab"}


def test_task_env_merges_with_job_env(cluster):
    # No env of its own: the job's, whole.
    plain = get(probe.remote())
    for k, v in JOB_ENV_VARS.items():
        assert plain["env"][k] == v
    # runtime_env.md §5: job {A: job_a, B: job_b, Z: job_z}, task {A: task_a, C: task_c}.
    task_env = rtenv.ray.runtime_env(base=cluster.job_env,
                                     env_vars={"JOB_A": "task_a", "TASK_C": "task_c"})
    assert task_env["rtenv"]["env_vars"] == {"JOB_A": "task_a", "JOB_B": "job_b",
                                             "JOB_Z": "job_z", "TASK_C": "task_c"}
    got = get(probe.options(runtime_env=task_env).remote())["env"]
    assert (got["JOB_A"], got["JOB_B"], got["JOB_Z"], got["TASK_C"]) == \
        ("task_a", "job_b", "job_z", "task_c")
    # A field the job does not have (pip) joins the job's env_vars.
    with_pip = rtenv.ray.runtime_env(base=cluster.job_env, pip=cluster.pip("conflict==1.0"))
    r = get(probe.options(runtime_env=with_pip).remote("conflict"))
    assert r["versions"]["conflict"] == "1.0"
    assert r["env"]["JOB_B"] == "job_b"


def test_nested_tasks_inherit_the_actors_env(cluster, tmp_path):
    lib = tmp_path / "actorlib"
    lib.mkdir()
    (lib / "__init__.py").write_text("VALUE = 'actorlib'\n")
    env = rtenv.ray.runtime_env(py_modules=[str(lib)], pip=cluster.pip("actorpkg==1.0"),
                                env_vars={"ACTOR_ONLY": "yes", "JOB_A": "actor_a"})
    actor = EnvActor.options(runtime_env=env).remote()
    try:
        inherited = get(actor.nested.remote())
        assert inherited["ACTOR_ONLY"] == "yes" and inherited["JOB_A"] == "actor_a"
        assert "JOB_B" not in inherited, "the actor's env replaced the job's rtenv field"
        assert inherited["VIRTUAL_ENV"].startswith(str(cluster.rc.root))
        # Relative to the actor's env: its pip and py_modules stay, one variable changes.
        merged = get(actor.nested.remote(override={"ACTOR_ONLY": "nested"}))
        assert merged["ACTOR_ONLY"] == "nested" and merged["JOB_A"] == "actor_a"
        assert merged["VIRTUAL_ENV"] == inherited["VIRTUAL_ENV"]
        assert merged["PYTHONPATH"].split(os.pathsep)[0] == \
            inherited["PYTHONPATH"].split(os.pathsep)[0]
    finally:
        ray.kill(actor)


# ---- working_dir on the non-head node --------------------------------------------------------


def test_working_dir_code_on_the_worker_node(cluster, tmp_path):
    src = tmp_path / "project"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "model.py").write_text("VALUE = 'model from working_dir'\n")
    (src / "data.txt").write_text("payload\n")
    (src / "ignored.log").write_text("not shipped\n")
    env = rtenv.ray.runtime_env(working_dir=str(src), excludes=["*.log"])
    assert env["rtenv"]["working_dir"].startswith("rtenv://sha256/")

    @ray.remote(num_cpus=0.5)
    def use_working_dir():
        import os

        from pkg import model

        return {"value": model.VALUE, "data": open("data.txt").read(), "cwd": os.getcwd(),
                "files": sorted(os.listdir(".")),
                "node_id": ray.get_runtime_context().get_node_id()}

    w1 = cluster.rc.node_id("w1")
    got = get(use_working_dir.options(
        runtime_env=env,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=w1, soft=False)).remote())
    assert got["node_id"] == w1
    assert got["value"] == "model from working_dir" and got["data"] == "payload\n"
    assert got["cwd"].startswith(str(cluster.home("w1") / "pkgs")), got["cwd"]
    assert "ignored.log" not in got["files"]
    # Packed into the shared store by the driver; materialized by w1's agent only.
    uri = env["rtenv"]["working_dir"]
    assert any(r["uri"] == uri for r in cluster.env_list("w1")["resources"])


# ---- failures ----------------------------------------------------------------------------------


def test_invalid_env_fails_on_the_driver_with_the_field_named(cluster):
    with pytest.raises(rtenv.InvalidRuntimeEnv) as e:
        rtenv.ray.runtime_env(env_vars={"N": 3})
    assert "runtime_env.env_vars.N: expected a string, got 3 (integer)" in str(e.value)
    with pytest.raises(ValueError):  # InvalidRuntimeEnv is a ValueError
        rtenv.ray.runtime_env(config={"setup_timeout_seconds": 0})


def test_broken_spec_fails_the_task_with_rtenvs_message(cluster):
    # Handed to Ray directly (no helper): the node's rtenv refuses it, the task fails.
    with pytest.raises(RuntimeEnvSetupError) as e:
        get(probe.options(runtime_env={"rtenv": {"env_vars": {"N": 3}}}).remote())
    assert "runtime_env.env_vars.N: expected a string, got 3 (integer)" in str(e.value)
    with pytest.raises(RuntimeEnvSetupError) as e:
        get(probe.options(runtime_env={"rtenv": {"working_dir": "/nonexistent/local"}}).remote())
    assert "local path" in str(e.value) and "rtenv.ray.runtime_env()" in str(e.value)


def test_failing_install_fails_the_task_with_rtenvs_message(cluster):
    # The driver's lock fails first, saying why.
    with pytest.raises(rtenv.SetupFailed) as e:
        rtenv.ray.runtime_env(pip=cluster.pip("nosuchpkg==1.0"))
    assert "nosuchpkg" in str(e.value)
    # An env that only fails on the node: a package whose build fails there.
    spec = {"pip": cluster.pip("brokenbuild==0.1")}
    with pytest.raises(RuntimeEnvSetupError) as e:
        get(probe.options(runtime_env={"rtenv": spec}, **cluster.on("w1")).remote())
    msg = str(e.value)
    assert "rtenv: setup failed: installing pip" in msg, msg
    assert "uv pip install" in msg and "Failed to build `brokenbuild==0.1`" in msg, msg
    assert BROKEN_MESSAGE in msg, msg


def test_failing_actor_env_kills_only_that_actor(cluster):
    good = EnvActor.options(runtime_env=rtenv.ray.runtime_env(env_vars={"GOOD": "1"})).remote()
    bad = EnvActor.options(
        runtime_env={"rtenv": {"pip": cluster.pip("nosuchpkg-actor==1.0")}}).remote()
    try:
        with pytest.raises((RuntimeEnvSetupError, ray.exceptions.ActorDiedError)) as e:
            get(bad.env.remote("GOOD"))
        assert "nosuchpkg-actor" in str(e.value), str(e.value)
        assert get(good.env.remote("GOOD")) == {"GOOD": "1"}
        assert get(probe.remote())["env"]["JOB_A"] == "job_a"
    finally:
        ray.kill(good)
        ray.kill(bad)
