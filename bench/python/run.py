#!/usr/bin/env python3
"""Benchmark Python env creation by `rtenv run` (runtime_env `pip`), against venv + pip and uv
measured in the same run on the same local package index.

Nothing comes from PyPI: the script builds deterministic pure-Python wheels
(tests/e2e/pyindex.py) and serves them from a PEP 503 index on 127.0.0.1 (pages say
`Cache-Control: max-age=600` as PyPI's do; METADATA files are served as PyPI does, PEP 658).
Two package sets:

  one   1 package: bench-solo 1.0, a ~1 MiB wheel.
  ten   10 top-level requirements (bench-app-00..09) whose dependency closure is 15 wheels
        (plus bench-lib-a..e, some depending on each other), 300 KiB to 2 MiB each. Every
        project also has an older 0.9 release on the index, so the resolver has a choice.

Each repetition (--runs, default 5), for each set, runs these jobs in an order that rotates from
one repetition to the next, each from cold (fresh cache dir, fresh venv dir, fresh $HOME):

  pip    `python -m venv DIR` then `DIR/bin/pip install --index-url URL PKGS`
         (PIP_CACHE_DIR fresh, PIP_DISABLE_PIP_VERSION_CHECK=1, no pip config file)
  uv     `uv venv DIR --python PY` then `uv pip install --python DIR/bin/python --index-url URL
         PKGS` (UV_CACHE_DIR fresh, no uv config file)
  rtenv  with a fresh RTENV_HOME, RTENV_PYTHON=PY and RTENV_UV=the same uv; the command is
         `python -c pass`:
         cold           `rtenv run -e '{"pip": ["--index-url URL", PKGS...]}' -- python -c pass`
         cache hit      the same again (its venv is there), alternated with `python -c pass`
                        alone (the same venv's python, found the same way through PATH)
         new env, needs resolution
                        a spec whose requirements differ in text (each gets `>=0.<n>`, n new
                        every time, always satisfied by 1.0) but resolve to the same pins: a
                        new resolution (index pages from uv's cache) and the existing venv
         new env, lock known
                        the agent stopped, `$RTENV_HOME/pyenvs/` emptied, the agent started again
                        (`rtenv agent`, so its start-up is not part of the time), then the
                        cold spec again: the venv is rebuilt from what rtenv kept
         cold env, node up
                        with that agent still running and the interpreter known to rtenv, uv's
                        cache, the locks and the venvs emptied: the cold spec again, as a node
                        that is up meets an env it has never seen
         After each rtenv run that made an env, `rtenv run ... -- python -c "import ..."` (not
         timed) checks that every package of the set is importable at the expected version.
         import in a new process
                        `python -c "import every package of the set"` with
                        PYTHONDONTWRITEBYTECODE=1 (as a worker of a job often starts), alternated
                        between rtenv's cold venv and the uv peer's venv of the same repetition:
                        what each start of a process in a warm env pays for the env's modules.

rtenv's CPU time is that of `rtenv run` and its children plus the agent's (user+sys of the agent
and the children it reaped, from /proc/<pid>/stat), since the agent does the installing.

Targets (reported, not enforced): rtenv cold <= 1.1x uv (venv + install), the command excluded;
new env with the 10 packages <= 100 ms; cache hit <= 10 ms over `python -c pass` (medians). The
ratio of venv + pip to rtenv cold is reported.

Prints a markdown report to stdout, progress to stderr. Exits 1 if an rtenv run fails (its stderr
is printed) or an env lacks a package, 2 on a setup error. Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))
import common  # noqa: E402
from common import children_cpu_ms, command_output, cpu_pressure_us  # noqa: E402
from pyindex import PackageIndex, build_wheel, find_uv  # noqa: E402

DEFAULT_RTENV = REPO / "build" / "src" / "cli" / "rtenv"
KIB = 1 << 10
MIB = 1 << 20

# Targets.
TARGET_COLD_VS_UV = 1.1
TARGET_NEW_ENV_MS = 100.0
TARGET_HIT_MS = 10.0

COMMAND = ["python", "-c", "pass"]


def log(msg: str) -> None:
    print(f"[bench/python] {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


class RunFailed(Exception):
    """A measured command failed; the message names the case and carries its output."""

    def __init__(self, case: str, cmd: list, returncode: int, stdout: str, stderr: str):
        self.case = case
        shown = " ".join(shlex.quote(str(c)) for c in cmd)
        msg = f"{case}: exit {returncode}: {shown}"
        if stdout.strip():
            msg += f"\n--- stdout:\n{stdout.rstrip()}"
        msg += f"\n--- stderr:\n{stderr.rstrip() or '(empty)'}"
        super().__init__(msg)


class CheckError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Package sets


@dataclass
class Wheel:
    name: str
    version: str
    module: str
    path: Path


@dataclass
class PackageSet:
    key: str
    label: str
    top: list[str]  # the top-level requirements
    wheels: list[Wheel] = field(default_factory=list)  # the closure (what gets installed)

    @property
    def bytes(self) -> int:
        return sum(w.path.stat().st_size for w in self.wheels)


def make_sets(out: Path, index: PackageIndex, seed: int) -> list[PackageSet]:
    rng = random.Random(seed)

    def size() -> int:  # log-uniform, 300 KiB .. 2 MiB
        return int(300 * KIB * ((2 * MIB) / (300 * KIB)) ** rng.random())

    def publish(pset: PackageSet, name: str, deps: list[str], payload: int) -> None:
        # An older release with the same dependencies, so resolving means choosing.
        index.add(build_wheel(out, name, "0.9", deps=deps))
        path = index.add(build_wheel(out, name, "1.0", deps=deps, payload_bytes=payload))
        pset.wheels.append(Wheel(name, "1.0", name.replace("-", "_"), path))

    one = PackageSet("one", "1 package", ["bench-solo"])
    publish(one, "bench-solo", [], 1 * MIB)

    ten = PackageSet("ten", "10 packages with dependencies",
                     [f"bench-app-{i:02d}" for i in range(10)])
    libs = [f"bench-lib-{c}" for c in "abcde"]
    lib_deps = {"bench-lib-b": ["bench-lib-a>=1.0"], "bench-lib-d": ["bench-lib-c>=0.5"],
                "bench-lib-e": ["bench-lib-a>=0.9,<2"]}
    for lib in libs:
        publish(ten, lib, lib_deps.get(lib, []), size())
    for i, app in enumerate(ten.top):
        deps = [f"{libs[i % 5]}>=1.0"]
        if i % 2 == 0:
            deps.append(f"{libs[(i + 2) % 5]}")
        publish(ten, app, deps, size())
    return [one, ten]


def import_check_code(pset: PackageSet) -> str:
    """Python code that prints sys.prefix and fails unless every wheel of the set is importable
    at its version."""
    mods = {w.module: w.version for w in pset.wheels}
    return ("import importlib, sys\n"
            f"for m, v in {mods!r}.items():\n"
            "    got = importlib.import_module(m).__version__\n"
            "    assert got == v, f'{m}: {got}, expected {v}'\n"
            "print(sys.prefix)\n")


# --------------------------------------------------------------------------------------------
# Measurement


@dataclass
class Sample:
    wall: float  # ms
    cpu: float  # ms, user+sys
    stdout: str = ""


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid: int | None) -> float | None:
    """user+sys of a process and of the children it reaped, or None."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(x) for x in fields[11:15]) * _TICK_MS


