"""Helpers for the node agent's end-to-end tests: a real `rtenv agent` on the real socket of a
private $RTENV_HOME, stopped (with anything that serves the same home) when the test ends.

A client (`rtenv env ...`, `rtenv run`) that finds no agent answering starts one of its own,
detached and with a 600 s idle exit. These tests start their agent first and wait until its
socket accepts connections, so clients never need to; should one start anyway (a client that
connects while the test has killed the agent), `kill_strays` finds it by its $RTENV_HOME and
stops it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Rtenv, assert_ok, proc_state, wait_gone


def pids_of_agents(rtenv: Rtenv) -> list[int]:
    """Every live `rtenv agent` process serving rtenv.home (ours or started by a client)."""
    out = []
    want = f"RTENV_HOME={rtenv.home}".encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
            name = os.path.basename(argv[0])
            # `rtenv agent ...` (rtenv-full after the front's exec), or `rtenv-agent ...`.
            if not (name == b"rtenv-agent"
                    or (name in (b"rtenv", b"rtenv-full") and argv[1:2] == [b"agent"])):
                continue
            if want not in Path(f"/proc/{d}/environ").read_bytes().split(b"\0"):
                continue
            if proc_state(int(d)) in ("Z", "X", None):
                continue
        except OSError:
            continue
        out.append(int(d))
    return out


def _processes_where(field: int, value: int, live_only: bool) -> list[int]:
    """Processes whose /proc/<pid>/stat field number `field` (counted after the command name:
    1 = ppid, 2 = pgid) is `value`; with `live_only`, not zombies."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[field]) == value and not (live_only and fields[0] in ("Z", "X")):
            out.append(int(d))
    return out


def children_of(pid: int) -> list[int]:
    return _processes_where(1, pid, live_only=False)


def pgroup_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid`."""
    return _processes_where(2, pgid, live_only=True)


class AgentProc:
    """One `rtenv agent` process for rtenv.home, started in the foreground by the test."""

    def __init__(self, rtenv: Rtenv, log: Path, env: dict | None = None, args=()):
        self.rtenv = rtenv
        self.log = log
        self.env = env or {}
        self.args = list(args)
        self.proc: subprocess.Popen | None = None

    @property
    def sock(self) -> Path:
        return self.rtenv.home / "agent.sock"

    def start(self, timeout: float = 10.0) -> "AgentProc":
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        self.rtenv.home.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.rtenv.binary, "agent", *self.args],
                env=self.rtenv._env(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"rtenv agent exited with {self.proc.returncode}:\n{self.log_text()}")
            if self.accepts():
                return self
            time.sleep(0.005)
        pytest.fail(f"rtenv agent did not listen on {self.sock} within {timeout} s:\n{self.log_text()}")

    def accepts(self) -> bool:
        """True once the socket accepts connections (the gRPC server listens)."""
        if not self.sock.exists():
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(str(self.sock))
            return True
        except OSError:
            return False
        finally:
            s.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self):
        """SIGTERM, then SIGKILL if it does not exit within 5 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def kill_strays(rtenv: Rtenv, keep: int | None = None) -> int:
    """Kills every agent serving rtenv.home except pid `keep`; returns how many."""
    n = 0
    for pid in pids_of_agents(rtenv):
        if pid == keep:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            continue
        wait_gone(pid)
    return n


@pytest.fixture
def agent_factory(rtenv, tmp_path):
    """agent_factory(env={...}) starts an agent for rtenv.home (not yet listening: call .start()
    or pass start=True). Every agent started, and any agent a client started for the same home,
    is stopped when the test ends."""
    made: list[AgentProc] = []

    def make(env: dict | None = None, start: bool = True, args=()) -> AgentProc:
        a = AgentProc(rtenv, tmp_path / f"agent-{len(made)}.log", env, args)
        made.append(a)
        return a.start() if start else a

    yield make
    for a in made:
        a.kill()
    strays = kill_strays(rtenv)
    assert strays == 0, f"{strays} agent(s) started by clients were still serving {rtenv.home}"


@pytest.fixture
def agent(agent_factory) -> AgentProc:
    return agent_factory()


# ---- talking to the agent through the CLI -----------------------------------------------------


def env_list(rtenv: Rtenv) -> dict:
    p = rtenv("env", "list", "--json")
    assert_ok(p)
    return json.loads(p.stdout)


def env_create(rtenv: Rtenv, spec: dict, job: str | None = None, timeout=60) -> dict:
    args = ["env", "create", "-e", json.dumps(spec), "--json"]
    if job is not None:
        args += ["--job", job]
    p = rtenv(*args, timeout=timeout)
    assert_ok(p)
    return json.loads(p.stdout)


def env_release(rtenv: Rtenv, job: str) -> int:
    p = rtenv("env", "release", "--job", job)
    assert_ok(p)
    return int(p.stdout.split()[1])


def resource(listing: dict, uri: str) -> dict | None:
    for r in listing["resources"]:
        if r["uri"] == uri:
            return r
    return None


def pack_uri(rtenv: Rtenv, path: Path) -> str:
    info = rtenv.pack(path)
    uri = info.get("uri")
    assert uri and uri.startswith("rtenv://sha256/"), info
    return uri


def digest_of(uri: str) -> str:
    return uri.rsplit("/", 1)[1]


def package_dirs(rtenv: Rtenv) -> list[str]:
    if not rtenv.pkgs.exists():
        return []
    return sorted(p.name for p in rtenv.pkgs.iterdir() if p.is_dir() and not p.is_symlink())


def tree_of(root: Path) -> dict:
    """{relative path: ("file", mode, bytes) | ("link", target) | ("dir", mode)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir",)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", bool(st.st_mode & 0o100), f.read())
    return out


def assert_same_tree(got: Path, want: Path | dict):
    """`want`: a directory, or its tree_of() (to read a source compared often only once)."""
    a, b = tree_of(got), want if isinstance(want, dict) else tree_of(want)
    if a != b:
        missing = sorted(set(b) - set(a))[:5]
        extra = sorted(set(a) - set(b))[:5]
        differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])[:5]
        pytest.fail(
            f"{got} differs from {want}: {len(set(b) - set(a))} missing (e.g. {missing}), "
            f"{len(set(a) - set(b))} extra (e.g. {extra}), differing e.g. {differ}"
        )


class BlockedBlob:
    """Holds up every read of one blob of the local store until release(): the blob's file is
    replaced by a FIFO, whose reader waits until someone opens it for writing. An install that
    needs the blob stays in progress, deterministically, for as long as the test wants."""

    def __init__(self, rtenv: Rtenv, content: bytes):
        h = hashlib.sha256(content).hexdigest()
        self.path = rtenv.home / "store" / h[:2] / h
        if not self.path.is_file():
            pytest.fail(f"blob {h} is not at {self.path} (has the store layout changed?)")
        self.content = content
        self.path.unlink()
        os.mkfifo(self.path, 0o644)

    def release(self, timeout: float = 30.0):
        """Waits for a reader, hands it the content, and puts the blob back as a file."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        try:
            os.write(fd, self.content)
        finally:
            os.close(fd)
        tmp = self.path.with_name(self.path.name + ".restore")
        tmp.write_bytes(self.content)
        os.replace(tmp, self.path)
