"""Shared fixtures for the rtenv end-to-end tests.

Every test gets its own temporary $RTENV_HOME (and a fake $HOME, so nothing can land in
~/.cache). The binary is $RTENV_BIN, or <repo>/build/src/cli/rtenv.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "build" / "src" / "cli" / "rtenv"
SPEC_DATA = REPO / "tests" / "data" / "spec"

# Environment variables of the caller that would change rtenv's behaviour; tests start clean.
_RTENV_VARS = ("RTENV_HOME", "RTENV_STORE", "RTENV_MAX_PACKAGE_SIZE", "RTENV_WARN_FILE_SIZE")

HEX64 = re.compile(r"^[0-9a-f]{64}$")

# The interpreter for commands run inside an env: the one running the tests (a real binary, not a
# slow pyenv shim).
PY = sys.executable or "python3"


def _binary() -> Path:
    return Path(os.environ.get("RTENV_BIN", str(DEFAULT_BIN)))


def _missing_binary_message(path: Path) -> str:
    return (
        f"rtenv binary not found or not executable at {path}; build it "
        f"(cmake -S {REPO} -B {REPO}/build -G Ninja && ninja -C {REPO}/build rtenv) "
        f"or set RTENV_BIN to its path"
    )


def pytest_sessionstart(session):
    path = _binary()
    if not session.config.option.collectonly and not (path.is_file() and os.access(path, os.X_OK)):
        pytest.exit(_missing_binary_message(path), returncode=1)


@pytest.fixture(scope="session")
def rtenv_bin() -> str:
    path = _binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(_missing_binary_message(path), pytrace=False)
    return str(path)


class Rtenv:
    """Runs the rtenv binary with a private RTENV_HOME."""

    def __init__(self, binary: str, home: Path, fake_home: Path):
        self.binary = binary
        self.home = home
        # No RTENV_* and no PYTHON* settings of the caller (PYTHONPATH, PYTHONDONTWRITEBYTECODE,
        # PYTHONPYCACHEPREFIX, ...): tests that need one set it explicitly.
        self.env = {
            k: v for k, v in os.environ.items() if k not in _RTENV_VARS and not k.startswith("PYTHON")
        }
        self.env["RTENV_HOME"] = str(home)
        self.env["HOME"] = str(fake_home)
        self.env["XDG_CACHE_HOME"] = str(fake_home / ".cache")

    def _env(self, extra: dict | None, unset: tuple = ()) -> dict:
        env = dict(self.env)
        for k in unset:
            env.pop(k, None)
        if extra:
            env.update(extra)
        return env

    def __call__(self, *args, cwd=None, env=None, unset=(), timeout=30, input=None):
        return subprocess.run(
            [self.binary, *map(str, args)],
            cwd=cwd,
            env=self._env(env, unset),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
        )

    def run(self, runtime_env, *command, cwd=None, env=None, flags=(), timeout=30):
        """`rtenv run [--runtime-env X] [flags] -- command...`; runtime_env may be a dict
        (sent as inline JSON), a string (sent as is) or None (no --runtime-env)."""
        args = ["run"]
        if runtime_env is not None:
            text = json.dumps(runtime_env) if isinstance(runtime_env, (dict, list)) else str(runtime_env)
            args += ["--runtime-env", text]
        args += list(flags)
        args += ["--", *command]
        return self(*args, cwd=cwd, env=env, timeout=timeout)

    def popen(self, runtime_env, *command, cwd=None, env=None):
        args = [self.binary, "run"]
        if runtime_env is not None:
            args += ["--runtime-env", json.dumps(runtime_env)]
        args += ["--", *command]
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=self._env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def pack(self, path, *flags, cwd=None):
        """`rtenv pack PATH --json`; returns the parsed JSON object (asserts success)."""
        p = self("pack", path, "--json", *flags, cwd=cwd)
        assert p.returncode == 0, f"rtenv pack failed ({p.returncode}): {p.stderr}"
        out = p.stdout.strip()
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            pytest.fail(f"rtenv pack --json did not print one JSON object: {out!r}")

    @property
    def pkgs(self) -> Path:
        return self.home / "pkgs"


@pytest.fixture
def rtenv(rtenv_bin, tmp_path) -> Rtenv:
    home = tmp_path / "rtenv-home"
    fake_home = tmp_path / "fake-home"
    fake_home.mkdir()
    r = Rtenv(rtenv_bin, home, fake_home)
    yield r
    stop_agent(home)
    # Nothing may go to the (fake) user cache: all state lives in $RTENV_HOME.
    assert not (fake_home / ".cache").exists(), "rtenv wrote under $HOME/.cache despite RTENV_HOME"


@pytest.fixture(scope="session")
def python_cache(tmp_path_factory) -> Path:
    """Where condachannel.python_pkg keeps the packed interpreter: built once per session."""
    return tmp_path_factory.mktemp("python-pkg")


@pytest.fixture
def index(dists):
    """A package index on 127.0.0.1 serving the test module's `dists` (its own fixture: a dict of
    built wheels and sdists)."""
    from pyindex import PackageIndex

    with PackageIndex() as ix:
        for path in dists.values():
            ix.add(path)
        yield ix


@pytest.fixture(scope="session")
def channel(tmp_path_factory) -> Path:
    """condachannel.standard_channel, without the interpreter package."""
    from condachannel import standard_channel
    return standard_channel(tmp_path_factory.mktemp("channel"))


@pytest.fixture(scope="session")
def python_channel(tmp_path_factory, python_cache) -> Path:
    """condachannel.standard_channel with the packed interpreter and a noarch: python package."""
    from condachannel import standard_channel
    return standard_channel(tmp_path_factory.mktemp("channel-python"), with_python=True,
                            python_cache=python_cache)


@pytest.fixture
def py(rtenv):
    """The `rtenv` fixture, set up for Python envs: the test interpreter as the default base
    (RTENV_PYTHON), the uv beside it, no PIP_* / UV_* settings of the machine (PIP_FIND_LINKS
    would add another source), no retries against a failing index. The agent `rtenv run` starts
    inherits this environment, so tests change `py.env` before their first run only."""
    from pyindex import find_uv
    for k in list(rtenv.env):
        if k.startswith(("PIP_", "UV_")) or k in ("VIRTUAL_ENV", "RTENV_INSTALLER", "RTENV_UV",
                                                   "RTENV_PYTHON", "RTENV_NO_AGENT"):
            del rtenv.env[k]
    rtenv.env.update(RTENV_PYTHON=PY, RTENV_UV=find_uv(PY), UV_HTTP_RETRIES="0")
    return rtenv


def stop_agent(home: Path) -> None:
    """Stops the agent `rtenv run` may have started on demand for `home` (it would otherwise
    idle on until its idle timeout)."""
    pid_file = home / "agent.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)  # not our child: raises; fall through to polling
    except ChildProcessError:
        pass
    wait_gone(pid, 2.0)


def proc_state(pid: int) -> str | None:
    """The state letter of /proc/<pid>/stat ("R", "S", "Z", ...), None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    """Waits for `pid` to exit; True if it did within `timeout`. An exited process its parent has
    not reaped yet (an init that reaps late) counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc_state(pid) in (None, "Z", "X"):
            return True
        time.sleep(0.01)
    return False


def wait_for(pred, timeout: float, what: str, interval: float = 0.01):
    """Polls `pred` until it returns something true (returned), failing the test after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def assert_ok(p: subprocess.CompletedProcess, code: int = 0):
    assert p.returncode == code, (
        f"exit {p.returncode}, expected {code}\n--- stdout:\n{p.stdout}\n--- stderr:\n{p.stderr}"
    )


