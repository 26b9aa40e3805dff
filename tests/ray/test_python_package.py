"""The Python package itself (no cluster): it installs with one pip command, imports without Ray,
finds the binary or says clearly why not, merges envs per runtime_env.md §5, and turns an rtenv
context into Ray's worker context."""

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
           "working_dir": "rtenv://sha256/aa"}
    actor = {"env_vars": {"a": "b", "c": "d"}, "working_dir": "rtenv://sha256/bb"}
    assert merge(job, actor) == {
        "env_vars": {"a": "b", "b": "job_b", "c": "d", "z": "job_z"},
        "pip": {"packages": ["x"]},
        "working_dir": "rtenv://sha256/bb",
    }
    assert merge(job, {}) == job
    assert job["env_vars"]["a"] == "job_a", "merge must not change its inputs"


def test_helper_refuses_rays_own_fields_in_base():
    with pytest.raises(ValueError, match="Ray's own 'pip'"):
        rtenv.ray.runtime_env(base={"rtenv": {}, "pip": ["x"]}, env_vars={"A": "1"})


def test_apply_context_points_ray_at_the_env():
    pytest.importorskip("ray")
    from ray._private.runtime_env.context import RuntimeEnvContext

    from rtenv.ray.plugin import apply_context

    ctx = RuntimeEnvContext(env_vars={"RAY_LEVEL": "r"})
    apply_context(
        {"cwd": "/h/pkgs/abc", "env_vars": {"A": "${HOME}/x${UNSET_VAR_X}", "PATH": "/h/pyenvs/k/bin:${PATH}"},
         "python_path": ["/h/pkgs/abc", "/h/pkgs/mod"], "py_executable": "/h/pyenvs/k/bin/python"},
        ctx, {"HOME": "/home/u", "PATH": "/usr/bin", "RTENV_HOME": "/h"})
    assert ctx.env_vars["A"] == "/home/u/x"
    assert ctx.env_vars["RAY_LEVEL"] == "r"
    assert ctx.env_vars["PATH"] == "/h/pyenvs/k/bin:/usr/bin"
    assert ctx.env_vars["VIRTUAL_ENV"] == "/h/pyenvs/k"
    assert ctx.env_vars["PYTHONPATH"] == "/h/pkgs/abc:/h/pkgs/mod"
    assert ctx.env_vars["PYTHONPYCACHEPREFIX"] == "/h/pycache"
    assert ctx.py_executable == "/h/pyenvs/k/bin/python"
    assert ctx.command_prefix == ["cd", "/h/pkgs/abc", "&&"]


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
