"""The forms Ray users write, through the binary: pip_install_options reaching pip and uv, fields
only Ray acts on (one warning), nulls, config.log_files, container.worker_path,
${RAY_RUNTIME_ENV_CREATE_WORKING_DIR} in requirement lines, and what is refused at validation
(exit 2) rather than at setup. Packages come from a PEP 503 index on 127.0.0.1 (pyindex.py)."""

import json
import sys
from pathlib import Path

import pytest

from conftest import assert_ok, write_tree
from pyindex import build_wheel, find_uv, logging_uv

PY = sys.executable
UV = find_uv(PY)

# Prints the versions of the modules named, or the ImportError, as one JSON line.
VERSIONS = r"""
import importlib, json, sys
out = {}
for m in sys.argv[1:]:
    try:
        out[m] = importlib.import_module(m).__version__
    except ImportError:
        out[m] = None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("dists")
    return {
        "depbase": build_wheel(out, "depbase", "1.0"),
        "withdep": build_wheel(out, "withdep", "1.0", deps=["depbase>=1"]),
    }


def versions(rtenv, spec, *modules, cwd=None) -> tuple[dict, str]:
    p = rtenv.run(spec, "python", "-c", VERSIONS, *modules, cwd=cwd, timeout=120)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def warnings_of(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("rtenv: warning:")]


# ---- pip_install_options ------------------------------------------------------------------


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_pip_install_options_name_the_index_for_both_installers(py, index, tmp_path, installer):
    wrapper, log = logging_uv(tmp_path, UV)
    py.env.update(RTENV_INSTALLER=installer, RTENV_UV=str(wrapper))
    # The index is named only by the options, as Ray users give it; Ray's default options too.
    spec = {"pip": {"packages": ["withdep"],
                    "pip_install_options": ["--disable-pip-version-check", "--no-cache-dir",
                                            "--index-url", index.url]}}
    got, err = versions(py, spec, "withdep", "depbase")
    assert got == {"withdep": "1.0", "depbase": "1.0"}, err
    assert "withdep-1.0-py3-none-any.whl" in index.downloads()
    calls = log.read_text().splitlines() if log.exists() else []
    if installer == "uv":
        # Mapped: --no-cache-dir is uv's --no-cache; pip's version check means nothing to uv.
        uv_calls = [c for c in calls if c.startswith("pip ")]
        assert uv_calls, calls
        for call in uv_calls:
            assert f"--index-url {index.url}" in call and "--no-cache" in call, call
            assert "--disable-pip-version-check" not in call and "--no-cache-dir" not in call
    else:
        assert calls == [], f"uv was used with RTENV_INSTALLER=pip: {calls}"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_pip_install_options_no_deps_is_observable(py, index, installer):
    py.env.update(RTENV_INSTALLER=installer)
    spec = {"pip": {"packages": ["withdep"],
                    "pip_install_options": ["--no-deps", f"--index-url={index.url}"]}}
    got, _ = versions(py, spec, "withdep", "depbase")
    assert got == {"withdep": "1.0", "depbase": None}
    # Another option set is another env: without --no-deps the dependency is there.
    got, _ = versions(py, {"pip": {"packages": ["withdep"],
                                   "pip_install_options": ["-i", index.url]}},
                      "withdep", "depbase")
    assert got == {"withdep": "1.0", "depbase": "1.0"}


def test_pip_install_options_refused_at_validation(py):
    for options, needle in [
        (["--prefer-binary"], 'pip_install_options[0]: "--prefer-binary" is not a pip option '
                              "rtenv takes"),
        ("--no-deps", 'pip_install_options: expected a list, got "--no-deps" (string)'),
        (["--index-url"], "pip_install_options[0]: --index-url needs a value"),
    ]:
        p = py.run({"pip": {"packages": ["x"], "pip_install_options": options}}, "true")
        assert p.returncode == 2, (options, p.returncode, p.stderr)
        assert needle in p.stderr, p.stderr


# ---- fields only Ray acts on, nulls, config, container -----------------------------------------


def test_ray_only_fields_run_with_one_warning_and_no_part_in_the_id(rtenv):
    plain = {"env_vars": {"A": "1"}}
    ray = {**plain, "worker_process_setup_hook": "mymod.setup", "_ray_commit": "0123abc",
           "_inject_current_ray": True, "nsight": {"t": "cuda"}}
    p = rtenv.run(ray, "sh", "-c", "echo $A")
    assert_ok(p)
    assert p.stdout.strip() == "1"
    assert warnings_of(p.stderr) == [
        "rtenv: warning: runtime_env: _inject_current_ray, _ray_commit, nsight and "
        "worker_process_setup_hook act only under Ray (rtenv.ray.runtime_env passes them to Ray "
        "beside the rtenv env); they are no part of this env and are ignored here"], p.stderr
    ids = []
    for spec in (plain, ray):
        c = rtenv("env", "create", "--no-install", "--json", "-e", json.dumps(spec))
        assert_ok(c)
        assert "worker_process_setup_hook" not in json.loads(c.stdout)["runtime_env"]
        ids.append(json.loads(c.stdout)["env_id"])
    assert ids[0] == ids[1]
    # Their types are checked as Ray checks them.
    p = rtenv.run({**plain, "worker_process_setup_hook": 3}, "true")
    assert p.returncode == 2
    assert "runtime_env.worker_process_setup_hook: expected a string, got 3 (integer)" in p.stderr


def test_null_fields_are_absent_whatever_their_name(rtenv):
    p = rtenv.run({"working_dir": None, "no_such_field": None, "pip": None,
                   "env_vars": {"A": "1"}}, "sh", "-c", "echo $A")
    assert_ok(p)
    assert p.stdout.strip() == "1" and warnings_of(p.stderr) == []
    # Not null: still an unknown field.
    p = rtenv.run({"no_such_field": "", "env_vars": {"A": "1"}}, "true")
    assert p.returncode == 2 and "runtime_env.no_such_field: unknown field" in p.stderr


def test_rays_runtime_env_config_is_accepted(rtenv):
    # ray.runtime_env.RuntimeEnvConfig(log_files=[...]) as a dict.
    spec = {"env_vars": {"A": "1"},
            "config": {"setup_timeout_seconds": 600, "eager_install": True,
                       "log_files": ["/tmp/ray/session_latest/logs/worker.log"]}}
    p = rtenv.run(spec, "sh", "-c", "echo $A")
    assert_ok(p)
    assert p.stdout.strip() == "1"
    p = rtenv.run({**spec, "config": {"log_files": "worker.log"}}, "true")
    assert p.returncode == 2
    assert 'runtime_env.config.log_files: expected a list, got "worker.log" (string)' in p.stderr


def test_container_worker_path_is_ignored_with_a_warning(rtenv, tmp_path):
    from oci_images import busybox_base, make_image, write_layout

    img = make_image([busybox_base()])
    layout = write_layout(tmp_path / "layout", {"v1": img})
    spec = {"container": {"image": f"oci:{layout}:v1", "worker_path": "/opt/worker.py"}}
    p = rtenv("env", "create", "--no-install", "--json", "-e", json.dumps(spec))
    assert_ok(p)
    assert warnings_of(p.stderr) == [
        "rtenv: warning: runtime_env.container.worker_path: deprecated in Ray and ignored: the "
        "worker starts as the image has it"], p.stderr
    assert json.loads(p.stdout)["runtime_env"]["container"] == {
        "image": f"oci:{layout}@{img.manifest_digest}"}


# ---- ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR} ------------------------------------------------------


@pytest.mark.parametrize("variable", ["RAY_RUNTIME_ENV_CREATE_WORKING_DIR", "RTENV_WORKING_DIR"])
def test_requirements_file_in_the_working_dir(py, index, tmp_path, variable):
    project = write_tree(tmp_path / "project", {
        "requirements.txt": f"--index-url {index.url}\nwithdep==1.0\n",
        "main.py": "print('main')\n",
    })
    spec = {"working_dir": str(project),
            "pip": ["-r ${%s}/requirements.txt" % variable]}
    got, err = versions(py, spec, "withdep", "depbase", cwd=tmp_path)
    assert got == {"withdep": "1.0", "depbase": "1.0"}, err
    # The env says what it installs, not where the file was.
    c = py("env", "create", "--no-install", "--json", "-e", json.dumps(spec), cwd=tmp_path,
           timeout=120)
    assert_ok(c)
    assert str(project) not in json.dumps(json.loads(c.stdout)["runtime_env"]["pip"])


def test_requirements_file_in_a_working_dir_archive_served_over_http(py, index, tmp_path):
    # Ray reads the file from the working_dir's node copy; rtenv reads it from the archive's
    # package once it is packed, on the submitting side, and the env names what it installs.
    import tarfile

    from httpfiles import Server

    project = write_tree(tmp_path / "project", {
        "requirements.txt": f"--index-url {index.url}\n-r ${{RAY_RUNTIME_ENV_CREATE_WORKING_DIR}}/more.txt\n",
        "more.txt": "withdep==1.0\n",
        "main.py": "print('main')\n",
    })
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "project.tar.gz", "w:gz") as t:
        t.add(project, arcname="project")
    server = Server(served)
    try:
        spec = {"working_dir": f"{server.url}/project.tar.gz",
                "pip": ["-r ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/requirements.txt"]}
        got, err = versions(py, spec, "withdep", "depbase", cwd=tmp_path)
        assert got == {"withdep": "1.0", "depbase": "1.0"}, err
        # Another use of the variable cannot be read from a package: said, naming the line.
        bad = {"working_dir": spec["working_dir"], "pip": ["${RTENV_WORKING_DIR}/x.whl"]}
        p = py.run(bad, "true", cwd=tmp_path)
        assert p.returncode == 3, p.stderr
        assert "only `-r ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/<file>` is read" in p.stderr
        missing = {"working_dir": spec["working_dir"],
                   "pip": ["-r ${RTENV_WORKING_DIR}/nope.txt"]}
        p = py.run(missing, "true", cwd=tmp_path)
        assert p.returncode == 3, p.stderr
        assert "has no nope.txt" in p.stderr, p.stderr
    finally:
        server.close()


def test_working_dir_variable_without_working_dir_exits_2(py, tmp_path):
    line = "-r ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/requirements.txt"
    p = py.run({"pip": [line]}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert f'the line "{line}" names the working_dir, and the env has no working_dir' in p.stderr


# ---- refused at validation, as Ray refuses them --------------------------------------------------


def test_conda_refusals_come_at_validation(rtenv, tmp_path):
    p = rtenv.run({"conda": str(tmp_path / "envs" / "gone")}, "true")
    assert p.returncode == 2, p.stderr
    assert f"conda env directory {tmp_path / 'envs' / 'gone'} does not exist" in p.stderr
    broken = tmp_path / "environment.yml"
    broken.write_text("name: x\ndependencies: [python=3.11, numpy\n")
    p = rtenv.run({"conda": str(broken)}, "true")
    assert p.returncode == 2, p.stderr
    assert f"conda file {broken}: invalid YAML at line 3, column 1" in p.stderr
