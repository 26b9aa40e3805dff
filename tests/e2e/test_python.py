"""Python envs end to end: `pip` / `uv` fields resolved to a lock and installed into a virtualenv
per locked set, through the real binary and its agent, against a package index on 127.0.0.1
(pyindex.py). Nothing here reaches PyPI except the one test marked `pypi`, which runs only with
RTENV_TEST_PYPI=1.

Every test has its own $RTENV_HOME (and so its own uv cache, locks and pyenvs) and its own index
(filled with wheels built once per module), so request logs and index changes stay per test.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import PY, assert_ok, assert_setup_failed, proc_state, wait_for
from pyindex import (PackageIndex, build_failing_sdist, build_wheel, find_uv, logging_uv,
                     sha256_file)

BROKEN_MESSAGE = "rtenv-test: brokenbuild refuses to build on purpose"
SECRET = "s3cret"


UV = find_uv(PY)


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dists")
    return {
        "conflict-1.0": build_wheel(out, "conflict", "1.0"),
        "conflict-2.0": build_wheel(out, "conflict", "2.0"),
        "depbase-1.0": build_wheel(out, "depbase", "1.0"),
        "withdep-1.0": build_wheel(out, "withdep", "1.0", deps=["depbase>=1"]),
        "extra-1.0": build_wheel(out, "extra", "1.0"),
        "other-1.0": build_wheel(out, "other", "1.0", payload_bytes=4096),
        "brokenbuild-0.1": build_failing_sdist(out, "brokenbuild", "0.1", message=BROKEN_MESSAGE),
        "clitool-1.0": build_wheel(
            out, "clitool", "1.0", console_scripts={"clitool": "clitool.cli:main"},
            extra_files={"clitool/cli.py": "import sys\ndef main():\n    print(sys.prefix)\n"}),
    }


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def pip(url: str, *reqs: str, field: str = "pip", **options) -> dict:
    """{"pip": ["--index-url URL", *reqs]}, or the dict form when options are given."""
    packages = [f"--index-url {url}", *reqs]
    return {field: {"packages": packages, **options} if options else packages}


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://user:{SECRET}@", 1)


# Prints, as one JSON line, what the env looks like from inside.
INSPECT = r"""
import importlib, json, os, shutil, sys
out = {"prefix": sys.prefix, "executable": sys.executable,
       "virtual_env": os.environ.get("VIRTUAL_ENV"), "which_python": shutil.which("python"),
       "versions": {}}
for m in sys.argv[1:]:
    try:
        out["versions"][m] = importlib.import_module(m).__version__
    except ImportError as e:
        out["versions"][m] = "ImportError: " + str(e)
print(json.dumps(out))
"""


def inspect(rtenv, runtime_env, *modules, flags=(), timeout=60) -> tuple[dict, str]:
    p = rtenv.run(runtime_env, "python", "-c", INSPECT, *modules, flags=flags, timeout=timeout)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def lock(rtenv, runtime_env, *flags) -> list[str]:
    p = rtenv("lock", "-e", json.dumps(runtime_env), *flags, timeout=60)
    assert_ok(p)
    return p.stdout.splitlines()


PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) --hash=sha256:([0-9a-f]{64})$")


def pins(lines: list[str]) -> dict[str, tuple[str, str]]:
    """{name: (version, sha256)} of the pin lines; fails on a line that is neither a pin nor an
    option."""
    out = {}
    for line in lines:
        if line.startswith("-"):
            continue
        m = PIN.match(line)
        assert m, f"not a hashed pin: {line!r} in {lines}"
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


def pyenvs(rtenv) -> Path:
    return rtenv.home / "pyenvs"


def venv_dirs(rtenv) -> list[str]:
    d = pyenvs(rtenv)
    return sorted(e.name for e in d.iterdir() if e.is_dir()) if d.is_dir() else []


def assert_nothing_half_built(rtenv):
    """Every venv directory under pyenvs/ is marked ready; nothing else is there but the lock
    files and ready marks of those keys (or lock files of failed ones)."""
    d = pyenvs(rtenv)
    if not d.is_dir():
        return
    names = {e.name for e in d.iterdir()}
    for name in sorted(names):
        path = d / name
        if path.is_dir():
            assert f"{name}.ready" in names, (
                f"{path} has no .ready mark: half-built ({sorted(names)})")
        elif name.endswith(".ready"):
            assert name[: -len(".ready")] in names, f"{name} marks a venv that is not there"
        else:
            assert name.endswith(".lock"), f"unexpected entry in pyenvs/: {name} ({sorted(names)})"


def processes_mentioning(text: str, exclude=()) -> list[tuple[int, str]]:
    """Live processes whose command line contains `text`."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ")
            argv = argv.decode(errors="replace")
        except OSError:
            continue
        if text in argv and proc_state(int(d)) not in (None, "Z", "X"):
            out.append((int(d), argv))
    return out


