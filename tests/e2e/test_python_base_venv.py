"""Python envs on an interpreter that runs in a venv of its own (Ray installed in a venv, the
usual deployment): the env layers on that venv. It sees the venv's packages behind its own, the
base interpreter's only if that venv does, and two venvs on one base interpreter get envs of
their own. Against a package index on 127.0.0.1 (pyindex.py); the venvs are made with
`python -m venv` from the test interpreter and filled from local wheels, offline.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from condachannel import channel_url
from conftest import PY, assert_ok
from pyindex import PackageIndex, build_wheel, find_uv

UV = find_uv(PY)

# What the env sees, as one JSON line: where each module comes from (or the ImportError), and
# sys.path.
SHOW = r"""
import importlib, json, sys
out = {"path": sys.path, "prefix": sys.prefix, "modules": {}}
for m in sys.argv[1:]:
    try:
        mod = importlib.import_module(m)
        out["modules"][m] = {"file": mod.__file__, "version": getattr(mod, "__version__", None)}
    except ImportError as e:
        out["modules"][m] = {"error": str(e)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {
        # Only in the Ray venv.
        "venvmarker": build_wheel(out, "venvmarker", "1.0"),
        # In the Ray venv at 1.0; the env asks for 2.0, which must win.
        "shadowed-1.0": build_wheel(out, "shadowed", "1.0"),
        "shadowed-2.0": build_wheel(out, "shadowed", "2.0"),
        # Only in the env.
        "envpkg": build_wheel(out, "envpkg", "1.0"),
    }


@pytest.fixture
def index(wheels):
    with PackageIndex() as ix:
        ix.add(wheels["shadowed-2.0"])
        ix.add(wheels["envpkg"])
        yield ix


def make_venv(path: Path, wheels: list[Path], *, system_site: bool = False) -> Path:
    """A venv made from the test interpreter with `wheels` installed (offline); its python."""
    argv = [PY, "-m", "venv", "--without-pip", str(path)]
    if system_site:
        argv.append("--system-site-packages")
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    python = path / "bin" / "python"
    if wheels:
        p = subprocess.run([UV, "pip", "install", "--python", str(python), "--offline",
                            "--no-index", "--no-deps", *map(str, wheels)],
                           capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "UV_CACHE_DIR": str(path.parent / "uv-cache"),
                                "HOME": str(path.parent)})
        assert p.returncode == 0, p.stderr
    return python


def show(py, runtime_env, *modules) -> dict:
    p = py.run(runtime_env, "python", "-c", SHOW, *modules, timeout=120)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1])


def site_packages(venv: Path) -> Path:
    (found,) = sorted(venv.glob("lib/python3*/site-packages"))
    return found


def env_of(py, runtime_env) -> dict:
    p = py("env", "create", "--json", "-e", json.dumps(runtime_env), timeout=180)
    assert_ok(p)
    return json.loads(p.stdout)


def test_an_env_layers_on_the_venv_its_interpreter_runs_in(py, index, wheels, tmp_path):
    venv = tmp_path / "ray-venv"
    python = make_venv(venv, [wheels["venvmarker"], wheels["shadowed-1.0"]])
    py.env["RTENV_PYTHON"] = str(python)
    spec = {"pip": [f"--index-url {index.url}", "envpkg", "shadowed==2.0"]}
    out = show(py, spec, "venvmarker", "shadowed", "envpkg", "pytest")
    mods = out["modules"]
    env_dir = Path(out["prefix"])
    assert env_dir.parent == py.home / "pyenvs", out
    # The venv's own package, from the venv.
    assert mods["venvmarker"].get("file", "").startswith(str(site_packages(venv))), mods
    # The env's own packages, from the env, ahead of the venv's.
    assert mods["envpkg"]["file"].startswith(str(env_dir)), mods
    assert mods["shadowed"] == {"file": mods["shadowed"]["file"], "version": "2.0"}, mods
    assert mods["shadowed"]["file"].startswith(str(env_dir)), mods
    path = out["path"]
    assert path.index(str(site_packages(env_dir))) < path.index(str(site_packages(venv))), path
    # The venv does not see the test interpreter's site-packages (pytest is there), so neither
    # does the env.
    assert "error" in mods["pytest"], mods
    # The lock names the venv's python, so that every node layers on the same venv.
    created = env_of(py, spec)
    assert created["runtime_env"]["pip"]["python"] == str(python), created

    # Isolated from its base: none of the venv's packages.
    hidden = {"pip": {"packages": spec["pip"], "system_site_packages": False}}
    out = show(py, hidden, "venvmarker", "envpkg")
    assert "error" in out["modules"]["venvmarker"], out
    assert out["modules"]["envpkg"]["file"].startswith(out["prefix"]), out


def test_two_venvs_on_one_interpreter_get_envs_of_their_own(py, index, wheels, tmp_path):
    a = make_venv(tmp_path / "ray-a", [wheels["venvmarker"]])
    # This one sees the test interpreter's site-packages: so does an env layered on it.
    b = make_venv(tmp_path / "ray-b", [], system_site=True)
    spec = {"pip": [f"--index-url {index.url}", "envpkg"]}
    out_a = show(py, {**spec, "pip": {"packages": spec["pip"], "python": str(a)}},
                 "venvmarker", "pytest")
    out_b = show(py, {**spec, "pip": {"packages": spec["pip"], "python": str(b)}},
                 "venvmarker", "pytest")
    assert out_a["prefix"] != out_b["prefix"]
    assert sorted(p.name for p in (py.home / "pyenvs").iterdir() if p.is_dir()) == sorted(
        [Path(out_a["prefix"]).name, Path(out_b["prefix"]).name])
    assert "file" in out_a["modules"]["venvmarker"] and "error" in out_a["modules"]["pytest"]
    assert "error" in out_b["modules"]["venvmarker"] and "file" in out_b["modules"]["pytest"]


def test_an_env_on_a_conda_envs_interpreter_sees_that_env(py, index, python_channel):
    # A conda env with its own python and a package (greet) in its site-packages, as Ray's conda
    # env would have Ray: installed by rtenv's conda field, then named as the interpreter.
    conda_env = env_of(py, {"conda": {"channels": [channel_url(python_channel)],
                                      "dependencies": ["python", "greet"]}})
    conda_python = conda_env["plan"]["py_executable"]
    conda_prefix = str(Path(conda_python).parent.parent)
    spec = {"pip": {"packages": [f"--index-url {index.url}", "envpkg"], "python": conda_python}}
    out = show(py, spec, "greet", "envpkg")
    assert Path(out["prefix"]).parent == py.home / "pyenvs", out
    assert out["modules"]["greet"].get("file", "").startswith(conda_prefix + "/"), out
    assert out["modules"]["envpkg"]["file"].startswith(out["prefix"]), out
