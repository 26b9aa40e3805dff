"""The store failing under a node: its server dies in the middle of a download (the node retries,
then fails clearly, and works once the store is back), or a blob in it is damaged (detected,
never used, nothing corrupt left on the node)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from netns import PY
from trees import TREE_DIGEST, random_tree, tree_digest

STORE_RATE = "160mbit"  # the store's link, capped so a download takes seconds, not milliseconds


def _assert_setup_failed(p, *needles: str) -> None:
    assert p.returncode == 3, f"exit {p.returncode}, expected 3 (setup failed)\n{p.stderr}"
    assert p.stderr.startswith("rtenv: setup failed:"), p.stderr
    for bad in ("Traceback", "terminate called", "what():", "Segmentation"):
        assert bad not in p.stderr, p.stderr
    for n in needles:
        assert n in p.stderr, f"{n!r} not in stderr: {p.stderr}"


def _wait_until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (v := pred()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return v


def test_the_store_dies_during_a_download(machines, servers, cluster, store_kind, tmp_path):
    project = tmp_path / "big"
    size = random_tree(project, files=24, total_bytes=48 << 20, seed=f"big:{tmp_path}")
    expected = tree_digest(project)
    uri = machines.client.pack(project)["uri"]
    node = machines.nodes[0]
    spec = {"working_dir": uri}
    # The run after the store is back must not be served this failure again.
    node.extra_env["RTENV_FAILURE_TTL"] = "0"

    cluster.store.limit_rate(STORE_RATE)
    try:
        start_rx = node.machine.link_bytes()[0]
        proc = node.popen("run", "-e", json.dumps(spec), "--", PY, "-c", TREE_DIGEST)
        # Mid-download: a sixth of it has arrived.
        _wait_until(lambda: node.machine.link_bytes()[0] - start_rx > size // 6
                    or proc.poll() is not None, 60, "the download to start")
        assert proc.poll() is None, f"the run ended before the store went away: {proc.stderr}"
        assert node.machine.link_bytes()[0] - start_rx < size * 0.8, "the download was not cut"
        killed_at = time.monotonic()
        servers.kill(store_kind)
        out, err = proc.communicate(timeout=120)
        took = time.monotonic() - killed_at
    finally:
        cluster.store.limit_rate(None)
        if servers.server(store_kind).poll() is not None:
            servers.restart(store_kind)

    _assert_setup_failed(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                         servers.describe(store_kind))
    assert out == ""
    assert took < 60, f"giving up took {took:.0f} s"
    assert "attempts" in err, f"the error does not say it retried: {err}"
    pkgs = node.home / "pkgs"
    assert not any(pkgs.glob("*/main.py")), "a partial working_dir was published"

    # The store is back (moto keeps its objects in memory: the restarted one is empty, so the
    # client submits the job again; the blob server's files are still there).
    if store_kind == "s3":
        assert machines.client.pack(project)["uri"] == uri
    p = node.run(spec, PY, "-c", TREE_DIGEST)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == expected


def _find_blob(servers, store_kind: str, store_env: dict, digest: str):
    """(read, write, stored form of content) of blob `digest` in the store: the blob server
    keeps a blob as it is, S3 as it travels (a tag byte, 0 = raw, and the payload)."""
    if store_kind == "http":
        path = servers.blob_root / digest[:2] / digest

        def write(data: bytes) -> None:
            os.chmod(path, 0o644)
            path.write_bytes(data)

        return path.read_bytes, write, lambda content: content
    prefix = store_env["RTENV_STORE"].split("/", 3)[3]
    key = f"{prefix}/{digest[:2]}/{digest}"

    def read() -> bytes:
        return bytes.fromhex(servers.s3(
            "print(c.get_object(Bucket=bucket, Key=sys.argv[1])['Body'].read().hex())", key))

    def write_s3(data: bytes) -> None:
        servers.s3("c.put_object(Bucket=bucket, Key=sys.argv[1], Body=bytes.fromhex(sys.argv[2]))",
                   key, data.hex())

    return read, write_s3, lambda content: b"\0" + content


# Well-formed in the store (so the digest check is what catches it), but not the packed content.
TAMPERED = b"tampered content, not what was packed\n"


def test_a_corrupted_blob_is_detected_and_not_used(machines, servers, store_kind, store_env,
                                                   tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    secret = f"the real content of {tmp_path}\n".encode()
    (project / "secret.txt").write_bytes(secret)
    (project / "other.txt").write_text("other\n")
    digest = hashlib.sha256(secret).hexdigest()
    uri = machines.client.pack(project)["uri"]
    read, write, stored = _find_blob(servers, store_kind, store_env, digest)
    original = read()
    assert original == stored(secret)
    write(stored(TAMPERED))
    node = machines.nodes[1]
    node.extra_env["RTENV_FAILURE_TTL"] = "0"
    spec = {"working_dir": uri}

    p = node.run(spec, "cat", "secret.txt")
    _assert_setup_failed(p, digest[:12])
    assert "tampered" not in p.stdout
    for path in Path(node.home).rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TAMPERED not in path.read_bytes(), f"corrupt data kept on the node: {path}"
    assert not any((node.home / "pkgs").glob("*/secret.txt")), "a corrupt blob was materialized"

    # Repaired in the store, the same env works on the same node.
    write(original)
    p = node.run(spec, "cat", "secret.txt")
    assert p.returncode == 0, p.stderr
    assert p.stdout.encode() == secret
