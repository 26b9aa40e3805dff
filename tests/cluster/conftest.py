"""Fixtures of the cluster tests: a client, three nodes and a store machine, each a network
namespace on this machine (netns.py), with moto's S3 server, rtenv's blob server and a package
index running on the store machine.

The namespaces and servers live for the whole session; every test gets fresh machines' homes
(its own RTENV_HOME per node, so its own agent, packages and uv cache) and its own S3 prefix.
Tests run once per store kind (`store_kind`: "s3", "http").

Needs root (ip netns); without it every test is skipped with the reason. The binary is
$RTENV_BIN, or <repo>/build/src/cli/rtenv.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "e2e"))

from netns import (  # noqa: E402
    PY, STORE_KINDS, Cluster, Node, StoreServers, netns_unusable_reason,
)
from pyindex import find_uv  # noqa: E402

REPO = HERE.parents[1]
UV = find_uv(PY)


def _binary() -> Path:
    return Path(os.environ.get("RTENV_BIN", str(REPO / "build" / "src" / "cli" / "rtenv")))


@pytest.fixture(scope="session")
def rtenv_bin() -> str:
    path = _binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"rtenv binary not found at {path}: build it (scripts/build.sh) or set "
                    "RTENV_BIN", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def cluster():
    reason = netns_unusable_reason()
    if reason:
        pytest.skip(reason)
    with Cluster.create(nodes=3) as c:
        yield c


@pytest.fixture(scope="session")
def servers(cluster, rtenv_bin, tmp_path_factory):
    s = StoreServers.start(cluster, rtenv_bin, tmp_path_factory.mktemp("store-machine"))
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request, servers) -> str:
    # A test that killed a server and failed before restarting it must not take the next ones
    # down with it.
    proc = servers.server(request.param)
    if proc is None or proc.poll() is not None:
        servers.restart(request.param)
    return request.param


def _slug(request) -> str:
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[-40:]


@pytest.fixture
def store_env(servers, store_kind, request) -> dict[str, str]:
    digest = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    return servers.env(store_kind, f"{_slug(request)}-{digest}")


class Machines:
    """The test's view of the cluster: rtenv on the client and on every node."""

    def __init__(self, client: Node, nodes: list[Node]):
        self.client = client
        self.nodes = nodes

    def all(self) -> list[Node]:
        return [self.client, *self.nodes]


@pytest.fixture
def machines(cluster, servers, store_env, rtenv_bin, tmp_path):
    client = cluster.node("client", rtenv_bin, tmp_path / "client", store_env)
    nodes = [cluster.node(m.name, rtenv_bin, tmp_path / m.name, store_env) for m in cluster.nodes]
    m = Machines(client, nodes)
    for n in m.all():
        n.log_installs(UV)
    try:
        yield m
    finally:
        for n in m.all():
            n.stop_agent()
