"""The Python package itself (no cluster): it installs with one pip command, imports without Ray,
finds the binary or says clearly why not, merges envs per runtime_env.md §5 (rtenv's own merge),
passes plugin fields through, and turns an rtenv launch plan into Ray's worker context."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rtenv
from rtenv import _cli
from rtenv.ray.helper import merge

from ray_testlib import PY, REPO


def test_pip_install_and_import_without_ray(tmp_path):
    target = tmp_path / "site"
    # From a copy: a build leaves build/ and *.egg-info beside pyproject.toml.
    src = tmp_path / "src"
    shutil.copytree(REPO / "python", src, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", "tests"))
    p = subprocess.run([PY, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                        "--no-deps", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (target / "rtenv" / "ray" / "plugin.py").is_file()
    # Ray made unimportable: `rtenv` and the helper still import.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('ray is not installed here')\n")
    code = ("import sys, rtenv, rtenv.ray; print(rtenv.__file__); "
            "print('ray' in sys.modules); print(callable(rtenv.ray.runtime_env))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = f"{blocker}{os.pathsep}{target}"
    p = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.split()
    assert out[0].startswith(str(target)) and out[1:] == ["False", "True"]


def test_runtime_env_class_is_lazy():
    missing = not (REPO / "python" / "rtenv" / "runtime_env.py").exists()
    if missing:
        with pytest.raises(AttributeError, match="rtenv.RuntimeEnv is not available"):
            rtenv.RuntimeEnv
    else:
        assert rtenv.RuntimeEnv.__name__ == "RuntimeEnv"
    with pytest.raises(AttributeError):
        rtenv.no_such_thing


def test_find_binary(tmp_path, rtenv_bin):
    assert _cli.find_binary({"RTENV_BIN": rtenv_bin, "PATH": ""}) == rtenv_bin
    with pytest.raises(rtenv.BinaryNotFound, match="RTENV_BIN=/nope is not an executable"):
        _cli.find_binary({"RTENV_BIN": "/nope", "PATH": ""})
    with pytest.raises(rtenv.BinaryNotFound, match="set RTENV_BIN"):
        _cli.find_binary({"PATH": str(tmp_path)})
    (tmp_path / "rtenv").symlink_to(rtenv_bin)
    assert _cli.find_binary({"PATH": str(tmp_path)}) == str(tmp_path / "rtenv")


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
