"""`rtenv run`: cwd, env_vars, PYTHONPATH, py_modules, runtime_env sources, exit statuses."""

import json
import os
import socket
from pathlib import Path

import pytest

from conftest import PY, HEX64, assert_clean_error, assert_ok, assert_setup_failed, stop_agent, write_tree

PRINT_ENV = "import json, os; print(json.dumps({'cwd': os.getcwd(), 'env': dict(os.environ)}))"


def inside(rtenv, runtime_env, cwd, env=None):
    p = rtenv.run(runtime_env, PY, "-c", PRINT_ENV, cwd=cwd, env=env)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture
def project(tmp_path):
    """tmp_path/job with proj/ (working_dir), libs/mylib (package), single.py."""
    job = tmp_path / "job"
    write_tree(
        job,
        {
            "proj/main.py": "import mylib, single\nprint('main', mylib.NAME, single.NAME)\n",
            "proj/data/input.txt": "input data\n",
            "libs/mylib/__init__.py": "NAME = 'mylib'\n",
            "libs/mylib/util.py": "def f():\n    return 41 + 1\n",
            "single.py": "NAME = 'single'\n",
        },
    )
    return job


def test_no_runtime_env_runs_command(rtenv, tmp_path):
    p = rtenv.run(None, "sh", "-c", "echo hello; exit 0", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "hello\n"


def test_empty_runtime_env_runs_command(rtenv, tmp_path):
    assert_ok(rtenv.run({}, "true", cwd=tmp_path))


def test_working_dir_is_node_local_copy(rtenv, project):
    got = inside(rtenv, {"working_dir": "proj"}, cwd=project)
    cwd = Path(got["cwd"])
    assert cwd.parent == (rtenv.pkgs).resolve() or cwd.parent == rtenv.pkgs, cwd
    assert HEX64.match(cwd.name), f"working_dir copy {cwd} is not $RTENV_HOME/pkgs/<sha256>"
    assert (cwd / "main.py").read_text() == (project / "proj/main.py").read_text()
    assert (cwd / "data/input.txt").read_text() == "input data\n"
    assert cwd != project / "proj"


def test_working_dir_files_visible_to_command(rtenv, project):
    p = rtenv.run({"working_dir": "proj"}, "cat", "data/input.txt", cwd=project)
    assert_ok(p)
    assert p.stdout == "input data\n"


def test_absolute_working_dir(rtenv, project, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    p = rtenv.run({"working_dir": str(project / "proj")}, "cat", "data/input.txt", cwd=other)
    assert_ok(p)
    assert p.stdout == "input data\n"


def test_same_content_same_package(rtenv, tmp_path):
    for d in ("a", "b"):
        write_tree(tmp_path / d / "w", {"f.txt": "same\n", "sub/g.txt": "same too\n"})
    one = inside(rtenv, {"working_dir": "w"}, cwd=tmp_path / "a")["cwd"]
    two = inside(rtenv, {"working_dir": "w"}, cwd=tmp_path / "b")["cwd"]
    assert one == two, "identical trees must share one content-addressed copy"
    (tmp_path / "b/w/f.txt").write_text("different\n")
    three = inside(rtenv, {"working_dir": "w"}, cwd=tmp_path / "b")["cwd"]
    assert three != one


def test_env_vars_set_and_expanded(rtenv, tmp_path):
    env = {
        "env_vars": {
            "PLAIN": "value with spaces",
            "EXPANDED": "x-${E2E_CALLER_VAR}-y",
            "UNSET": "a${E2E_SURELY_UNSET_VAR}b",
            "TWO": "${E2E_CALLER_VAR}${E2E_CALLER_VAR}",
            "E2E_OVERRIDDEN": "from-env",
        }
    }
    caller = {"E2E_CALLER_VAR": "caller", "E2E_OVERRIDDEN": "from-caller"}
    got = inside(rtenv, env, cwd=tmp_path, env=caller)["env"]
    assert got["PLAIN"] == "value with spaces"
    assert got["EXPANDED"] == "x-caller-y"
    assert got["UNSET"] == "ab"
    assert got["TWO"] == "callercaller"
    assert got["E2E_OVERRIDDEN"] == "from-env"
    # The caller's environment is inherited otherwise.
    assert got["E2E_CALLER_VAR"] == "caller"
    assert "E2E_SURELY_UNSET_VAR" not in got


def test_pythonpath_order(rtenv, project):
    env = {"working_dir": "proj", "py_modules": ["libs/mylib", "single.py"]}
    p = rtenv.run(
        env,
        PY,
        "-c",
        "import json, os, mylib, mylib.util, single\n"
        "print(json.dumps({'cwd': os.getcwd(), 'pp': os.environ['PYTHONPATH'],"
        " 'mylib': mylib.__file__, 'single': single.__file__, 'f': mylib.util.f()}))",
        cwd=project,
        env={"PYTHONPATH": "/existing/one:/existing/two"},
    )
    assert_ok(p)
    got = json.loads(p.stdout)
    pp = got["pp"].split(":")
    assert len(pp) == 5, got["pp"]
    assert pp[0] == got["cwd"], "PYTHONPATH must start with the working_dir copy"
    assert got["mylib"] == os.path.join(pp[1], "mylib", "__init__.py"), (got, pp)
    assert got["single"] == os.path.join(pp[2], "single.py"), (got, pp)
    assert pp[3:] == ["/existing/one", "/existing/two"]
    for entry in pp[:3]:
        assert Path(entry).parent == rtenv.pkgs and HEX64.match(Path(entry).name), entry
    assert got["f"] == 42


def test_pythonpath_without_existing_has_no_empty_entry(rtenv, project):
    got = inside(rtenv, {"working_dir": "proj", "py_modules": ["single.py"]}, cwd=project)
    pp = got["env"]["PYTHONPATH"].split(":")
    assert len(pp) == 2 and all(pp), got["env"]["PYTHONPATH"]
    assert pp[0] == got["cwd"]


def test_py_modules_without_working_dir(rtenv, project):
    p = rtenv.run(
        {"py_modules": ["libs/mylib", "single.py"]},
        PY, "-c", "import mylib, single; print(mylib.NAME, single.NAME)",
        cwd=project,
    )
    assert_ok(p)
    assert p.stdout == "mylib single\n"


def test_py_modules_relative_parent_dir(rtenv, project):
    """A py_modules directory `../libs/mylib` is importable as `mylib`."""
    p = rtenv.run(
        {"working_dir": ".", "py_modules": ["../libs/mylib", "../single.py"]},
        PY, "main.py",
        cwd=project / "proj",
    )
    assert_ok(p)
    assert p.stdout == "main mylib single\n"


def test_py_modules_honour_excludes(rtenv, project):
    write_tree(project, {"libs/mylib/big.log": "log\n"})
    p = rtenv.run(
        {"py_modules": ["libs/mylib"], "excludes": ["*.log"]},
        PY, "-c", "import mylib, os; print(sorted(os.listdir(os.path.dirname(mylib.__file__))))",
        cwd=project,
    )
    assert_ok(p)
    assert "big.log" not in p.stdout and "util.py" in p.stdout, p.stdout


# ---- runtime_env from files ---------------------------------------------------------------


YAML = 'working_dir: proj\npy_modules:\n  - libs/mylib\nenv_vars:\n  GREETING: "hello ${E2E_WHO}"\n'


@pytest.mark.parametrize("name", ["env.yaml", "env.yml", "env.json"])
def test_runtime_env_file(rtenv, project, name):
    conf = project / "conf"
    conf.mkdir()
    if name.endswith(".json"):
        text = json.dumps(
            {"working_dir": "proj", "py_modules": ["libs/mylib"], "env_vars": {"GREETING": "hello ${E2E_WHO}"}}
        )
    else:
        text = YAML
    (conf / name).write_text(text)
    # The file path and the local paths inside it resolve against the caller's cwd.
    p = rtenv.run(
        f"conf/{name}",
        PY, "-c", "import os, mylib; print(os.environ['GREETING'], mylib.NAME, os.listdir('data'))",
        cwd=project,
        env={"E2E_WHO": "world"},
    )
    assert_ok(p)
    assert p.stdout == "hello world mylib ['input.txt']\n"


def test_runtime_env_file_absolute_path(rtenv, project, tmp_path):
    f = tmp_path / "abs.yaml"
    f.write_text(f"working_dir: {project / 'proj'}\n")
    p = rtenv.run(str(f), "cat", "data/input.txt", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "input data\n"


def test_verbose_reports_setup(rtenv, project):
    p = rtenv.run({"working_dir": "proj"}, "true", cwd=project, flags=["-v"])
    assert_ok(p)
    assert p.stderr.startswith("rtenv:"), p.stderr
    assert "working_dir" in p.stderr
    quiet = rtenv.run({"working_dir": "proj"}, "true", cwd=project)
    assert_ok(quiet)
    assert quiet.stderr == ""


# ---- exit statuses ------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 7, 42, 125, 255])
def test_exit_status_passthrough(rtenv, tmp_path, code):
    p = rtenv.run({"env_vars": {"A": "1"}}, "sh", "-c", f"exit {code}", cwd=tmp_path)
    assert p.returncode == code, p.stderr


@pytest.mark.parametrize("sig", [9, 15, 6])
def test_killed_by_signal_gives_128_plus_n(rtenv, tmp_path, sig):
    p = rtenv.run(None, "sh", "-c", f"kill -{sig} $$", cwd=tmp_path)
    assert p.returncode == 128 + sig, p.stderr


def test_command_not_found_127(rtenv, project):
    p = rtenv.run({"working_dir": "proj"}, "e2e-no-such-command-xyz", cwd=project)
    assert p.returncode == 127, p.stderr
    assert_clean_error(p.stderr)
    assert "e2e-no-such-command-xyz" in p.stderr


def test_relative_command_missing_127(rtenv, project):
    p = rtenv.run({"working_dir": "proj"}, "./nope.sh", cwd=project)
    assert p.returncode == 127, p.stderr
    assert "./nope.sh" in p.stderr


def test_command_not_executable_126(rtenv, project):
    p = rtenv.run({"working_dir": "proj"}, "./data/input.txt", cwd=project)
    assert p.returncode == 126, p.stderr
    assert_clean_error(p.stderr)
    assert "./data/input.txt" in p.stderr


def test_command_is_directory_126(rtenv, project):
    p = rtenv.run({"working_dir": "proj"}, "./data", cwd=project)
    assert p.returncode == 126, p.stderr
    assert_clean_error(p.stderr)


def test_stdin_stdout_passthrough(rtenv, tmp_path):
    p = rtenv("run", "--", "cat", cwd=tmp_path, input="through stdin\n")
    assert_ok(p)
    assert p.stdout == "through stdin\n"


# ---- errors -------------------------------------------------------------------------------


def test_invalid_env_var_type_exits_2(rtenv, tmp_path):
    p = rtenv.run({"env_vars": {"FOO": 3}}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "runtime_env.env_vars.FOO: expected a string, got 3 (integer)" in p.stderr
    assert_clean_error(p.stderr)


def test_missing_local_working_dir_names_path(rtenv, tmp_path):
    p = rtenv.run({"working_dir": "missing-dir"}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "runtime_env.working_dir" in p.stderr and str(tmp_path / "missing-dir") in p.stderr


@pytest.mark.parametrize("field", ["image_uri", "container"])
def test_an_image_that_cannot_be_pulled_fails_at_setup_naming_it(rtenv, tmp_path, field):
    # Nothing listens on the port: the registry does not answer (test_image.py runs images).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = f"127.0.0.1:{port}/app:v1"
    value = image if field == "image_uri" else {"image": image}
    p = rtenv.run({field: value}, "true", cwd=tmp_path, env={"RTENV_INSECURE_REGISTRIES": f"127.0.0.1:{port}"})
    assert_setup_failed(p, image)


def test_rtenv_home_holds_all_state(rtenv, project):
    assert not rtenv.home.exists()
    assert_ok(rtenv.run({"working_dir": "proj", "py_modules": ["single.py"]}, "true", cwd=project))
    assert rtenv.pkgs.is_dir()
    assert any(rtenv.pkgs.iterdir())
    # The `rtenv` fixture also checks that $HOME/.cache was not touched.


def test_invalid_yaml_file_exits_2(rtenv, tmp_path):
    (tmp_path / "bad.yaml").write_text("env_vars:\n  FOO: 3\n")
    p = rtenv.run("bad.yaml", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "bad.yaml: runtime_env.env_vars.FOO: expected a string, got 3 (integer)" in p.stderr
    (tmp_path / "broken.yml").write_text("env_vars:\n  FOO: [1\n")
    p = rtenv.run("broken.yml", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert_clean_error(p.stderr)
    assert "YAML" in p.stderr and "line" in p.stderr, p.stderr


def test_invalid_json_file_exits_2(rtenv, tmp_path):
    (tmp_path / "bad.json").write_text('{"env_vars": 3}')
    p = rtenv.run("bad.json", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "runtime_env.env_vars: expected a dict, got 3 (integer)" in p.stderr
    (tmp_path / "broken.json").write_text('{"env_vars": ')
    p = rtenv.run("broken.json", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "invalid JSON at line 1" in p.stderr, p.stderr


def test_odd_file_names_and_empty_dirs(rtenv, tmp_path):
    w = write_tree(tmp_path / "w", {"sp ace ü.txt": "unicode\n", "-dash.txt": "dash\n"})
    (w / "empty").mkdir()
    p = rtenv.run(
        {"working_dir": "w"}, PY, "-c",
        "import os; print(sorted(os.listdir('.'))); print(open('sp ace ü.txt').read(), end='')",
        cwd=tmp_path,
    )
    assert_ok(p)
    assert p.stdout == "['-dash.txt', 'empty', 'sp ace ü.txt']\nunicode\n"


def test_rtenv_home_inside_working_dir_is_not_packed(rtenv, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "main.txt").write_text("x")
    env = {"RTENV_HOME": str(proj / ".rt")}
    listing = "import os; print(sorted(os.listdir('.')))"
    first = rtenv.run({"working_dir": "."}, PY, "-c", listing, cwd=proj, env=env)
    assert_ok(first)
    assert first.stdout.strip() == "['main.txt']", first.stdout
    second = rtenv.run({"working_dir": "."}, PY, "-c", "import os; print(os.getcwd())", cwd=proj, env=env)
    third = rtenv.run({"working_dir": "."}, PY, "-c", "import os; print(os.getcwd())", cwd=proj, env=env)
    stop_agent(proj / ".rt")
    assert_ok(second)
    assert second.stdout == third.stdout, "the package must not change with rtenv's own state"


def test_no_pycache_prefix_when_bytecode_writing_is_off(rtenv, project):
    show = "import os; print(os.environ.get('PYTHONPYCACHEPREFIX'))"
    p = rtenv.run({"working_dir": "proj"}, PY, "-c", show, cwd=project)
    assert_ok(p)
    assert p.stdout.strip() == str(rtenv.home / "pycache")
    p = rtenv.run({"working_dir": "proj"}, PY, "-c", show, cwd=project,
                  env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert_ok(p)
    assert p.stdout.strip() == "None"