# ---- a package index that holds wheel downloads back ------------------------------------------


class SlowIndex:
    """A proxy in front of a PackageIndex: pages and METADATA pass at once; while `hold` is set,
    requests for a wheel file wait (until `stop`) without an answer."""

    def __init__(self, upstream: PackageIndex):
        self.upstream = upstream
        self.hold = threading.Event()
        self.released = threading.Event()
        self.held = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.endswith(".whl") and owner.hold.is_set():
                    owner.held += 1
                    owner.released.wait(60)
                    return
                try:
                    url = owner.upstream.base_url + self.path
                    with urllib.request.urlopen(url, timeout=10) as r:
                        status, ctype, body = r.status, r.headers.get("Content-Type"), r.read()
                except urllib.error.HTTPError as e:
                    status, ctype, body = e.code, "text/plain", e.read()
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers; yields its URL."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.1)
    conns, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/simple/"
    stop.set()
    t.join(5)
    for c in conns:
        c.close()
    srv.close()


# ---- 1. conflicting versions at the same time ----------------------------------------------


WAIT_FOR_OTHER = r"""
import json, os, sys, time
import conflict
sync, me, other = sys.argv[1:4]
tmp = os.path.join(sync, me + ".tmp")
with open(tmp, "w") as f:
    json.dump({"version": conflict.__version__, "prefix": sys.prefix, "file": conflict.__file__}, f)
os.rename(tmp, os.path.join(sync, me))
deadline = time.monotonic() + 60
while not os.path.exists(os.path.join(sync, other)):
    if time.monotonic() > deadline:
        sys.exit(me + ": the other run never started")
    time.sleep(0.01)
"""


def test_conflicting_versions_run_at_the_same_time(py, index, tmp_path):
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = {
        v: py.popen(pip(index.url, f"conflict=={v}"), "python", "-c", WAIT_FOR_OTHER, str(sync),
                    f"run-{v}", f"run-{'2.0' if v == '1.0' else '1.0'}", cwd=tmp_path)
        for v in ("1.0", "2.0")
    }
    try:
        outs = {v: p.communicate(timeout=90) for v, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)
    for v, p in procs.items():
        assert p.returncode == 0, f"conflict=={v}: exit {p.returncode}\n{outs[v][1]}"
    # Each run wrote its file and then waited for the other's: both were running at once.
    seen = {v: json.loads((sync / f"run-{v}").read_text()) for v in ("1.0", "2.0")}
    assert seen["1.0"]["version"] == "1.0", seen
    assert seen["2.0"]["version"] == "2.0", seen
    assert seen["1.0"]["prefix"] != seen["2.0"]["prefix"], seen
    for s in seen.values():
        assert Path(s["prefix"]).parent == pyenvs(py), s
        assert s["file"].startswith(s["prefix"] + "/"), s
    assert len(venv_dirs(py)) == 2
    assert_nothing_half_built(py)


# ---- 2. a second run installs nothing ------------------------------------------------------


def test_second_run_installs_nothing(py, index, tmp_path):
    wrapper, log = logging_uv(tmp_path, UV)
    py.env["RTENV_UV"] = str(wrapper)
    spec = pip(index.url, "withdep")

    got, err = inspect(py, spec, "withdep", "depbase", flags=["-v"])
    assert got["versions"] == {"withdep": "1.0", "depbase": "1.0"}
    first = calls(log)
    assert any("pip compile" in c for c in first), first
    assert any("pip install" in c for c in first), first
    assert "rtenv: install pip pyenv://" in err, err

    index.clear_requests()
    got2, err2 = inspect(py, spec, "withdep", "depbase", flags=["-v"])
    assert got2 == got
    assert calls(log) == first, f"the second run called uv: {calls(log)[len(first):]}"
    assert index.requests == [], f"the second run asked the index: {index.requests}"
    assert "everything was on this machine already" in err2, err2
    assert "rtenv: install" not in err2, err2


# ---- 3. one package more downloads only that package --------------------------------------------


