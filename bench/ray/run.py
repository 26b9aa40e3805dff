#!/usr/bin/env python3
"""Benchmark Ray tasks whose runtime_env Ray prepares natively (`pip`, `uv`, `working_dir`)
against the same envs prepared by rtenv (the `rtenv` field: rtenv.ray.runtime_env on the
driver, rtenv.ray.RtenvPlugin and each node's rtenv agent on the nodes), in the same run, on the
same two-node cluster (tests/ray/raycluster.py: head + w1 on 127.0.0.1, each node its own
$RTENV_HOME, one shared store directory), from the same local package index (tests/e2e/pyindex.py
on 127.0.0.1, pages `Cache-Control: max-age=600`, METADATA served as PyPI does).

Every number is the time to first result: from building the runtime_env on the driver (rtenv:
the helper's pack + lock; Ray: nothing, Ray packs working_dir when the task is submitted) to
`ray.get` returning the task's result, with the task placed on one node by a custom resource.
The task imports every package of its env and checks its version (and the working_dir module's
value), so a wrong env fails the run.

Cases, on each node (head, w1), for each peer:
  cold 1 / cold 10   an env never seen before: 1 package (1 MiB wheel) or 10 (~0.5 MiB each),
                     names fresh in every repetition, so no cache anywhere holds them.
  warm, new job      a new driver (ray.shutdown + ray.init, not timed) runs a task with the
                     10-package env the node installed earlier in the repetition.
  warm, Ray restarted
                     the cluster stopped and started again (new Ray session; rtenv homes, the
                     store and the peers' cache directories kept), then the same 10-package env:
                     rtenv finds it on the node; Ray's envs lived in the old session.
  working_dir new to the node
                     a 2,000-file working_dir (~2 KiB a file), as a job-level env of a new
                     driver (Ray takes a local working_dir only in ray.init): `ray.init` is
                     timed too. Its content is new to the node (one file differs from the last
                     version any peer submitted).
  resubmit           one file of it changed, a new driver submits again (timed the same way).

Peers: Ray `pip` ({"pip": {"packages": [...], "pip_install_options": [Ray's defaults +
"--index-url", URL]}}), Ray `uv` ({"uv": {"packages": [...], "uv_pip_install_options": ["--no-cache",
"--index-url", URL]}}), and `working_dir` as a local path. rtenv: {"rtenv": {...}} from
`rtenv.ray.runtime_env(working_dir=..., pip=["--index-url URL", ...])`.

Targets (reported, not enforced), rtenv against Ray `pip` (medians): cold >= 2x, warm >= 5x,
resubmit >= 10x faster.

Prints a markdown report to stdout (and with --doc, replaces the "## Ray (bench/ray)" section of
docs/benchmarks.md with it), progress to stderr. Exits 1 if a task fails or sees a wrong env.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "ray"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "bench"))
import raycluster  # noqa: E402  (before ray: keeps the cluster on 127.0.0.1)
import common  # noqa: E402
from common import cpu_pressure_us  # noqa: E402
from pyindex import PackageIndex, build_wheel, find_uv  # noqa: E402
from raycluster import RayCluster, node_resource  # noqa: E402

DEFAULT_RTENV = REPO / "build" / "src" / "cli" / "rtenv"
KIB, MIB = 1 << 10, 1 << 20
PEERS = ("ray-pip", "ray-uv", "rtenv")
NODES = ("head", "w1")
TARGETS = {"cold1": 2.0, "cold10": 2.0, "warm_job": 5.0, "warm_restart": 5.0, "resubmit": 10.0}
CASES = [
    ("cold1", "cold, 1 package"),
    ("cold10", "cold, 10 packages"),
    ("warm_job", "warm: new job, env on the node"),
    ("warm_restart", "warm: Ray restarted, env on the node"),
    ("wd_first", "2,000-file working_dir, new to the node"),
    ("resubmit", "resubmit after changing 1 of 2,000 files"),
]
DOC_SECTION = "## Ray (bench/ray)"


def log(msg: str) -> None:
    print(f"[bench/ray] {msg}", file=sys.stderr, flush=True)


class CheckError(Exception):
    pass


# ---------------------------------------------------------------------------- workload


def make_set(out: Path, index: PackageIndex, tag: str, n: int) -> list[str]:
    """n fresh projects on the index (1: one 1 MiB wheel; else ~0.5 MiB each); their names."""
    names = []
    for i in range(n):
        name = f"rb-{tag}-{i:02d}"
        size = MIB if n == 1 else 384 * KIB + (i * 37 * KIB) % (256 * KIB)
        index.add(build_wheel(out, name, "1.0", payload_bytes=size))
        names.append(name)
    return names


def make_working_dir(root: Path, files: int) -> Path:
    wd = root / "project"
    for i in range(files - 1):
        p = wd / f"pkg{i % 40:02d}" / f"file{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"file {i}\n" + "x" * 2000 + "\n")
    (wd / "bench_wd.py").write_text('VALUE = "v0"\n')
    past = time.time() - 100  # settled files, as a checkout would be
    for dirpath, dirnames, filenames in os.walk(wd):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (past, past))
    return wd


_CHECK = None


def _check_task():
    """The task every case runs: imports its packages, reports their versions and the
    working_dir module's value. Defined once (a new remote function costs an export)."""
    global _CHECK
    if _CHECK is None:
        import ray

        @ray.remote(num_cpus=1)
        def check(modules):
            import importlib

            out = {m: importlib.import_module(m).__version__ for m in modules}
            try:
                import bench_wd

                out["bench_wd"] = bench_wd.VALUE
            except ImportError:
                pass
            return out

        _CHECK = check
    return _CHECK


