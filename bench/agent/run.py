#!/usr/bin/env python3
"""Benchmark the rtenv node agent: RPC latency, `rtenv run` overhead on a warm env, and memory.

Needs: a Release build (build-bench/src/cli/rtenv), hyperfine, and the Python packages grpcio and
grpcio-tools. If they are missing: `pip install grpcio grpcio-tools` (this script installs
nothing itself). For the C++ client it also needs g++ and pkg-config's grpc++ and protobuf (the
same ones the project builds with); without them only the Python client runs.

Everything runs in a fresh RTENV_HOME under a new scratch dir, with its own agent
(`rtenv agent --idle-exit 0`) that is stopped, and the dir deleted, at the end.

  1. RPC latency, one connection, one call at a time, after a warm-up:
     - C++ client (bench/agent/rpc_latency.cc, compiled here with g++ against the code CMake
       generated in build-bench/src/agent/gen): Ping (the empty RPC), unary GetOrCreateRuntimeEnv
       and streaming CreateRuntimeEnvWithProgress (what `rtenv env create`/`rtenv run` use), in
       an order that rotates every round;
     - Python client (grpcio; stubs generated from proto/agent.proto into the scratch dir at
       run time with grpc_tools.protoc): Ping and GetOrCreateRuntimeEnv, alternated.
     GetOrCreate asks for an env that already exists, always for the same holder, so each call
     is a warm, idempotent one. Targets: warm GetOrCreate p50 <= 1.5x Ping p50 and p99 <= 2 ms.
  2. `rtenv run -e SPEC -- true` on a warm env (working_dir: a package of --files small files,
     already materialized; plus env_vars) against bare `true`, plus `rtenv run -- true` without a
     runtime_env, with hyperfine -N: --runs runs of each, split into --rounds rounds whose command
     order rotates (hyperfine itself runs one command's runs back to back). Target: median
     overhead <= 10 ms.
  3. The agent's memory (VmRSS and VmHWM from /proc/<pid>/status, also RssAnon/RssFile and PSS):
     right after start, after its first call, and after it holds --envs distinct envs (differing
     in env_vars, sharing one working_dir package, each held by its own "job:" holder, created
     through the agent one call at a time). Target: <= 20 MB VmRSS idle.

Prints a markdown report on stdout (progress on stderr). Targets are reported, not enforced; exits
1 if a check fails (a call errs, envs are not distinct, the warm path was not warm), 2 on a setup
error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import common  # noqa: E402
from common import command_output, cpu_pressure_us  # noqa: E402
BUILD = REPO / "build-bench"
DEFAULT_RTENV = BUILD / "src" / "cli" / "rtenv"
PROTO = REPO / "proto" / "agent.proto"
CXX_CLIENT = Path(__file__).resolve().parent / "rpc_latency.cc"

# Targets (see docs/benchmarks.md).
TARGET_RATIO = 1.5      # warm GetOrCreate p50 / Ping p50
TARGET_P99_MS = 2.0     # warm GetOrCreate p99
TARGET_RUN_MS = 10.0    # rtenv run (warm env) median - true median
TARGET_IDLE_MB = 20.0   # agent VmRSS right after start


def log(msg: str) -> None:
    print(f"[bench/agent] {msg}", file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


class CheckError(Exception):
    pass


# ----------------------------------------------------------------------------- measurements

def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    v = sorted(values)
    k = max(1, math.ceil(q / 100 * len(v)))
    return v[k - 1]


def memory(pid: int) -> dict:
    """VmRSS, VmHWM, RssAnon, RssFile, Threads from status; Pss from smaps_rollup (kB)."""
    out: dict = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            out[key] = int(rest.split()[0])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    try:
        out["libs"] = len({ln.split()[-1] for ln in Path(f"/proc/{pid}/maps").read_text().splitlines()
                           if ".so" in ln.split()[-1]})
    except (OSError, IndexError):
        pass
    return out


def cpu_ms(pid: int) -> float:
    """User + system CPU time of a process so far, in ms (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def mb(kb: int) -> str:
    return f"{kb / 1024:.1f}"


# ----------------------------------------------------------------------------- the Python client

def python_stubs(out_dir: Path):
    """Generates agent_pb2/agent_pb2_grpc from proto/agent.proto into out_dir and imports them."""
    try:
        import grpc  # noqa: F401
        from grpc_tools import protoc
    except ImportError:
        raise SetupError("the Python packages grpcio and grpcio-tools are needed: "
                         "pip install grpcio grpcio-tools")
    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", str(PROTO)])
    if rc != 0:
        raise SetupError(f"grpc_tools.protoc failed on {PROTO} ({rc})")
    sys.path.insert(0, str(out_dir))
    return importlib.import_module("agent_pb2"), importlib.import_module("agent_pb2_grpc")


class PyClient:
    def __init__(self, socket: Path, pb2, pb2_grpc) -> None:
        import grpc
        self.grpc = grpc
        self.pb2 = pb2
        self.channel = grpc.insecure_channel(f"unix:{socket}")
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.stub = pb2_grpc.RuntimeEnvAgentStub(self.channel)

    def ping(self) -> None:
        self.stub.Ping(self.pb2.PingRequest())

    def request(self, serialized: str, holder: str, job: str):
        return self.pb2.GetOrCreateRuntimeEnvRequest(serialized_runtime_env=serialized,
                                                     holder=holder, job_id=job)

    def get_or_create(self, req):
        reply = self.stub.GetOrCreateRuntimeEnv(req)
        if not reply.ok:
            raise CheckError(f"GetOrCreateRuntimeEnv replied with an error: {reply.error_message}")
        return reply

    def info(self):
        return self.stub.GetRuntimeEnvsInfo(self.pb2.GetRuntimeEnvsInfoRequest())

    def close(self) -> None:
        self.channel.close()


def py_latency(client: PyClient, serialized: str, calls: int, warmup: int) -> dict:
    req = client.request(serialized, "job:bench-latency", "bench-latency")
    ping, goc = [], []
    clock = time.perf_counter_ns
    for i in range(-warmup, calls):
        for k in range(2):
            t0 = clock()
            if (i + k) % 2 == 0:
                client.ping()
                t1 = clock()
                if i >= 0:
                    ping.append((t1 - t0) / 1000)
            else:
                client.get_or_create(req)
                t1 = clock()
                if i >= 0:
                    goc.append((t1 - t0) / 1000)
    return {"ping": ping, "get_or_create": goc}


# ----------------------------------------------------------------------------- the C++ client

def build_cxx_client(out: Path) -> tuple[Path | None, str]:
    """Compiles rpc_latency.cc; returns (binary or None, the command or why not)."""
    gen = BUILD / "src" / "agent" / "gen"
    lib = BUILD / "src" / "agent" / "librtenv_agent_proto.a"
    if not (gen / "agent.grpc.pb.h").exists() or not lib.exists():
        return None, f"no generated code in {gen} (build the project in build-bench first)"
    if shutil.which("g++") is None or shutil.which("pkg-config") is None:
        return None, "g++ or pkg-config not found"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "grpc++", "protobuf"],
                           capture_output=True, text=True)
    if flags.returncode != 0:
        return None, "pkg-config has no grpc++/protobuf: " + flags.stderr.strip()
    cmd = ["g++", "-O2", "-std=c++20", str(CXX_CLIENT), f"-I{gen}",
           *shlex.split(flags.stdout), str(lib), *shlex.split(flags.stdout), "-o", str(out)]
    shown = (f"g++ -O2 -std=c++20 bench/agent/rpc_latency.cc -I{gen.relative_to(REPO)} "
             f"$(pkg-config --cflags --libs grpc++ protobuf) {lib.relative_to(REPO)}")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return None, f"`{shown}` failed:\n{p.stderr[-2000:]}"
    return out, shown


