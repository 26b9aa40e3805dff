#!/usr/bin/env python3
"""Benchmark rtenv under Slurm: the time from `srun -N2 ...` until the tasks on both nodes have
printed their first line, on a real Slurm on this host (tests/slurm/slurmcluster.py: slurmctld,
munged and two slurmd as the nodes n1 and n2; needs root and scripts/setup.sh's Slurm).

The job imports the packages of its env (wheels of --kib KiB each, from a package index on
127.0.0.1) and prints a line; one env per size in --packages (default 5 and 40 packages, no
package shared between them). Cases, all in the same run, each env's peers alternating which goes
first each repetition:

  floor        srun -N2 python3 -c 'print(...)'  (no env: what Slurm and Python cost)
  rtenv cold   srun -N2 --runtime-env='{"pip": [pins]}' python3 -c 'import ...; print(...)'
               with an empty store, fresh node homes and a fresh submitting home: the lock on
               the submitting side, then on both nodes at once the venv (one node builds it, the
               other fetches it from the store, docs/cluster.md)
  rtenv warm   the same again (another job, the env on the nodes already)
  uv cold      the common practice: the job script makes its own venv,
               srun -N2 bash -c 'uv venv V && uv pip install --python V pins && V/bin/python ...'
               with an empty uv cache on each node
  uv warm      the same with the nodes' uv caches warm (a new venv per job, as such scripts do)

Cells are medians (min-max) over --runs (default 3), in ms; "over floor" subtracts the floor's
median. The plugin is configured as docs/slurm.md says (a node-local home per node, a shared
directory store); each cold repetition points the plugin at new homes and a new store by
rewriting plugstack.conf, which Slurm reads at each step. Prints a markdown report to stdout,
progress to stderr. Exits 1 if a run fails, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "slurm"))
sys.path.insert(1, str(REPO / "tests" / "e2e"))
import common  # noqa: E402
from pyindex import PackageIndex, build_wheel, find_uv, logging_uv  # noqa: E402
from slurmcluster import NODES, SlurmCluster, SlurmUnavailable, missing_programs  # noqa: E402

DEFAULT_RTENV = REPO / "build" / "src" / "cli" / "rtenv"
PY = sys.executable or "python3"


def log(msg: str) -> None:
    print(f"[bench/slurm] {msg}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


def first_lines_ms(cluster: SlurmCluster, argv: list[str], env: dict, cwd: Path,
                   marker: str, timeout: float = 600) -> float:
    """Runs argv; returns the ms until `marker` lines from both nodes were printed (and checks it
    exits 0)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=cluster.env(env), cwd=cwd)
    seen: set[str] = set()
    done_ms = None
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    while done_ms is None and time.monotonic() - t0 < timeout:
        if not sel.select(timeout=1):
            if p.poll() is not None:
                break
            continue
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(marker):
            seen.add(line.split()[1])
            if seen >= set(NODES):
                done_ms = (time.monotonic() - t0) * 1000
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0 or done_ms is None:
        raise Failed(f"{' '.join(argv[:4])} ... exited {p.returncode}, lines from {sorted(seen)}:"
                     f"\n{err[-3000:]}")
    return done_ms


