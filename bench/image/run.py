#!/usr/bin/env python3
"""Benchmark images: `rtenv run` with a registry image against skopeo + umoci + bubblewrap (and
`podman pull` for the pull alone), every peer on the same local docker-registry in the same run.

An image of ~100 MiB in 5 layers (a busybox base and four layers of incompressible files) and a
second image sharing all but a 1 MiB top layer are built (tests/e2e/oci_images.py) and pushed to
a docker-registry on 127.0.0.1. Then, --reps times, rtenv and the peers alternated:

  a. cold       fresh home and store / fresh layout dir: pull and the first run of `true`
                  rtenv:  rtenv run -e '{"image_uri": "<host>/bench/big:v1"}' -- true
                  peer:   skopeo copy docker://... oci:<dir>:v1 && umoci unpack --rootless
                          && bwrap (rootless, the unpacked rootfs as /) true
                  podman: podman pull (a fresh --root); podman run cannot start containers in
                          this machine's container (crun may not set RLIMIT_NPROC), so it is
                          not timed
  b. warm       the image on the node: `true` inside, --warm runs each, medians
                  bare `true`, rtenv run (tag: the tag resolved at the registry each run),
                  rtenv run (pinned @sha256:, no registry request), bwrap on umoci's rootfs
  c. second     the second image after the first: bytes the registry sent (its access log)

Prints a markdown report (medians, min/max) to stdout, progress to stderr. Needs
docker-registry, skopeo, umoci, bwrap, podman, busybox-static (scripts/setup.sh installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import common  # noqa: E402
from oci_images import Registry, busybox_base, file, make_image  # noqa: E402

DEFAULT_RTENV = REPO / "build" / "src" / "cli" / "rtenv"
MIB = 1 << 20


def log(msg: str) -> None:
    print(f"[bench/image] {msg}", file=sys.stderr, flush=True)


def timed(cmd, env=None, cwd=None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    ms = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-2000:]}")
    return ms


def timed_shell(script: str, env=None) -> float:
    return timed(["sh", "-c", script], env=env)


def random_layer(rng: random.Random, index: int, mib: int) -> list:
    return [file(f"data/layer{index}/blob{j}.bin", rng.randbytes(MIB)) for j in range(mib)]


def registry_bytes(reg: Registry, since: int) -> tuple[int, int]:
    """(blob requests, bytes sent for them) in the access log after line `since`."""
    lines = reg.log_path.read_text().splitlines()[since:]
    n = total = 0
    for line in lines:
        m = re.search(r'"GET /v2/[^ ]*/blobs/[^ ]* HTTP/[0-9.]+" 200 (\d+)', line)
        if m:
            n += 1
            total += int(m.group(1))
    return n, total


def log_lines(reg: Registry) -> int:
    return len(reg.log_path.read_text().splitlines())


def stats(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtenv", type=Path, default=Path(os.environ.get("RTENV_BIN", DEFAULT_RTENV)))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warm", type=int, default=30)
    ap.add_argument("--layer-mib", type=int, default=24, help="size of each of the 4 data layers")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    for tool in ("docker-registry", "skopeo", "umoci", "bwrap", "podman"):
        if shutil.which(tool) is None:
            print(f"missing {tool} (scripts/setup.sh installs it)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="bench-image-", dir=args.work))
    rng = random.Random(16)
    log(f"building the images in {work}")
    base = busybox_base("Bench OS")
    data = [random_layer(rng, i, args.layer_mib) for i in range(4)]
    big = make_image([base, *data])
    second = make_image([base, *data, [file("etc/top", rng.randbytes(MIB))]])
    size = sum(len(big.blobs[d]) for d in big.layer_digests)
    reg = Registry(work / "registry")
    results: dict[str, list[float]] = {}
    fetched: dict[str, tuple[int, int]] = {}
    try:
        reg.push("bench/big", "v1", big)
        reg.push("bench/second", "v1", second)
        ref = f"{reg.host}/bench/big:v1"
        ref2 = f"{reg.host}/bench/second:v1"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
        base_env["RTENV_INSECURE_REGISTRIES"] = reg.host

        for rep in range(args.reps):
            log(f"repetition {rep + 1}/{args.reps}")
            home = work / f"home{rep}"
            env = {**base_env, "RTENV_HOME": str(home)}
            spec = json.dumps({"image_uri": ref})
            results.setdefault("cold rtenv", []).append(
                timed([args.rtenv, "run", "-e", spec, "--", "true"], env=env))

            peer = work / f"peer{rep}"
            peer.mkdir()
            results.setdefault("cold skopeo+umoci+bwrap", []).append(timed_shell(
                f"skopeo copy -q --src-tls-verify=false docker://{ref} oci:{peer}/layout:v1 && "
                f"umoci unpack --rootless --image {peer}/layout:v1 {peer}/bundle && "
                f"bwrap --unshare-user --uid 0 --gid 0 --bind {peer}/bundle/rootfs / "
                f"--proc /proc --dev /dev --tmpfs /tmp true", env=base_env))
            pod = work / f"podman{rep}"
            results.setdefault("cold podman pull (pull only)", []).append(timed(
                ["podman", "--root", str(pod / "root"), "--runroot", str(pod / "run"),
                 "--events-backend=none", "pull", "-q", "--tls-verify=false", ref], env=base_env))

            # The second image, after the first.
            since = log_lines(reg)
            timed([args.rtenv, "run", "-e", json.dumps({"image_uri": ref2}), "--", "true"], env=env)
            fetched["rtenv"] = registry_bytes(reg, since)
            since = log_lines(reg)
            timed_shell(f"skopeo copy -q --src-tls-verify=false docker://{ref2} oci:{peer}/layout:v2",
                        env=base_env)
            fetched["skopeo (same layout)"] = registry_bytes(reg, since)
            since = log_lines(reg)
            timed(["podman", "--root", str(pod / "root"), "--runroot", str(pod / "run"),
                   "--events-backend=none", "pull", "-q", "--tls-verify=false", ref2], env=base_env)
            fetched["podman pull (same storage)"] = registry_bytes(reg, since)

        # Warm starts, alternated.
        home = work / "home0"
        env = {**base_env, "RTENV_HOME": str(home)}
        pinned = json.loads(subprocess.run(
            [args.rtenv, "env", "create", "--no-install", "--json", "-e", json.dumps({"image_uri": ref})],
            env=env, capture_output=True, text=True, check=True).stdout)["runtime_env"]
        warm = {
            "bare true": ["true"],
            "rtenv run, tag": [args.rtenv, "run", "-e", json.dumps({"image_uri": ref}), "--", "true"],
            "rtenv run, pinned @sha256": [args.rtenv, "run", "-e", json.dumps(pinned), "--", "true"],
            "bwrap on umoci's rootfs": ["bwrap", "--unshare-user", "--uid", "0", "--gid", "0", "--bind",
                                        str(work / "peer0" / "bundle" / "rootfs"), "/", "--proc", "/proc",
                                        "--dev", "/dev", "--tmpfs", "/tmp", "true"],
        }
        log(f"warm starts, {args.warm} each")
        for _ in range(args.warm):
            for name, cmd in warm.items():
                results.setdefault(f"warm {name}", []).append(timed(cmd, env=env))
        subprocess.run([args.rtenv, "agent", "stop"], env=env, capture_output=True)
        for rep in range(args.reps):
            subprocess.run([args.rtenv, "agent", "stop"],
                           env={**base_env, "RTENV_HOME": str(work / f"home{rep}")}, capture_output=True)
    finally:
        reg.stop()

    m = common.machine(args.rtenv)
    print(f"### Images (bench/image/run.py, {time.strftime('%Y-%m-%d')})\n")
    print(f"Machine: {m['nproc']} cores, {m['cpu']}, {m['mem']}, kernel {m['kernel']}; commit "
          f"{m['commit']}, rtenv built {m['built']}. Image: {len(big.layer_digests)} layers, "
          f"{size / MIB:.1f} MiB compressed (gzip); registry: docker-registry on 127.0.0.1. "
          f"{args.reps} cold repetitions, {args.warm} warm runs each, peers alternated.\n")
    print("| what | median ms (min–max) |")
    print("|---|---|")
    for name, values in results.items():
        print(f"| {name} | {stats(values)} |")
    cold_r = statistics.median(results["cold rtenv"])
    cold_p = statistics.median(results["cold skopeo+umoci+bwrap"])
    print(f"\nCold: rtenv / skopeo+umoci+bwrap = {cold_r / cold_p:.2f}.")
    bare = statistics.median(results["warm bare true"])
    for name in ("rtenv run, tag", "rtenv run, pinned @sha256", "bwrap on umoci's rootfs"):
        w = statistics.median(results[f"warm {name}"])
        print(f"Warm {name}: {w - bare:+.1f} ms over bare `true`.")
    print("\n| second image (shares all but a 1 MiB top layer) | blob requests | bytes from the registry |")
    print("|---|---|---|")
    for name, (n, b) in fetched.items():
        print(f"| {name} | {n} | {b / MIB:.2f} MiB |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
