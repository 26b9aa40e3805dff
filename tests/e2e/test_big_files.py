"""A 3 GiB file packed, uploaded, fetched and run with bounded memory: `rtenv run` (and the agent
it starts) and the blob server each run in a memory cgroup limited to 512 MiB, with the store
being rtenv's blob server and then S3 (moto). The file is mostly a hole, so it costs little disk
to make. To the blob server it goes raw (its first MiB is random, so not worth compressing): all
3 GiB travel. To S3 it goes compressed (it starts with zeros), 256 MiB of random data in it
making a multipart upload, as moto holds every object whole in its memory.

Marked `big` (select with -m big, leave out with -m "not big"). Needs root and a memory cgroup
(v2, or v1's memory controller) it can create: otherwise it fails saying so."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Rtenv, stop_agent

SIZE = 3 << 30
LIMIT = 512 << 20
# What each process may reach (VmHWM): the limit is the hard bound the kernel enforces, this is
# what a streaming transfer should stay well under.
RSS_BOUND = 256 << 20
BUCKET = "rtenv-big"
TOKEN = "big-token"


class MemoryCgroup:
    """A memory cgroup under this host's hierarchy (v2 if it has the memory controller, else v1),
    limited to `limit` bytes; processes enter it at exec through `preexec`."""

    def __init__(self, name: str, limit: int):
        v2 = Path("/sys/fs/cgroup")
        v1 = Path("/sys/fs/cgroup/memory")
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            self.path, self.v2 = v2 / name, True
        elif (v1 / "memory.limit_in_bytes").exists():
            self.path, self.v2 = v1 / name, False
        else:
            pytest.fail("no memory cgroup to limit rtenv's memory in (neither cgroup v2 with the "
                        "memory controller nor cgroup v1's memory hierarchy is mounted)",
                        pytrace=False)
        try:
            self.path.mkdir()
            limit_file = "memory.max" if self.v2 else "memory.limit_in_bytes"
            (self.path / limit_file).write_text(str(limit))
        except OSError as e:
            pytest.fail(f"cannot create the memory cgroup {self.path} ({e}): this test needs root",
                        pytrace=False)

    def preexec(self):
        procs = str(self.path / "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return enter

    def oom_kills(self) -> int:
        if self.v2:
            for line in (self.path / "memory.events").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
            return 0
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0

    def remove(self):
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def vm_hwm(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, what: str):
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{what} did not start")
            time.sleep(0.05)


def make_big_file(path: Path, random_bytes: int, compressible_head: bool):
    """SIZE bytes: `random_bytes` of random data (after 64 KiB of zeros if `compressible_head`,
    which makes rtenv send the file compressed), then a hole."""
    with open(path, "wb") as f:
        if compressible_head:
            f.write(bytes(64 << 10))
        for _ in range(random_bytes >> 20):
            f.write(os.urandom(1 << 20))
        f.truncate(SIZE)


def run_limited(r: Rtenv, cgroup: MemoryCgroup, args: list, out_dir: Path, timeout: float):
    """Runs rtenv in `cgroup`; returns (exit code, stdout, stderr, its peak RSS in bytes)."""
    with open(out_dir / "stdout", "w") as out, open(out_dir / "stderr", "w") as err:
        proc = subprocess.Popen([r.binary, *args], env=r.env, stdout=out, stderr=err,
                                preexec_fn=cgroup.preexec())
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            pytest.fail(f"rtenv {args[0]} took over {timeout} s: {(out_dir / 'stderr').read_text()}")
        time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, (out_dir / "stdout").read_text(), (out_dir / "stderr").read_text(),
            usage.ru_maxrss * 1024)


@pytest.fixture
def store(request, rtenv_bin, tmp_path):
    """The store under test, its server's process in its own limited cgroup (moto, in Python,
    holds what it stores in memory and is not limited); yields (environment, server pid or None)."""
    kind = request.param
    port = free_port()
    if kind == "blob_server":
        cgroup = MemoryCgroup(f"rtenv-big-server-{os.getpid()}", LIMIT)
        (tmp_path / "token").write_text(TOKEN)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
        env.update(RTENV_HOME=str(tmp_path / "server-home"), RTENV_MAX_PACKAGE_SIZE="4G")
        proc = subprocess.Popen(
            [rtenv_bin, "store", "serve", "--root", str(tmp_path / "served"), "--listen",
             f"127.0.0.1:{port}", "--token-file", str(tmp_path / "token")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=cgroup.preexec())
        wait_listening(port, proc, "rtenv store serve")
        yield {"RTENV_STORE": f"http://127.0.0.1:{port}", "RTENV_STORE_TOKEN": TOKEN}, proc
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        cgroup.remove()
    else:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                 str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port, proc, "moto's S3 server")
        endpoint = f"http://127.0.0.1:{port}"
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     aws_access_key_id="test",
                     aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
        yield {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_REGION": "us-east-1", "RTENV_S3_ENDPOINT": endpoint,
               "RTENV_STORE": f"s3://{BUCKET}/blobs"}, None
        proc.terminate()
        proc.wait(10)


@pytest.mark.big
@pytest.mark.parametrize("store", ["blob_server", "s3"], indirect=True)
def test_a_3_gib_file_is_packed_fetched_and_run_with_bounded_memory(store, rtenv_bin, tmp_path):
    env, server = store
    project = tmp_path / "project"
    project.mkdir()
    big = project / "big.bin"
    if env["RTENV_STORE"].startswith("http"):
        # Not worth compressing (its first bytes are random): all 3 GiB travel.
        make_big_file(big, 1 << 20, compressible_head=False)
    else:
        # moto builds each object whole in its memory (and fails on a 3 GiB one): this file goes
        # compressed, its 256 MiB of random data in 8 MiB parts.
        make_big_file(big, 256 << 20, compressible_head=True)
    (project / "check.sh").write_text(f'cmp big.bin "{big}" && echo same\n')
    spec = json.dumps({"working_dir": str(project)})
    peaks = {}
    started = time.monotonic()
    for name in ("packer", "fetcher"):
        home = tmp_path / f"{name}-home"
        fake = tmp_path / f"{name}-fake"
        fake.mkdir()
        r = Rtenv(rtenv_bin, home, fake)
        r.env.update(env, RTENV_MAX_PACKAGE_SIZE="4G", RTENV_WARN_FILE_SIZE="4G")
        cgroup = MemoryCgroup(f"rtenv-big-{name}-{os.getpid()}", LIMIT)
        try:
            code, out, err, peaks[f"{name}: rtenv run"] = run_limited(
                r, cgroup, ["run", "--runtime-env", spec, "--", "sh", "check.sh"], fake, 600)
            agent_pid = int((home / "agent.pid").read_text())
            peaks[f"{name}: agent"] = vm_hwm(agent_pid)
            assert cgroup.oom_kills() == 0, f"a process of {name} ran out of memory: {err}"
            assert code == 0, f"rtenv run ({name}) failed ({code}): {err}"
            assert out.strip().endswith("same"), out
            stop_agent(home)
        finally:
            stop_agent(home)
            cgroup.remove()
        # The fetcher had nothing but the store: the file it ran with came from there, whole.
        if name == "fetcher":
            got = list(home.glob("pkgs/*/big.bin"))
            assert got and got[0].stat().st_size == SIZE
    if server is not None:
        peaks["blob server"] = vm_hwm(server.pid)
    elapsed = time.monotonic() - started
    report = ", ".join(f"{k} {v >> 20} MiB" for k, v in peaks.items())
    print(f"\n3 GiB through {env['RTENV_STORE'].split(':')[0]}: {elapsed:.0f} s; peak RSS: {report}")
    for what, peak in peaks.items():
        assert peak < RSS_BOUND, f"{what} reached {peak >> 20} MiB moving a 3 GiB file ({report})"