class Bench:
    def __init__(self, args, root: Path, index: PackageIndex, rtenv_bin: str):
        self.args = args
        self.root = root
        self.index = index
        self.rtenv_bin = rtenv_bin
        self.dists = root / "dists"
        self.samples: dict[str, list[float]] = {}
        self.cluster: RayCluster | None = None
        self.wd_value = 0

    # ---- cluster

    def start_cluster(self) -> None:
        import ray

        c = RayCluster(
            self.root / "cluster", rtenv_bin=self.rtenv_bin, nodes={n: 2 for n in NODES},
            uv=self.args.uv,
            extra_env={"PIP_CACHE_DIR": str(self.root / "pip-cache"),
                       "UV_CACHE_DIR": str(self.root / "uv-cache-ray"),
                       "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        t = time.monotonic()
        c.start()
        self.cluster = c
        ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
        log(f"cluster up in {time.monotonic() - t:.1f} s")

    def stop_cluster(self) -> None:
        import ray

        ray.shutdown()
        if self.cluster is not None:
            # Keep the homes: a restarted node finds what it installed.
            self.cluster.stop()
            self.cluster = None

    def new_job(self) -> None:
        import ray

        ray.shutdown()
        ray.init(address=self.cluster.address, logging_level="ERROR", log_to_driver=False)

    # ---- envs

    def env_for(self, peer: str, reqs: list[str], wd: Path | None) -> dict:
        import rtenv.ray

        url = self.index.url
        if peer == "none":
            return {}
        if peer == "rtenv":
            return rtenv.ray.runtime_env(
                working_dir=str(wd) if wd else None,
                pip=[f"--index-url {url}", *reqs] if reqs else None)
        env: dict = {}
        if reqs and peer == "ray-pip":
            env["pip"] = {"packages": reqs, "pip_install_options": [
                "--disable-pip-version-check", "--no-cache-dir", "--index-url", url]}
        elif reqs and peer == "ray-uv":
            env["uv"] = {"packages": reqs, "uv_pip_install_options": [
                "--no-cache", "--index-url", url]}
        if wd:
            env["working_dir"] = str(wd)
        return env

    def timed(self, key: str, peer: str, node: str, reqs: list[str], wd: Path | None = None,
              expect_wd: str | None = None, job_level: bool = False) -> float:
        import ray

        check = _check_task()
        modules = [r.replace("-", "_") for r in reqs]
        job_level = job_level or wd is not None
        if job_level:
            # Ray takes a local working_dir only at the job level: each submission of changed
            # code is a new job (as rerunning a driver script is), for both peers.
            ray.shutdown()
        t0 = time.perf_counter()
        env = self.env_for(peer, reqs, wd)
        if job_level:
            ray.init(address=self.cluster.address, runtime_env=env or None, logging_level="ERROR",
                     log_to_driver=False)
            ref = check.options(resources={node_resource(node): 1}).remote(modules)
        else:
            ref = check.options(runtime_env=env,
                                resources={node_resource(node): 1}).remote(modules)
        try:
            got = ray.get(ref, timeout=self.args.timeout)
        except Exception as e:  # noqa: BLE001 - report what failed and stop
            raise CheckError(f"{key} {peer} on {node}: {type(e).__name__}: {e}") from None
        ms = (time.perf_counter() - t0) * 1000
        want = {m: "1.0" for m in modules}
        if expect_wd is not None:
            want["bench_wd"] = expect_wd
        if {k: got.get(k) for k in want} != want:
            raise CheckError(f"{key} {peer} on {node}: the task saw {got}, expected {want}")
        self.samples.setdefault(f"{key}.{peer}.{node}", []).append(ms)
        log(f"{key:12s} {peer:8s} {node:4s} {ms:8.0f} ms")
        return ms

    # ---- one repetition

    def repetition(self, r: int) -> None:
        peers = list(PEERS[r % 3:] + PEERS[:r % 3])  # rotate who goes first
        ten = 3 if self.args.quick else 10
        sets: dict[tuple[str, str], list[str]] = {}
        self.start_cluster()
        try:
            for node in NODES:
                for peer in peers:
                    one = make_set(self.dists, self.index, f"{r}{peer[-3:]}{node}1", 1)
                    self.timed("cold1", peer, node, one)
                    many = make_set(self.dists, self.index, f"{r}{peer[-3:]}{node}t", ten)
                    self.timed("cold10", peer, node, many)
                    sets[(peer, node)] = many
            self.new_job()
            for node in NODES:
                for peer in peers:
                    self.timed("warm_job", peer, node, sets[(peer, node)])
                # The floor: what a new worker costs with no env at all, in the same job (task
                # cases), and with a new job (working_dir cases, ray.init timed).
                self.timed("floor_task", "none", node, [])
                self.timed("floor_job", "none", node, [], job_level=True)
            for node in NODES:
                for peer in peers:
                    self.timed("wd_first", peer, node, [], self.wd, self.wd_text())
                    self.wd_value += 1
                    (self.wd / "bench_wd.py").write_text(f'VALUE = "{self.wd_text()}"\n')
                    self.timed("resubmit", peer, node, [], self.wd, self.wd_text())
                    self.wd_value += 1
                    (self.wd / "bench_wd.py").write_text(f'VALUE = "{self.wd_text()}"\n')
        finally:
            self.stop_cluster()
        self.start_cluster()
        try:
            for node in NODES:
                for peer in peers:
                    self.timed("warm_restart", peer, node, sets[(peer, node)])
        finally:
            self.stop_cluster()

    def wd_text(self) -> str:
        return f"v{self.wd_value}"

    def run(self) -> None:
        self.wd = make_working_dir(self.root, self.args.files)
        for r in range(self.args.runs):
            log(f"repetition {r + 1}/{self.args.runs}")
            self.repetition(r)

    # ---- report

    def med(self, key: str) -> float | None:
        v = self.samples.get(key)
        return statistics.median(v) if v else None


def render(b: Bench, args, machine: dict, load: dict, ray_version: str) -> str:
    L = []
    L.append(f"{DOC_SECTION}")
    L.append("")
    L.append("Time to first result of a Ray task whose runtime_env Ray prepares itself (`pip`, "
             "`uv`, `working_dir`) or rtenv prepares (the `rtenv` field: `rtenv.ray.runtime_env` "
             "on the driver, the plugin and each node's rtenv agent on the nodes), on one "
             "two-node cluster on this machine (head + w1, each node its own RTENV_HOME, one "
             "shared store directory), same local package index. Includes building the env on "
             "the driver (rtenv: pack + lock) and starting the worker; the working_dir cases "
             "are job-level envs (Ray takes a local working_dir only in `ray.init`), so they "
             "include `ray.init` of a new driver. Medians of "
             f"{args.runs} repetition(s); every cold case uses packages never seen before. "
             "See bench/ray/run.py for what each case does.")
    L.append("")
    L.append(f"- Command: `python3 bench/ray/run.py{' --quick' if args.quick else ''}"
             f"{f' --runs {args.runs}' if not args.quick and args.runs != 3 else ''}` "
             f"({'--quick: 3 packages for the ten-package cases, 1 repetition' if args.quick else 'default settings'}"
             f"; working_dir of {args.files} files)")
    L.append(f"- Ray {ray_version}; Python {sys.version.split()[0]}; "
             f"{machine['nproc']} cores ({machine['cpu']}), {machine['mem']}, Linux "
             f"{machine['kernel']}; commit {machine['commit']}, rtenv built {machine['built']}")
    psi = (f"; runnable tasks waited for a CPU {load['psi']:.0f}% of the time"
           if load.get("psi") is not None else "")
    L.append(f"- Load average {load['before']:.1f} at the start, {load['after']:.1f} at the end "
             f"of {load['seconds']:.0f} s{psi} (a shared machine).")
    L.append("")
    L.append("| case | node | Ray pip ms | Ray uv ms | rtenv ms | Ray pip / rtenv | "
             "Ray uv / rtenv | over the floor: Ray pip / rtenv | target (vs Ray pip) |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    verdicts = []
    for key, label in CASES:
        for node in NODES:
            pip = b.med(f"{key}.ray-pip.{node}")
            uv = b.med(f"{key}.ray-uv.{node}")
            rt = b.med(f"{key}.rtenv.{node}")
            if rt is None:
                continue

            def ms(v):
                return f"{v:.0f}" if v is not None else "—"

            def ratio(v):
                return f"{v / rt:.1f}×" if v is not None and rt else "—"

            floor = b.med(f"{'floor_job' if key in ('wd_first', 'resubmit') else 'floor_task'}"
                          f".none.{node}")
            if floor is not None and pip is not None:
                over = f"{pip - floor:.0f} / {max(rt - floor, 1):.0f} ms = " \
                       f"{(pip - floor) / max(rt - floor, 1):.1f}×"
            else:
                over = "—"
            target = TARGETS.get(key)
            if target is not None and pip is not None:
                ok = pip / rt >= target
                verdicts.append(ok)
                tcell = f"≥ {target:g}×: {'PASS' if ok else '**FAIL**'}"
            else:
                tcell = "—"
            L.append(f"| {label} | {node} | {ms(pip)} | {ms(uv)} | {ms(rt)} | {ratio(pip)} | "
                     f"{ratio(uv)} | {over} | {tcell} |")
    floors = []
    for key, label in (("floor_task", "a new worker with no env (task cases)"),
                       ("floor_job", "`ray.init` + a new worker with no env (working_dir cases)")):
        cells = ", ".join(f"{n} {b.med(f'{key}.none.{n}'):.0f} ms" for n in NODES
                          if b.med(f"{key}.none.{n}") is not None)
        floors.append(f"{label}: {cells}")
    L.append("")
    L.append("Floors (medians): " + "; ".join(floors) + ".")
    L.append("")
    L.append("\"Over the floor\" subtracts what the same task costs with no env at all (a new "
             "worker; for the working_dir cases also `ray.init` of a new driver): the part of "
             "the time each peer's env preparation adds. Targets are judged on the whole time.")
    L.append("")
    L.append("Ray `pip` and `uv` pass Ray's default install options (`--no-cache-dir`, "
             "`--no-cache`) plus `--index-url`; their envs live in the Ray session's "
             "runtime_resources directory, so a restarted Ray installs them again. For the "
             "same env in a new job, Ray's own URI cache answers both Ray's fields and the "
             "`rtenv` field without installing anything: the time there is mostly the new "
             "worker's start.")
    return "\n".join(L)


def write_doc(text: str) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    old = doc.read_text()
    start = old.find("\n" + DOC_SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    else:
        rest = old[start + 1:]
        m = re.search(r"^## ", rest[len(DOC_SECTION):], flags=re.M)
        end = start + 1 + len(DOC_SECTION) + m.start() if m else len(old)
        new = old[:start + 1] + text + "\n" + ("\n" + old[end:] if m else "")
    doc.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtenv", type=Path, default=Path(os.environ.get("RTENV_BIN", DEFAULT_RTENV)),
                    help="rtenv binary (default: $RTENV_BIN, else build/src/cli/rtenv)")
    ap.add_argument("--runs", "-n", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--files", type=int, default=2000, help="working_dir files (default 2000)")
    ap.add_argument("--timeout", type=float, default=600, help="per task, seconds")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 repetition, 3 packages instead of 10")
    ap.add_argument("--doc", action="store_true",
                    help=f"write the report into docs/benchmarks.md ({DOC_SECTION})")
    ap.add_argument("--json-out", type=Path, help="also write the raw samples as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.quick:
        args.runs = 1
    rtenv_bin = str(args.rtenv.absolute())
    if not os.access(rtenv_bin, os.X_OK):
        print(f"rtenv binary {rtenv_bin} not found; build it (scripts/build.sh) or pass --rtenv",
              file=sys.stderr)
        return 2
    args.uv = find_uv(sys.executable)
    import ray

    root = Path(tempfile.mkdtemp(prefix="rtbench-", dir="/tmp"))  # short: Ray's socket paths
    machine = common.machine(Path(rtenv_bin))
    psi0, t0, la0 = cpu_pressure_us(), time.monotonic(), os.getloadavg()[0]
    rc = 0
    try:
        with PackageIndex(root / "index", max_age=600) as index:
            b = Bench(args, root, index, rtenv_bin)
            b.run()
    except CheckError as e:
        print(f"CHECK FAILED: {e}", file=sys.stderr)
        rc = 1
    finally:
        left = raycluster.marked_pids(str(root / "cluster"))
        raycluster.kill_marked(str(root / "cluster"))
        if left:
            log(f"ended {len(left)} process(es) of the cluster that were left")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if rc:
        return rc
    seconds = time.monotonic() - t0
    psi1 = cpu_pressure_us()
    load = {"before": la0, "after": os.getloadavg()[0], "seconds": seconds,
            "psi": (psi1 - psi0) / 1e4 / seconds if psi0 is not None and psi1 is not None
            else None}
    text = render(b, args, machine, load, ray.__version__)
    print(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(b.samples, indent=1))
    if args.doc:
        write_doc(text)
        log("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