def cxx_latency(binary: Path, socket: Path, serialized: str, calls: int, warmup: int,
                rpcs: str = "pgs") -> dict:
    p = subprocess.run([str(binary), "latency", str(socket), serialized, "job:bench-latency",
                        "bench-latency", str(calls), str(warmup), rpcs], capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise CheckError(f"rpc_latency failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


# ----------------------------------------------------------------------------- the agent

class AgentProcess:
    def __init__(self, rtenv: Path, home: Path, log_path: Path) -> None:
        self.home = home
        self.socket = home / "agent.sock"
        env = dict(os.environ, RTENV_HOME=str(home))
        env.pop("RTENV_STORE", None)
        self.log_file = open(log_path, "wb")
        self.proc = subprocess.Popen([str(rtenv), "agent", "--idle-exit", "0"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log_file,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.proc.poll() is not None:
                raise SetupError(f"the agent exited ({self.proc.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise SetupError(f"the agent did not create {self.socket} within 10 s")
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"agent {self.pid} did not stop on SIGTERM within 10 s; killing it")
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


# ----------------------------------------------------------------------------- rtenv run

def hyperfine_rounds(commands: list[tuple[str, str]], runs: int, rounds: int, warmup: int,
                     scratch: Path, env: dict) -> dict[str, list[float]]:
    """Runs hyperfine -N in `rounds` rounds with the command order rotated each round; returns
    every run's wall time in ms per command name."""
    times: dict[str, list[float]] = {name: [] for name, _ in commands}
    per_round = [runs // rounds + (1 if r < runs % rounds else 0) for r in range(rounds)]
    for r, n in enumerate(per_round):
        if n == 0:
            continue
        order = commands[r % len(commands):] + commands[:r % len(commands)]
        out = scratch / f"hyperfine-{r}.json"
        cmd = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(n),
               "--export-json", str(out)]
        for name, c in order:
            cmd += ["-n", name, c]
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if p.returncode != 0:
            raise CheckError(f"hyperfine failed: {p.stderr.strip()[-2000:]}")
        for res in json.loads(out.read_text())["results"]:
            if any(code != 0 for code in res.get("exit_codes", [])):
                raise CheckError(f"{res['command']} exited non-zero under hyperfine")
            times[res["command"]].extend(t * 1000 for t in res["times"])
        log(f"hyperfine round {r + 1}/{rounds}: " + ", ".join(
            f"{name} {statistics.median(v):.2f} ms" for name, v in times.items()))
    return times


# ----------------------------------------------------------------------------- machine

def machine_info(rtenv: Path) -> dict:
    try:
        import grpc
        grpcio = grpc.__version__
    except ImportError:
        grpcio = "not installed"
    return {
        **common.machine(rtenv),
        "grpcpp": command_output(["pkg-config", "--modversion", "grpc++"]),
        "grpcio": grpcio,
        "python": platform.python_version(),
        "hyperfine": command_output(["hyperfine", "--version"]),
    }


# ----------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(
        description="Benchmark the rtenv node agent (RPC latency of Ping vs warm "
        "GetOrCreateRuntimeEnv, `rtenv run` overhead on a warm env, agent memory idle and with "
        "many envs); prints a markdown report.",
        epilog="Needs the Python packages grpcio and grpcio-tools (pip install grpcio "
        "grpcio-tools) and hyperfine. Takes ~1-2 minutes with the defaults.")
    ap.add_argument("--rtenv", type=Path, default=DEFAULT_RTENV,
                    help=f"rtenv binary (default: {DEFAULT_RTENV.relative_to(REPO)})")
    ap.add_argument("--calls", type=int, default=10000,
                    help="measured calls of each RPC, per client (default 10000)")
    ap.add_argument("--warmup", type=int, default=500,
                    help="unmeasured rounds before them (default 500)")
    ap.add_argument("--runs", type=int, default=200,
                    help="hyperfine runs of each command (default 200)")
    ap.add_argument("--rounds", type=int, default=10,
                    help="split the runs into this many rounds, rotating the command order "
                    "(default 10)")
    ap.add_argument("--files", type=int, default=100,
                    help="files in the warm env's working_dir package (default 100)")
    ap.add_argument("--envs", type=int, default=1000,
                    help="distinct envs the agent holds for the memory figure (default 1000)")
    ap.add_argument("--cpu-calls", type=int, default=5000,
                    help="calls of each RPC in the loops that measure the agent's CPU time per "
                    "call (default 5000; 0 skips them)")
    ap.add_argument("--no-cxx", action="store_true", help="skip the C++ client")
    ap.add_argument("--nice", type=int, default=0,
                    help="run everything at this nice increment, e.g. -10 (negative needs root)")
    ap.add_argument("--json-out", type=Path, help="also write raw samples as JSON here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the scratch dir (home, logs, client) instead of deleting it")
    args = ap.parse_args()

    rtenv = args.rtenv.resolve()
    if args.nice:
        os.nice(args.nice)
    if not os.access(rtenv, os.X_OK):
        print(f"rtenv binary {rtenv} not found; build it first:\n  cmake -S {REPO} -B "
              f"{BUILD} -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C {BUILD}", file=sys.stderr)
        return 2
    if shutil.which("hyperfine") is None:
        print("hyperfine not found (apt-get install hyperfine)", file=sys.stderr)
        return 2
    if args.cpu_calls < 0:
        print("--cpu-calls must not be negative", file=sys.stderr)
        return 2
    for n in ("calls", "runs", "rounds", "files", "envs"):
        if getattr(args, n) < 1:
            print(f"--{n} must be at least 1", file=sys.stderr)
            return 2

    scratch = Path(tempfile.mkdtemp(prefix="rtenv-bench-agent-"))
    agents: list[AgentProcess] = []  # what run() started, stopped here whatever happens
    try:
        return run(args, rtenv, scratch, agents)
    except SetupError as e:
        print(f"setup failed: {e}", file=sys.stderr)
        return 2
    except CheckError as e:
        print(f"CHECK FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        for agent in agents:
            agent.stop()
            log(f"agent {agent.pid} stopped")
        if args.keep:
            log(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def run(args, rtenv: Path, scratch: Path, agents: list) -> int:
    m = machine_info(rtenv)
    home = scratch / "home"
    env = dict(os.environ, RTENV_HOME=str(home))
    env.pop("RTENV_STORE", None)
    env.pop("RTENV_NO_AGENT", None)

    # The clients.
    cxx, cxx_how = (None, "skipped (--no-cxx)")
    if not args.no_cxx:
        log("compiling the C++ client")
        cxx, cxx_how = build_cxx_client(scratch / "rpc_latency")
        if cxx is None:
            log(f"no C++ client: {cxx_how}")
    pb2, pb2_grpc = python_stubs(scratch / "py")

    # The working_dir package: --files small files, packed into the home's store.
    wd = scratch / "wd"
    wd.mkdir()
    for i in range(args.files):
        sub = wd / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:04d}.py").write_text(f"# file {i}\nVALUE = {i * 7919 % 100003}\n")
    p = subprocess.run([str(rtenv), "pack", str(wd), "--json"], env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise SetupError(f"rtenv pack failed: {p.stderr.strip()}")
    uri = json.loads(p.stdout.strip().splitlines()[-1])["uri"]
    log(f"packed {args.files} files: {uri}")

    load = {"before": os.getloadavg()}
    psi0, t0 = cpu_pressure_us(), time.perf_counter()

    # 3 (first, so that "idle" is a fresh agent): memory.
    agent = AgentProcess(rtenv, home, scratch / "agent.log")
    agents.append(agent)
    agent.wait_ready(scratch / "agent.log")
    time.sleep(1.0)
    mem = {"idle": memory(agent.pid)}
    log(f"agent {agent.pid} idle: VmRSS {mb(mem['idle']['VmRSS'])} MB")
    py = PyClient(agent.socket, pb2, pb2_grpc)
    py.ping()
    time.sleep(0.2)
    mem["first_call"] = memory(agent.pid)

    log(f"creating {args.envs} envs through the agent")
    ids, installed = set(), 0
    t_pop = time.perf_counter()
    for i in range(args.envs):
        serialized = json.dumps({"env_vars": {"RTENV_BENCH_ENV": str(i)}, "working_dir": uri},
                                separators=(",", ":"), sort_keys=True)
        r = py.get_or_create(py.request(serialized, f"job:bench-mem-{i}", f"bench-mem-{i}"))
        ids.add(r.env_id)
        installed += r.installed
    pop_s = time.perf_counter() - t_pop
    time.sleep(0.5)
    mem["envs"] = memory(agent.pid)
    log(f"{args.envs} envs in {pop_s:.1f} s; VmRSS {mb(mem['envs']['VmRSS'])} MB")
    if len(ids) != args.envs:
        raise CheckError(f"{args.envs} envs created, but {len(ids)} distinct env ids")
    info = py.info()
    held = sum(1 for e in info.envs if any(h.startswith("job:bench-mem-") for h in e.holders))
    if held != args.envs:
        raise CheckError(f"the agent lists {held} envs held by the bench's holders, not {args.envs}")

    # 1: RPC latency (the agent now holds --envs envs, as a busy node would).
    lat_env = json.dumps({"env_vars": {"RTENV_BENCH": "latency"}, "working_dir": uri},
                         separators=(",", ":"), sort_keys=True)
    py.get_or_create(py.request(lat_env, "job:bench-latency", "bench-latency"))
    lat: dict[str, dict] = {}
    if cxx is not None:
        log(f"C++ client: {args.calls} x (Ping, GetOrCreate, CreateWithProgress) after "
            f"{args.warmup} warm-up rounds")
        lat["cxx"] = cxx_latency(cxx, agent.socket, lat_env, args.calls, args.warmup)
    log(f"Python client: {args.calls} x (Ping, GetOrCreate) after {args.warmup} warm-up rounds")
    lat["py"] = py_latency(py, lat_env, args.calls, args.warmup)

    # The agent's own CPU time per call, each RPC in a loop of its own (robust to other load).
    agent_cpu: dict[str, float] = {}
    if args.cpu_calls:
        for rpc, letters in (("ping", "p"), ("get_or_create", "g")):
            c0 = cpu_ms(agent.pid)
            if cxx is not None:
                cxx_latency(cxx, agent.socket, lat_env, args.cpu_calls, 0, letters)
            elif rpc == "ping":
                for _ in range(args.cpu_calls):
                    py.ping()
            else:
                req = py.request(lat_env, "job:bench-latency", "bench-latency")
                for _ in range(args.cpu_calls):
                    py.get_or_create(req)
            agent_cpu[rpc] = (cpu_ms(agent.pid) - c0) * 1000 / args.cpu_calls
        log("agent CPU per call: " + ", ".join(f"{k} {v:.0f} µs" for k, v in agent_cpu.items()))
    mem["after_latency"] = memory(agent.pid)
    py.close()

    # 2: rtenv run on a warm env. The package is materialized (the agent did it above).
    run_env = json.dumps({"env_vars": {"RTENV_BENCH": "run", "RTENV_BENCH_2": "x"},
                          "working_dir": uri}, separators=(",", ":"), sort_keys=True)
    p = subprocess.run([str(rtenv), "run", "-v", "-e", run_env, "--", "true"], env=env,
                       capture_output=True, text=True)
    if p.returncode != 0 or "everything was on this machine already" not in p.stderr:
        raise CheckError(f"`rtenv run` on the warm env did not take the warm path:\n{p.stderr}")
    true_bin = shutil.which("true") or "/usr/bin/true"
    commands = [
        ("true", true_bin),
        ("rtenv run, warm env", f"{rtenv} run -e {shlex.quote(run_env)} -- true"),
        ("rtenv run, no runtime_env", f"{rtenv} run -- true"),
    ]
    log(f"hyperfine: {args.runs} runs of each of {len(commands)} commands in {args.rounds} rounds")
    runs = hyperfine_rounds(commands, args.runs, args.rounds, 5, scratch, env)

    psi1, elapsed = cpu_pressure_us(), time.perf_counter() - t0
    load["after"] = os.getloadavg()
    load["seconds"] = elapsed
    load["psi"] = (psi1 - psi0) / 1e6 / elapsed * 100 if psi0 is not None and psi1 else None

    if args.json_out:
        args.json_out.write_text(json.dumps({"latency_us": lat, "agent_cpu_us": agent_cpu,
                                             "run_ms": runs, "memory_kb": mem, "machine": m,
                                             "load": load}))
    print(render(args, m, load, lat, cxx_how, agent_cpu, runs, commands, mem, pop_s, installed))
    return 0


# ----------------------------------------------------------------------------- report

def render(args, m, load, lat, cxx_how, agent_cpu, runs, commands, mem, pop_s, installed) -> str:
    L: list[str] = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "**FAIL**"

    L.append(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']}; "
             f"rtenv binary built {m['built']}, work tree now at {m['commit']}; gRPC C++ {m['grpcpp']}"
             f", grpcio {m['grpcio']} (Python {m['python']}); {m['hyperfine']}.")
    L.append("")
    la, lb = load["before"], load["after"]
    psi = (f"; runnable tasks waited for a CPU {load['psi']:.0f}% of the time (PSI cpu some)"
           if load.get("psi") is not None else "")
    L.append(f"Load: load average {la[0]:.1f} at the start, {lb[0]:.1f} at the end of the "
             f"{load['seconds']:.0f} s of measurements{psi}."
             + (f" Everything ran at nice {os.getpriority(os.PRIO_PROCESS, 0)}." if args.nice else ""))
    L.append("")

    # 1. latency
    L.append(f"**RPC latency** over the Unix socket, one connection, one call at a time: "
             f"{args.calls:,} measured calls of each RPC after {args.warmup} warm-up rounds, the "
             f"RPCs alternated. GetOrCreate asks for an existing env ({{env_vars, working_dir: the "
             f"{args.files}-file package}}) for the same holder every time; the agent holds "
             f"{args.envs:,} other envs meanwhile.")
    L.append("")
    L.append("| client | RPC | p50 ms | p90 ms | p99 ms | max ms | p50 / Ping p50 |")
    L.append("| --- | --- | --- | --- | --- | --- | --- |")
    names = {"ping": "Ping (empty RPC)", "get_or_create": "GetOrCreateRuntimeEnv, warm",
             "stream": "CreateRuntimeEnvWithProgress, warm (streaming)"}
    clients = [("cxx", "C++ (rpc_latency.cc)"), ("py", "Python (grpcio)")]
    for key, label in clients:
        if key not in lat:
            continue
        base = pct(lat[key]["ping"], 50)
        for rpc in ("ping", "get_or_create", "stream"):
            v = lat[key].get(rpc)
            if not v:
                continue
            L.append(f"| {label} | {names[rpc]} | {pct(v, 50) / 1000:.3f} | {pct(v, 90) / 1000:.3f} "
                     f"| {pct(v, 99) / 1000:.3f} | {max(v) / 1000:.3f} | {pct(v, 50) / base:.2f}× |")
    L.append("")
    L.append(f"C++ client: {cxx_how if 'cxx' in lat else 'not run: ' + cxx_how}")
    L.append("")
    if agent_cpu:
        who = "C++" if "cxx" in lat else "Python"
        L.append(f"The agent's own CPU time (user+sys from /proc/<pid>/stat) per call, in separate "
                 f"loops of {args.cpu_calls:,} calls of one RPC ({who} client): Ping "
                 f"{agent_cpu['ping']:.0f} µs, warm GetOrCreateRuntimeEnv "
                 f"{agent_cpu['get_or_create']:.0f} µs "
                 f"({agent_cpu['get_or_create'] / agent_cpu['ping']:.1f}×).")
        L.append("")

    # 2. rtenv run
    tmed = statistics.median(runs["true"])
    L.append(f"**`rtenv run`** with hyperfine -N, {args.runs} runs of each command in "
             f"{args.rounds} rounds with the command order rotated (5 warm-up runs per command "
             f"per round). The warm env: working_dir = the {args.files}-file package, already "
             f"materialized, plus 2 env_vars; `rtenv run -v` confirmed it took the warm path "
             f"(no agent call).")
    L.append("")
    L.append("| command | median ms | mean ms | p90 ms | min ms | overhead vs `true` (medians) |")
    L.append("| --- | --- | --- | --- | --- | --- |")
    for name, cmd in commands:
        v = runs[name]
        shown = cmd.replace(str(args.rtenv.resolve()), "rtenv")
        L.append(f"| {name}: `{shown}` | {statistics.median(v):.2f} | {statistics.mean(v):.2f} | "
                 f"{pct(v, 90):.2f} | {min(v):.2f} | "
                 f"{'—' if name == 'true' else f'+{statistics.median(v) - tmed:.2f} ms'} |")
    L.append("")

    # 3. memory
    L.append(f"**Agent memory** (kB figures from /proc/<pid>/status and smaps_rollup, in MiB: 1 MB "
             f"here = 1,048,576 bytes). {args.envs:,} envs created through the agent in {pop_s:.1f} s "
             f"({installed} of them installed something: the package is shared).")
    L.append("")
    L.append("| when | VmRSS MB | VmHWM MB | RssAnon MB | RssFile MB | PSS MB | threads | shared libs |")
    L.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = [("idle, 1 s after start (no call yet)", "idle"), ("after its first call (Ping)", "first_call"),
            (f"holding {args.envs:,} envs", "envs"), ("after GetRuntimeEnvsInfo (lists them all) and the latency runs",
                                  "after_latency")]
    for label, key in rows:
        x = mem[key]
        L.append(f"| {label} | {mb(x['VmRSS'])} | {mb(x['VmHWM'])} | {mb(x['RssAnon'])} | "
                 f"{mb(x['RssFile'])} | {mb(x.get('Pss', 0))} | {x['Threads']} | {x.get('libs', '?')} |")
    L.append("")

    # targets
    L.append("| target | result | verdict |")
    L.append("| --- | --- | --- |")
    for key, label in clients:
        if key not in lat:
            continue
        p_ping, p_goc = pct(lat[key]["ping"], 50), pct(lat[key]["get_or_create"], 50)
        p99 = pct(lat[key]["get_or_create"], 99) / 1000
        L.append(f"| {label}: warm GetOrCreate p50 <= {TARGET_RATIO:g}× Ping p50 | "
                 f"{p_goc / 1000:.3f} ms vs {p_ping / 1000:.3f} ms = {p_goc / p_ping:.2f}× | "
                 f"{verdict(p_goc <= TARGET_RATIO * p_ping)} |")
        L.append(f"| {label}: warm GetOrCreate p99 <= {TARGET_P99_MS:g} ms | {p99:.3f} ms | "
                 f"{verdict(p99 <= TARGET_P99_MS)} |")
    over = statistics.median(runs["rtenv run, warm env"]) - tmed
    L.append(f"| `rtenv run` on a warm env: overhead over `true` <= {TARGET_RUN_MS:g} ms (medians) | "
             f"+{over:.2f} ms | {verdict(over <= TARGET_RUN_MS)} |")
    idle = mem["idle"]["VmRSS"] / 1024
    L.append(f"| agent VmRSS idle <= {TARGET_IDLE_MB:g} MB | {idle:.1f} MB | "
             f"{verdict(idle <= TARGET_IDLE_MB)} |")
    L.append(f"| agent holding {args.envs:,} envs (no target) | VmRSS {mb(mem['envs']['VmRSS'])} MB, "
             f"VmHWM {mb(mem['envs']['VmHWM'])} MB | — |")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