def empty_dir(d: Path) -> None:
    """Removes everything in `d`, keeping `d`."""
    for child in d.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def run_timed(case: str, cmd: list, env: dict, *, capture: bool = False) -> Sample:
    cpu0 = children_cpu_ms()
    t0 = time.perf_counter()
    p = subprocess.run([str(c) for c in cmd], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = (time.perf_counter() - t0) * 1000
    cpu = children_cpu_ms() - cpu0
    if p.returncode != 0:
        raise RunFailed(case, cmd, p.returncode, p.stdout if capture else "", p.stderr)
    return Sample(wall, cpu, p.stdout if capture else "")


class Samples:
    def __init__(self) -> None:
        self.data: dict[str, list[float]] = {}
        self.counts: dict[str, list[int]] = {}

    def add(self, key: str, v: float) -> None:
        self.data.setdefault(key, []).append(v)

    def count(self, key: str, v: int) -> None:
        self.counts.setdefault(key, []).append(v)

    def has(self, key: str) -> bool:
        return bool(self.data.get(key))

    def med(self, key: str) -> float:
        return statistics.median(self.data[key])

    def cell(self, key: str, fmt: str = "{:.0f}") -> str:
        v = self.data.get(key)
        if not v:
            return "n/a"
        return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}–{fmt.format(max(v))})"

    def counted(self, key: str) -> str:
        v = self.counts.get(key)
        if not v:
            return "n/a"
        lo, hi = min(v), max(v)
        return str(lo) if lo == hi else f"{lo}–{hi}"


