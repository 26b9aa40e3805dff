"""`py_executable` end to end: the process's Python named by an absolute path, a name on PATH or a
path inside working_dir; with `pip` the venv (and its lock) built on that interpreter; the
interpreter checked on the node (missing, not runnable: exit 3 naming it).

Two interpreters of the same minor version are on the machine: the Debian /usr/bin/python3 and
the one running the tests (sys.executable). They are told apart by sys.version, and a wrapper
script made here shows that it ran (an -X option and a variable it sets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PY, assert_ok, assert_setup_failed, write_tree
from pyindex import build_wheel, find_uv, logging_uv

SYSTEM_PY = "/usr/bin/python3"
UV = find_uv(PY)

# What the process's `python` (or `python3`) is, as one JSON line.
INSPECT = r"""
import json, os, shutil, sys
out = {"version": sys.version, "executable": sys.executable, "prefix": sys.prefix,
       "base_prefix": sys.base_prefix, "xoptions": sys._xoptions,
       "wrapped": os.environ.get("RTENV_TEST_WRAPPED"), "which": shutil.which("python"),
       "which3": shutil.which("python3"), "cwd": os.getcwd(), "versions": {}}
for m in sys.argv[1:]:
    try:
        out["versions"][m] = __import__(m).__version__
    except ImportError as e:
        out["versions"][m] = "ImportError: " + str(e)
print(json.dumps(out))
"""


def version_of(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version)"], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def system_version() -> str:
    if not os.access(SYSTEM_PY, os.X_OK):
        pytest.fail(f"{SYSTEM_PY} is needed (the Debian interpreter beside the test's own)")
    v = version_of(SYSTEM_PY)
    assert v != sys.version, (
        f"{SYSTEM_PY} and {sys.executable} report the same sys.version ({v}): these tests could "
        "not tell which interpreter ran")
    return v


def wrapper(path: Path, target: str = SYSTEM_PY, tag: str = "yes") -> Path:
    """A shell script interpreter: runs `target` with `-X rtenv_wrapped=<tag>` and
    RTENV_TEST_WRAPPED=<tag> set, so the process can see that it went through the script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nRTENV_TEST_WRAPPED={tag}\nexport RTENV_TEST_WRAPPED\n'
                    f'exec "{target}" -X rtenv_wrapped={tag} "$@"\n')
    path.chmod(0o755)
    return path


def inspect(rtenv, runtime_env, *modules, command="python", flags=(), env=None) -> tuple[dict, str]:
    p = rtenv.run(runtime_env, command, "-c", INSPECT, *modules, flags=flags, env=env, timeout=90)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def env_create(rtenv, runtime_env) -> dict:
    p = rtenv("env", "create", "--json", "-e", json.dumps(runtime_env), timeout=90)
    assert_ok(p)
    return json.loads(p.stdout)


# ---- without pip: the command's python and python3 are that interpreter ------------------------


def test_absolute_path_is_the_commands_python_and_python3(py, system_version):
    spec = {"py_executable": SYSTEM_PY}
    for command in ("python", "python3"):
        got, _ = inspect(py, spec, command=command)
        assert got["version"] == system_version, got
        assert got["executable"] == SYSTEM_PY, got  # run as named, not through a venv
        assert got["prefix"] == got["base_prefix"] == "/usr", got
        # Both names on PATH start it, from the env's own bin/ under $RTENV_HOME.
        assert got["which"].startswith(str(py.home / "pyenvs") + "/"), got
        assert Path(got["which"]).parent == Path(got["which3"]).parent, got
    # The interpreter the tests run is a different one: without py_executable it would run.
    got, _ = inspect(py, {"env_vars": {"A": "1"}}, command=PY)
    assert got["version"] == sys.version


def test_a_second_run_installs_nothing(py, system_version):
    spec = {"py_executable": SYSTEM_PY}
    got, err = inspect(py, spec, flags=["-v"])
    assert got["version"] == system_version
    assert "rtenv: install py_executable pyenv://" in err, err
    got2, err2 = inspect(py, spec, flags=["-v"])
    assert got2 == got
    assert "everything was on this machine already" in err2, err2
    assert "rtenv: install" not in err2, err2


