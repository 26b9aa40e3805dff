"""The Python package itself (no cluster): it installs with one pip command, imports without Ray,
finds the binary or says clearly why not, merges envs per runtime_env.md §5 (rtenv's own merge),
passes plugin fields through, and turns an rtenv launch plan into Ray's worker context."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import rtenv
from rtenv import _cli
from rtenv.ray.helper import merge

from ray_testlib import PY, REPO, rtenv_wheel
from raycluster import stop_agent


BINARIES = ("rtenv", "rtenv-full", "rtenv-agent")


def test_the_wheel_carries_the_three_binaries_as_scripts():
    wheel = rtenv_wheel()
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        scripts = {n.rsplit("/", 1)[-1]: z.getinfo(n) for n in names if "/scripts/" in n}
    assert sorted(scripts) == sorted(BINARIES), names
    for name, info in scripts.items():
        assert info.file_size > 100_000, f"{name} is {info.file_size} bytes"
    assert "rtenv/ray/plugin.py" in names and "rtenv/_cli.py" in names
    # Built for this platform, for any Python 3 (the binaries do not use Python's ABI).
    assert wheel.name.startswith("rtenv-0.1.0-py3-none-linux_"), wheel.name


def test_pip_install_and_import_without_ray(tmp_path):
    target = tmp_path / "site"
    p = subprocess.run([PY, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                        "--target", str(target), str(rtenv_wheel())],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (target / "rtenv" / "ray" / "plugin.py").is_file()
    # Ray made unimportable: `rtenv` and the helper still import, and the package finds the
    # binaries pip put in <target>/bin, with nothing on PATH and no RTENV_BIN.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('ray is not installed here')\n")
    code = ("import sys, rtenv, rtenv.ray; print(rtenv.__file__); "
            "print('ray' in sys.modules); print(callable(rtenv.ray.runtime_env)); "
            "print(rtenv.find_binary())")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RTENV_BIN")}
    env["PYTHONPATH"] = f"{blocker}{os.pathsep}{target}"
    env["PATH"] = "/usr/bin:/bin"
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.split()
    assert out[0].startswith(str(target)) and out[1:3] == ["False", "True"]
    assert out[3] == str(target / "bin" / "rtenv")


def test_the_wheel_in_a_fresh_venv_runs_its_own_binaries(tmp_path):
    """A venv with only the wheel in it: the package finds the binaries its wheel installed in
    the venv's bin/ (no RTENV_BIN, no rtenv on PATH), and `rtenv run` from there works,
    including a run that hands over to rtenv-full and starts rtenv-agent beside it."""
    venv = tmp_path / "venv"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    p = subprocess.run([PY, "-m", "pip", "--python", str(vpy), "install", "--quiet",
                        "--no-deps", "--no-index", str(rtenv_wheel())],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    for name in BINARIES:
        assert os.access(venv / "bin" / name, os.X_OK), f"{name} is not in the venv's bin/"
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "RTENV_", "VIRTUAL_ENV"))}
    env.update(PATH="/usr/bin:/bin", RTENV_HOME=str(home))
    assert shutil.which("rtenv", path=env["PATH"]) is None
    p = subprocess.run([str(vpy), "-c", "import rtenv; print(rtenv.find_binary())"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(venv / "bin" / "rtenv")

    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "hello.txt").write_text("from the working_dir\n")
    spec = json.dumps({"working_dir": str(wd), "env_vars": {"GREETING": "hi"}})
    try:
        p = subprocess.run([str(venv / "bin" / "rtenv"), "run", "-e", spec, "--",
                            "sh", "-c", 'echo "$GREETING"; cat hello.txt'],
                           env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split("\n")[:2] == ["hi", "from the working_dir"]
        # The same through the Python API, whose binary is the venv's.
        code = ("import rtenv._cli as c; print(c.run(['run', '--', 'true']) == '')")
        p = subprocess.run([str(vpy), "-c", code], env=env, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr
    finally:
        stop_agent(home)


def test_runtime_env_class_is_lazy():
    missing = not (REPO / "python" / "rtenv" / "runtime_env.py").exists()
    if missing:
        with pytest.raises(AttributeError, match="rtenv.RuntimeEnv is not available"):
            rtenv.RuntimeEnv
    else:
        assert rtenv.RuntimeEnv.__name__ == "RuntimeEnv"
    with pytest.raises(AttributeError):
        rtenv.no_such_thing


def test_find_binary(tmp_path, rtenv_bin, monkeypatch):
    # A package without binaries of its own (the repository's python/): RTENV_BIN, else PATH.
    monkeypatch.setattr(_cli, "own_binary", lambda: None)
    assert _cli.find_binary({"RTENV_BIN": rtenv_bin, "PATH": ""}) == rtenv_bin
    with pytest.raises(rtenv.BinaryNotFound, match="RTENV_BIN=/nope is not an executable"):
        _cli.find_binary({"RTENV_BIN": "/nope", "PATH": ""})
    with pytest.raises(rtenv.BinaryNotFound, match=r"pip install \./python.*set RTENV_BIN"):
        _cli.find_binary({"PATH": str(tmp_path)})
    (tmp_path / "rtenv").symlink_to(rtenv_bin)
    assert _cli.find_binary({"PATH": str(tmp_path)}) == str(tmp_path / "rtenv")
    # The package's own binaries come before PATH; RTENV_BIN overrides them.
    own = tmp_path / "own" / "bin" / "rtenv"
    own.parent.mkdir(parents=True)
    own.symlink_to(rtenv_bin)
    monkeypatch.setattr(_cli, "own_binary", lambda: str(own))
    assert _cli.find_binary({"PATH": str(tmp_path)}) == str(own)
    assert _cli.find_binary({"RTENV_BIN": rtenv_bin, "PATH": str(tmp_path)}) == rtenv_bin


def test_a_source_tree_package_has_no_binaries_of_its_own(tmp_path):
    code = "import rtenv._cli as c; print(c.__file__); print(c.own_binary())"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(REPO / "python")
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(REPO / "python" / "rtenv" / "_cli.py"), "None"]


def test_errors_carry_rtenvs_message(tmp_path, rtenv_bin):
    env = {**os.environ, "RTENV_BIN": rtenv_bin, "RTENV_HOME": str(tmp_path / "home")}
    with pytest.raises(rtenv.InvalidRuntimeEnv) as e:
        _cli.resolve({"env_vars": {"X": 1}}, env=env)
    assert e.value.returncode == 2
    assert str(e.value) == "runtime_env.env_vars.X: expected a string, got 1 (integer)"
    with pytest.raises(rtenv.InvalidRuntimeEnv) as e:
        _cli.resolve({"working_dir": str(tmp_path / "missing")}, env=env)
    assert str(tmp_path / "missing") in str(e.value)


def test_resolve_packs_without_installing(tmp_path, rtenv_bin):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "m.py").write_text("X = 1\n")
    home = tmp_path / "home"
    env = {**os.environ, "RTENV_BIN": rtenv_bin, "RTENV_HOME": str(home)}
    r = _cli.resolve({"working_dir": "wd", "env_vars": {"A": "${B}"}}, env=env,
                     cwd=str(tmp_path))
    assert r["runtime_env"]["working_dir"].startswith("rtenv://sha256/")
    assert r["runtime_env"]["env_vars"] == {"A": "${B}"}
    assert len(r["env_id"]) == 64
    assert not (home / "agent.pid").exists(), "--no-install started an agent"
    pkgs = home / "pkgs"
    assert not pkgs.exists() or not any(pkgs.iterdir()), "--no-install materialized something"


def test_merge_follows_runtime_env_md_section_5():
    job = {"env_vars": {"a": "job_a", "b": "job_b", "z": "job_z"}, "pip": {"packages": ["x"]},
           "working_dir": "rtenv://sha256/" + "a" * 64}
    actor = {"env_vars": {"a": "b", "c": "d"}, "working_dir": "rtenv://sha256/" + "b" * 64}
    assert merge(job, actor) == {
        "env_vars": {"a": "b", "b": "job_b", "c": "d", "z": "job_z"},
        "pip": {"packages": ["x"]},
        "working_dir": "rtenv://sha256/" + "b" * 64,
    }
    assert merge(job, {}) == job
    assert job["env_vars"]["a"] == "job_a", "merge must not change its inputs"


def test_merge_is_rtenvs_merge_pip_uv_conda_one_slot():
    job = {"pip": ["requests==2.31.0"], "env_vars": {"A": "1"}}
    # The task's uv replaces the job's pip: never both (which rtenv would refuse).
    assert merge(job, {"uv": ["six==1.16.0"]}) == {
        "env_vars": {"A": "1"}, "uv": {"packages": ["six==1.16.0"]}}
    assert merge(job, {"conda": "base"}) == {"conda": "base", "env_vars": {"A": "1"}}
    # The same result as rtenv.RuntimeEnv's merge, which the shared merge vectors check against
    # the C++ merge.
    from rtenv.runtime_env import RuntimeEnv, merge as rt_merge
    assert merge(job, {"uv": ["six==1.16.0"]}) == rt_merge(
        RuntimeEnv.from_dict(job), RuntimeEnv.from_dict({"uv": ["six==1.16.0"]})).to_dict()
    with pytest.raises(ValueError, match=r"runtime_env.env_vars.B: expected a string"):
        merge(job, {"env_vars": {"B": 2}})


def test_plugin_fields_pass_through_unchanged():
    value = {"greeting": "hi", "n": [1, 2.5, None]}
    assert merge({"hello": {"old": 1}, "env_vars": {"A": "1"}}, {"hello": value}) == {
        "env_vars": {"A": "1"}, "hello": value}
    assert merge({"hello": value}, {"env_vars": {"A": "1"}}) == {
        "env_vars": {"A": "1"}, "hello": value}
    pytest.importorskip("ray")
    from rtenv.ray.plugin import RtenvPlugin
    RtenvPlugin.validate({"rtenv": {"hello": value, "env_vars": {"A": "1"}}})
    with pytest.raises(ValueError, match=r"runtime_env.rtenv.image_uri: .* not supported"):
        RtenvPlugin.validate({"rtenv": {"image_uri": "127.0.0.1:5000/app:v1"}})
    # The URI hash is over rtenv's canonical form: key order does not matter, values do.
    plugin = RtenvPlugin.__new__(RtenvPlugin)
    a = plugin.get_uris({"rtenv": {"hello": {"n": 1, "g": "x"}, "pip": ["a==1"]}})
    b = plugin.get_uris({"rtenv": {"pip": {"packages": ["a==1"]}, "hello": {"g": "x", "n": 1}}})
    c = plugin.get_uris({"rtenv": {"hello": {"n": 2, "g": "x"}, "pip": ["a==1"]}})
    assert a == b != c and a[0].startswith("rtenv-ray://")


def test_rays_schema_validation_refuses_a_wrongly_typed_rtenv_value(tmp_path, rtenv_bin,
                                                                     monkeypatch):
    pytest.importorskip("ray")
    import jsonschema
    from ray._private.runtime_env.plugin_schema_manager import RuntimeEnvPluginSchemaManager
    from ray.runtime_env import RuntimeEnv as RayRuntimeEnv

    path = rtenv.ray.write_schema(str(tmp_path), env={**os.environ, "RTENV_BIN": rtenv_bin})
    assert path == str(tmp_path / "rtenv.json")
    monkeypatch.setenv("RAY_RUNTIME_ENV_PLUGIN_SCHEMAS", path)
    RuntimeEnvPluginSchemaManager.clear()
    try:
        # Ray 2.60 checks a plugin key's schema when the key is set on its RuntimeEnv (not when
        # a dict is passed whole: RuntimeEnv(**d) fills itself with dict.update).
        with pytest.raises(jsonschema.ValidationError) as e:
            RayRuntimeEnv()["rtenv"] = {"env_vars": {"A": 1}}
        assert list(e.value.absolute_path) == ["env_vars", "A"]
        with pytest.raises(jsonschema.ValidationError):
            RayRuntimeEnv()["rtenv"] = {"pip": {"packages": ["a"], "uv_check": True}}
        # Right shapes and plugin fields pass.
        env = RayRuntimeEnv()
        env["rtenv"] = {"env_vars": {"A": "1"}, "pip": {"packages": ["a==1"]},
                        "hello": {"greeting": "hi"}}
        assert env["rtenv"]["hello"] == {"greeting": "hi"}
    finally:
        RuntimeEnvPluginSchemaManager.clear()


def test_the_plugin_applies_the_launch_plan_to_rays_context():
    pytest.importorskip("ray")
    from ray._private.runtime_env.context import RuntimeEnvContext

    from rtenv import launch_plan
    from rtenv.ray.plugin import _plan_of

    plan = {"env": [{"op": "set", "name": "A", "value": "${HOME}/x${UNSET_VAR_X}", "expand": True},
                    {"op": "set", "name": "VIRTUAL_ENV", "value": "/h/pyenvs/k"},
                    {"op": "prepend", "name": "PATH", "values": ["/h/pyenvs/k/bin"]},
                    {"op": "prepend", "name": "PYTHONPATH", "values": ["/h/pkgs/abc", "/h/pkgs/mod"]},
                    {"op": "default", "name": "PYTHONPYCACHEPREFIX", "value": "/h/pycache",
                     "unless_set": ["PYTHONDONTWRITEBYTECODE"]}],
            "cwd": "/h/pkgs/abc", "wrapper": [], "py_executable": "/h/pyenvs/k/bin/python",
            "resources": []}
    assert _plan_of({"plan": plan}) is plan
    ctx = RuntimeEnvContext(env_vars={"RAY_LEVEL": "r"})
    launch_plan.to_ray_context(plan, {"HOME": "/home/u", "PATH": "/usr/bin", "RTENV_HOME": "/h"},
                               ctx)
    assert ctx.env_vars == {"RAY_LEVEL": "r", "A": "/home/u/x", "VIRTUAL_ENV": "/h/pyenvs/k",
                            "PATH": "/h/pyenvs/k/bin:/usr/bin",
                            "PYTHONPATH": "/h/pkgs/abc:/h/pkgs/mod",
                            "PYTHONPYCACHEPREFIX": "/h/pycache"}
    assert ctx.py_executable == "/h/pyenvs/k/bin/python"
    assert ctx.command_prefix == ["cd", "/h/pkgs/abc", "&&"]


def test_java_jars_reach_rays_java_worker_class_path():
    pytest.importorskip("ray")
    from ray._private.runtime_env.context import RuntimeEnvContext

    from rtenv import launch_plan
    plan = {"env": [{"op": "append", "name": "CLASSPATH",
                     "values": ["/h/pkgs/a/greeter.jar", "/h/pkgs/b/*"]}],
            "cwd": None, "wrapper": [], "py_executable": None, "resources": []}
    ctx = RuntimeEnvContext()
    launch_plan.to_ray_context(plan, {}, ctx)
    # Ray's Java worker builds `-cp` from these (each as DIR/* and DIR), not from CLASSPATH.
    assert ctx.java_jars == ["/h/pkgs/a/greeter.jar", "/h/pkgs/b"]


def test_a_result_without_a_plan_is_a_clear_version_mismatch():
    pytest.importorskip("ray")
    from rtenv.ray.plugin import _plan_of

    with pytest.raises(RuntimeError, match="different versions"):
        _plan_of({"context": {"cwd": "/h/pkgs/abc"}})


def test_a_node_without_rtenv_home_keeps_its_state_in_rays_runtime_env_dir(monkeypatch, tmp_path):
    pytest.importorskip("ray")
    from rtenv.ray.plugin import RtenvPlugin

    monkeypatch.delenv("RTENV_HOME", raising=False)
    monkeypatch.setattr(sys, "argv", ["runtime_env_agent", "--node-id", "n1",
                                      "--runtime-env-dir", str(tmp_path / "runtime_resources")])
    assert RtenvPlugin()._env["RTENV_HOME"] == str(tmp_path / "runtime_resources" / "rtenv")
    monkeypatch.setattr(sys, "argv", ["runtime_env_agent",
                                      f"--runtime-env-dir={tmp_path / 'other'}"])
    assert RtenvPlugin()._env["RTENV_HOME"] == str(tmp_path / "other" / "rtenv")
    # A node's own RTENV_HOME wins.
    monkeypatch.setenv("RTENV_HOME", str(tmp_path / "mine"))
    assert RtenvPlugin()._env["RTENV_HOME"] == str(tmp_path / "mine")
