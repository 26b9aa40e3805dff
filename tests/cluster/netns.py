"""A cluster of machines on this one: Linux network namespaces joined by a bridge.

    with Cluster.create(nodes=3) as cluster:      # needs root (ip netns)
        servers = StoreServers.start(cluster, rtenv_bin, workdir)
        node = cluster.node("node0", rtenv_bin, workdir / "node0", servers.env("http"))
        node.rtenv("run", "-e", spec, "--", "python3", "-c", "...")

Layout. A "switch" namespace holds a bridge; every machine (`store`, `client`, `node0`...) is a
namespace with one interface, `eth0`, a veth pair whose other end is a port of that bridge, and
an address 10.<a>.<b>.<n>/24 (loopback up, IPv6 off, so an idle link carries nothing). Nothing
is added to the root namespace: its interfaces and routes stay as they were, and what runs in
the namespaces reaches nothing but the other namespaces. Names carry the creating process's
pid and a random tag, so two runs never collide; `destroy` (also on `with` exit) kills every
process left in the namespaces (by pid, from `ip netns pids`) and deletes them.

The store namespace runs the servers (`StoreServers`): moto's S3 server, rtenv's blob server
(`rtenv store serve`) and a package index (`index_server.py`, pyindex.PackageIndex on the
store's address, its request log in a file). Byte counts of a machine's link come from its
interface counters (`Machine.link_bytes`).

Used by tests/cluster (fixtures in conftest.py) and bench/cluster/run.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable or "python3"

S3_PORT = 9000
BLOB_PORT = 9001
BUCKET = "rtenv-cluster"
S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
STORE_KINDS = ("s3", "http")


class ClusterError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def netns_unusable_reason() -> str | None:
    """Why network namespaces cannot be made here (None if they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the cluster tests as root"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed; scripts/setup.sh installs it"
    name = f"rtenv-probe-{os.getpid()}-{secrets.token_hex(2)}"
    p = _ip("netns", "add", name, check=False)
    if p.returncode != 0:
        return f"ip netns add failed: {p.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


def base_env() -> dict[str, str]:
    """What every command in the cluster starts from: PATH and a C.UTF-8 locale, nothing else of
    the caller (no proxies, no AWS_*/RTENV_*/PIP_*/UV_* settings)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


@dataclass
class Machine:
    """One namespace with one link (eth0) into the cluster."""

    cluster: "Cluster"
    name: str
    ns: str
    addr: str

    def argv(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """`ip netns exec <ns> env -i K=V... argv`: argv in this machine with exactly `env`."""
        return ["ip", "netns", "exec", self.ns, "env", "-i",
                *[f"{k}={v}" for k, v in env.items()], *map(str, argv)]

    def run(self, argv, env: dict[str, str], timeout: float = 120, **kw):
        return subprocess.run(self.argv(argv, env), capture_output=True, text=True,
                              timeout=timeout, **kw)

    def popen(self, argv, env: dict[str, str], **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return subprocess.Popen(self.argv(argv, env), **kw)

    def python(self, code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> str:
        """Runs a Python snippet here (with `env` added to the base env); returns its stdout."""
        p = self.run([PY, "-c", code, *args], {**base_env(), **(env or {})}, timeout=timeout)
        if p.returncode != 0:
            raise ClusterError(f"python on {self.name} failed ({p.returncode}): {p.stderr}")
        return p.stdout

    def link_bytes(self) -> tuple[int, int]:
        """(received, sent) bytes of this machine's link so far (eth0's counters)."""
        out = _ip("-n", self.ns, "-s", "-j", "link", "show", "dev", "eth0").stdout
        stats = json.loads(out)[0]["stats64"]
        return stats["rx"]["bytes"], stats["tx"]["bytes"]

    def set_link(self, up: bool) -> None:
        _ip("-n", self.ns, "link", "set", "eth0", "up" if up else "down")

    def limit_rate(self, rate: str | None) -> None:
        """Caps what this machine sends (e.g. "200mbit"); None removes the cap."""
        if rate is None:
            subprocess.run(["ip", "netns", "exec", self.ns, "tc", "qdisc", "del", "dev", "eth0",
                            "root"], capture_output=True)
            return
        p = subprocess.run(["ip", "netns", "exec", self.ns, "tc", "qdisc", "replace", "dev",
                            "eth0", "root", "tbf", "rate", rate, "burst", "256kb", "latency",
                            "100ms"], capture_output=True, text=True)
        if p.returncode != 0:
            raise ClusterError(f"tc on {self.name} failed: {p.stderr.strip()}")

    def wait_port(self, host: str, port: int, timeout: float = 30) -> None:
        """Waits until something here can connect to host:port."""
        code = (
            "import socket, sys, time\n"
            "deadline = time.monotonic() + float(sys.argv[3])\n"
            "while True:\n"
            "    try:\n"
            "        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.5).close()\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.monotonic() > deadline: sys.exit(1)\n"
            "        time.sleep(0.05)\n")
        p = self.run([PY, "-c", code, host, str(port), str(timeout)], base_env(),
                     timeout=timeout + 10)
        if p.returncode != 0:
            raise ClusterError(f"nothing listens on {host}:{port} (seen from {self.name})")


class Cluster:
    """The namespaces: `switch` (the bridge), `store`, `client`, and `node0`..`node<n-1>`."""

    def __init__(self, nodes: int = 3, subnet: str = "10.231.7"):
        self.tag = f"rtc{os.getpid()}-{secrets.token_hex(2)}"
        self.subnet = subnet
        self.switch_ns = f"{self.tag}-switch"
        names = ["store", "client"] + [f"node{i}" for i in range(nodes)]
        self.machines: dict[str, Machine] = {
            name: Machine(self, name, f"{self.tag}-{name}", f"{subnet}.{i + 2}")
            for i, name in enumerate(names)
        }
        self._created: list[str] = []

    @classmethod
    def create(cls, nodes: int = 3) -> "Cluster":
        c = cls(nodes)
        try:
            c._build()
        except BaseException:
            c.destroy()
            raise
        return c

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    @property
    def store(self) -> Machine:
        return self.machines["store"]

    @property
    def client(self) -> Machine:
        return self.machines["client"]

    @property
    def nodes(self) -> list[Machine]:
        return [m for n, m in self.machines.items() if n.startswith("node")]

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self._created.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        # No IPv6: an idle link then carries nothing (no router solicitations, no MLD), so its
        # counters count what rtenv sent.
        for key in ("all", "default", "lo"):
            subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                            f"net.ipv6.conf.{key}.disable_ipv6=1"], capture_output=True)

    def _build(self) -> None:
        self._add_ns(self.switch_ns)
        _ip("-n", self.switch_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch_ns, "link", "set", "br0", "up")
        for i, m in enumerate(self.machines.values()):
            self._add_ns(m.ns)
            port = f"p{i}"
            # Both ends are created inside namespaces: the root namespace never sees them.
            _ip("-n", self.switch_ns, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", m.ns)
            _ip("-n", self.switch_ns, "link", "set", port, "master", "br0")
            _ip("-n", self.switch_ns, "link", "set", port, "up")
            _ip("-n", m.ns, "addr", "add", f"{m.addr}/24", "dev", "eth0")
            _ip("-n", m.ns, "link", "set", "eth0", "up")

    def node(self, name: str, rtenv_bin: str, home_dir: Path, env: dict[str, str]) -> "Node":
        return Node(self.machines[name], rtenv_bin, Path(home_dir), dict(env))

    def destroy(self) -> None:
        """Kills every process still in the namespaces (they are this run's: the names are
        unique), then deletes the namespaces with their links. Idempotent."""
        for ns in reversed(self._created):
            _kill_pids_in(ns)
        for ns in reversed(self._created):
            _ip("netns", "del", ns, check=False)
        self._created.clear()


def _kill_pids_in(ns: str) -> None:
    def pids() -> list[int]:
        p = _ip("netns", "pids", ns, check=False)
        return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []

    left = pids()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in pids() if _alive(p)]
        if not left:
            return


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in ("Z", "X")


def stop_pid(pid: int, timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout`; waits until it is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _alive(pid):
                return
            time.sleep(0.02)


# ---------------------------------------------------------------------------- rtenv on a machine


@dataclass
class Node:
    """rtenv on one machine: its own RTENV_HOME (and so its own agent, uv cache, packages)."""

    machine: Machine
    rtenv_bin: str
    dir: Path
    store_env: dict[str, str]
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        (self.dir / "home").mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self.machine.name

    @property
    def home(self) -> Path:
        return self.dir / "rtenv-home"

    @property
    def env(self) -> dict[str, str]:
        return {**base_env(), "HOME": str(self.dir / "home"), "RTENV_HOME": str(self.home),
                "RTENV_PYTHON": PY, **self.store_env, **self.extra_env}

    def argv(self, *args) -> list[str]:
        return self.machine.argv([self.rtenv_bin, *args], self.env)

    @property
    def uv_log(self) -> Path:
        return self.dir / "uv-calls.log"

    def log_installs(self, uv: str) -> None:
        """Makes the node install with a uv that appends its arguments to `uv_log`, then runs
        the real `uv`."""
        script = self.dir / "uv-logging"
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{self.uv_log}"\n'
                          f'exec "{uv}" "$@"\n')
        script.chmod(0o755)
        self.extra_env["RTENV_UV"] = str(script)

    def installs(self) -> list[str]:
        """The `uv pip install` runs logged so far (see log_installs)."""
        lines = self.uv_log.read_text().splitlines() if self.uv_log.exists() else []
        return [line for line in lines if line.startswith("pip install")]

    def rtenv(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.machine.run([self.rtenv_bin, *args], self.env, timeout=timeout)

    def popen(self, *args) -> subprocess.Popen:
        return self.machine.popen([self.rtenv_bin, *args], self.env)

    def run(self, spec: dict, *command, flags=(), timeout: float = 120):
        return self.rtenv("run", "-e", json.dumps(spec), *flags, "--", *command, timeout=timeout)

    def pack(self, path: Path) -> dict:
        p = self.rtenv("pack", str(path), "--json")
        if p.returncode != 0:
            raise ClusterError(f"rtenv pack on {self.name} failed ({p.returncode}): {p.stderr}")
        return json.loads(p.stdout)

    def lock(self, spec: dict) -> dict:
        """The spec with its pip/uv packages resolved to pins (`rtenv lock --json`)."""
        p = self.rtenv("lock", "-e", json.dumps(spec), "--json")
        if p.returncode != 0:
            raise ClusterError(f"rtenv lock on {self.name} failed ({p.returncode}): {p.stderr}")
        return json.loads(p.stdout)

    def agent_pid(self) -> int | None:
        try:
            return int((self.home / "agent.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop_agent(self) -> None:
        pid = self.agent_pid()
        if pid is not None and _alive(pid):
            stop_pid(pid)


# ---------------------------------------------------------------------------- servers


class StoreServers:
    """moto's S3 server, rtenv's blob server and the package index, in the store namespace."""

    def __init__(self, cluster: Cluster, rtenv_bin: str, workdir: Path):
        self.cluster = cluster
        self.rtenv_bin = rtenv_bin
        self.workdir = Path(workdir)
        self.addr = cluster.store.addr
        self.blob_root = self.workdir / "blob-root"
        self.token_file = self.workdir / "store-token"
        self.token = secrets.token_hex(16)
        self.index_dir = self.workdir / "index"
        self.index_log = self.workdir / "index-requests.log"
        self.moto: subprocess.Popen | None = None
        self.blob: subprocess.Popen | None = None
        self.index: subprocess.Popen | None = None
        self.index_url = ""
        self._logs: list = []

    @classmethod
    def start(cls, cluster: Cluster, rtenv_bin: str, workdir: Path,
              kinds=STORE_KINDS) -> "StoreServers":
        s = cls(cluster, rtenv_bin, workdir)
        try:
            s.workdir.mkdir(parents=True, exist_ok=True)
            s.blob_root.mkdir(exist_ok=True)
            s.token_file.write_text(s.token + "\n")
            s.token_file.chmod(0o600)
            s.index_dir.mkdir(exist_ok=True)
            if "s3" in kinds:
                s.start_moto()
            if "http" in kinds:
                s.start_blob_server()
            s.start_index()
        except BaseException:
            s.stop()
            raise
        return s

    def _log(self, name: str):
        f = open(self.workdir / f"{name}.log", "ab")
        self._logs.append(f)
        return f

    # -- S3 (moto)

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.addr}:{S3_PORT}"

    def start_moto(self) -> None:
        """Starts moto (its buckets are in memory: a restart starts empty) and makes the
        bucket."""
        self.moto = self.cluster.store.popen(
            [PY, "-m", "moto.server", "-H", self.addr, "-p", str(S3_PORT)], base_env(),
            stdout=self._log("moto"), stderr=subprocess.STDOUT)
        self.cluster.store.wait_port(self.addr, S3_PORT)
        self.s3("c.create_bucket(Bucket=bucket)")

    def s3(self, code: str, *args: str) -> str:
        """Runs `code` in the store namespace with `c` a boto3 client of moto and `bucket` the
        bucket's name (sys.argv[1:] = args); returns what it prints."""
        prelude = (
            "import sys, boto3\n"
            f"c = boto3.client('s3', endpoint_url={self.s3_endpoint!r}, region_name='us-east-1',"
            " aws_access_key_id='test', aws_secret_access_key='test')\n"
            f"bucket = {BUCKET!r}\n")
        return self.cluster.store.python(prelude + code, *args)

    # -- rtenv's blob server

    @property
    def blob_url(self) -> str:
        return f"http://{self.addr}:{BLOB_PORT}"

    def start_blob_server(self, root: Path | None = None) -> None:
        """Starts `rtenv store serve` on `root` (default: the one it served before)."""
        if root is not None:
            self.blob_root = Path(root)
            self.blob_root.mkdir(parents=True, exist_ok=True)
        env = {**base_env(), "HOME": str(self.workdir), "RTENV_HOME": str(self.workdir / "rh")}
        self.blob = self.cluster.store.popen(
            [self.rtenv_bin, "store", "serve", "--root", str(self.blob_root), "--listen",
             f"{self.addr}:{BLOB_PORT}", "--token-file", str(self.token_file), "--verbose"], env,
            stderr=self._log("blob-server"))
        line = self.blob.stdout.readline().strip()
        if not line.startswith("listening on http://"):
            self.blob.kill()
            raise ClusterError(f"rtenv store serve did not start: first line {line!r} "
                               f"(log: {self.workdir / 'blob-server.log'})")

    # -- the package index

    def start_index(self) -> None:
        self.index = self.cluster.store.popen(
            [PY, str(HERE / "index_server.py"), "--host", self.addr, "--dir", str(self.index_dir),
             "--log", str(self.index_log)], base_env(), stderr=self._log("index"))
        line = self.index.stdout.readline().strip()
        if not line.startswith("http://"):
            self.index.kill()
            raise ClusterError(f"the package index did not start: {line!r}")
        self.index_url = line

    def index_downloads(self) -> list[str]:
        """File names of the distributions served (each successful GET of /files/<file>)."""
        if not self.index_log.exists():
            return []
        out = []
        for line in self.index_log.read_text().splitlines():
            method, path, status = line.split(" ")
            name = path.rsplit("/", 1)[-1]
            if (method == "GET" and status == "200" and path.startswith("/files/")
                    and not name.endswith(".metadata")):
                out.append(name)
        return out

    # -- what a client of each store kind needs

    def env(self, kind: str, prefix: str) -> dict[str, str]:
        """The environment that makes rtenv use this store (`prefix` separates users of S3)."""
        if kind == "s3":
            return {**S3_ENV, "RTENV_STORE": f"s3://{BUCKET}/{prefix}",
                    "RTENV_S3_ENDPOINT": self.s3_endpoint}
        if kind == "http":
            return {"RTENV_STORE": self.blob_url, "RTENV_STORE_TOKEN": self.token}
        raise ValueError(kind)

    def describe(self, kind: str) -> str:
        """How the store is named in rtenv's messages (host:port)."""
        return f"{self.addr}:{S3_PORT if kind == 's3' else BLOB_PORT}"

    def server(self, kind: str) -> subprocess.Popen | None:
        return self.moto if kind == "s3" else self.blob

    def kill(self, kind: str) -> None:
        """The store's server dies (SIGKILL): connections are reset, new ones refused."""
        proc = self.server(kind)
        if proc is not None:
            proc.kill()
            proc.wait(10)

    def restart(self, kind: str) -> None:
        if kind == "s3":
            self.start_moto()
        else:
            self.start_blob_server()

    def stop(self) -> None:
        for proc in (self.index, self.blob, self.moto):
            if proc is not None and proc.poll() is None:
                stop_pid(proc.pid)
                proc.wait(5)
        for f in self._logs:
            f.close()
        self._logs.clear()
