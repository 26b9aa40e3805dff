"""conda: envs solved once into a lock on the submitting side, installed per node with py-rattler
from a conda channel the tests build on local disk (condachannel.py), and commands run with the
env activated. Existing envs by name or directory are used as they are.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PY, assert_ok, assert_setup_failed, wait_for
from condachannel import Pkg, bench_channel, build_channel, channel_url
from httpfiles import Server
from pyindex import PackageIndex, build_wheel, find_uv

try:
    import rattler
except ImportError as e:  # scripts/setup.sh installs it
    pytest.fail(f"py-rattler is not importable ({e}); scripts/setup.sh installs it", pytrace=False)

UV = find_uv(PY)
SHOW = ('libb; echo "CONDA_PREFIX=$CONDA_PREFIX"; echo "ACTPKG_HOME=$ACTPKG_HOME"; '
        'echo "CONDA_DEFAULT_ENV=$CONDA_DEFAULT_ENV"')


def conda(channel: Path, *deps: str) -> dict:
    return {"conda": {"channels": [channel_url(channel)], "dependencies": list(deps)}}


def values(stdout: str) -> dict:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def create(rtenv, spec: dict) -> dict:
    p = rtenv("env", "create", "--json", "-e", json.dumps(spec), timeout=120)
    assert_ok(p)
    return json.loads(p.stdout)


def test_a_dict_env_is_solved_installed_and_activated(rtenv, channel):
    p = rtenv.run(conda(channel, "libb", "actpkg"), "sh", "-c", SHOW, timeout=120)
    assert_ok(p)
    lines = p.stdout.splitlines()
    assert lines[0] == "libb uses liba 2.0", p.stdout  # the newest liba, pulled in by libb
    got = values(p.stdout)
    prefix = Path(got["CONDA_PREFIX"])
    assert prefix.parent == rtenv.home / "conda" / "envs", got
    assert (prefix / "conda-meta").is_dir()
    # actpkg's activation script ran: what it exported is set, from the env's prefix.
    assert got["ACTPKG_HOME"] == f"{prefix}/share/actpkg", got
    assert got["CONDA_DEFAULT_ENV"], got


def test_the_lock_is_the_env_identity_and_a_second_run_installs_nothing(rtenv, channel):
    spec = conda(channel, "libb")
    first = create(rtenv, spec)
    assert first["installed"] is True
    locked = first["runtime_env"]["conda"]
    assert set(locked) == {"rtenv_lock", "platform"}, locked
    assert locked["rtenv_lock"].startswith("sha256:")
    assert [u for u in first["resources"] if u.startswith("conda://")], first

    # The same dict is not solved again (the lock is kept), and nothing is installed.
    again = create(rtenv, spec)
    assert again["installed"] is False
    assert again["runtime_env"]["conda"] == locked
    p = rtenv.run(spec, "libb", flags=("-v",))
    assert_ok(p)
    assert "everything was on this machine already" in p.stderr, p.stderr

    # The locked form runs anywhere as it is: it names the lock in the store, not the dict.
    p = rtenv.run({"conda": locked}, "libb")
    assert_ok(p)
    assert p.stdout.strip() == "libb uses liba 2.0"


def test_conflicting_versions_run_side_by_side(rtenv, channel):
    old = rtenv.popen(conda(channel, "libb", "liba=1.0"), "libb")
    new = rtenv.popen(conda(channel, "libb", "liba=2.0"), "libb")
    out_old, err_old = old.communicate(timeout=120)
    out_new, err_new = new.communicate(timeout=120)
    assert old.returncode == 0, err_old
    assert new.returncode == 0, err_new
    assert out_old.strip() == "libb uses liba 1.0"
    assert out_new.strip() == "libb uses liba 2.0"
    envs = [d for d in (rtenv.home / "conda" / "envs").iterdir() if d.is_dir()]
    assert len(envs) == 2, envs


def test_an_environment_yml_file(rtenv, channel, tmp_path):
    yml = tmp_path / "environment.yml"
    yml.write_text(f"name: ignored\nchannels:\n  - {channel_url(channel)}\n"
                   "dependencies:\n  - libb\n  - liba=1.0\n")
    p = rtenv.run({"conda": str(yml)}, "libb", cwd=tmp_path, timeout=120)
    assert_ok(p)
    assert p.stdout.strip() == "libb uses liba 1.0"


def test_an_authenticated_channel_over_http_never_shows_its_password(rtenv, channel):
    secret = "s3cr3t-pw"
    srv = Server(channel, credentials=f"alice:{secret}")
    try:
        url = srv.url.replace("http://", f"http://alice:{secret}@")
        spec = {"conda": {"channels": [url], "dependencies": ["libb"]}}
        p = rtenv.run(spec, "libb", flags=("-v",), timeout=120)
        assert_ok(p)
        assert p.stdout.strip() == "libb uses liba 2.0"
        assert any(g.endswith(".tar.bz2") for g in srv.gets), srv.gets  # fetched over HTTP
        # The env's value names the lock, not the channel: no URL, no password.
        env = create(rtenv, spec)
        assert secret not in json.dumps(env)
        # Refused: the server's answer, without the password.
        bad = url.replace(secret, "wrong-pw")
        p = rtenv.run({"conda": {"channels": [bad], "dependencies": ["liba"]}}, "true",
                      timeout=120)
        assert_setup_failed(p, "401")
        assert secret not in p.stderr + p.stdout and "wrong-pw" not in p.stderr + p.stdout
    finally:
        srv.close()


def test_an_unsatisfiable_env_exits_3_naming_the_package(rtenv, channel):
    p = rtenv.run(conda(channel, "libb", "nosuchpkg"), "true", timeout=120)
    assert_setup_failed(p, "nosuchpkg")
    p = rtenv.run(conda(channel, "liba=9.9"), "true", timeout=120)
    assert_setup_failed(p, "liba")


def test_a_package_that_fails_to_install_exits_3_and_leaves_nothing(rtenv, channel):
    p = rtenv.run(conda(channel, "broken"), "true", timeout=120)
    assert_setup_failed(p, "conda install failed", "broken")
    envs = rtenv.home / "conda" / "envs"
    assert not [e for e in envs.iterdir() if e.is_dir()] if envs.exists() else True
    assert not list(envs.glob("*.ready")) if envs.exists() else True


def test_a_package_changed_in_the_channel_after_solving_is_refused(rtenv, tmp_path):
    root = build_channel(tmp_path / "ch", [
        Pkg("tool", "1.0", files={"bin/tool": "#!/bin/sh\necho genuine\n"})])
    locked = create(rtenv, {"conda": {"channels": [channel_url(root)], "dependencies": ["tool"]}})
    # Evict it, swap the package for another with the same name, and install from the lock.
    evict_all(rtenv)
    build_channel(tmp_path / "other", [
        Pkg("tool", "1.0", files={"bin/tool": "#!/bin/sh\necho swapped\n"})])
    shutil.copy(tmp_path / "other" / "noarch" / "tool-1.0-0.tar.bz2",
                root / "noarch" / "tool-1.0-0.tar.bz2")
    # rattler's own package cache would hand out what it unpacked before: start from none.
    shutil.rmtree(rtenv.home / "conda" / "pkgs", ignore_errors=True)
    p = rtenv.run({"conda": locked["runtime_env"]["conda"]}, "tool", timeout=120)
    assert_setup_failed(p, "sha256", "tool-1.0-0.tar.bz2")
    assert "swapped" not in p.stdout


def test_an_env_with_python_runs_its_own_interpreter(rtenv, python_channel):
    spec = conda(python_channel, "python", "greet")
    p = rtenv.run(spec, "python", "-c",
                  "import sys, greet; greet.hello(); print(sys.prefix); print(sys.executable)",
                  timeout=180)
    assert_ok(p)
    hello, prefix, exe = p.stdout.splitlines()
    assert hello == "hello from greet 1.0"
    assert Path(prefix).parent == rtenv.home / "conda" / "envs"
    assert exe.startswith(prefix), (exe, prefix)
    # Engines that start Python (Ray's workers) get the env's interpreter in the launch plan.
    plan = create(rtenv, spec)["plan"]
    assert plan["py_executable"] == f"{prefix}/bin/python", plan


def evict_all(rtenv) -> None:
    """`rtenv gc` with a cache limit nothing fits under, once the agent has dropped the
    references of the processes that have exited: every unused resource goes."""
    def unheld():
        listing = json.loads(rtenv("env", "list", "--json").stdout)
        return all(not e["holders"] for e in listing["envs"])
    wait_for(unheld, 10, "the agent to drop the references of exited processes")
    p = rtenv("gc", env={"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"})
    assert_ok(p)


def make_env(prefix: Path, channel: Path, specs: list[str], cache: Path) -> None:
    """An env made by conda itself (py-rattler), as a user's `conda create` would."""
    records = asyncio.run(rattler.solve(sources=[channel_url(channel)], specs=specs,
                                        gateway=rattler.Gateway(cache_dir=cache / "repodata"),
                                        platforms=["linux-64", "noarch"], virtual_packages=[]))
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache / "pkgs",
                                show_progress=False))


