#!/usr/bin/env python3
"""Benchmark conda env creation by `rtenv run` (runtime_env `conda`), against py-rattler driven by
hand, measured in the same run on the same local channel.

Nothing comes from a conda server: the script builds the bench channel of tests/e2e/condachannel.py
(`bench_channel`: bench1 -> bench2 -> ... -> bench5, each a generic package of 8 files, 256 KiB of
incompressible bytes; installing bench1 installs all five) in a temp dir and reads it as
`file://`. The spec is `{"conda": {"channels": [file://CHANNEL], "dependencies": ["bench1"]}}`,
the command `true`.

Each repetition (--runs, default 5) runs these jobs in an order that rotates from one repetition to
the next:

  rattler direct (the peer)
         one fresh `python -c CODE` process doing what a user of py-rattler does by hand:
         `import rattler`, `rattler.solve` of bench1 against the channel, `rattler.install` of
         the records into a fresh prefix, with a fresh package cache, a fresh repodata cache and
         a fresh $HOME. The whole process is timed, interpreter start and import included; it
         leaves with os._exit(0) as rtenv's helper does (py-rattler 0.28 sometimes crashes in
         the interpreter's shutdown).
  rtenv cold
         a fresh RTENV_HOME (and $HOME), RTENV_PYTHON=the peer's interpreter: `rtenv run -e SPEC
         -- true` starts the node agent on demand and has it solve the env into a lock (the
         agent's conda helper process, started then), then install the lock with the same
         helper and activate the env. Then, in that RTENV_HOME:
         cache hit  the same run again (env installed), alternated with `true` alone.
  rtenv cold env, node up
         one RTENV_HOME for all repetitions whose agent was started (`rtenv agent`, not timed)
         before the first one and stays up, with one untimed run first (so the interpreter is
         known and the agent's conda helper started, as on any node after its first conda env;
         an idle helper leaves after 5 minutes); before each timed run, conda/envs,
         conda/pkgs, conda/repodata and locks/ are emptied: no lock, no env, no cached package or
         repodata, as a node that is up meets an env it has never seen.
  helper steps (not a row of the comparison: where rtenv's time goes)
         rtenv's conda helper (src/env/fields/conda_helper.py) run directly, a fresh process for
         one `solve` request and another for one `install` (what a node's first conda env pays
         for the helper's start), with fresh caches;
         `python -c pass`, and `python -c "import rattler"` (with the helper's other imports);
         and the peer's code timing its import, solve and install from inside.

After each cold run (not timed), `rtenv run -e SPEC -- sh -c ...` checks that $CONDA_PREFIX has
5 records in conda-meta/ and bench5's last file; the peer's prefix is checked the same way. After
each timed rtenv run (before the check, which would overwrite them), the agent's per-resource
timings are read from `rtenv env list --json`.

rtenv's CPU time is that of `rtenv run` and its children plus the agent's (user+sys of the agent
and the children it reaped, from /proc/<pid>/stat), since the agent does the installing.

Targets (reported, not enforced): rtenv cold and rtenv cold env, node up <= 1.2x rattler direct
(medians; rtenv's time includes running `true`, about 1 ms); cache hit <= 10 ms over `true` alone
(medians).

Prints a markdown report to stdout, progress to stderr. Exits 1 if an rtenv run fails (its stderr
is printed) or an env lacks a package, 2 on a setup error. Python 3 standard library and py-rattler.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "bench" / "python"))
import common  # noqa: E402
from common import children_cpu_ms, command_output, cpu_pressure_us  # noqa: E402
from condachannel import bench_channel, channel_url  # noqa: E402
# The pip benchmark's measuring tools: timed runs, samples, clean environments, the agent's pid.
from run import (CheckError, RunFailed, Sample, Samples, SetupError, agent_pid,  # noqa: E402
                 clean_env, empty_dir, fresh_home, is_rtenv_process, proc_cpu_ms, run_timed,
                 wait_gone)

DEFAULT_RTENV = REPO / "build" / "src" / "cli" / "rtenv"
HELPER = REPO / "src" / "env" / "fields" / "conda_helper.py"
KIB = 1 << 10

PACKAGES = 5
PACKAGE_BYTES = 256 * KIB
TOP = "bench1"
COMMAND = ["true"]

# Targets.
TARGET_COLD_VS_PEER = 1.2
TARGET_HIT_MS = 10.0

# The peer: what a py-rattler user writes by hand. argv: channel URL, prefix, package cache,
# repodata cache. virtual_packages=[] as rtenv's helper passes (generic packages need none). It
# leaves with os._exit, as rtenv's helper does: with py-rattler 0.28, about one interpreter
# shutdown in seven after a successful install dies of SIGSEGV or SIGABRT.
PEER_CODE = """\
import asyncio, os, sys
import rattler
channel, prefix, pkgs, repodata = sys.argv[1:5]
async def main():
    records = await rattler.solve(sources=[channel], specs=["bench1"],
                                  gateway=rattler.Gateway(cache_dir=repodata),
                                  platforms=["linux-64", "noarch"], virtual_packages=[])
    await rattler.install(records, target_prefix=prefix, cache_dir=pkgs, show_progress=False)