def test_one_more_package_downloads_only_that_package(py, index):
    got, _ = inspect(py, pip(index.url, "withdep"), "withdep", "depbase")
    assert got["versions"] == {"withdep": "1.0", "depbase": "1.0"}
    assert sorted(index.downloads()) == ["depbase-1.0-py3-none-any.whl",
                                         "withdep-1.0-py3-none-any.whl"]
    index.clear_requests()

    got_b, _ = inspect(py, pip(index.url, "withdep", "extra"), "withdep", "depbase", "extra")
    assert got_b["versions"] == {"withdep": "1.0", "depbase": "1.0", "extra": "1.0"}
    assert got_b["prefix"] != got["prefix"], "a different locked set is a different venv"
    assert index.downloads() == ["extra-1.0-py3-none-any.whl"], index.request_log


# ---- 4. rtenv lock ------------------------------------------------------------------------------


def test_lock_pins_with_hashes_and_keeps_them_until_refresh(py, index, dists, tmp_path):
    spec = pip(index.url, "withdep")
    lines = lock(py, spec)
    assert lines[0] == f"--index-url {index.url}", lines
    want = {
        "depbase": ("1.0", sha256_file(dists["depbase-1.0"])),
        "withdep": ("1.0", sha256_file(dists["withdep-1.0"])),
    }
    assert pins(lines) == want, lines
    # Options first, then the pins.
    first_pin = next(i for i, l in enumerate(lines) if not l.startswith("-"))
    assert all(not l.startswith("-") for l in lines[first_pin:]), lines

    p = py("lock", "-e", json.dumps(spec), "--json")
    assert_ok(p)
    locked = json.loads(p.stdout)["pip"]
    assert locked["locked"] is True
    assert locked["packages"] == lines
    assert Path(locked["python"]).is_file() and os.access(locked["python"], os.X_OK), locked

    got, _ = inspect(py, spec, "withdep")
    assert got["versions"] == {"withdep": "1.0"}

    newer = build_wheel(tmp_path / "new", "withdep", "1.1", deps=["depbase>=1"])
    index.add(newer)
    assert lock(py, spec) == lines, "the kept resolution changed without --refresh"
    got, _ = inspect(py, spec, "withdep")
    assert got["versions"] == {"withdep": "1.0"}, "run re-resolved instead of using the lock"

    refreshed = lock(py, spec, "--refresh")
    assert pins(refreshed) == {"depbase": want["depbase"], "withdep": ("1.1", sha256_file(newer))}
    got, _ = inspect(py, spec, "withdep")
    assert got["versions"] == {"withdep": "1.1"}, "run did not use the refreshed lock"


# ---- 5. failures -----------------------------------------------------------------------------


def _index_down_at_resolve(py, index):
    index.set_down(True)
    return pip(index.url, "depbase"), ("503",)


def _index_down_at_install(py, index):
    spec = pip(index.url, "withdep")
    lock(py, spec)  # resolved while the index was up: the install itself meets the failure
    index.set_down(True)
    return spec, ("503",)