def clean_env() -> dict:
    """The caller's environment without settings that would change pip, uv, Python or rtenv
    (PIP_FIND_LINKS, PYTHONDONTWRITEBYTECODE, RTENV_STORE, ...)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PIP_", "UV_", "PYTHON", "RTENV_", "VIRTUAL_ENV", "CONDA"))}


def fresh_home(d: Path) -> dict:
    home = d / "home"
    home.mkdir(parents=True)
    return {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}


# --------------------------------------------------------------------------------------------
# Peers


class Peers:
    def __init__(self, py: str, uv: str, index: PackageIndex, scratch: Path, s: Samples):
        self.py, self.uv, self.index, self.scratch, self.s = py, uv, index, scratch, s
        self.uv_venvs: dict[str, Path] = {}  # the last uv venv of each set

    def pip(self, pset: PackageSet, rep: int) -> None:
        d = self.scratch / f"pip-{pset.key}-{rep}"
        venv = d / "venv"
        env = clean_env()
        env.update(fresh_home(d), PIP_CACHE_DIR=str(d / "cache"), PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1")
        n0 = len(self.index.request_log)
        a = run_timed("python -m venv", [self.py, "-m", "venv", venv], env)
        b = run_timed("pip install", [venv / "bin" / "pip", "install", "-q", "--index-url",
                                       self.index.url, *pset.top], env)
        self._record(f"{pset.key}.pip", a, b, n0)
        check_venv(venv / "bin" / "python", pset, f"pip ({pset.label})")
        log(f"rep {rep + 1}, {pset.key}: venv {a.wall:.0f} ms + pip install {b.wall:.0f} ms")

    def uv_(self, pset: PackageSet, rep: int) -> None:
        d = self.scratch / f"uv-{pset.key}-{rep}"
        venv = d / "venv"
        env = clean_env()
        env.update(fresh_home(d), UV_CACHE_DIR=str(d / "cache"), UV_NO_CONFIG="1",
                   UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
        n0 = len(self.index.request_log)
        a = run_timed("uv venv", [self.uv, "venv", "-q", venv, "--python", self.py], env)
        b = run_timed("uv pip install", [self.uv, "pip", "install", "-q", "--python",
                                          venv / "bin" / "python", "--index-url", self.index.url,
                                          *pset.top], env)
        self._record(f"{pset.key}.uv", a, b, n0)
        check_venv(venv / "bin" / "python", pset, f"uv ({pset.label})")
        self.uv_venvs[pset.key] = venv
        log(f"rep {rep + 1}, {pset.key}: uv venv {a.wall:.0f} ms + uv pip install {b.wall:.0f} ms")

    def _record(self, key: str, a: Sample, b: Sample, n0: int) -> None:
        s = self.s
        s.add(f"{key}.venv.wall", a.wall)
        s.add(f"{key}.venv.cpu", a.cpu)
        s.add(f"{key}.install.wall", b.wall)
        s.add(f"{key}.install.cpu", b.cpu)
        s.add(f"{key}.total.wall", a.wall + b.wall)
        s.add(f"{key}.total.cpu", a.cpu + b.cpu)
        record_index(s, key, self.index, n0)


def record_index(s: Samples, key: str, index: PackageIndex, n0: int) -> None:
    log_ = index.request_log[n0:]
    s.count(f"{key}.requests", len(log_))
    s.count(f"{key}.downloads", sum(1 for m, p, st in log_ if m == "GET" and st == 200
                                    and p.startswith("/files/") and not p.endswith(".metadata")))


def check_venv(python: Path, pset: PackageSet, what: str) -> None:
    p = subprocess.run([str(python), "-c", import_check_code(pset)], capture_output=True, text=True,
                       env=clean_env())
    if p.returncode != 0:
        raise CheckError(f"{what}: the venv lacks a package of the set:\n{p.stderr.strip()}")


# --------------------------------------------------------------------------------------------
# rtenv


class Rtenv:
    def __init__(self, binary: Path, py: str, uv: str, index: PackageIndex, scratch: Path,
                 s: Samples, hit_runs: int, peers: Peers):
        self.binary, self.py, self.uv, self.index = binary, py, uv, index
        self.peers = peers
        self.scratch, self.s = scratch, s
        self.hit_runs = hit_runs
        self.bound = 0  # lower bounds for "needs resolution" specs: 0.1, 0.2, ...
        self.wrote_user_cache: list[str] = []
        self.has_agent_stop = self._has_agent_stop()
        self.agents: list[subprocess.Popen] = []  # agents started here in the foreground

    def _has_agent_stop(self) -> bool:
        p = subprocess.run([str(self.binary), "agent", "--help"], capture_output=True, text=True)
        return re.search(r"^\s+stop\b", p.stdout, re.M) is not None

    def spec(self, pset: PackageSet, bound: int | None = None) -> str:
        reqs = [r if bound is None else f"{r}>=0.{bound}" for r in pset.top]
        return json.dumps({"pip": [f"--index-url {self.index.url}", *reqs]}, separators=(",", ":"))

    def env_for(self, d: Path) -> dict:
        env = clean_env()
        # RTENV_UV: the uv the peer runs (rtenv would find the same one next to the
        # interpreter; naming it keeps the comparison exact).
        env.update(fresh_home(d), RTENV_HOME=str(d / "rtenv-home"), RTENV_PYTHON=self.py,
                   RTENV_UV=self.uv,
                   RTENV_AGENT_IDLE_EXIT="300")  # an agent left behind by a crash goes away
        return env

    def run(self, case: str, env: dict, spec: str, command: list[str]) -> Sample:
        return run_timed(f"rtenv run ({case})", [self.binary, "run", "-e", spec, "--", *command],
                         env, capture=True)

    def check(self, case: str, env: dict, spec: str, pset: PackageSet) -> Path:
        """Runs the import check in the env (not timed); returns the env's sys.prefix."""
        p = subprocess.run([str(self.binary), "run", "-e", spec, "--", "python", "-c",
                            import_check_code(pset)], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise CheckError(f"rtenv ({case}, {pset.label}): the env lacks a package of the set "
                             f"(exit {p.returncode}):\n{p.stderr.strip()}")
        return Path(p.stdout.strip().splitlines()[-1])

    def measure_imports(self, pset: PackageSet, prefix: Path) -> None:
        """A new process importing the set, over that venv's own `python -c pass`, in rtenv's
        venv (its bytecode compiled once it was ready) with PYTHONDONTWRITEBYTECODE=1 (as workers
        often start) and without, and in the uv peer's (none compiled) with it (without it, the
        first import would write the bytecode); all alternated."""
        uv_venv = self.peers.uv_venvs.get(pset.key)
        if uv_venv is None:
            return
        deadline = time.monotonic() + 60  # rtenv compiles in the background
        while not list(prefix.glob("lib/python*/site-packages/*/__pycache__/*.pyc")):
            if time.monotonic() > deadline:
                raise CheckError(f"rtenv ({pset.label}): no bytecode in {prefix} after 60 s")
            time.sleep(0.05)
        code = import_check_code(pset)
        series = []
        for who, python, flags in (("rtenv", prefix / "bin" / "python", ("nobc", "bc")),
                                   ("uv", uv_venv / "bin" / "python", ("nobc",))):
            for flag in flags:
                env = clean_env()
                if flag == "nobc":
                    env["PYTHONDONTWRITEBYTECODE"] = "1"
                series.append((f"import.{who}.{flag}", [python, "-c", code], env))
                series.append((f"start.{who}.{flag}", [python, "-c", "pass"], env))
        for i in range(self.hit_runs):
            for name, cmd, env in series if i % 2 == 0 else series[::-1]:
                x = run_timed(name, cmd, env)
                self.s.add(f"{pset.key}.{name}.wall", x.wall)
                self.s.add(f"{pset.key}.{name}.cpu", x.cpu)

    def measure(self, pset: PackageSet, rep: int) -> None:
        s, k = self.s, pset.key
        d = self.scratch / f"rtenv-{k}-{rep}"
        env = self.env_for(d)
        home = Path(env["RTENV_HOME"])
        spec = self.spec(pset)
        try:
            # cold
            n0 = len(self.index.request_log)
            a = self.run("cold", env, spec, COMMAND)
            agent_cpu = proc_cpu_ms(agent_pid(home)) or 0.0
            s.add(f"{k}.cold.wall", a.wall)
            s.add(f"{k}.cold.cpu", a.cpu + agent_cpu)
            record_index(s, f"{k}.cold", self.index, n0)
            prefix = self.check("cold", env, spec, pset)
            if not str(prefix).startswith(str(home / "pyenvs")):
                log(f"note: the env's sys.prefix {prefix} is not under $RTENV_HOME/pyenvs")
            log(f"rep {rep + 1}, {k}: rtenv cold {a.wall:.0f} ms")

            # cache hit, alternated with the command alone in the same venv
            base_env = clean_env()
            base_env["PATH"] = f"{prefix / 'bin'}:{base_env.get('PATH', '')}"
            n0 = len(self.index.request_log)
            for i in range(self.hit_runs):
                pair = [("hit", lambda: self.run("cache hit", env, spec, COMMAND)),
                        ("cmd", lambda: run_timed("python -c pass", COMMAND, base_env))]
                for name, fn in pair if i % 2 == 0 else pair[::-1]:
                    x = fn()
                    s.add(f"{k}.{name}.wall", x.wall)
                    s.add(f"{k}.{name}.cpu", x.cpu)
            record_index(s, f"{k}.hit", self.index, n0)
            self.measure_imports(pset, prefix)
            hit = statistics.median(s.data[f"{k}.hit.wall"][-self.hit_runs:])
            cmd = statistics.median(s.data[f"{k}.cmd.wall"][-self.hit_runs:])
            log(f"rep {rep + 1}, {k}: rtenv cache hit {hit:.1f} ms, python -c pass {cmd:.1f} ms")

            # new env, needs resolution (same wheels, new requirement text)
            self.bound += 1
            self.measure_case(pset, rep, "resolve", "new env, needs resolution", env,
                              self.spec(pset, self.bound), agent_pid(home))

            # new env, lock known: pyenvs emptied with the agent stopped, then a running agent
            self.stop_agent(home)
            pyenvs = home / "pyenvs"
            if not pyenvs.is_dir():
                raise CheckError(f"rtenv (cold, {pset.label}) made no {pyenvs}")
            empty_dir(pyenvs)
            agent = self.start_agent(home, env, d / "agent.log")
            self.measure_case(pset, rep, "relock", "new env, lock known", env, spec, agent.pid)

            # cold env on a node that is up: the agent running and the interpreter known, but
            # nothing of this env: no lock, no venv, no downloaded package (uv's cache emptied)
            for sub in ("uv-cache", "locks"):
                shutil.rmtree(home / sub, ignore_errors=True)
            empty_dir(pyenvs)
            self.measure_case(pset, rep, "upcold", "cold env, node up", env, spec, agent.pid)
        finally:
            self.stop_agent(home)
        if (Path(env["HOME"]) / ".cache").exists():
            self.wrote_user_cache.append(pset.key)

    def measure_case(self, pset: PackageSet, rep: int, key: str, label: str, env: dict,
                     spec: str, agent: int | None) -> None:
        """One timed rtenv run of `spec`; its CPU time counts the agent's (pid `agent`) too.
        Checks the env afterwards (not timed)."""
        s, k = self.s, pset.key
        c0 = proc_cpu_ms(agent)
        n0 = len(self.index.request_log)
        x = self.run(label, env, spec, COMMAND)
        c1 = proc_cpu_ms(agent)
        s.add(f"{k}.{key}.wall", x.wall)
        s.add(f"{k}.{key}.cpu", x.cpu + (c1 - c0 if c0 is not None and c1 is not None else 0))
        record_index(s, f"{k}.{key}", self.index, n0)
        self.check(label, env, spec, pset)
        log(f"rep {rep + 1}, {k}: rtenv {label} {x.wall:.0f} ms")

    # ---- the agent

    def start_agent(self, home: Path, env: dict, log_path: Path) -> subprocess.Popen:
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
                return proc
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"`rtenv agent` did not listen on {sock_path} within 10 s")
            time.sleep(0.005)

    def stop_agent(self, home: Path) -> None:
        """Stops the agent of this RTENV_HOME (started by `rtenv run` or by start_agent)."""
        pid = agent_pid(home)
        if self.has_agent_stop:
            env = dict(clean_env(), RTENV_HOME=str(home))
            subprocess.run([str(self.binary), "agent", "stop"], env=env, capture_output=True)
        elif pid is not None and is_rtenv_process(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if pid is not None:
            wait_gone(pid, 10)
        for proc in list(self.agents):  # ours: reap them
            if proc.poll() is None and pid != proc.pid:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.agents.remove(proc)


def agent_pid(home: Path) -> int | None:
    try:
        return int((home / "agent.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def is_rtenv_process(pid: int) -> bool:
    try:
        return b"rtenv" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_gone(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # a zombie child of ours (the foreground agent) still answers kill(0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except (OSError, IndexError):
            return
        time.sleep(0.01)
    if is_rtenv_process(pid):
        log(f"agent {pid} did not stop within {seconds:.0f} s; killing it")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# Report


def machine_info(py: str, uv: str, rtenv: Path | None) -> dict:
    return {
        **common.machine(rtenv),
        "python": command_output([py, "-c", "import platform; print(platform.python_version())"]),
        "pip": command_output([py, "-c", "import ensurepip; print(ensurepip.version())"]),
        "uv": command_output([uv, "--version"]),
    }


def render(args, sets: list[PackageSet], s: Samples, m: dict, load: dict, rtenv: Rtenv | None,
           index_url: str) -> str:
    L: list[str] = []
    L.append(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']}; "
             f"Python {m['python']} (its venvs get pip {m['pip']}); {m['uv']}; rtenv binary "
             f"built {m['built']}, work tree now at {m['commit']}.")
    L.append("")
    desc = "; ".join(f"**{p.label}**: {len(p.top)} requirement(s), {len(p.wheels)} wheel(s), "
                     f"{p.bytes / MIB:.1f} MiB" for p in sets)
    L.append(f"Package sets, served from a local index ({index_url}): {desc}. Each cell: "
             f"median (min–max) of {args.runs} runs; jobs alternated, each from cold (fresh "
             f"caches, venvs and $HOME). Cache hits: {args.hit_runs} per run, alternated with "
             f"`python -c pass`. \"index\": requests / wheel downloads per run.")
    L.append("")
    la, lb = load["before"], load["after"]
    psi = (f"; runnable tasks waited for a CPU {load['psi']:.0f}% of the time (PSI cpu some)"
           if load.get("psi") is not None else "")
    L.append(f"Load: load average {la[0]:.1f} at the start, {lb[0]:.1f} at the end of the "
             f"{load['seconds']:.0f} s of measurements{psi}.")
    L.append("")

    head = "| case |"
    sep = "| --- |"
    for p in sets:
        head += f" {p.label}: wall ms | CPU ms |"
        sep += " --- | --- |"
    head += " notes |"
    sep += " --- |"
    L.append(head)
    L.append(sep)

    def row(label: str, key: str, note: str = "", fmt: str = "{:.0f}") -> None:
        if not any(s.has(f"{p.key}.{key}.wall") for p in sets):
            return
        line = f"| {label} |"
        for p in sets:
            line += f" {s.cell(f'{p.key}.{key}.wall', fmt)} | {s.cell(f'{p.key}.{key}.cpu', fmt)} |"
        L.append(line + f" {note} |")

    def fetched(key: str) -> str:
        return " and ".join(f"{s.counted(f'{p.key}.{key}.requests')} / "
                            f"{s.counted(f'{p.key}.{key}.downloads')}" for p in sets)

    row("`python -m venv DIR`", "pip.venv", "installs pip into the venv")
    row("`DIR/bin/pip install --index-url URL PKGS`", "pip.install",
        f"compiles .pyc (uv does not); index: {fetched('pip')}")
    row("**venv + pip**", "pip.total")
    row("`uv venv DIR --python PY`", "uv.venv")
    row("`uv pip install --python DIR/bin/python --index-url URL PKGS`", "uv.install",
        f"index: {fetched('uv')}")
    row("**uv venv + uv pip install**", "uv.total")
    if rtenv is not None:
        row("`python -c pass` alone (the env's venv)", "cmd", "", "{:.1f}")
        row("rtenv cold: `rtenv run -e '{\"pip\": [...]}' -- python -c pass`", "cold",
            f"fresh RTENV_HOME, starts the agent; CPU includes the agent's; "
            f"index: {fetched('cold')}")
        row("rtenv cold env, node up", "upcold",
            f"agent running, interpreter known; no lock, venv or cached package; "
            f"index: {fetched('upcold')}")
        row("rtenv new env, needs resolution", "resolve",
            f"requirement text differs, same wheels; index: {fetched('resolve')}")
        row("rtenv new env, lock known", "relock",
            f"pyenvs/ emptied, agent running; index: {fetched('relock')}")
        row("rtenv cache hit (command included)", "hit", f"index: {fetched('hit')}", "{:.1f}")
        for who, what in (("rtenv", "rtenv's venv (bytecode compiled once ready)"),
                          ("uv", "uv's venv (no bytecode compiled)")):
            for flag, cond in (("nobc", "PYTHONDONTWRITEBYTECODE=1"), ("bc", "without it")):
                row(f"new process importing the set, {what}, {cond}", f"import.{who}.{flag}",
                    "", "{:.1f}")
                row(f"`python -c pass` in {what}, {cond}", f"start.{who}.{flag}", "", "{:.1f}")
    L.append("")

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "**FAIL**"

    L.append("| target | result | verdict |")
    L.append("| --- | --- | --- |")
    if rtenv is None:
        L.append("| (rtenv not measured: --peers-only) | | |")
    for p in sets:
        k = p.key
        uv_total = s.med(f"{k}.uv.total.wall")
        pip_total = s.med(f"{k}.pip.total.wall")
        if rtenv is None:
            L.append(f"| {p.label}: venv + pip / uv (no target) | {pip_total:.0f} ms / "
                     f"{uv_total:.0f} ms = {pip_total / uv_total:.1f}× | — |")
            continue
        cmd = s.med(f"{k}.cmd.wall")
        cold = s.med(f"{k}.cold.wall") - cmd
        L.append(f"| {p.label}: rtenv cold (minus the command) <= {TARGET_COLD_VS_UV:g}× uv "
                 f"venv + uv pip install | {cold:.0f} ms vs {uv_total:.0f} ms = "
                 f"{cold / uv_total:.2f}× | "
                 f"{verdict(cold <= TARGET_COLD_VS_UV * uv_total)} |")
        upcold = s.med(f"{k}.upcold.wall") - cmd
        L.append(f"| {p.label}: rtenv cold env, node up (minus the command) <= "
                 f"{TARGET_COLD_VS_UV:g}× uv venv + uv pip install | {upcold:.0f} ms vs "
                 f"{uv_total:.0f} ms = {upcold / uv_total:.2f}× | "
                 f"{verdict(upcold <= TARGET_COLD_VS_UV * uv_total)} |")
        L.append(f"| {p.label}: venv + pip / rtenv cold (minus the command) (no target) | "
                 f"{pip_total:.0f} ms / {cold:.0f} ms = {pip_total / cold:.1f}× | — |")
        for key, what in (("relock", "new env, lock known"),
                          ("resolve", "new env, needs resolution")):
            v = s.med(f"{k}.{key}.wall") - cmd
            if k == "ten":
                L.append(f"| {p.label}: rtenv {what} (minus the command) <= "
                         f"{TARGET_NEW_ENV_MS:g} ms | {v:.0f} ms | "
                         f"{verdict(v <= TARGET_NEW_ENV_MS)} |")
            else:
                L.append(f"| {p.label}: rtenv {what} (minus the command) (no target) | "
                         f"{v:.0f} ms | — |")
        if s.has(f"{k}.import.rtenv.nobc.wall") and s.has(f"{k}.import.uv.nobc.wall"):
            def over(who: str, flag: str) -> float:
                return s.med(f"{k}.import.{who}.{flag}.wall") - s.med(f"{k}.start.{who}.{flag}.wall")
            ir, iu = over("rtenv", "nobc"), over("uv", "nobc")
            L.append(f"| {p.label}: importing the set in a new process, over the venv's own start, "
                     f"PYTHONDONTWRITEBYTECODE=1: rtenv's venv <= uv's | {ir:.1f} ms vs "
                     f"{iu:.1f} ms | {verdict(ir <= iu)} |")
        hit = s.med(f"{k}.hit.wall") - cmd
        L.append(f"| {p.label}: rtenv cache hit <= {TARGET_HIT_MS:g} ms over `python -c pass` "
                 f"(medians) | {s.med(f'{k}.hit.wall'):.1f} − {cmd:.1f} = +{hit:.1f} ms | "
                 f"{verdict(hit <= TARGET_HIT_MS)} |")
    if rtenv is not None and rtenv.wrote_user_cache:
        L.append("")
        L.append(f"Warning: rtenv wrote under $HOME/.cache (sets: "
                 f"{', '.join(rtenv.wrote_user_cache)}) although RTENV_HOME was set.")
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark Python env creation (runtime_env pip) by rtenv against venv + pip "
        "and uv on a local package index; prints a markdown report.")
    ap.add_argument("--rtenv", type=Path, default=DEFAULT_RTENV,
                    help=f"rtenv binary (default: {DEFAULT_RTENV.relative_to(REPO)})")
    ap.add_argument("--python", default=sys.executable,
                    help="base interpreter for every venv (default: this one)")
    ap.add_argument("--uv", default=None,
                    help="uv binary (default: the one next to --python, else uv on PATH)")
    ap.add_argument("--runs", "-n", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--hit-runs", type=int, default=10,
                    help="cache-hit runs (and as many `python -c pass` runs) per repetition "
                    "(default 10)")
    ap.add_argument("--quick", action="store_true", help="2 repetitions, 5 cache-hit runs each")
    ap.add_argument("--seed", type=int, default=20240601, help="wheel size seed (default fixed)")
    ap.add_argument("--peers-only", action="store_true", help="measure venv + pip and uv only")
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
    if not os.access(py, os.X_OK):
        print(f"--python {py}: not an executable", file=sys.stderr)
        return 2
    try:
        uv = args.uv or find_uv(py)
    except RuntimeError as e:
        print(f"{e}; or pass --uv", file=sys.stderr)
        return 2
    rtenv_bin = None
    if not args.peers_only:
        rtenv_bin = args.rtenv.resolve()
        if not os.access(rtenv_bin, os.X_OK):
            print(f"rtenv binary {rtenv_bin} not found; build it first:\n  cmake -S {REPO} -B "
                  f"{REPO}/build -G Ninja && ninja -C {REPO}/build rtenv\n(or pass --rtenv, or "
                  f"--peers-only)", file=sys.stderr)
            return 2

    # Every case's directories stay until the end: on ext4 without a journal, creating files
    # right after deleting many is slower for minutes (see docs/benchmarks.md).
    scratch = Path(tempfile.mkdtemp(prefix="rtenv-bench-python-"))
    index = PackageIndex(scratch / "index", max_age=600)
    rtenv: Rtenv | None = None
    try:
        s = Samples()
        log(f"building wheels into {index.directory}")
        sets = make_sets(scratch / "wheels", index, args.seed)
        for p in sets:
            log(f"{p.label}: {len(p.wheels)} wheels, {p.bytes / MIB:.1f} MiB")
        peers = Peers(py, uv, index, scratch, s)
        if rtenv_bin is not None:
            rtenv = Rtenv(rtenv_bin, py, uv, index, scratch, s, args.hit_runs, peers)
        m = machine_info(py, uv, rtenv_bin)

        load = {"before": os.getloadavg()}
        psi0, t0 = cpu_pressure_us(), time.perf_counter()
        for rep in range(args.runs):
            for pset in sets:
                jobs = [peers.pip, peers.uv_] + ([rtenv.measure] if rtenv else [])
                k = rep % len(jobs)
                for job in jobs[k:] + jobs[:k]:
                    job(pset, rep)
        load["after"] = os.getloadavg()
        elapsed = time.perf_counter() - t0
        psi1 = cpu_pressure_us()
        load["seconds"] = elapsed
        load["psi"] = (psi1 - psi0) / 1e6 / elapsed * 100 if psi0 is not None and psi1 else None

        if args.json_out:
            args.json_out.write_text(json.dumps({"samples": s.data, "counts": s.counts,
                                                 "machine": m, "load": load}, indent=1))
        print(render(args, sets, s, m, load, rtenv, index.url))
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
            for home in scratch.glob("rtenv-*/rtenv-home"):
                rtenv.stop_agent(home)
        index.stop()
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
