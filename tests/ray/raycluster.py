"""A multi-node Ray cluster on this machine, each node with its own rtenv home and agent.

Used by tests/ray and bench/ray. Nodes are raylets of one `ray.cluster_utils.Cluster` (a head
and worker nodes, all on 127.0.0.1), each started with its own environment: its own
$RTENV_HOME (so its own agent, packages and venvs, as separate machines would have), one shared
store ($RTENV_STORE, a directory), and the plugin registered (RAY_RUNTIME_ENV_PLUGINS) and
importable (PYTHONPATH = <repo>/python, or the rtenv package installed in the cluster's Python
with package_dir=None). Every process the cluster starts carries a marker
variable, so `stop()` can find and end whatever is left (workers, rtenv agents) by pid without
touching anyone else's Ray.

    with RayCluster(tmp, rtenv_bin=..., nodes={"head": 2, "w1": 2}) as c:
        ray.init(address=c.address)
        ... @ray.remote(resources={"w1": 1}) runs on node w1 ...
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Dict, Mapping, Optional

REPO = Path(__file__).resolve().parents[2]
PYTHON_PKG = REPO / "python"
MARKER = "RTENV_RAY_CLUSTER"

# Every node and the driver on 127.0.0.1: without this Ray resolves "127.0.0.1" to the host's
# outside address. Ray reads it once, when it is first imported, so this module sets it then:
# import it before `ray`.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

# Settings of the caller that would change what nodes install or how (a machine-wide
# PIP_FIND_LINKS would add a package source; UV_* configure uv).
_DROPPED_PREFIXES = ("PIP_", "UV_", "RTENV_", "VIRTUAL_ENV")


def node_resource(name: str) -> str:
    """The custom resource that places a task on node `name` ({resource: 1}); each node has
    100 of it."""
    return f"rtnode_{name}"


class RayCluster:
    def __init__(self, root: Path, *, rtenv_bin: Optional[str],
                 nodes: Mapping[str, int] | None = None,
                 object_store_memory: int = 80 << 20, store_url: str | None = None,
                 python: str = sys.executable, uv: str | None = None,
                 extra_env: Optional[Mapping[str, str]] = None, plugin: bool = True,
                 package_dir: Optional[str] = str(PYTHON_PKG)):
        """nodes: {name: num_cpus}, the first one the head. Each node's home is root/<name>;
        the driver's (this process's, while the cluster is up) is root/driver.

        rtenv_bin: the binary every node runs ($RTENV_BIN); None: each node's rtenv package
        finds its own (`rtenv.find_binary()`: the wheel's binaries, else `rtenv` on PATH).
        package_dir: the rtenv package the nodes import (put on PYTHONPATH); None: the one
        installed in `python`."""
        self.root = Path(root)
        self.nodes = dict(nodes or {"head": 2, "w1": 2})
        self.node_rtenv_bin = rtenv_bin
        self.package_dir = package_dir
        if rtenv_bin is None:
            from rtenv import find_binary  # the package this process imports, as the nodes do

            rtenv_bin = find_binary({k: v for k, v in os.environ.items() if k != "RTENV_BIN"})
        self.rtenv_bin = rtenv_bin  # what the tests run to look at a node
        self.store_url = store_url or f"file://{self.root / 'store'}"
        self.homes: Dict[str, Path] = {n: self.root / "homes" / n for n in self.nodes}
        self.driver_home = self.root / "homes" / "driver"
        self.object_store_memory = object_store_memory
        self.python = python
        self.uv = uv
        self.extra_env = dict(extra_env or {})
        self.plugin = plugin
        self.cluster = None
        self.node_ids: Dict[str, str] = {}
        self._saved_environ: Optional[dict] = None

    # ---- environment

    def common_env(self) -> Dict[str, str]:
        env = {
            "RTENV_STORE": self.store_url,
            "RTENV_PYTHON": self.python,
            MARKER: str(self.root),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }
        if self.node_rtenv_bin is not None:
            env["RTENV_BIN"] = self.node_rtenv_bin
        if self.package_dir is not None:
            env["PYTHONPATH"] = self.package_dir
        if self.plugin:
            env["RAY_RUNTIME_ENV_PLUGINS"] = json.dumps([{"class": "rtenv.ray.RtenvPlugin"}])
        if self.uv:
            env["RTENV_UV"] = self.uv
        env.update(self.extra_env)
        return env

    def node_env(self, name: str) -> Dict[str, str]:
        return {**self.common_env(), "RTENV_HOME": str(self.homes[name])}

    # ---- lifecycle

    def start(self) -> "RayCluster":
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster

        # Ray imported before this module read the variable already: same effect by hand.
        ray_constants.ENABLE_RAY_CLUSTER = False

        for h in [*self.homes.values(), self.driver_home]:
            h.mkdir(parents=True, exist_ok=True)
        # The GCS and the driver take this process's environment; the raylets (and with them
        # each node's runtime env agent, its plugin and its rtenv agent) their node's.
        self._saved_environ = dict(os.environ)
        for k in list(os.environ):
            if k.startswith(_DROPPED_PREFIXES):
                del os.environ[k]
        os.environ.update(self.common_env())
        os.environ["RTENV_HOME"] = str(self.driver_home)
        os.environ["RAY_TMPDIR"] = str(self.root / "ray")
        names = list(self.nodes)
        try:
            self.cluster = Cluster(
                initialize_head=True, connect=False,
                head_node_args=self._node_args(names[0]))
            for name in names[1:]:
                self.cluster.add_node(**self._node_args(name))
            self.cluster.wait_for_nodes()
        except BaseException:
            self.stop()
            raise
        return self

    def _node_args(self, name: str) -> dict:
        args = dict(
            num_cpus=self.nodes[name],
            object_store_memory=self.object_store_memory,
            resources={node_resource(name): 100},
            node_ip_address="127.0.0.1",
            env_vars=self.node_env(name),
        )
        if name == next(iter(self.nodes)):
            # The head's dashboard process starts anyway; a free port, not 8265, which another
            # cluster on this machine may hold.
            args["include_dashboard"] = False
            args["dashboard_port"] = free_port()
        return args

    @property
    def address(self) -> str:
        return self.cluster.address

    def node_id(self, name: str) -> str:
        """The Ray node id of node `name` (needs a connected driver)."""
        import ray

        if not self.node_ids:
            for n in ray.nodes():
                for node in self.nodes:
                    if node_resource(node) in n.get("Resources", {}) and n.get("Alive"):
                        self.node_ids[node] = n["NodeID"]
        return self.node_ids[name]

    def stop(self) -> None:
        """Shuts the cluster down, stops every node's rtenv agent, and ends any process left
        that carries this cluster's marker. Restores this process's environment."""
        try:
            if self.cluster is not None:
                self.cluster.shutdown()
        finally:
            self.cluster = None
            for home in [*self.homes.values(), self.driver_home]:
                stop_agent(home)
            kill_marked(str(self.root))
            if self._saved_environ is not None:
                os.environ.clear()
                os.environ.update(self._saved_environ)
                self._saved_environ = None

    def __enter__(self) -> "RayCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in ("Z", "X")


def stop_agent(home: Path, timeout: float = 5.0) -> None:
    """Stops the rtenv agent of `home`, if one is running (SIGTERM, then SIGKILL)."""
    try:
        pid = int((home / "agent.pid").read_text().strip())
    except (OSError, ValueError):
        return
    _terminate([pid], timeout)


def marked_pids(marker_value: str) -> list[int]:
    """Live processes (other than this one) whose environment has MARKER=marker_value."""
    needle = f"{MARKER}={marker_value}".encode() + b"\0"
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{d}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ + b"\0" and _alive(int(d)):
            out.append(int(d))
    return out


def kill_marked(marker_value: str, timeout: float = 5.0) -> None:
    _terminate(marked_pids(marker_value), timeout)


def _terminate(pids: list[int], timeout: float) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextlib.contextmanager
def driver_connected(rc: "RayCluster", root: Path, job_env: Mapping):
    """Starts `rc`, connects this process as its driver with `job_env`, and yields; afterwards
    disconnects, stops the cluster, removes `root`, and fails if any process of the cluster is
    left running."""
    import ray

    rc.start()
    try:
        ray.init(address=rc.address, runtime_env=dict(job_env), logging_level="WARNING",
                 log_to_driver=False)
        yield rc
    finally:
        try:
            ray.shutdown()
        finally:
            rc.stop()
            left = marked_pids(str(root))
            shutil.rmtree(root, ignore_errors=True)
            assert not left, f"processes of the test cluster left running: {left}"
