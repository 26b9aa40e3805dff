"""The differential harness: the corpus's dicts through Ray's validation and through rtenv's (the
Python model, the Ray helper and the binary), and the verdicts compared.

The world the dicts name is built here, on loopback only: a tree of local paths (the current
directory of every side), an HTTP server and moto's S3 server serving its archives and wheels,
a conda channel on disk and a package index (tests/e2e/pyindex.py) holding every package a
pip/uv list names, so `env create --no-install` locks without reaching any other host.

Verdicts:
- Ray: "accept" or "reject" (ray_side.py, in a process of its own).
- rtenv Python (`RuntimeEnv.from_dict` at the case's level): "accept" or "reject".
- the binary (`rtenv env create --no-install --json -e case.json`, job level; a task env reaches
  it only through the Ray helper, which resolves it as a job env): exit 0 "accept", exit 2
  "reject", exit 3 "setup-failed" (valid, but packing, fetching or locking failed).
- the Ray helper (`rtenv.ray.runtime_env(**env)`, job level): the same three.

`python3 tests/differential/harness.py` prints every verdict and every disagreement.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "python"))

from condachannel import channel_url, standard_channel  # noqa: E402
from httpfiles import Server  # noqa: E402
from pyindex import PackageIndex, build_wheel  # noqa: E402

import corpus  # noqa: E402

BUCKET = "difftest"
DOC = REPO / "docs" / "runtime_env.md"
TABLE_HEADING = "Intended differences from Ray"  # in a "## " heading of docs/runtime_env.md

# Every package (and version) a pip/uv list of the corpus names, served by the loopback index.
PACKAGES = [("requests", "2.27.1"), ("requests", "2.31.0"), ("pendulum", "3.0.0"),
            ("emoji", "2.8.0"), ("tensorflow", "2.15.0"), ("pip", "22.0.2")]

ACCEPT, REJECT, SETUP_FAILED = "accept", "reject", "setup-failed"


# ---- the world ---------------------------------------------------------------------------------


def _zip_dir(src: Path, dest: Path, prefix: str = "") -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.write(p, prefix + p.relative_to(src).as_posix())


def _tar_dir(src: Path, dest: Path, mode: str, prefix: str = "") -> None:
    with tarfile.open(dest, mode) as t:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                t.add(p, prefix + p.relative_to(src).as_posix())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's S3 server did not start (is moto[server] installed? "
                                   "scripts/setup.sh installs it)")
            time.sleep(0.05)


@dataclass
class World:
    """Everything the corpus's placeholders name; `close()` stops the servers."""

    tmp: Path
    root: Path = field(init=False)
    http: Server = field(init=False)
    index: PackageIndex = field(init=False)
    moto: subprocess.Popen = field(init=False)
    s3_endpoint: str = field(init=False)
    channel: Path = field(init=False)
    tool_sha: str = field(init=False)
    registry: object = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.tmp / "root"
        self._build_tree()
        self.http = Server(self.root)
        self.index = PackageIndex(self.tmp / "index")
        wheels = self.tmp / "wheels"
        for name, version in PACKAGES:
            self.index.add(build_wheel(wheels, name, version))
        self.moto, self.s3_endpoint = _start_moto()
        import boto3  # installed with moto

        client = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket=BUCKET)
        for name in self.SERVED:
            client.upload_file(str(self.root / name), BUCKET, name)
        self._start_registry()

    # The images the corpus names (busybox roots: only their names matter to validation).
    IMAGES = ("rayproject/ray:2.39.0-py312-cu123", "anyscale/ray-ml:nightly-py38-cpu",
              "library/python:3.11")

    def _start_registry(self) -> None:
        sys.path.insert(0, str(HERE.parent / "e2e"))
        from oci_images import Registry, busybox_base, make_image

        self.registry = Registry(self.tmp / "registry")
        image = make_image([busybox_base()])
        for name in self.IMAGES:
            repo, tag = name.split(":")
            self.registry.push(repo, tag, image)

    SERVED = ("project.zip", "PROJECT.ZIP", "project.tar.gz", "project.tgz", "project.tar.xz",
              "mylib.zip", "mylib.tar.gz", "tool-1.0-py3-none-any.whl", "greeter.jar", "deps.zip")

    def _build_tree(self) -> None:
        root = self.root
        project = root / "project"
        (project / "data").mkdir(parents=True)
        (project / "main.py").write_text("print('main')\n")
        (project / "data" / "input.csv").write_text("a,b\n1,2\n")
        (project / "debug.log").write_text("log\n")
        (project / "keep.log").write_text("kept\n")
        (project / "requirements.txt").write_text("emoji\n")
        (project / "bin").mkdir()
        (project / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (project / "bin" / "python").chmod(0o755)
        (root / "linked").mkdir()
        (root / "linked" / "notes.txt").symlink_to(root / "notes.txt")
        _zip_dir(project, root / "project.zip")
        shutil.copyfile(root / "project.zip", root / "PROJECT.ZIP")
        _tar_dir(project, root / "project.tar.gz", "w:gz")
        _tar_dir(project, root / "project.tgz", "w:gz")
        _tar_dir(project, root / "project.tar.xz", "w:xz")
        _tar_dir(project, root / "project.tar.bz2", "w:bz2")
        _tar_dir(project, root / "project.tar", "w")

        # A zip with the package directory and a file beside it, so no top-level directory is
        # stripped when it is unpacked: the unpacked tree's root goes on PYTHONPATH.
        staging = self.tmp / "mylib-staging"
        lib = staging / "mylib"
        lib.mkdir(parents=True)
        (lib / "__init__.py").write_text("__version__ = '0.1'\n")
        (staging / "README.txt").write_text("mylib\n")
        shutil.copytree(lib, root / "mylib")
        (root / "mylib" / "scratch.tmp").write_text("x\n")
        _zip_dir(staging, root / "mylib.zip")
        _tar_dir(staging, root / "mylib.tar.gz", "w:gz")
        (root / "helpers.py").write_text("VALUE = 1\n")
        wheel = build_wheel(root / "dist", "tool", "1.0")
        shutil.copyfile(wheel, root / wheel.name)
        self.tool_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()

        (root / "requirements.txt").write_text("requests==2.31.0\n# a comment\npendulum\n")
        # With the interpreter package: a pip section needs a Python in the env.
        self.channel = standard_channel(self.tmp / "channel", with_python=True,
                                        python_cache=self.tmp / "python-pkg")
        (root / "environment.yml").write_text(
            f"name: difftest\nchannels:\n  - {channel_url(self.channel)}\ndependencies:\n"
            "  - libb\n")
        (root / "broken.yml").write_text("dependencies: [libb\n  - : :\n")
        (root / "list.yml").write_text("- libb\n- liba\n")
        (root / "condaenv" / "conda-meta").mkdir(parents=True)
        (root / "condaenv" / "conda-meta" / "history").write_text("")

        jar = io.BytesIO()
        with zipfile.ZipFile(jar, "w") as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
            z.writestr("Greeter.class", b"\xca\xfe\xba\xbe")
        (root / "libs" / "third_party").mkdir(parents=True)
        (root / "libs" / "greeter.jar").write_bytes(jar.getvalue())
        (root / "libs" / "third_party" / "a.jar").write_bytes(jar.getvalue())
        (root / "greeter.jar").write_bytes(jar.getvalue())
        with zipfile.ZipFile(root / "deps.zip", "w") as z:
            z.writestr("a.jar", jar.getvalue())
            z.writestr("README.txt", "deps\n")
        (root / "notes.txt").write_text("not a package\n")

    def placeholders(self) -> dict[str, str]:
        return {"@ROOT@": str(self.root), "@HTTP@": self.http.url, "@S3@": f"s3://{BUCKET}",
                "@CHANNEL@": channel_url(self.channel), "@PY@": sys.executable,
                "@TOOL_SHA@": self.tool_sha, "@INDEX@": self.index.url,
                "@REGISTRY@": self.registry.host}

    def fill(self, value):
        """`value` with every placeholder replaced, in keys and strings at any depth."""
        if isinstance(value, str):
            for k, v in self.placeholders().items():
                value = value.replace(k, v)
            return value
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value

    def rtenv_environ(self, home: Path) -> dict[str, str]:
        """The environment rtenv runs with: its own home, the loopback index for uv and pip, the
        moto S3 endpoint and credentials; no RTENV_* or PYTHON* setting of the caller."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RTENV_", "PYTHON", "UV_", "PIP_", "AWS_"))}
        fake_home = home.parent / (home.name + "-user")
        fake_home.mkdir(parents=True, exist_ok=True)
        env.update({
            "RTENV_HOME": str(home), "HOME": str(fake_home),
            "XDG_CACHE_HOME": str(fake_home / ".cache"),
            "UV_INDEX_URL": self.index.url, "UV_DEFAULT_INDEX": self.index.url,
            "PIP_INDEX_URL": self.index.url, "UV_NO_CONFIG": "1",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "RTENV_S3_ENDPOINT": self.s3_endpoint,
            "RTENV_INSECURE_REGISTRIES": self.registry.host,
        })
        return env

    def close(self) -> None:
        self.registry.stop()
        self.http.close()
        self.index.stop()
        self.moto.terminate()
        try:
            self.moto.wait(10)
        except subprocess.TimeoutExpired:
            self.moto.kill()


# ---- the verdicts ------------------------------------------------------------------------------


@dataclass
class Verdict:
    outcome: str  # ACCEPT, REJECT or SETUP_FAILED
    message: str = ""


@dataclass
class Result:
    case: dict
    env: dict  # filled
    ray: Verdict
    python: Verdict  # RuntimeEnv.from_dict at the case's level
    python_job: Verdict  # the same at job level (what the binary is compared with)
    binary: Verdict
    helper: Verdict | None  # rtenv.ray.runtime_env, job-level cases

    @property
    def id(self) -> str:
        return self.case["id"]

    @property
    def rtenv(self) -> str:
        """rtenv's verdict to compare with Ray's: the Python model's at the case's level; where
        it accepts, the binary's (which then accepts too, or fails to set the env up)."""
        if self.python.outcome == ACCEPT:  # the binary (job level) accepts it too
            return self.binary.outcome
        return self.python.outcome

    @property
    def agrees_with_ray(self) -> bool:
        return self.rtenv == self.ray.outcome

    def describe(self) -> str:
        parts = [f"{self.id} ({self.case['level']}): Ray {self.ray.outcome}, rtenv {self.rtenv}"]
        if self.ray.message:
            parts.append(f"    Ray: {self.ray.message[:300]}")
        for name, v in (("rtenv python", self.python), ("rtenv binary", self.binary)):
            if v.message:
                parts.append(f"    {name}: {v.message[:300]}")
        return "\n".join(parts)


def ray_verdicts(world: World, cases: list[dict]) -> tuple[str, dict[str, Verdict]]:
    request = {"root": str(world.root),
               "cases": [{"id": c["id"], "level": c["level"], "env": world.fill(c["env"])}
                         for c in cases]}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    p = subprocess.run([sys.executable, str(HERE / "ray_side.py")], input=json.dumps(request),
                       capture_output=True, text=True, cwd=world.root, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"Ray's side failed (exit {p.returncode}); is Ray installed? "
                           f"scripts/setup.sh installs it:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout)
    return out["ray_version"], {
        k: Verdict(ACCEPT if v["accepted"] else REJECT, v["message"])
        for k, v in out["verdicts"].items()}


def python_verdict(world: World, env: dict, level: str) -> Verdict:
    from rtenv.runtime_env import RuntimeEnv

    try:
        RuntimeEnv.from_dict(env, level=level, base_dir=str(world.root))
    except ValueError as e:
        return Verdict(REJECT, str(e))
    return Verdict(ACCEPT)


def binary_verdict(world: World, binary: str, home: Path, case_id: str, env: dict) -> Verdict:
    spec = home.parent / "specs" / f"{case_id}.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(env))
    p = subprocess.run([binary, "env", "create", "--no-install", "--json", "-e", str(spec)],
                       cwd=world.root, env=world.rtenv_environ(home), capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    message = p.stderr.strip()
    if p.returncode == 0:
        return Verdict(ACCEPT, "")
    if p.returncode == 2:
        return Verdict(REJECT, message)
    if p.returncode == 3:
        return Verdict(SETUP_FAILED, message)
    return Verdict(f"exit-{p.returncode}", message)


def helper_verdict(world: World, binary: str, home: Path, env: dict) -> Verdict:
    """rtenv.ray.runtime_env(**env) with the binary under the same environment."""
    import rtenv
    from rtenv.ray import runtime_env

    environ = world.rtenv_environ(home)
    environ["RTENV_BIN"] = binary
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        runtime_env(cwd=str(world.root), **env)
    except rtenv.SetupFailed as e:
        return Verdict(SETUP_FAILED, str(e))
    except (ValueError, TypeError) as e:
        return Verdict(REJECT, str(e))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Verdict(ACCEPT)


def collect(world: World, binary: str, cases: list[dict] | None = None) -> tuple[str, list[Result]]:
    cases = corpus.CASES if cases is None else cases
    ray_version, ray = ray_verdicts(world, cases)
    home = world.tmp / "rtenv-home"
    filled = {c["id"]: world.fill(c["env"]) for c in cases}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        binary_futures = {c["id"]: pool.submit(binary_verdict, world, binary, home, c["id"],
                                               filled[c["id"]]) for c in cases}
        binaries = {k: f.result() for k, f in binary_futures.items()}
    results = []
    for c in cases:
        env = filled[c["id"]]
        helper = None
        if c["level"] == corpus.JOB and all(isinstance(k, str) and k.isidentifier()
                                            for k in env):
            helper = helper_verdict(world, binary, home, env)
        results.append(Result(
            case=c, env=env, ray=ray[c["id"]],
            python=python_verdict(world, env, c["level"]),
            python_job=python_verdict(world, env, corpus.JOB),
            binary=binaries[c["id"]], helper=helper))
    return ray_version, results


# ---- the table of intended differences ---------------------------------------------------------


_WORDS = {"accepts": ACCEPT, "rejects": REJECT, "fails at setup": SETUP_FAILED}


@dataclass
class Intended:
    ray: str  # ACCEPT / REJECT
    rtenv: str  # ACCEPT / REJECT / SETUP_FAILED
    reason: str


def intended_differences(doc: Path = DOC) -> dict[str, Intended]:
    """{case id: Intended} from the "Intended differences from Ray" table of docs/runtime_env.md.
    Its rows are `| case ids (in backticks) | Ray: accepts/rejects | rtenv: accepts/rejects/fails
    at setup | why |`."""
    lines = doc.read_text().splitlines()
    heading = [i for i, line in enumerate(lines)
               if line.startswith("## ") and TABLE_HEADING in line]
    if not heading:
        raise ValueError(f"{doc} has no '## ... {TABLE_HEADING}' section")
    out: dict[str, Intended] = {}
    for line in lines[heading[0] + 1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or set(line.strip()) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        ids = re.findall(r"`([^`]+)`", cells[0])
        if not ids:  # the header row
            continue
        if len(cells) != 4 or cells[1] not in _WORDS or cells[2] not in _WORDS:
            raise ValueError(f"{doc}: a row of '{TABLE_HEADING}' is not `| cases | accepts or "
                             f"rejects | accepts, rejects or fails at setup | why |`: {line}")
        for case_id in ids:
            if case_id in out:
                raise ValueError(f"{doc}: case {case_id} is in two rows of the table")
            out[case_id] = Intended(_WORDS[cells[1]], _WORDS[cells[2]], cells[3])
    if not out:
        raise ValueError(f"the '{TABLE_HEADING}' table in {doc} has no rows")
    return out


def as_expected(r: Result, intended: dict[str, Intended]) -> bool:
    """A case listed in the table differs exactly as its row says; any other agrees with Ray."""
    row = intended.get(r.id)
    if row is None:
        return r.agrees_with_ray
    return (r.ray.outcome, r.rtenv) == (row.ray, row.rtenv)


def main() -> int:
    binary = os.environ.get("RTENV_BIN", str(REPO / "build" / "src" / "cli" / "rtenv"))
    only = sys.argv[1:]
    cases = [c for c in corpus.CASES if not only or c["id"] in only]
    with tempfile.TemporaryDirectory(prefix="rtenv-difftest-") as tmp:
        world = World(Path(tmp))
        try:
            started = time.monotonic()
            version, results = collect(world, binary, cases)
            elapsed = time.monotonic() - started
        finally:
            world.close()
    try:
        intended = intended_differences()
    except ValueError:
        intended = {}
    print(f"Ray {version}, {len(results)} cases, {elapsed:.1f} s")
    for r in results:
        flag = ("  " if r.agrees_with_ray and r.id not in intended
                else "I " if as_expected(r, intended) else "!!")
        helper = r.helper.outcome if r.helper else "-"
        print(f"{flag} {r.id:40} ray={r.ray.outcome:7} py={r.python.outcome:7} "
              f"bin={r.binary.outcome:12} helper={helper}")
    print()
    for r in results:
        if not as_expected(r, intended):
            print(r.describe())
    for r in results:
        py_ok = r.python_job.outcome == ACCEPT
        bin_ok = r.binary.outcome in (ACCEPT, SETUP_FAILED)
        if py_ok != bin_ok:
            print(f"PYTHON/BINARY DISAGREE: {r.id}: python {r.python_job.outcome} "
                  f"({r.python_job.message}), binary {r.binary.outcome} ({r.binary.message})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