def test_an_existing_env_by_name_or_directory_is_used_as_it_is(rtenv, channel, tmp_path):
    envs = tmp_path / "envs"
    make_env(envs / "myenv", channel, ["libb", "liba=1.0", "actpkg"], tmp_path / "cache")
    before = sorted(str(p) for p in (envs / "myenv").rglob("*"))
    extra = {"CONDA_ENVS_PATH": str(envs)}
    p = rtenv(*["run", "-e", json.dumps({"conda": "myenv"}), "--", "sh", "-c", SHOW], env=extra)
    assert_ok(p)
    got = values(p.stdout)
    assert p.stdout.splitlines()[0] == "libb uses liba 1.0"
    assert got["CONDA_PREFIX"] == str(envs / "myenv")
    assert got["CONDA_DEFAULT_ENV"] == "myenv"
    assert got["ACTPKG_HOME"] == f"{envs / 'myenv'}/share/actpkg"

    p = rtenv.run({"conda": str(envs / "myenv")}, "libb")
    assert_ok(p)
    assert p.stdout.strip() == "libb uses liba 1.0"

    # rtenv never creates, changes or deletes such an env.
    evict_all(rtenv)
    assert sorted(str(p) for p in (envs / "myenv").rglob("*")) == before
    assert not (rtenv.home / "conda" / "envs").exists() or not any(
        d.is_dir() for d in (rtenv.home / "conda" / "envs").iterdir())