asyncio.run(main())
os._exit(0)
"""

# The helper's imports (conda_helper.py's top), without running anything; it leaves as the
# helper does (os._exit: no interpreter shutdown).
IMPORT_CODE = ("import asyncio, hashlib, json, os, sys, urllib.parse, urllib.request\n"
               "import rattler\nfrom rattler import Gateway, LockFile\nos._exit(0)\n")

# The peer's steps timed inside one process: prints {"import": ms, "solve": ms, "install": ms}.
SPLIT_CODE = """\
import time
t0 = time.perf_counter()
import asyncio, json, os, sys
import rattler
channel, prefix, pkgs, repodata = sys.argv[1:5]
ms = {"import": (time.perf_counter() - t0) * 1000}
async def main():
    t = time.perf_counter()
    records = await rattler.solve(sources=[channel], specs=["bench1"],
                                  gateway=rattler.Gateway(cache_dir=repodata),
                                  platforms=["linux-64", "noarch"], virtual_packages=[])
    ms["solve"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    await rattler.install(records, target_prefix=prefix, cache_dir=pkgs, show_progress=False)
    ms["install"] = (time.perf_counter() - t) * 1000
asyncio.run(main())
print(json.dumps(ms), flush=True)
os._exit(0)
"""

# Run in the env: prints how many records conda-meta/ holds; fails unless bench<N>'s files are
# there.
CHECK_SCRIPT = (f'set -- "$CONDA_PREFIX"/conda-meta/*.json; echo "$#"; '
                f'test -f "$CONDA_PREFIX/share/bench{PACKAGES}/data7.bin"')


def log(msg: str) -> None:
    print(f"[bench/conda] {msg}", file=sys.stderr, flush=True)


def check_prefix(prefix: Path, what: str) -> None:
    records = sorted((prefix / "conda-meta").glob("*.json"))
    if len(records) != PACKAGES or not (prefix / f"share/bench{PACKAGES}/data7.bin").is_file():
        raise CheckError(f"{what}: {prefix} holds {len(records)} conda-meta records "
                         f"({', '.join(r.name for r in records)}), expected {PACKAGES} "
                         f"and share/bench{PACKAGES}/data7.bin")


# --------------------------------------------------------------------------------------------
# The peer and the helper steps


class Direct:
    def __init__(self, py: str, channel: str, scratch: Path, s: Samples):
        self.py, self.channel, self.scratch, self.s = py, channel, scratch, s
        self.helper = HELPER.read_text()

    def env_for(self, d: Path) -> dict:
        env = clean_env()
        env.update(fresh_home(d))
        return env

    def peer(self, rep: int) -> None:
        d = self.scratch / f"peer-{rep}"
        env = self.env_for(d)
        prefix = d / "prefix"
        x = run_timed("rattler direct", [self.py, "-c", PEER_CODE, self.channel, prefix,
                                         d / "pkgs", d / "repodata"], env)
        self.s.add("peer.wall", x.wall)
        self.s.add("peer.cpu", x.cpu)
        check_prefix(prefix, "rattler direct")
        log(f"rep {rep + 1}: rattler direct {x.wall:.0f} ms")

    def steps(self, rep: int) -> None:
        """rtenv's helper run directly, and the interpreter's start and imports alone."""
        d = self.scratch / f"helper-{rep}"
        env = self.env_for(d)
        lock = d / "lock.yml"
        for key, code in (("py.pass", "pass"), ("py.import", IMPORT_CODE)):
            x = run_timed(f"python -c {key}", [self.py, "-c", code], env)
            self.s.add(f"{key}.wall", x.wall)
            self.s.add(f"{key}.cpu", x.cpu)
        solve = {"channels": [self.channel], "specs": [TOP], "platform": "linux-64",
                 "repodata_cache": str(d / "repodata"), "lock_path": str(lock)}
        install = {"lock_path": str(lock), "prefix": str(d / "prefix"),
                   "package_cache": str(d / "pkgs"), "platform": "linux-64"}
        for verb, req in (("solve", solve), ("install", install)):
            x = self.helper_call(verb, req, env)
            self.s.add(f"helper.{verb}.wall", x.wall)
            self.s.add(f"helper.{verb}.cpu", x.cpu)
        check_prefix(d / "prefix", "helper install")
        x = run_timed("rattler steps in one process", [self.py, "-c", SPLIT_CODE, self.channel,
                                                      d / "split", d / "split-pkgs",
                                                      d / "split-repodata"], env, capture=True)
        for step, ms in json.loads(x.stdout).items():
            self.s.add(f"split.{step}.wall", ms)
        log(f"rep {rep + 1}: helper solve {self.s.data['helper.solve.wall'][-1]:.0f} ms, "
            f"install {self.s.data['helper.install.wall'][-1]:.0f} ms; python -c pass "
            f"{self.s.data['py.pass.wall'][-1]:.0f} ms, imports "
            f"{self.s.data['py.import.wall'][-1]:.0f} ms")

    def helper_call(self, verb: str, req: dict, env: dict) -> Sample:
        """One request to a fresh helper (its start and imports included), as rtenv's first
        request in a process pays them: the request line on stdin, then end of input."""
        cmd = [self.py, "-c", self.helper, "60"]
        cpu0 = children_cpu_ms()
        t0 = time.perf_counter()
        p = subprocess.run(cmd, env=env, input=json.dumps({"verb": verb, "request": req}) + "\n",
                           capture_output=True, text=True)
        wall = (time.perf_counter() - t0) * 1000
        cpu = children_cpu_ms() - cpu0
        answer = p.stdout.splitlines()[0] if p.stdout else ""
        if p.returncode != 0 or not answer or "error" in json.loads(answer):
            raise RunFailed(f"helper {verb}", ["python", "-c", "<conda_helper.py>", "60"],
                            p.returncode, p.stdout, p.stderr)
        return Sample(wall, cpu)


# --------------------------------------------------------------------------------------------
# rtenv


class Rtenv:
    def __init__(self, binary: Path, py: str, channel: str, scratch: Path, s: Samples,
                 hit_runs: int):
        self.binary, self.py, self.scratch, self.s = binary, py, scratch, s
        self.hit_runs = hit_runs
        self.spec = json.dumps({"conda": {"channels": [channel], "dependencies": [TOP]}},
                               separators=(",", ":"))
        self.agents: list[subprocess.Popen] = []  # agents started here in the foreground
        self.homes: list[Path] = []
        self.up_env: dict | None = None  # the "node up" RTENV_HOME's environment

    def env_for(self, d: Path) -> dict:
        env = clean_env()
        env.update(fresh_home(d), RTENV_HOME=str(d / "rtenv-home"), RTENV_PYTHON=self.py,
                   RTENV_AGENT_IDLE_EXIT="300")  # an agent left behind by a crash goes away
        self.homes.append(d / "rtenv-home")
        return env

    def run(self, case: str, env: dict, command: list[str]) -> Sample:
        return run_timed(f"rtenv run ({case})", [self.binary, "run", "-e", self.spec, "--",
                                                 *command], env, capture=True)

    def check(self, case: str, env: dict) -> Path:
        """The env has the 5 packages (not timed); returns its prefix."""
        cmd = [str(self.binary), "run", "-e", self.spec, "--", "sh", "-c",
               CHECK_SCRIPT + '; echo "$CONDA_PREFIX"']
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = p.stdout.split()
        if p.returncode != 0 or len(lines) != 2 or lines[0] != str(PACKAGES):
            raise CheckError(f"rtenv ({case}): the env lacks a package (exit {p.returncode}; "
                             f"conda-meta records: {lines[:1]}):\n{p.stdout}{p.stderr.strip()}")
        prefix = Path(lines[1])
        home = Path(env["RTENV_HOME"])
        if prefix.parent != home / "conda" / "envs":
            raise CheckError(f"rtenv ({case}): CONDA_PREFIX {prefix} is not under "
                             f"{home / 'conda' / 'envs'}")
        return prefix

    def agent_timings(self, env: dict, key: str) -> None:
        """The agent's timings of the env just made (`rtenv env list --json`)."""
        p = subprocess.run([str(self.binary), "env", "list", "--json"], env=env,
                           capture_output=True, text=True)
        try:
            envs = json.loads(p.stdout)["envs"]
        except (ValueError, KeyError, TypeError):
            log(f"note: `rtenv env list --json` gave no envs (exit {p.returncode})")
            return
        for e in envs:
            for t in e.get("timings", []):
                if t["phase"].startswith("install conda"):
                    self.s.add(f"{key}.agent.install", t["ms"])

    def measure_cold(self, rep: int) -> None:
        s = self.s
        d = self.scratch / f"rtenv-cold-{rep}"
        env = self.env_for(d)
        home = Path(env["RTENV_HOME"])
        try:
            x = self.run("cold", env, COMMAND)
            agent_cpu = proc_cpu_ms(agent_pid(home)) or 0.0
            s.add("cold.wall", x.wall)
            s.add("cold.cpu", x.cpu + agent_cpu)
            self.agent_timings(env, "cold")
            self.check("cold", env)
            log(f"rep {rep + 1}: rtenv cold {x.wall:.1f} ms")

            base_env = clean_env()
            for i in range(self.hit_runs):
                pair = [("hit", lambda: self.run("cache hit", env, COMMAND)),
                        ("cmd", lambda: run_timed("true", COMMAND, base_env))]
                for name, fn in pair if i % 2 == 0 else pair[::-1]:
                    y = fn()
                    s.add(f"{name}.wall", y.wall)
                    s.add(f"{name}.cpu", y.cpu)
            hit = statistics.median(s.data["hit.wall"][-self.hit_runs:])
            cmd = statistics.median(s.data["cmd.wall"][-self.hit_runs:])
            log(f"rep {rep + 1}: rtenv cache hit {hit:.1f} ms, true {cmd:.1f} ms")
        finally:
            self.stop_agent(home)

    # ---- node up

    def start_node(self) -> None:
        """The "node up" RTENV_HOME: its agent started, one untimed run (the interpreter is known
        from then on)."""
        d = self.scratch / "rtenv-up"
        env = self.env_for(d)
        home = Path(env["RTENV_HOME"])
        home.mkdir(parents=True)
        self.start_agent(home, env, d / "agent.log")
        x = self.run("node up, first env (not timed)", env, COMMAND)
        self.check("node up, first env", env)
        log(f"node up: agent started, first env {x.wall:.0f} ms (not timed)")
        self.up_env = env

    def measure_up(self, rep: int) -> None:
        s, env = self.s, self.up_env
        home = Path(env["RTENV_HOME"])
        for sub in ("conda/envs", "conda/pkgs", "conda/repodata", "locks"):
            if (home / sub).is_dir():
                empty_dir(home / sub)
        agent = agent_pid(home)
        c0 = proc_cpu_ms(agent)
        x = self.run("cold env, node up", env, COMMAND)
        c1 = proc_cpu_ms(agent)
        s.add("up.wall", x.wall)
        s.add("up.cpu", x.cpu + (c1 - c0 if c0 is not None and c1 is not None else 0))
        self.agent_timings(env, "up")
        self.check("cold env, node up", env)
        log(f"rep {rep + 1}: rtenv cold env, node up {x.wall:.1f} ms")

    def start_agent(self, home: Path, env: dict, log_path: Path) -> None:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen([str(self.binary), "agent", "--idle-exit", "0"], env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.agents.append(proc)
        sock_path = str(home / "agent.sock")
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise SetupError(f"`rtenv agent` exited ({proc.returncode}); see {log_path}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.connect(sock_path)
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"`rtenv agent` did not listen on {sock_path} within 10 s")
            time.sleep(0.005)

    def stop_agent(self, home: Path) -> None:
        """Stops the agent of this RTENV_HOME (started by `rtenv run` or by start_agent)."""
        pid = agent_pid(home)
        env = dict(clean_env(), RTENV_HOME=str(home))
        subprocess.run([str(self.binary), "agent", "stop"], env=env, capture_output=True)
        if pid is not None:
            wait_gone(pid, 10)
        for proc in list(self.agents):  # ours: reap them
            if pid is not None and proc.pid != pid:
                continue
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.agents.remove(proc)

    def stop_all(self) -> None:
        for home in self.homes:
            if agent_pid(home) is not None and is_rtenv_process(agent_pid(home)):
                self.stop_agent(home)
        for proc in self.agents:
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
        self.agents.clear()


# --------------------------------------------------------------------------------------------
# Report


def machine_info(py: str, rtenv: Path | None) -> dict:
    return {
        **common.machine(rtenv),
        "python": command_output([py, "-c", "import platform; print(platform.python_version())"]),
        "rattler": command_output([py, "-c", "import importlib.metadata as m; "
                                   "print(m.version('py-rattler'))"]),
    }


def render(args, s: Samples, m: dict, load: dict, measured_rtenv: bool, channel: str,
           channel_bytes: int) -> str:
    L: list[str] = []
    L.append(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']}; "
             f"Python {m['python']} ({args.python}), py-rattler {m['rattler']}; rtenv binary "
             f"built {m['built']}, work tree now at {m['commit']}.")
    L.append("")
    L.append(f"Channel: {channel} (tests/e2e/condachannel.py `bench_channel`): bench1 -> ... -> "
             f"bench{PACKAGES}, {PACKAGES} generic packages of 8 files, "
             f"{channel_bytes / KIB:.0f} KiB of .tar.bz2 in all; spec `{{\"conda\": "
             f"{{\"channels\": [CHANNEL], \"dependencies\": [\"{TOP}\"]}}}}`, command `true`. "
             f"Each cell: median (min–max) of {args.runs} runs; jobs alternated, each from cold "
             f"(fresh caches and prefix). Cache hits: {args.hit_runs} per run, alternated with "
             f"`true` alone.")
    L.append("")
    la, lb = load["before"], load["after"]
    psi = (f"; runnable tasks waited for a CPU {load['psi']:.0f}% of the time (PSI cpu some)"
           if load.get("psi") is not None else "")
    L.append(f"Load: load average {la[0]:.1f} at the start, {lb[0]:.1f} at the end of the "
             f"{load['seconds']:.0f} s of measurements{psi}.")
    L.append("")

    L.append("| case | wall ms | CPU ms | notes |")
    L.append("| --- | --- | --- | --- |")

    def row(label: str, key: str, note: str = "", fmt: str = "{:.0f}") -> None:
        if s.has(f"{key}.wall"):
            L.append(f"| {label} | {s.cell(f'{key}.wall', fmt)} | {s.cell(f'{key}.cpu', fmt)} | "
                     f"{note} |")

    row("**rattler direct**: `python -c 'import rattler; solve; install'`", "peer",
        "one process, fresh prefix, package and repodata caches")
    if measured_rtenv:
        row("rtenv cold: `rtenv run -e SPEC -- true`", "cold",
            "fresh RTENV_HOME; starts the agent; CPU includes the agent's")
        row("rtenv cold env, node up", "up",
            "agent running, interpreter known; no lock, env, package or repodata cached")
        row("`true` alone", "cmd", "", "{:.1f}")
        row("rtenv cache hit (command included)", "hit", "", "{:.1f}")
    L.append("")

    if s.has("helper.solve.wall"):
        L.append("Where the time goes (the same run, alternated with the jobs above):")
        L.append("")
        L.append("| step | wall ms | CPU ms | notes |")
        L.append("| --- | --- | --- | --- |")
        row("`python -c pass`", "py.pass", "the interpreter's start (and shutdown)")
        row("`python -c 'import rattler'`", "py.import",
            "start + the helper's imports (asyncio, hashlib, urllib, rattler), then os._exit")
        for step, what in (("import", "`import rattler` (and asyncio)"),
                           ("solve", "`rattler.solve`"), ("install", "`rattler.install`")):
            if s.has(f"split.{step}.wall"):
                L.append(f"| in one process (the peer's code, timed inside): {what} | "
                         f"{s.cell(f'split.{step}.wall')} | | |")
        row("a fresh helper's `solve` (`python -c conda_helper.py`, one request)", "helper.solve",
            "start + import + solve + write the lock: what the agent's first conda env pays")
        row("a fresh helper's `install`", "helper.install",
            "start + import + read the lock + sha256 of the packages + install")
        for key, what in (("cold", "rtenv cold"), ("up", "rtenv cold env, node up")):
            if s.has(f"{key}.agent.install"):
                v = s.data[f"{key}.agent.install"]
                L.append(f"| {what}: the agent's `install conda` phase (`rtenv env list --json`) "
                         f"| {statistics.median(v):.0f} ({min(v):.0f}–{max(v):.0f}) | | install "
                         f"helper + activation + sizing |")
        if s.has("up.agent.install") and s.has("up.wall"):
            up = s.med("up.wall")
            inst = statistics.median(s.data["up.agent.install"])
            L.append(f"| rtenv cold env, node up, minus the agent's `install conda` phase "
                     f"(medians) | {up - inst:.0f} | | the solve in the agent's warm helper, and "
                     f"rtenv's own work: the front, its exec of rtenv-full, the agent calls, "
                     f"the command |")
        L.append("")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "**FAIL**"

    L.append("| target | result | verdict |")
    L.append("| --- | --- | --- |")
    peer = s.med("peer.wall")
    if not measured_rtenv:
        L.append(f"| (rtenv not measured: --peers-only); rattler direct | {peer:.0f} ms | — |")
        return "\n".join(L)
    for key, what in (("cold", "rtenv cold"), ("up", "rtenv cold env, node up")):
        v = s.med(f"{key}.wall")
        L.append(f"| {what} <= {TARGET_COLD_VS_PEER:g}× rattler direct | {v:.0f} ms vs "
                 f"{peer:.0f} ms = {v / peer:.2f}× | {verdict(v <= TARGET_COLD_VS_PEER * peer)} |")
    hit, cmd = s.med("hit.wall"), s.med("cmd.wall")
    L.append(f"| rtenv cache hit <= {TARGET_HIT_MS:g} ms over `true` (medians) | {hit:.1f} − "
             f"{cmd:.1f} = +{hit - cmd:.1f} ms | {verdict(hit - cmd <= TARGET_HIT_MS)} |")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark conda env creation (runtime_env conda) by rtenv against py-rattler "
        "driven by hand on a local channel; prints a markdown report.")
    ap.add_argument("--rtenv", type=Path, default=DEFAULT_RTENV,
                    help=f"rtenv binary (default: {DEFAULT_RTENV.relative_to(REPO)})")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter with py-rattler, for the peer and as RTENV_PYTHON "
                    "(default: this one)")
    ap.add_argument("--runs", "-n", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--hit-runs", type=int, default=10,
                    help="cache-hit runs (and as many `true` runs) per repetition (default 10)")
    ap.add_argument("--quick", action="store_true", help="2 repetitions, 5 cache-hit runs each")
    ap.add_argument("--peers-only", action="store_true", help="measure rattler direct only")
    ap.add_argument("--json-out", type=Path, help="also write raw samples as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.hit_runs = 2, 5
    if args.runs < 1 or args.hit_runs < 1:
        print("--runs and --hit-runs must be at least 1", file=sys.stderr)
        return 2

    py = args.python if os.sep in args.python else (shutil.which(args.python) or args.python)
    py = str(Path(py).absolute())
    args.python = py
    if subprocess.run([py, "-c", "import rattler"], capture_output=True).returncode != 0:
        print(f"--python {py}: cannot import rattler; scripts/setup.sh installs py-rattler",
              file=sys.stderr)
        return 2
    rtenv_bin = None
    if not args.peers_only:
        rtenv_bin = args.rtenv.resolve()
        if not os.access(rtenv_bin, os.X_OK):
            print(f"rtenv binary {rtenv_bin} not found; build it first:\n  BUILD_DIR=build "
                  f"NINJA_TARGETS=\"rtenv rtenv-full rtenv-agent\" bash scripts/build.sh\n(or "
                  f"pass --rtenv, or --peers-only)", file=sys.stderr)
            return 2

    scratch = Path(tempfile.mkdtemp(prefix="rtenv-bench-conda-"))
    rtenv: Rtenv | None = None
    try:
        s = Samples()
        root = bench_channel(scratch / "channel", count=PACKAGES, size=PACKAGE_BYTES)
        channel = channel_url(root)
        channel_bytes = sum(p.stat().st_size for p in root.glob("*/*.tar.bz2"))
        log(f"channel {channel}: {PACKAGES} packages, {channel_bytes / KIB:.0f} KiB")
        direct = Direct(py, channel, scratch, s)
        jobs = [direct.peer]
        if rtenv_bin is not None:
            rtenv = Rtenv(rtenv_bin, py, channel, scratch, s, args.hit_runs)
            rtenv.start_node()
            jobs += [rtenv.measure_cold, rtenv.measure_up]
        jobs.append(direct.steps)
        m = machine_info(py, rtenv_bin)

        load = {"before": os.getloadavg()}
        psi0, t0 = cpu_pressure_us(), time.perf_counter()
        for rep in range(args.runs):
            k = rep % len(jobs)
            for job in jobs[k:] + jobs[:k]:
                job(rep)
        load["after"] = os.getloadavg()
        elapsed = time.perf_counter() - t0
        psi1 = cpu_pressure_us()
        load["seconds"] = elapsed
        load["psi"] = (psi1 - psi0) / 1e6 / elapsed * 100 if psi0 is not None and psi1 else None

        if args.json_out:
            args.json_out.write_text(json.dumps({"samples": s.data, "machine": m, "load": load},
                                                indent=1))
        print(render(args, s, m, load, rtenv is not None, channel, channel_bytes))
        return 0
    except RunFailed as e:
        what = "rtenv run failed" if e.case.startswith("rtenv") else "a peer command failed"
        print(f"{what}: {e}", file=sys.stderr)
        return 1 if e.case.startswith("rtenv") else 2
    except CheckError as e:
        print(f"CHECK FAILED: {e}", file=sys.stderr)
        return 1
    except SetupError as e:
        print(f"setup failed: {e}", file=sys.stderr)
        return 2
    finally:
        if rtenv is not None:
            rtenv.stop_all()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
