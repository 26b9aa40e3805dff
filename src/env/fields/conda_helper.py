# rtenv's conda helper: solves and installs conda environments with py-rattler. The `conda` field
# (src/env/fields/conda.cc) starts it as `python3 -c <this file> <idle seconds>` and keeps it
# running: each request is one JSON line on stdin, {"verb": V, "request": R}, and each answer one
# JSON line on stdout. It leaves with os._exit (an interpreter shutdown after a rattler error can
# crash) when stdin closes or after <idle seconds> without a request.
#
#   solve:   {"channels": [url], "specs": [str], "platform": "linux-64", "repodata_cache": dir,
#             "lock_path": file}
#            -> {"packages": [{"name", "version", "build", "url"}]}; the lock (rattler-lock
#            format: exact URLs, sha256 and md5 for the platform) is written to lock_path.
#   install: {"lock_path": file, "prefix": dir, "package_cache": dir, "platform": "linux-64"}
#            -> {"packages": n}; every package's sha256 is checked against the lock first
#            (rattler does not check file:// packages).
# Errors: {"error": "missing" | "unsatisfiable" | "channel" | "install" | "request" | "internal",
#          "message": str}.

import asyncio
import hashlib
import json
import os
import select
import sys
import traceback
import urllib.parse


class Failure(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def fail(kind, message):
    raise Failure(kind, message)


try:
    import rattler
    from rattler import Gateway, LockFile

    MISSING = None
except ImportError as e:
    MISSING = f"py-rattler is not importable by {sys.executable} ({e})"


def solve(req):
    from rattler.exceptions import GatewayError, SolverError

    platform = req["platform"]
    gateway = Gateway(cache_dir=req["repodata_cache"])
    try:
        records = asyncio.run(
            rattler.solve(
                sources=req["channels"],
                specs=req["specs"],
                gateway=gateway,
                platforms=[platform, "noarch"],
                virtual_packages=[],
            )
        )
    except SolverError as e:
        fail("unsatisfiable", str(e))
    except GatewayError as e:
        fail("channel", str(e))
    except (TypeError, ValueError) as e:
        fail("request", str(e))
    lock = LockFile([rattler.LockPlatform(platform)])
    plat = lock.platforms()[0]  # the lock's own platform object (a fresh one panics)
    lock.set_channels("default", [rattler.LockChannel(c) for c in req["channels"]])
    for r in records:
        lock.add_conda_package("default", plat, r)
    lock.to_path(req["lock_path"])
    return {
        "packages": [
            {"name": r.name.normalized, "version": str(r.version), "build": str(r.build),
             "url": r.url}
            for r in sorted(records, key=lambda r: r.name.normalized)
        ]
    }


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_local_packages(records):
    # rattler checks the hash of what it downloads, not of file:// packages: a package swapped in
    # a local channel would install silently.
    for r in records:
        url = urllib.parse.urlparse(r.url)
        if url.scheme != "file" or r.sha256 is None:
            continue
        path = urllib.parse.unquote(url.path)
        try:
            got = sha256_of(path)
        except OSError as e:
            fail("install", f"{r.url}: cannot read the package ({e.strerror})")
        want = r.sha256.hex() if isinstance(r.sha256, bytes) else str(r.sha256)
        if got != want:
            fail("install", f"{r.url}: the package's sha256 is {got}, the lock says {want}; "
                 "the channel changed since the env was solved")


def install(req):
    from rattler.exceptions import InstallerError

    platform = req["platform"]
    lock = LockFile.from_path(req["lock_path"])
    env = lock.default_environment()
    if env is None:
        fail("request", "the lock has no environment")
    plat = [p for p in env.platforms() if str(p) == platform]
    if not plat:
        fail("request", f"the lock has no packages for {platform}")
    records = env.conda_repodata_records_for_platform(plat[0]) or []
    check_local_packages(records)
    try:
        asyncio.run(
            rattler.install(records, target_prefix=req["prefix"],
                            cache_dir=req["package_cache"], show_progress=False))
    except InstallerError as e:
        fail("install", str(e))
    except Exception as e:  # rattler raises its own types for I/O and link failures
        fail("install", f"{type(e).__name__}: {e}")
    return {"packages": len(records)}


VERBS = {"solve": solve, "install": install}


def answer(line):
    try:
        message = json.loads(line)
        verb, request = message["verb"], message["request"]
    except (ValueError, KeyError, TypeError) as e:
        return {"error": "request", "message": f"not a request ({e})"}
    if MISSING:
        return {"error": "missing", "message": MISSING}
    if verb not in VERBS:
        return {"error": "request", "message": f"unknown verb {verb!r}"}
    try:
        return VERBS[verb](request)
    except Failure as e:
        return {"error": e.kind, "message": str(e)}
    except (KeyError, TypeError) as e:
        return {"error": "request", "message": f"{verb}: bad request ({type(e).__name__}: {e})"}
    except Exception:  # a bug here or in rattler: its traceback, for the one who reads the error
        return {"error": "internal", "message": traceback.format_exc()}


def main():
    idle = float(sys.argv[1]) if len(sys.argv) > 1 else 300.0
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], idle)
        line = sys.stdin.readline() if ready else ""
        if not line:  # stdin closed, or idle for too long
            break
        sys.stdout.write(json.dumps(answer(line)) + "\n")
        sys.stdout.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


main()