def test_a_named_env_that_does_not_exist_exits_3_saying_so(rtenv, tmp_path):
    p = rtenv(*["run", "-e", json.dumps({"conda": "nosuchenv"}), "--", "true"],
              env={"CONDA_ENVS_PATH": str(tmp_path)})
    assert_setup_failed(p, "nosuchenv", "does not exist on this node")
    p = rtenv.run({"conda": str(tmp_path)}, "true")
    assert_setup_failed(p, str(tmp_path), "not a conda env")


def test_a_pip_section_is_locked_with_the_env_and_installed_into_its_python(
        rtenv, python_channel, tmp_path):
    dists = tmp_path / "dists"
    with PackageIndex() as index:
        index.add(build_wheel(dists, "pipdep", "1.0"))
        index.add(build_wheel(dists, "pipdep", "2.0"))
        index.add(build_wheel(dists, "pipapp", "1.0", deps=["pipdep<2"]))
        spec = {"conda": {"channels": [channel_url(python_channel)],
                          "dependencies": ["python", "greet",
                                           {"pip": [f"--index-url {index.url}", "pipapp"]}]}}
        rtenv.env.update(RTENV_UV=UV, UV_HTTP_RETRIES="0")
        env = create(rtenv, spec)
    # Locked on the submitting side: exact pins with hashes, for the env's python.
    pip = env["runtime_env"]["conda"]["pip"]
    pins = [l for l in pip if not l.startswith("-")]
    assert any(l.startswith("pipapp==1.0") and "--hash=sha256:" in l for l in pins), pip
    assert any(l.startswith("pipdep==1.0") for l in pins), pip
    # Installed into the env's own interpreter, beside its conda packages (the index is gone:
    # what is installed came with the env).
    p = rtenv.run(spec, "python", "-c",
                  "import sys, greet, pipapp, pipdep; greet.hello(); "
                  "print(pipapp.__version__, pipdep.__version__); "
                  "print(pipdep.__file__.startswith(sys.prefix))", timeout=120)
    assert_ok(p)
    assert p.stdout.splitlines() == ["hello from greet 1.0", "1.0 1.0", "True"], p.stdout