def test_wrapper_script_runs_for_python_and_python3(py, tmp_path, system_version):
    script = wrapper(tmp_path / "bin" / "wrapped-python")
    for command in ("python", "python3"):
        got, _ = inspect(py, {"py_executable": str(script)}, command=command)
        assert got["wrapped"] == "yes", got
        assert got["xoptions"] == {"rtenv_wrapped": "yes"}, got
        assert got["version"] == system_version, got


def test_name_on_path(py, tmp_path, system_version):
    bindir = tmp_path / "tools"
    wrapper(bindir / "rtenv-test-python", tag="by-name")
    # The agent `rtenv run` starts inherits this PATH: the name is found on the node's PATH.
    py.env["PATH"] = f"{bindir}:{py.env['PATH']}"
    spec = {"py_executable": "rtenv-test-python"}
    got, _ = inspect(py, spec)
    assert got["wrapped"] == "by-name", got
    assert got["version"] == system_version, got

    reply = env_create(py, spec)
    assert reply["plan"]["py_executable"] == str(bindir / "rtenv-test-python"), reply
    assert len(reply["resources"]) == 1 and reply["resources"][0].startswith("pyenv://"), reply


def test_path_relative_to_working_dir(py, tmp_path, system_version):
    project = write_tree(tmp_path / "project", {"data.txt": "hello\n"})
    wrapper(project / "tools" / "py", tag="in-working-dir")
    spec = {"working_dir": str(project), "py_executable": "tools/py"}
    got, _ = inspect(py, spec)
    assert got["wrapped"] == "in-working-dir", got
    assert got["version"] == system_version, got
    # The node's copy of working_dir (the cwd) holds the interpreter that ran.
    assert (Path(got["cwd"]) / "data.txt").read_text() == "hello\n", got

    reply = env_create(py, spec)
    plan_py = reply["plan"]["py_executable"]
    assert plan_py == os.path.join(reply["plan"]["cwd"], "tools", "py"), reply
    assert plan_py.startswith(str(py.home / "pkgs") + "/"), reply


def test_relative_path_without_working_dir_is_refused(py):
    p = py.run({"py_executable": "tools/py"}, "true")
    assert_setup_failed(p, "runtime_env.py_executable", "tools/py", "no working_dir")


def test_env_create_json_plan_names_the_interpreter(py, system_version):
    reply = env_create(py, {"py_executable": SYSTEM_PY})
    assert reply["plan"]["py_executable"] == SYSTEM_PY, reply
    [uri] = reply["resources"]
    assert uri.startswith("pyenv://"), reply
    path_ops = [op for op in reply["plan"]["env"] if op.get("name") == "PATH"]
    assert path_ops, reply
    bindir = py.home / "pyenvs" / uri[len("pyenv://"):] / "bin"
    assert str(bindir) in json.dumps(path_ops), (bindir, path_ops)
    for name in ("python", "python3"):
        assert version_of(str(bindir / name)) == system_version


# ---- the interpreter is checked on the node -------------------------------------------------


def test_missing_interpreter_exits_3_naming_it(py, tmp_path):
    missing = tmp_path / "nowhere" / "python3"
    p = py.run({"py_executable": str(missing)}, "true")
    assert_setup_failed(p, "runtime_env.py_executable", str(missing), "not found")

    p = py.run({"py_executable": "rtenv-no-such-python"}, "true")
    assert_setup_failed(p, "runtime_env.py_executable", "rtenv-no-such-python", "on PATH")


def test_interpreter_that_does_not_run_exits_3_naming_it(py, tmp_path):
    broken = tmp_path / "broken-python"
    broken.write_text("#!/bin/sh\necho 'this is not python' >&2\nexit 7\n")
    broken.chmod(0o755)
    p = py.run({"py_executable": str(broken)}, "true")
    assert_setup_failed(p, "runtime_env.py_executable", str(broken), "does not run",
                        "this is not python")

    not_executable = tmp_path / "plain-file"
    not_executable.write_text("print('hi')\n")
    p = py.run({"py_executable": str(not_executable)}, "true")
    assert_setup_failed(p, "runtime_env.py_executable", str(not_executable),
                        "not an executable file")


