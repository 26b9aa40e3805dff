"""rtenv.ray.runtime_env with the forms Ray users write: fields only Ray acts on go to Ray beside
the `rtenv` key, py_modules as imported modules, config.log_files. Needs the binary
($RTENV_BIN); no Ray (the helper does not import it)."""

import importlib
import json
import os
import subprocess
import sys

import pytest

import rtenv
import rtenv.ray
from rtenv.ray import helper

RTENV_BIN = os.environ.get("RTENV_BIN", "")
pytestmark = pytest.mark.skipif(not os.access(RTENV_BIN, os.X_OK),
                                reason="RTENV_BIN does not name the rtenv binary")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private rtenv home and store for the binary the helper runs."""
    home = tmp_path / "home"
    monkeypatch.setenv("RTENV_HOME", str(home))
    monkeypatch.setenv("RTENV_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("RTENV_NO_AGENT", "1")
    monkeypatch.delenv("RAY_RUNTIME_ENV_PLUGINS", raising=False)
    return home


def test_ray_only_fields_go_to_ray_beside_rtenv(home):
    def setup():  # a callable hook is Ray's to export
        pass

    env = rtenv.ray.runtime_env(env_vars={"A": "1"}, worker_process_setup_hook=setup,
                                _ray_commit="0123abc", nsight="default",
                                rocprof_sys={"env": {"X": "1"}}, _inject_current_ray=None)
    assert env["rtenv"] == {"env_vars": {"A": "1"}}
    assert env["worker_process_setup_hook"] is setup
    assert env["_ray_commit"] == "0123abc"
    assert env["nsight"] == "default"
    assert env["rocprof_sys"] == {"env": {"X": "1"}}
    assert "_inject_current_ray" not in env  # null: absent


def test_ray_only_fields_are_type_checked_as_ray_does(home):
    with pytest.raises(rtenv.InvalidRuntimeEnv) as e:
        rtenv.ray.runtime_env(env_vars={"A": "1"}, _inject_current_ray="yes")
    assert str(e.value).startswith(
        'runtime_env._inject_current_ray: expected a boolean, got "yes" (string)')
    with pytest.raises(rtenv.InvalidRuntimeEnv):
        rtenv.ray.runtime_env(worker_process_setup_hook=3)


def test_a_ray_plugins_field_goes_to_ray(home, tmp_path, monkeypatch):
    (tmp_path / "profplugin.py").write_text("class Profiler:\n    name = 'profiler'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("RAY_RUNTIME_ENV_PLUGINS", json.dumps(
        [{"class": "rtenv.ray.RtenvPlugin"}, {"class": "profplugin.Profiler", "priority": 20},
         {"class": "no_such_module.Plugin"}]))
    # rtenv's own plugin owns no field of Ray's; a class that does not import here owns none.
    assert helper.ray_plugin_fields() == {"profiler"}
    env = rtenv.ray.runtime_env(env_vars={"A": "1"}, profiler={"interval": 5})
    assert env["profiler"] == {"interval": 5}
    assert env["rtenv"] == {"env_vars": {"A": "1"}}
    # Without the plugin registered, the same field is rtenv's (an unknown field to it).
    monkeypatch.delenv("RAY_RUNTIME_ENV_PLUGINS")
    with pytest.raises(rtenv.InvalidRuntimeEnv) as e:
        rtenv.ray.runtime_env(env_vars={"A": "1"}, profiler={"interval": 5})
    assert "runtime_env.profiler: unknown field" in str(e.value)


def test_config_from_rays_runtime_env_config_reaches_ray(home):
    # What ray.runtime_env.RuntimeEnvConfig() is as a dict: it always carries log_files.
    config = {"setup_timeout_seconds": 300, "eager_install": True, "log_files": ["/tmp/w.log"]}
    env = rtenv.ray.runtime_env(env_vars={"A": "1"}, config=config)
    assert env["config"] == config
    assert env["rtenv"]["config"] == config
    empty = rtenv.ray.runtime_env(env_vars={"A": "1"},
                                  config={"setup_timeout_seconds": 600, "eager_install": True,
                                          "log_files": []})
    assert "log_files" not in empty["config"]


def test_py_modules_as_imported_modules(home, tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "shippedpkg").mkdir(parents=True)
    (src / "shippedpkg" / "__init__.py").write_text("WHERE = 'package'\n")
    (src / "shippedmod.py").write_text("WHERE = 'single file'\n")
    monkeypatch.syspath_prepend(str(src))
    pkg = importlib.import_module("shippedpkg")
    mod = importlib.import_module("shippedmod")
    try:
        env = rtenv.ray.runtime_env(py_modules=[pkg, mod])
    finally:
        sys.modules.pop("shippedpkg", None)
        sys.modules.pop("shippedmod", None)
    uris = env["rtenv"]["py_modules"]
    assert len(uris) == 2 and all(u.startswith("rtenv://sha256/") for u in uris)
    # What was shipped is importable where the env runs, from the store, not from src/.
    out = subprocess.run(
        [RTENV_BIN, "run", "-e", json.dumps(env["rtenv"]), "--", sys.executable, "-c",
         "import shippedpkg, shippedmod, os; print(shippedpkg.WHERE, '|', shippedmod.WHERE, '|', "
         "os.path.dirname(shippedpkg.__file__) != " + repr(str(src / "shippedpkg")) + ")"],
        capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "package | single file | True"


def test_a_module_that_is_no_file_is_refused(home):
    with pytest.raises(ValueError) as e:
        rtenv.ray.runtime_env(py_modules=[sys])
    assert str(e.value).startswith("runtime_env.py_modules[0]: the module sys is not a package "
                                   "or a .py file")