FAILURES = {
    "unknown package": lambda py, ix: (pip(ix.url, "nosuchpackage"),
                                       ("nosuchpackage", "not found in the package registry")),
    "unsatisfiable version": lambda py, ix: (pip(ix.url, "conflict==9"),
                                             ("No solution found", "conflict==9")),
    "failing build": lambda py, ix: (pip(ix.url, "brokenbuild"), ("brokenbuild", BROKEN_MESSAGE)),
    "index down at resolve": _index_down_at_resolve,
    "index down at install": _index_down_at_install,
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failure_exits_3_with_the_installers_reason(py, index, case):
    # The agent serves a failed env's error again for RTENV_FAILURE_TTL seconds (10 by default)
    # before it tries again; the retry below must reach the installer.
    py.env["RTENV_FAILURE_TTL"] = "0"
    spec, needles = FAILURES[case](py, index)
    t0 = time.monotonic()
    p = py.run(spec, "python", "-c", "print('must not run')", timeout=60)
    took = time.monotonic() - t0
    if case == "failing build":
        # The build's own output (its backend's traceback included) is the relevant part here.
        assert p.returncode == 3, p.stderr
        assert p.stderr.startswith("rtenv: setup failed:"), p.stderr
        for bad in ("terminate called", "what():", "internal error", "Segmentation"):
            assert bad not in p.stderr, p.stderr
        for n in needles:
            assert n in p.stderr, f"{n!r} not in stderr: {p.stderr!r}"
    else:
        assert_setup_failed(p, *needles)
    assert "must not run" not in p.stdout
    assert took < 20, f"failing took {took:.1f} s"
    assert_nothing_half_built(py)

    if case.startswith("index down"):
        # Once the index is back, the same spec installs: the failure left nothing in the way.
        index.set_down(False)
        got, _ = inspect(py, spec, "depbase")
        assert got["versions"] == {"depbase": "1.0"}
        assert_nothing_half_built(py)


# ---- 6. setup_timeout_seconds bounds the installer ---------------------------------------------


def test_timeout_while_resolving(py, silent_server):
    spec = {**pip(silent_server, "withdep"), "config": {"setup_timeout_seconds": 1}}
    t0 = time.monotonic()
    p = py.run(spec, "true", timeout=60)
    took = time.monotonic() - t0
    assert_setup_failed(p, "timed out")
    assert took < 15, f"took {took:.1f} s with a 1 s setup timeout"


def test_timeout_while_installing_kills_the_installer(py, index):
    slow = SlowIndex(index)
    try:
        spec = {**pip(slow.url, "withdep"), "config": {"setup_timeout_seconds": 1}}
        lock(py, spec)  # pages and METADATA pass: resolving needs no wheel
        slow.hold.set()
        t0 = time.monotonic()
        p = py.run(spec, "true", timeout=60)
        took = time.monotonic() - t0
        assert slow.held >= 1, "the install never asked for a wheel"
        assert_setup_failed(p, "timed out")
        assert took < 15, f"took {took:.1f} s with a 1 s setup timeout"
        # The installer (its process group) is gone, not left hanging on the index.
        wait_for(lambda: not processes_mentioning(str(pyenvs(py)), exclude=(os.getpid(),)), 5,
                 "the installer processes to go")
        assert_nothing_half_built(py)
    finally:
        slow.stop()


# ---- 7. pip_check / uv_check, system_site_packages -------------------------------------------


@pytest.mark.parametrize("field,check", [("pip", "pip_check"), ("uv", "uv_check")])
def test_check_passes_on_a_consistent_set(py, index, field, check):
    spec = pip(index.url, "withdep", "other", field=field, **{check: True})
    got, _ = inspect(py, spec, "withdep", "depbase", "other")
    assert got["versions"] == {"withdep": "1.0", "depbase": "1.0", "other": "1.0"}
    assert Path(got["prefix"]).parent == pyenvs(py)


@pytest.mark.parametrize("field,check", [("pip", "pip_check"), ("uv", "uv_check")])
def test_check_fails_on_a_missing_dependency(py, index, field, check):
    # `locked`: the list is taken as the complete set of pins, so withdep comes without depbase.
    pinned = pip(index.url, "withdep==1.0", field=field, locked=True)
    got, _ = inspect(py, pinned, "withdep", "depbase")
    assert got["versions"]["withdep"] == "1.0"
    assert got["versions"]["depbase"].startswith("ImportError"), got

    p = py.run(pip(index.url, "withdep==1.0", field=field, locked=True, **{check: True}),
               "python", "-c", "print('must not run')", timeout=60)
    assert_setup_failed(p, check, "depbase")
    assert "must not run" not in p.stdout
    assert_nothing_half_built(py)
    assert len(venv_dirs(py)) == 1, "the env that failed its check was left in pyenvs/"


def test_system_site_packages(py, index):
    import pytest as base_only  # in the base interpreter, not in the index

    assert base_only.__version__
    shared, _ = inspect(py, pip(index.url, "depbase"), "depbase", "pytest")
    assert shared["versions"] == {"depbase": "1.0", "pytest": base_only.__version__}

    isolated, _ = inspect(py, pip(index.url, "depbase", system_site_packages=False),
                          "depbase", "pytest")
    assert isolated["versions"]["depbase"] == "1.0"
    assert isolated["versions"]["pytest"].startswith("ImportError"), isolated
    assert isolated["prefix"] != shared["prefix"]


# ---- 8. credentials in index URLs --------------------------------------------------------------


def test_credentials_never_shown(py, index):
    url = with_credentials(index.url)
    spec = pip(url, "withdep")
    got, err = inspect(py, spec, "withdep", flags=["-v"])
    assert got["versions"] == {"withdep": "1.0"}
    assert "rtenv: install pip pyenv://" in err, err
    assert SECRET not in err, err

    # A failure while resolving, and one while installing (through the agent).
    p = py.run(pip(url, "nosuchpackage"), "true", flags=["-v"])
    assert_setup_failed(p, "nosuchpackage")
    assert SECRET not in p.stderr, p.stderr
    spec_b = pip(url, "extra")
    lock(py, spec_b)
    index.set_down(True)
    p = py.run(spec_b, "true", flags=["-v"])
    assert_setup_failed(p, "503")
    assert SECRET not in p.stderr, p.stderr
    index.set_down(False)

    for args in (("env", "list"), ("env", "list", "--json")):
        p = py(*args)
        assert_ok(p)
        assert "pyenv://" in p.stdout, p.stdout
        assert SECRET not in p.stdout + p.stderr, p.stdout
    listing = json.loads(py("env", "list", "--json").stdout)
    assert any(e["state"] == "failed" or e["error"] for e in listing["envs"]), listing
    logs = sorted((py.home / "logs").glob("*.log"))
    assert logs, "no setup logs written"
    for log in logs:
        text = log.read_text(errors="replace")
        assert SECRET not in text, f"{log} shows the password:\n{text}"
    # On disk: the ready marks say nothing; the files that must hold the URL (the lock, the
    # requirements the installer reads) are the owner's only.
    for ready in pyenvs(py).glob("*.ready"):
        assert SECRET not in ready.read_text(), ready
    holders = list(pyenvs(py).glob("*/rtenv-requirements.txt")) + list(
        (py.home / "locks").glob("*.json"))
    assert holders
    for f in holders:
        if SECRET in f.read_text():
            assert f.stat().st_mode & 0o077 == 0, f"{f} is readable by others: {oct(f.stat().st_mode)}"


# ---- 9. pip as the installer -----------------------------------------------------------------


def test_pip_installer(py, index, dists, tmp_path):
    wrapper, log = logging_uv(tmp_path, UV)
    py.env.update(RTENV_INSTALLER="pip", RTENV_UV=str(wrapper))
    spec = pip(index.url, "withdep")
    lines = lock(py, spec)
    assert pins(lines) == {
        "depbase": ("1.0", sha256_file(dists["depbase-1.0"])),
        "withdep": ("1.0", sha256_file(dists["withdep-1.0"])),
    }, lines
    got, err = inspect(py, spec, "withdep", "depbase", flags=["-v"])
    assert got["versions"] == {"withdep": "1.0", "depbase": "1.0"}
    assert Path(got["prefix"]).parent == pyenvs(py)
    assert "rtenv: install pip pyenv://" in err, err
    assert calls(log) == [], f"uv was used with RTENV_INSTALLER=pip: {calls(log)}"
    assert set(index.downloads()) == {"depbase-1.0-py3-none-any.whl",
                                      "withdep-1.0-py3-none-any.whl"}, index.request_log


# ---- 10. what the command sees ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["pip", "uv"])
def test_command_runs_in_the_venv(py, index, field):
    py.env["PYTHONDONTWRITEBYTECODE"] = "1"  # the command's imports write no bytecode
    spec = pip(index.url, "withdep", field=field)
    got, _ = inspect(py, spec, "withdep")
    assert got["versions"] == {"withdep": "1.0"}
    prefix = Path(got["prefix"])
    assert prefix.parent == pyenvs(py), got
    assert (pyenvs(py) / f"{prefix.name}.ready").exists()
    assert got["virtual_env"] == str(prefix), got
    assert got["executable"].startswith(str(prefix) + "/bin/"), got
    assert got["which_python"] == str(prefix / "bin" / "python"), got

    p = py("env", "create", "--json", "-e", json.dumps(spec), timeout=60)
    assert_ok(p)
    reply = json.loads(p.stdout)
    assert reply["resources"] == [f"pyenv://{prefix.name}"], reply
    assert reply["installed"] is False, "the env was on the node already"
    locked = reply["runtime_env"][field]
    assert locked["locked"] is True
    assert set(pins(locked["packages"])) == {"withdep", "depbase"}, locked
    assert reply["plan"]["py_executable"].startswith(str(prefix)), reply

    listing = json.loads(py("env", "list", "--json").stdout)
    kinds = {r["uri"]: r["kind"] for r in listing["resources"]}
    assert kinds == {f"pyenv://{prefix.name}": "python"}, listing

    # Bytecode is compiled once the env is ready (uv writes none unless asked; in the background,
    # so the first run does not wait for it): a process started with PYTHONDONTWRITEBYTECODE, as
    # many are, does not compile the env's modules at every start.
    deadline = time.monotonic() + 30
    while True:
        compiled = list(prefix.glob("lib/python*/site-packages/*/__pycache__/*.pyc"))
        if {c.parent.parent.name for c in compiled} == {"withdep", "depbase"}:
            break
        assert time.monotonic() < deadline, compiled
        time.sleep(0.1)


# ---- PyPI (opt-in) -----------------------------------------------------------------------------


@pytest.mark.pypi
@pytest.mark.skipif(os.environ.get("RTENV_TEST_PYPI") != "1",
                    reason="reaches PyPI: set RTENV_TEST_PYPI=1 to run")
def test_real_package_from_pypi(py):
    got, _ = inspect(py, {"pip": ["six==1.16.0"]}, "six", timeout=120)
    assert got["versions"] == {"six": "1.16.0"}
    assert Path(got["prefix"]).parent == pyenvs(py)


def test_py_modules_wheel_is_installed_into_its_own_target(py, dists, tmp_path):
    # A wheel in py_modules travels as a one-file package and is installed (without its
    # dependencies) into a private directory on PYTHONPATH; two versions stay apart.
    one, two = dists["conflict-1.0"], dists["conflict-2.0"]
    seen = {}
    for wheel in (one, two):
        out, err = inspect(py, {"py_modules": [str(wheel)]}, "conflict", flags=("-v",))
        seen[wheel.name] = out["versions"]["conflict"]
        assert "install py_modules[0] pyenv://" in err, err
    assert seen == {one.name: "1.0", two.name: "2.0"}
    # Again: nothing to install, nothing to upload.
    out, err = inspect(py, {"py_modules": [str(one)]}, "conflict", flags=("-v",))
    assert out["versions"]["conflict"] == "1.0"
    assert "everything was on this machine already" in err, err
    # The packed form names the wheel; a task-level env can carry it.
    p = py("env", "create", "--json", "-e", json.dumps({"py_modules": [str(one)]}))
    assert_ok(p)
    (uri,) = json.loads(p.stdout)["runtime_env"]["py_modules"]
    assert re.fullmatch(r"rtenv://sha256/[0-9a-f]{64}/conflict-1\.0-py3-none-any\.whl", uri), uri


def test_gc_evicts_unused_venvs_never_one_in_use(py, index, tmp_path):
    # Everything is over a 1-byte limit: eviction (the agent's own after an install, or `rtenv
    # gc`) removes what nobody uses, and leaves the venv a running command holds.
    py.env.update(RTENV_CACHE_LIMIT="1", RTENV_CACHE_LOW="0")
    idle_env, busy_env = pip(index.url, "conflict==1.0"), pip(index.url, "conflict==2.0")
    assert_ok(py.run(idle_env, "python", "-c", "import conflict"))
    (idle,) = venv_dirs(py)
    started, release = tmp_path / "started", tmp_path / "release"
    hold = (f"import conflict, pathlib, time; pathlib.Path({str(started)!r}).write_text('x')\n"
            f"while not pathlib.Path({str(release)!r}).exists(): time.sleep(0.02)")
    proc = py.popen(busy_env, "python", "-c", hold)
    try:
        wait_for(started.exists, 60, "the command holding conflict 2.0 to start")
        busy = next(d for d in venv_dirs(py) if d != idle)
        gc = py("gc")
        assert_ok(gc)
        assert busy not in gc.stdout, f"evicted the venv of a running command: {gc.stdout}"
        assert venv_dirs(py) == [busy]
        assert not (pyenvs(py) / f"{idle}.ready").exists()
    finally:
        release.write_text("x")
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    # The evicted env comes back when asked for.
    out, _ = inspect(py, idle_env, "conflict")
    assert out["versions"]["conflict"] == "1.0"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_console_scripts_run_with_the_venvs_python(py, index, installer):
    # A package's scripts land in the venv's bin/ and start the venv's interpreter (not the one
    # that installed them), so they see the env's packages.
    py.env["RTENV_INSTALLER"] = installer
    p = py.run(pip(index.url, "clitool"), "clitool")
    assert_ok(p)
    prefix = p.stdout.strip()
    assert Path(prefix).parent == pyenvs(py), prefix
    script = Path(prefix) / "bin" / "clitool"
    assert script.read_text().startswith("#!"), script.read_text()[:200]
    assert prefix in script.read_text().split("\n", 2)[0] + script.read_text().split("\n", 2)[1]