def test_broken_interpreter_in_working_dir_exits_3(py, tmp_path):
    project = write_tree(tmp_path / "project", {"tools/py": "#!/bin/sh\nexit 9\n"})
    (project / "tools" / "py").chmod(0o755)
    p = py.run({"working_dir": str(project), "py_executable": "tools/py"}, "true")
    assert_setup_failed(p, "runtime_env.py_executable (tools/py in working_dir)", "does not run")


def test_command_prefix_with_arguments_is_refused(py):
    p = py.run({"py_executable": "uv run --with x"}, "true")
    assert_setup_failed(p, "not supported: py_executable with arguments", "uv run --with x",
                        "give an interpreter path or name")


# ---- with pip: the venv and its lock are on that interpreter ----------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dists")
    return {
        "depbase-1.0": build_wheel(out, "depbase", "1.0"),
        "withdep-1.0": build_wheel(out, "withdep", "1.0", deps=["depbase>=1"]),
    }


def test_pip_venv_and_lock_on_that_interpreter(py, index, tmp_path, system_version):
    script, log = logging_uv(tmp_path, UV)
    py.env["RTENV_UV"] = str(script)
    spec = {"py_executable": SYSTEM_PY, "pip": [f"--index-url {index.url}", "withdep"]}

    # The lock is resolved for the Debian interpreter (the default would be the test's own).
    p = py("lock", "-e", json.dumps(spec), "--json", timeout=90)
    assert_ok(p)
    locked = json.loads(p.stdout)
    assert locked["pip"]["python"] == os.path.realpath(SYSTEM_PY), locked
    assert locked["py_executable"] == SYSTEM_PY, locked
    compiles = [c for c in log.read_text().splitlines() if "pip compile" in c]
    assert compiles and all(f"--python {os.path.realpath(SYSTEM_PY)}" in c for c in compiles), \
        compiles

    got, err = inspect(py, spec, "withdep", "depbase", flags=["-v"])
    assert got["versions"] == {"withdep": "1.0", "depbase": "1.0"}, got
    assert got["version"] == system_version, got
    venv = Path(got["prefix"])
    assert venv.parent == py.home / "pyenvs", got
    assert got["base_prefix"] == "/usr", got
    assert got["which"] == str(venv / "bin" / "python"), got
    assert "rtenv: install pip pyenv://" in err, err
    # No launcher of its own: the venv is the env's only Python resource.
    reply = env_create(py, spec)
    assert reply["resources"] == [f"pyenv://{venv.name}"], reply
    assert reply["plan"]["py_executable"] == str(venv / "bin" / "python"), reply

    # A second run installs nothing and asks no one.
    first = log.read_text().splitlines()
    index.clear_requests()
    got2, err2 = inspect(py, spec, "withdep", "depbase", flags=["-v"])
    assert got2 == got
    assert log.read_text().splitlines() == first, "the second run called uv"
    assert index.requests == [], index.requests
    assert "everything was on this machine already" in err2, err2


def test_pip_python_that_differs_is_refused(py, index):
    spec = {"py_executable": SYSTEM_PY,
            "pip": {"packages": [f"--index-url {index.url}", "withdep"], "python": PY}}
    p = py.run(spec, "true", timeout=60)
    assert_setup_failed(p, "runtime_env.py_executable", SYSTEM_PY, "runtime_env.pip.python", PY)


def test_pip_python_naming_the_same_interpreter_is_accepted(py, index, system_version):
    spec = {"py_executable": SYSTEM_PY,
            "pip": {"packages": [f"--index-url {index.url}", "withdep"],
                    "python": os.path.realpath(SYSTEM_PY)}}
    got, _ = inspect(py, spec, "withdep")
    assert got["versions"] == {"withdep": "1.0"}, got
    assert got["version"] == system_version, got


def test_relative_path_with_pip_is_refused(py, index, tmp_path):
    project = tmp_path / "project"
    wrapper(project / "tools" / "py")
    spec = {"working_dir": str(project), "py_executable": "tools/py",
            "pip": [f"--index-url {index.url}", "withdep"]}
    p = py.run(spec, "true", timeout=60)
    assert_setup_failed(p, "runtime_env.py_executable", "tools/py", "relative to working_dir",
                        "pip")