def test_a_pip_section_without_python_gets_the_submitting_sides_python(rtenv, python_channel,
                                                                        channel, tmp_path):
    # As Ray does: a pip section needs a Python, and an env that names none gets python=X.Y of
    # the interpreter rtenv uses on the submitting side (python3 on PATH), said once.
    version = subprocess.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, env=rtenv.env).stdout.strip()
    if version != "3.11":
        pytest.skip(f"the test channel's python is 3.11; python3 on PATH is {version}")
    dists = tmp_path / "dists"
    with PackageIndex() as index:
        index.add(build_wheel(dists, "pipdep", "1.0"))
        rtenv.env.update(RTENV_UV=UV, UV_HTTP_RETRIES="0")
        spec = {"conda": {"channels": [channel_url(python_channel)],
                          "dependencies": ["greet", {"pip": [f"--index-url {index.url}", "pipdep"]}]}}
        p = rtenv("env", "create", "-v", "--json", "-e", json.dumps(spec), timeout=180)
        assert_ok(p)
        assert "names no python: adding python=3.11" in p.stderr, p.stderr
        p = rtenv.run(spec, "python", "-c", "import sys, pipdep; print(sys.version_info[:2])",
                      timeout=120)
        assert_ok(p)
        assert p.stdout.strip() == "(3, 11)", p.stdout
        # A channel without a python: the solve says so, naming it.
        spec["conda"] = {"channels": [channel_url(channel)],
                         "dependencies": ["libb", {"pip": ["pipdep"]}]}
        p = rtenv.run(spec, "true", timeout=120)
        assert_setup_failed(p, "python")


def test_an_evicted_env_is_installed_again(rtenv, tmp_path):
    root = bench_channel(tmp_path / "bench")
    spec = {"conda": {"channels": [channel_url(root)], "dependencies": ["bench1"]}}
    first = create(rtenv, spec)
    assert first["installed"] is True
    (uri,) = [u for u in first["resources"] if u.startswith("conda://")]
    listing = json.loads(rtenv("env", "list", "--json").stdout)
    kinds = {r["uri"]: r["kind"] for r in listing["resources"]}
    assert kinds.get(uri) == "conda", listing
    evict_all(rtenv)
    assert not any(d.is_dir() for d in (rtenv.home / "conda" / "envs").iterdir())
    again = create(rtenv, spec)
    assert again["installed"] is True
    assert again["resources"] == first["resources"]


def helpers_of(pid: int) -> list[int]:
    """The conda helper processes `pid` started (children running conda_helper.py)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmdline = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"rtenv's conda helper" in cmdline:
            out.append(int(d.name))
    return out


def test_the_agent_solves_and_installs_with_one_helper_it_keeps_warm(rtenv, channel):
    assert_ok(rtenv.run(conda(channel, "libb", "liba=1.0"), "libb", timeout=120))
    agent = int((rtenv.home / "agent.pid").read_text())
    first = helpers_of(agent)
    assert len(first) == 1, first
    # Another env: solved and installed by the same helper process (its start paid once).
    p = rtenv.run(conda(channel, "libb", "liba=2.0"), "libb", timeout=120)
    assert_ok(p)
    assert p.stdout.strip() == "libb uses liba 2.0"
    assert helpers_of(agent) == first


def test_without_the_agent_a_run_solves_and_installs_itself(rtenv, channel):
    p = rtenv.run(conda(channel, "libb"), "libb", env={"RTENV_NO_AGENT": "1"}, flags=("-v",),
                  timeout=120)
    assert_ok(p)
    assert p.stdout.strip() == "libb uses liba 2.0"
    assert "installed by this process" in p.stderr, p.stderr
    assert not (rtenv.home / "agent.pid").exists()
    # The helper it started for that is gone before the command starts.
    p = rtenv.popen(conda(channel, "actpkg"), "sh", "-c", "echo started; sleep 5",
                    env={"RTENV_NO_AGENT": "1"})
    try:
        assert p.stdout.readline().strip() == "started"
        assert helpers_of(p.pid) == []
    finally:
        p.kill()
        p.wait()