class Bench:
    def __init__(self, args, scratch: Path, rtenv: Path, plugin: Path):
        self.args = args
        self.scratch = scratch
        self.rtenv = rtenv
        self.plugin = plugin
        self.uv = find_uv(PY)
        self.samples: dict[str, list[float]] = {}
        self.sizes = [int(n) for n in str(args.packages).split(",") if n]
        self.specs: dict[str, str] = {}
        self.cluster = SlurmCluster(scratch / "slurm", plugstack="", cpus=2)
        self.work = scratch / "work"
        self.work.mkdir()
        self.base_env = {k: v for k, v in os.environ.items()
                         if not k.startswith(("RTENV_", "PYTHON", "PIP_", "UV_", "SLURM_"))}
        self.base_env.update(RTENV_PYTHON=PY, RTENV_UV=self.uv, UV_HTTP_RETRIES="0")

    def add(self, key: str, ms: float) -> None:
        self.samples.setdefault(key, []).append(ms)

    def configure(self, generation: str) -> dict:
        """Points the plugin at new node homes and a new store (plugstack.conf is read at each
        step); returns the submitting side's environment for them."""
        root = self.scratch / generation
        root.mkdir()
        self.cluster.plugstack.write_text(
            f"required {self.plugin} rtenv={self.rtenv} home={root}/nodes/%n/%u "
            f"RTENV_STORE={root}/store\n")
        # rtenv's uv through a stand-in that logs its calls: venv builds are counted.
        uv, self.uv_log = logging_uv(root, self.uv)
        return dict(self.base_env, RTENV_HOME=str(root / "submit"), RTENV_UV=str(uv))

    def venv_installs(self) -> int:
        if not self.uv_log.exists():
            return 0
        return sum(1 for line in self.uv_log.read_text().splitlines()
                   if line.startswith("pip install"))

    def packages(self, index: PackageIndex) -> dict[int, list[str]]:
        """Pins of one env per size: sizes share no package, so each env is cold in its turn."""
        out = self.scratch / "dists"
        envs = {}
        for size in self.sizes:
            pins = []
            for i in range(size):
                name = f"bench{size}pkg{i}"
                index.add(build_wheel(out, name, "1.0", payload_bytes=self.args.kib * 1024))
                pins.append(f"{name}==1.0")
            envs[size] = pins
        return envs

    def cases(self, size: int, pins: list[str], index_url: str, env: dict, rep: int):
        imports = ", ".join(p.split("==")[0] for p in pins)
        script = f"import os, {imports}; print('FIRST', os.environ['SLURMD_NODENAME'])"
        spec = json.dumps({"pip": [f"--index-url {index_url}", *pins]})
        self.specs[str(size)] = spec
        # A uv cache per node (as on separate machines), named in the job's shell.
        uv_cache = self.scratch / f"uv-cache-{size}-{rep}"
        uv_job = (f"export UV_CACHE_DIR={uv_cache}/$SLURMD_NODENAME; "
                  f"V={self.work}/venv-$SLURMD_NODENAME-$SLURM_JOB_ID; "
                  f"{self.uv} venv -q --python {PY} $V && "
                  f"{self.uv} pip install -q --python $V/bin/python --index-url {index_url} "
                  f"{' '.join(pins)} && $V/bin/python -c \"{script}\"")
        rtenv_argv = ["srun", "-N2", f"--runtime-env={spec}", "python3", "-c", script]
        uv_argv = ["srun", "-N2", "bash", "-c", uv_job]
        return [(f"{size}:rtenv cold", rtenv_argv), (f"{size}:rtenv warm", rtenv_argv),
                (f"{size}:uv cold", uv_argv), (f"{size}:uv warm", uv_argv)]

    def run(self) -> None:
        self.cluster.start()
        floor = ["srun", "-N2", PY, "-c", "import os; print('FIRST', os.environ['SLURMD_NODENAME'])"]
        with PackageIndex() as index:
            envs = self.packages(index)
            for rep in range(self.args.runs):
                env = self.configure(f"gen{rep}")
                self.measure("floor", floor, env, rep)
                for size, pins in envs.items():
                    cases = self.cases(size, pins, index.url, env, rep)
                    # Alternate which peer goes first; cold always before its warm.
                    if rep % 2:
                        cases = cases[2:] + cases[:2]
                    for name, argv in cases:
                        self.measure(name, argv, env, rep)
                self.stop_agents(f"gen{rep}")

    def measure(self, name: str, argv: list[str], env: dict, rep: int) -> None:
        log(f"run {rep + 1}/{self.args.runs}: {name}")
        before = self.venv_installs()
        self.add(name, first_lines_ms(self.cluster, argv, env, self.work, "FIRST"))
        if "rtenv" in name:
            self.add(f"{name}:installs", self.venv_installs() - before)
        if "rtenv cold" in name:
            self.node_phases(name, env, rep)

    def node_phases(self, name: str, env: dict, rep: int) -> None:
        """Where a cold env's time went: the agents' own timing of the venv on each node (the node
        that built it and the one that fetched it), and the submitting side's resolve alone (the
        same spec with a fresh home and store, not the one the job used)."""
        root = self.scratch / f"gen{rep}"
        venv_ms = []
        for n in NODES:
            e = dict(env, RTENV_HOME=str(root / "nodes" / n / "root"), RTENV_STORE=str(root / "store"))
            r = subprocess.run([str(self.rtenv), "env", "list", "--json"], env=e,
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise Failed(f"env list on {n}: {r.stderr}")
            created = max(json.loads(r.stdout)["envs"], key=lambda x: x["created_ms"])
            venv_ms += [t["ms"] for t in created["timings"] if t["phase"].startswith("install pip")]
        if len(venv_ms) == 2:
            self.add(f"{name}:venv built", max(venv_ms))
            self.add(f"{name}:venv fetched", min(venv_ms))
        spec = self.specs[name.split(":")[0]]
        fresh = self.scratch / f"resolve-{name.split(':')[0]}-{rep}"
        e = dict(env, RTENV_HOME=str(fresh / "home"), RTENV_STORE=str(fresh / "store"))
        t0 = time.monotonic()
        r = subprocess.run([str(self.rtenv), "env", "create", "--no-install", "-e", spec], env=e,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise Failed(f"resolving on the submitting side: {r.stderr}")
        self.add(f"{name}:resolve", (time.monotonic() - t0) * 1000)

    def stop_agents(self, generation: str) -> None:
        root = self.scratch / generation
        for n in NODES:
            e = dict(self.base_env, RTENV_HOME=str(root / "nodes" / n / "root"))
            subprocess.run([str(self.rtenv), "agent", "stop"], env=e, capture_output=True,
                           timeout=120)

    def cell(self, key: str, minus: float = 0.0) -> str:
        vs = [v - minus for v in self.samples.get(key, [])]
        if not vs:
            return "n/a"
        med = statistics.median(vs)
        if len(vs) == 1:
            return f"{med:.0f}"
        return f"{med:.0f} ({min(vs):.0f}–{max(vs):.0f})"

    def med(self, key: str) -> float:
        return statistics.median(self.samples[key])

    def render(self, machine: dict, load: dict) -> str:
        floor = self.med("floor")
        slurm_version = subprocess.run(["srun", "--version"], capture_output=True, text=True,
                                       env=self.cluster.env()).stdout.strip() or "unknown"
        sizes = ",".join(map(str, self.sizes))
        out = [
            "## Slurm: time from `srun -N2` to the first line on both nodes",
            "",
            f"Machine: {machine['nproc']} cores, {machine['cpu']}, {machine['mem']}; kernel "
            f"{machine['kernel']}; commit {machine['commit']}; {slurm_version}; load "
            f"{load['start']:.2f} -> {load['end']:.2f}.",
            f"Job: N packages of {self.args.kib} KiB each from a package index on 127.0.0.1, "
            "all imported, one line printed; 2 nodes on one host; "
            f"{self.args.runs} runs, medians (min–max), ms. Command: `python3 bench/slurm/run.py"
            f" --runs {self.args.runs} --packages {sizes} --kib {self.args.kib}`.",
            "",
            f"Floor (`srun -N2 python3 -c 'print(...)'`, no env): {self.cell('floor')} ms.",
            "",
            "| packages | case | to first line | over floor | rtenv / uv, over floor | venv builds |",
            "|---|---|---|---|---|---|",
        ]
        for size in self.sizes:
            for temp in ("cold", "warm"):
                r, u = f"{size}:rtenv {temp}", f"{size}:uv {temp}"
                ratio = (self.med(r) - floor) / max(self.med(u) - floor, 1e-9)
                out.append(f"| {size} | rtenv, {temp} env | {self.cell(r)} | "
                           f"{self.cell(r, floor)} | {ratio:.2f}× | "
                           f"{self.cell(r + ':installs')} |")
                out.append(f"| {size} | `uv venv && uv pip install` in the job, {temp} uv cache "
                           f"| {self.cell(u)} | {self.cell(u, floor)} | | 2 |")
        out.append("")
        out.append("Where rtenv's cold env goes (ms): the submitting side's resolve (`rtenv env "
                   "create --no-install`: lock, measured alone with a fresh home), and the venv on "
                   "the node that built it and on the node that fetched it from the store (the "
                   "agents' own timings):")
        out.append("")
        out.append("| packages | resolve | venv, built | venv, fetched |")
        out.append("|---|---|---|---|")
        for size in self.sizes:
            k = f"{size}:rtenv cold"
            out.append(f"| {size} | {self.cell(k + ':resolve')} | {self.cell(k + ':venv built')} | "
                       f"{self.cell(k + ':venv fetched')} |")
        out.append("")
        out.append("Venv builds: `uv pip install` runs on the two nodes for the job (rtenv's "
                   "counted through a logging stand-in for uv; the job script installs on each "
                   "node, every job).")
        out.append("")
        return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="Benchmark rtenv's Slurm plugin against a job "
                                 "script that installs its own venv; prints a markdown report.")
    ap.add_argument("--rtenv", type=Path, default=DEFAULT_RTENV,
                    help=f"rtenv binary (default: {DEFAULT_RTENV.relative_to(REPO)})")
    ap.add_argument("--runs", "-n", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--packages", default="5,40",
                    help="env sizes (packages), comma-separated (default 5,40)")
    ap.add_argument("--kib", type=int, default=512, help="KiB of each package (default 512)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/slurm runs Slurm's daemons: it needs root", file=sys.stderr)
        return 2
    if missing_programs():
        print(f"Slurm is not installed ({', '.join(missing_programs())}): scripts/setup.sh",
              file=sys.stderr)
        return 2
    rtenv = args.rtenv.resolve()
    plugin = rtenv.parents[2] / "src" / "slurm" / "rtenv_spank.so"
    if not os.access(rtenv, os.X_OK) or not plugin.is_file():
        print(f"build rtenv and its plugin first (missing {rtenv} or {plugin})", file=sys.stderr)
        return 2
    # Short paths: agent sockets live in the node homes.
    scratch = Path(tempfile.mkdtemp(prefix="rb-", dir="/tmp"))
    bench = Bench(args, scratch, rtenv, plugin)
    try:
        m = common.machine(rtenv)
        load = {"start": os.getloadavg()[0]}
        bench.run()
        load["end"] = os.getloadavg()[0]
        print(bench.render(m, load))
        return 0
    except Failed as e:
        print(f"bench/slurm: {e}", file=sys.stderr)
        return 1
    except SlurmUnavailable as e:
        print(f"bench/slurm: Slurm did not start: {e}", file=sys.stderr)
        return 2
    finally:
        bench.cluster.stop()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
