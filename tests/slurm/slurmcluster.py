"""A real Slurm on this host: munged, slurmctld and two slurmd as the nodes n1 and n2.

Everything lives under one directory the caller gives (config, spool, logs, the munge key and
socket); the daemons run in the foreground as children of the test and are stopped by `stop()`.
Commands (`srun`, `sbatch`, ...) find the cluster through SLURM_CONF in `env()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

NODES = ("n1", "n2")
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "srun", "sbatch", "salloc", "squeue")


class SlurmUnavailable(Exception):
    """Slurm cannot run here; the message says why."""


def missing_programs() -> list[str]:
    search = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [p for p in DAEMONS if shutil.which(p, path=search) is None]


def _which(program: str) -> str:
    return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or program


class SlurmCluster:
    def __init__(self, root: Path, plugstack: str = "", cpus: int = 2, extra_conf: str = ""):
        self.root = root
        self.plugstack_text = plugstack
        self.extra_conf = extra_conf
        self.cpus = cpus
        self.conf = root / "slurm.conf"
        self.plugstack = root / "plugstack.conf"
        self.munge_socket = root / "munge" / "munge.sock"
        self.procs: list[tuple[str, subprocess.Popen]] = []

    # -- configuration ---------------------------------------------------------------------
    def _write_config(self) -> None:
        for d in ("munge", "spool/n1", "spool/n2", "log", "state"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # munged wants its socket's directory not writable by others.
        os.chmod(self.root / "munge", 0o755)
        self.plugstack.write_text(self.plugstack_text)
        nodes = "\n".join(
            f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={17001 + i} "
            f"CPUs={self.cpus} State=UNKNOWN"
            for i, n in enumerate(NODES)
        )
        r = self.root
        self.conf.write_text(
            f"""ClusterName=rtenvtest
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
SchedulerType=sched/backfill
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd-%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd-%n.log
SlurmdDebug=info
PlugStackConfig={self.plugstack}
KillWait=5
MinJobAge=5
InactiveLimit=0
{self.extra_conf}
{nodes}
PartitionName=main Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP
"""
        )

    def env(self, extra: dict | None = None) -> dict:
        e = dict(os.environ)
        e["SLURM_CONF"] = str(self.conf)
        e.update(extra or {})
        return e

    # -- lifecycle -------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                             start_new_session=True)
        self.procs.append((name, p))

    def start(self, timeout: float = 30.0) -> None:
        missing = missing_programs()
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)} (scripts/setup.sh)")
        self._write_config()
        key = self.root / "munge" / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}", "--force"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        self._spawn("munged", [
            _which("munged"), "-F", "--force", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--pid-file={self.root}/munge/munged.pid",
            f"--log-file={self.root}/log/munged.log", f"--seed-file={self.root}/munge/seed",
        ])
        self._wait(lambda: self.munge_socket.exists(), 10, "munged did not create its socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        for n in NODES:
            self._spawn(f"slurmd-{n}", [_which("slurmd"), "-D", "-N", n, "-f", str(self.conf)])
        self._wait(self._nodes_idle, timeout, "the nodes did not come up idle")

    def _nodes_idle(self) -> bool:
        for name, p in self.procs:
            if p.poll() is not None:
                raise SlurmUnavailable(f"{name} exited with {p.returncode}: {self.log_tail(name)}")
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True,
                           env=self.env())
        states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
        return all(states.get(n) == "idle" for n in NODES)

    def _wait(self, cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        raise SlurmUnavailable(f"{what} within {timeout:.0f} s; logs in {self.root / 'log'}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        f = self.root / "log" / f"{name}.out"
        if not f.exists():
            return ""
        return "\n".join(f.read_text(errors="replace").splitlines()[-lines:])

    def slurmd_log(self, node: str) -> str:
        f = self.root / "log" / f"slurmd-{node}.log"
        return f.read_text(errors="replace") if f.exists() else ""

    def stepd_pids(self, step: str = "") -> list[int]:
        """The slurmstepd processes of this cluster (of the step "JOB.STEP" if given): found by
        their SLURM_CONF, which they inherit from this cluster's slurmd."""
        found = []
        want = f"SLURM_CONF={self.conf}".encode()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes()
                if not cmd.startswith(b"slurmstepd:"):
                    continue
                if step and not cmd.startswith(f"slurmstepd: [{step}]".encode()):
                    continue
                if want in (d / "environ").read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                continue
        return found

    @staticmethod
    def descendants(pid: int) -> list[int]:
        out, todo = [], [pid]
        while todo:
            p = todo.pop()
            try:
                for t in Path(f"/proc/{p}/task").iterdir():
                    kids = [int(k) for k in (t / "children").read_text().split()]
                    out += kids
                    todo += kids
            except OSError:
                continue
        return out

    def stop(self) -> None:
        # Jobs first, so their steps end through Slurm (and their exit hooks run).
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env())
        for name, p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()
        # Step daemons outlive slurmd (by design: a restarted slurmd finds its steps again).
        for pid in self.stepd_pids():
            for p in [pid, *self.descendants(pid)]:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- commands --------------------------------------------------------------------------
    def run(self, argv: list[str], env: dict | None = None, timeout: float = 300, **kw):
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(env),
                              timeout=timeout, **kw)

    def queued_jobs(self) -> list[str]:
        r = self.run(["squeue", "-h", "-o", "%i %T"])
        return [line for line in r.stdout.splitlines() if line.strip()]
