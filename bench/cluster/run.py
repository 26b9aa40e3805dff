#!/usr/bin/env python3
"""Benchmark rtenv across machines: a client, three nodes and a store machine, each a network
namespace on this machine (tests/cluster/netns.py; needs root), with moto's S3 server or rtenv's
blob server (`rtenv store serve`) as the store and a package index on the store machine.

  a. submit bytes  A project-like working_dir (default 2,000 files, 20 MiB: mostly source-like
                   text, 2% binaries holding 40% of the bytes) packed on the client with a fresh
                   RTENV_HOME and an empty store: bytes sent over the client's link (its eth0
                   counters) for the first submit, and for a re-submit after one file changed;
                   then what node0 receives to run it, before and after the change. Peer: the
                   same directory zipped whole (`zip -r -q`), which is what Ray uploads for a
                   working_dir, on the first submit and again after any change.
  b. cold pip env  10 packages new to the cluster (10 wheels, 300 KiB to 1 MiB each, from the
                   index on the store machine), resolved on the client (not timed), then
                   `rtenv run -e <locked spec> -- python -c "import ..."` on fresh nodes:
                   on node0 alone, and on node0..2 at once (the time until all three are done);
                   each on fresh nodes (the run starts the agent and probes the interpreter)
                   and on nodes that are up (agent running, interpreter probed: a cluster that
                   has run jobs before), since three fresh nodes on two cores also compete for
                   the CPU in their start-up, which real machines do not share.
                   Also counted: `uv pip install` runs on the nodes (a logging uv wrapper) and
                   wheel downloads from the index. Target: 3 nodes <= 1.3x one node.

The namespaces' links are veth pairs without a bandwidth cap: the byte counts are the figures
that carry over to a real network; times are those of this machine's loopback-speed links.

Each case is repeated --runs times (default 3) with the order of one node / three nodes
alternating; cells are medians (min-max). Prints a markdown report to stdout, progress to
stderr. Exits 1 if a run fails, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "cluster"))
sys.path.insert(1, str(REPO / "tests" / "e2e"))
import common  # noqa: E402
from common import cpu_pressure_us  # noqa: E402
from netns import (  # noqa: E402
    PY, STORE_KINDS, Cluster, ClusterError, Node, StoreServers, netns_unusable_reason,
)
from pyindex import build_wheel, find_uv  # noqa: E402
from trees import source_tree  # noqa: E402

DEFAULT_RTENV = REPO / "build" / "src" / "cli" / "rtenv"
MIB = 1 << 20
TARGET_RATIO = 1.3


def log(msg: str) -> None:
    print(f"[bench/cluster] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


class Samples:
    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}

    def add(self, key: str, v: float) -> None:
        self.values.setdefault(key, []).append(v)

    def med(self, key: str) -> float:
        return statistics.median(self.values[key])

    def cell(self, key: str, fmt=lambda v: f"{v:.0f}") -> str:
        vs = self.values.get(key)
        if not vs:
            return "n/a"
        if fmt(min(vs)) == fmt(max(vs)):
            return fmt(statistics.median(vs))
        return f"{fmt(statistics.median(vs))} ({fmt(min(vs))}–{fmt(max(vs))})"


def kib(v: float) -> str:
    return f"{v / 1024:,.0f} KiB" if v < 10 * MIB else f"{v / MIB:,.1f} MiB"


def check(p: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if p.returncode != 0:
        raise Failed(f"{what} failed (exit {p.returncode}):\n{p.stderr}")
    return p


# ---------------------------------------------------------------------------- a. submit bytes


def change_one_file(tree: Path, rep: int) -> Path:
    """Rewrites one source file (a different one each repetition) with new bytes of the same
    size."""
    files = sorted(tree.rglob("mod*.py"))
    target = files[(rep * 7919) % len(files)]
    data = bytearray(target.read_bytes())
    data[: min(64, len(data))] = f"# changed in repetition {rep} {time.time_ns()}\n".encode()[:64]\
        .ljust(min(64, len(data)), b"#")
    target.write_bytes(bytes(data))
    return target


def submit_bytes(cluster: Cluster, servers: StoreServers, kind: str, rtenv: str, scratch: Path,
                 tree: Path, rep: int, s: Samples) -> None:
    work = scratch / f"submit-{kind}-{rep}"
    if kind == "http":  # an empty store each repetition
        servers.kill("http")
        servers.start_blob_server(work / "blob-root")
    store_env = servers.env(kind, f"bench-submit-{rep}-{time.time_ns()}")
    client = cluster.node("client", rtenv, work / "client", store_env)
    node = cluster.node("node0", rtenv, work / "node0", store_env)
    try:
        def submit(label: str) -> dict:
            before = client.machine.link_bytes()[1]
            t = time.monotonic()
            out = client.pack(tree)
            s.add(f"{kind}:{label}:ms", (time.monotonic() - t) * 1000)
            s.add(f"{kind}:{label}:sent", client.machine.link_bytes()[1] - before)
            s.add(f"{kind}:{label}:blobs", out["blobs_uploaded"])
            return out

        def fetch(label: str, uri: str) -> None:
            before = node.machine.link_bytes()[0]
            t = time.monotonic()
            check(node.run({"working_dir": uri}, "true"), f"run on node0 ({label})")
            s.add(f"{kind}:{label}:ms", (time.monotonic() - t) * 1000)
            s.add(f"{kind}:{label}:received", node.machine.link_bytes()[0] - before)

        first = submit("first")
        fetch("fetch-first", first["uri"])
        changed = change_one_file(tree, rep)
        os.utime(changed, (time.time() - 100, time.time() - 100))
        second = submit("resubmit")
        fetch("fetch-resubmit", second["uri"])
    finally:
        client.stop_agent()
        node.stop_agent()


def zip_size(tree: Path, scratch: Path, s: Samples) -> None:
    out = scratch / "ray-working-dir.zip"
    t = time.monotonic()
    check(subprocess.run(["zip", "-r", "-q", str(out), "."], cwd=tree, capture_output=True,
                         text=True), "zip -r")
    s.add("zip:ms", (time.monotonic() - t) * 1000)
    s.add("zip:bytes", out.stat().st_size)
    out.unlink()


# ---------------------------------------------------------------------------- b. cold pip env


def make_packages(index_dir: Path, tag: str, seed: int) -> tuple[list[str], list[str]]:
    """Ten new packages in the index, named after `tag`; (names, wheel file names)."""
    rng = random.Random(f"{seed}:{tag}")
    names, wheels = [], []
    for i in range(10):
        name = f"bc{tag}p{i:02d}"
        size = int(300 * 1024 * (1024 / 300) ** rng.random())  # log-uniform 300 KiB .. 1 MiB
        wheels.append(build_wheel(index_dir, name, "1.0", payload_bytes=size).name)
        names.append(name)
    return names, wheels


IMPORT = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"


def bring_up(node: Node, index_url: str) -> None:
    """A node that is up: its agent running and the base interpreter probed, as on a cluster
    that has run jobs before. An env of no packages does that without asking the index."""
    empty = {"pip": {"packages": [f"--index-url {index_url}"], "locked": True, "python": PY}}
    check(node.rtenv("env", "create", "-e", json.dumps(empty)), f"bringing {node.name} up")


def cold_env(cluster: Cluster, servers: StoreServers, kind: str, rtenv: str, uv: str,
             scratch: Path, rep: int, case: str, seed: int, s: Samples) -> None:
    n = 1 if case.startswith("one") else 3
    tag = f"{kind[0]}{rep}{case[0]}{'u' if case.endswith('-up') else ''}{os.getpid() % 1000}"
    names, wheels = make_packages(servers.index_dir, tag, seed)
    work = scratch / f"env-{kind}-{rep}-{case}"
    store_env = servers.env(kind, f"bench-env-{tag}-{time.time_ns()}")
    client = cluster.node("client", rtenv, work / "client", store_env)
    client.extra_env["RTENV_UV"] = uv
    nodes = [cluster.node(m.name, rtenv, work / m.name, store_env) for m in cluster.nodes[:n]]
    for node in nodes:
        node.log_installs(uv)
    try:
        if case.endswith("-up"):
            for node in nodes:
                bring_up(node, servers.index_url)
        spec = client.lock({"pip": [f"--index-url {servers.index_url}", *names]})
        downloads_before = len(servers.index_downloads())
        t = time.monotonic()
        procs = [node.popen("run", "-e", json.dumps(spec), "--", "python", "-c", IMPORT, *names)
                 for node in nodes]
        for node, proc in zip(nodes, procs):
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise Failed(f"cold env on {node.name} failed (exit {proc.returncode}):\n{err}")
        s.add(f"{kind}:env-{case}:ms", (time.monotonic() - t) * 1000)
        s.add(f"{kind}:env-{case}:installs", sum(len(node.installs()) for node in nodes))
        got = servers.index_downloads()[downloads_before:]
        s.add(f"{kind}:env-{case}:downloads", sum(1 for w in got if w in wheels))
        s.add(f"{kind}:env-{case}:wheels", len(wheels))
    finally:
        for node in [client, *nodes]:
            node.stop_agent()


# ---------------------------------------------------------------------------- report


def zip_version() -> str:
    """"Zip 3.0 (July 5th 2008)" from `zip -v`."""
    for line in common.command_output(["zip", "-v"]).splitlines():
        if line.startswith("This is Zip"):
            return line.removeprefix("This is ").split(",")[0]
    return "zip (version unknown)"


def render(args, s: Samples, m: dict, tree_files: int, tree_bytes: int, load: dict,
           kinds: list[str]) -> str:
    out = []
    out.append(f"`{' '.join(['bench/cluster/run.py', *sys.argv[1:]])}` on "
               f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    out.append("")
    out.append(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']}; "
               f"rtenv binary built {m['built']}, work tree at {m['commit']}; "
               f"{zip_version()}.")
    out.append("")
    out.append(f"Cluster: client, 3 nodes and a store machine, each a network namespace with a "
               f"veth link to one bridge (no bandwidth cap). Each cell: median (min–max) of "
               f"{args.runs} runs.")
    out.append("")
    out.append(f"Load: load average {load['start']:.1f} at the start, {load['end']:.1f} at the "
               f"end; runnable tasks waited for a CPU {load['psi']} of the time (PSI cpu some).")
    out.append("")
    out.append(f"**a. Submitting a working_dir** ({tree_files:,} files, {tree_bytes / MIB:.1f} "
               f"MiB; zipped whole: {s.cell('zip:bytes', kib)}). Bytes over the client's link "
               "(sent) and node0's link (received).")
    out.append("")
    out.append("| store | case | rtenv bytes | Ray (zip of the dir) | rtenv / zip | blobs | ms |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    zipb = s.med("zip:bytes")
    for kind in kinds:
        for label, key, what in (("first submit", "first", "sent"),
                                 ("re-submit, 1 file changed", "resubmit", "sent"),
                                 ("node0 fetches (first)", "fetch-first", "received"),
                                 ("node0 fetches (after change)", "fetch-resubmit", "received")):
            k = f"{kind}:{key}:{what}"
            if k not in s.values:
                continue
            ratio = s.med(k) / zipb
            blobs = s.cell(f"{kind}:{key}:blobs") if what == "sent" else ""
            out.append(f"| {kind} | {label} | {s.cell(k, kib)} | {kib(zipb)} | {ratio:.3f} | "
                       f"{blobs} | {s.cell(f'{kind}:{key}:ms')} |")
    out.append("")
    out.append("**b. Cold pip env, 10 packages** (10 wheels, resolved on the client beforehand): "
               f"wall time until every node ran the job; target 3 nodes <= {TARGET_RATIO}x one.")
    out.append("")
    out.append("| store | nodes | ms | 3 nodes / 1 | `uv pip install` runs | wheel downloads "
               "(of 10) |")
    out.append("| --- | --- | --- | --- | --- | --- |")
    for kind in kinds:
        for up, nodes_label in (("", "fresh"), ("-up", "up")):
            one, three = f"{kind}:env-one{up}:ms", f"{kind}:env-three{up}:ms"
            if one not in s.values:
                continue
            ratio = s.med(three) / s.med(one) if three in s.values else float("nan")
            verdict = "met" if ratio <= TARGET_RATIO else "missed"
            for case, label in (("one", "1"), ("three", "3 at once")):
                k = f"{kind}:env-{case}{up}"
                cell_ratio = f"{ratio:.2f} ({verdict})" if case == "three" else ""
                out.append(f"| {kind} | {label}, {nodes_label} | {s.cell(k + ':ms')} | "
                           f"{cell_ratio} | {s.cell(k + ':installs')} | "
                           f"{s.cell(k + ':downloads')} |")
    out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="Benchmark rtenv on a cluster of network "
                                 "namespaces (needs root); prints a markdown report.")
    ap.add_argument("--rtenv", type=Path, default=DEFAULT_RTENV,
                    help=f"rtenv binary (default: {DEFAULT_RTENV.relative_to(REPO)})")
    ap.add_argument("--runs", "-n", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--files", type=int, default=2000, help="working_dir files (default 2000)")
    ap.add_argument("--mb", type=float, default=20, help="working_dir MiB (default 20)")
    ap.add_argument("--stores", default=",".join(STORE_KINDS),
                    help="store kinds, comma-separated (default s3,http)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--quick", action="store_true",
                    help="1 repetition, 500 files / 5 MiB, the blob server only")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.files, args.mb, args.stores = 1, 500, 5, "http"
    kinds = [k for k in args.stores.split(",") if k]
    if any(k not in STORE_KINDS for k in kinds) or args.runs < 1:
        print(f"--stores takes {', '.join(STORE_KINDS)}; --runs at least 1", file=sys.stderr)
        return 2
    reason = netns_unusable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    rtenv = args.rtenv.resolve()
    if not os.access(rtenv, os.X_OK):
        print(f"rtenv binary {rtenv} not found; build it (bash "
              f"scripts/build.sh) or pass --rtenv", file=sys.stderr)
        return 2
    uv = find_uv(PY)

    scratch = Path(tempfile.mkdtemp(prefix="rtenv-bench-cluster-"))
    s = Samples()
    try:
        with Cluster.create(nodes=3) as cluster:
            servers = StoreServers.start(cluster, str(rtenv), scratch / "store-machine", kinds)
            try:
                tree = scratch / "project"
                log(f"generating {args.files} files, {args.mb} MiB")
                tree_bytes = source_tree(tree, args.files, int(args.mb * MIB), args.seed)
                m = common.machine(rtenv)
                psi0, t0 = cpu_pressure_us(), time.monotonic()
                load = {"start": os.getloadavg()[0]}
                for rep in range(args.runs):
                    zip_size(tree, scratch, s)
                    for kind in kinds:
                        log(f"run {rep + 1}/{args.runs}, {kind}: submit bytes")
                        submit_bytes(cluster, servers, kind, str(rtenv), scratch, tree, rep, s)
                        cases = ("one", "three", "one-up", "three-up")
                        if rep % 2:
                            cases = tuple(reversed(cases))
                        for case in cases:
                            log(f"run {rep + 1}/{args.runs}, {kind}: cold env on {case} node(s)")
                            cold_env(cluster, servers, kind, str(rtenv), uv, scratch, rep, case,
                                     args.seed, s)
                psi1, t1 = cpu_pressure_us(), time.monotonic()
                load["end"] = os.getloadavg()[0]
                load["psi"] = (f"{(psi1 - psi0) / 1e6 / (t1 - t0):.0%}"
                               if psi0 is not None and psi1 is not None else "n/a")
            finally:
                servers.stop()
        print(render(args, s, m, args.files, tree_bytes, load, kinds))
        return 0
    except Failed as e:
        print(f"bench/cluster: {e}", file=sys.stderr)
        return 1
    except ClusterError as e:
        print(f"bench/cluster: setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