def assert_clean_error(stderr: str):
    """An rtenv error: says something specific, no stack trace, no bare 'error'."""
    assert stderr.strip(), "expected an error message on stderr"
    for bad in ("Traceback", "terminate called", "what():", "internal error", "Segmentation"):
        assert bad not in stderr, f"stderr contains {bad!r}: {stderr}"
    assert stderr.strip().lower() not in ("error", "rtenv: error", "error:"), stderr


def assert_setup_failed(p: subprocess.CompletedProcess, *needles: str):
    assert p.returncode == 3, f"exit {p.returncode}, expected 3 (setup failed)\nstderr: {p.stderr}"
    assert_clean_error(p.stderr)
    assert p.stderr.startswith("rtenv: setup failed:"), f"stderr: {p.stderr!r}"
    for n in needles:
        assert n in p.stderr, f"{n!r} not in stderr: {p.stderr!r}"


# ---- trees and zips -------------------------------------------------------------------------


def write_tree(root: Path, files: dict) -> Path:
    """files: {relative path: str|bytes}."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def age_tree(root: Path, seconds_ago: float = 100.0):
    """Sets every mtime (and atime) well in the past, so the pack index trusts them."""
    import time

    t = time.time() - seconds_ago
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (t, t), follow_symlinks=False)


def make_zip(path: Path, entries: list) -> Path:
    """entries: (name, content) for files, (name, target, "symlink") for symlinks."""
    with zipfile.ZipFile(path, "w") as z:
        for e in entries:
            if len(e) == 3 and e[2] == "symlink":
                zi = zipfile.ZipInfo(e[0])
                zi.external_attr = 0o120777 << 16
                z.writestr(zi, e[1])
            else:
                z.writestr(e[0], e[1])
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """Serves tmp_path/"www" on 127.0.0.1 (a free port); yields (root dir, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# A command that prints what the env looks like from inside, as one JSON line.
SNAPSHOT = r"""
import hashlib, json, os, stat
out = {}
for dirpath, dirnames, filenames in os.walk("."):
    dirnames.sort()
    for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            out[p] = ["link", os.readlink(p)]
        else:
            out[p] = ["file", oct(st.st_mode & 0o777), hashlib.sha256(open(p, "rb").read()).hexdigest()]
    for d in dirnames:
        p = os.path.join(dirpath, d)
        if not os.path.islink(p):
            out[p + "/"] = ["dir", oct(os.lstat(p).st_mode & 0o777)]
out["./"] = ["dir", oct(os.lstat(".").st_mode & 0o777)]
print(json.dumps({"cwd": os.getcwd(), "tree": out}))
"""


def snapshot(rtenv: Rtenv, runtime_env, cwd) -> dict:
    p = rtenv.run(runtime_env, PY, "-c", SNAPSHOT, cwd=cwd)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1])
