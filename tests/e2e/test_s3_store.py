"""rtenv with an S3 store (s3://bucket/prefix): a package packed by one machine's rtenv runs on
another from the bucket, through the agent; a corrupted blob is never used; a store that is gone
fails setup clearly. The bucket is moto's S3 server on 127.0.0.1, started by these tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_ok, assert_setup_failed, stop_agent, write_tree

BUCKET = "rtenv-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on 127.0.0.1 with one bucket; yields the environment a client needs."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "RTENV_S3_ENDPOINT": endpoint}
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("moto's S3 server did not start (is moto[server] installed? "
                            "scripts/setup.sh installs it)")
            time.sleep(0.05)
    import boto3  # installed with moto

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=BUCKET)
    yield {"env": env, "client": client, "proc": proc}
    proc.terminate()
    proc.wait(10)


def _with_s3(rtenv, s3, prefix: str):
    rtenv.env.update(s3["env"], RTENV_STORE=f"s3://{BUCKET}/{prefix}")
    return rtenv


def test_packed_on_one_machine_runs_on_another_from_the_bucket(rtenv, rtenv_bin, s3, tmp_path):
    client_side = _with_s3(rtenv, s3, "one")
    project = write_tree(tmp_path / "project", {"main.py": "print('hello from s3')\n",
                                                "data/x.txt": "x" * 5000})
    packed = client_side.pack(project)
    assert packed["blobs_uploaded"] == packed["blobs"], packed
    uri = packed["uri"]
    objects = s3["client"].list_objects_v2(Bucket=BUCKET, Prefix="one/")["Contents"]
    assert len(objects) >= 3, objects  # two files and at least one manifest

    # Another machine: its own RTENV_HOME, the same bucket; its agent fetches from S3.
    from conftest import Rtenv

    other_home = tmp_path / "other-home"
    other = Rtenv(rtenv_bin, other_home, tmp_path / "other-fake-home")
    other.env.update(client_side.env, RTENV_HOME=str(other_home))
    try:
        p = other.run({"working_dir": uri}, sys.executable, "main.py", flags=("-v",))
        assert_ok(p)
        assert p.stdout.strip() == "hello from s3"
        assert "installed by the agent" in p.stderr, p.stderr
        copy = next((other_home / "pkgs").glob("*/data/x.txt"))
        assert copy.read_text() == "x" * 5000
    finally:
        stop_agent(other_home)


def test_a_corrupted_blob_is_detected_and_not_used(rtenv, s3, tmp_path):
    r = _with_s3(rtenv, s3, "corrupt")
    project = write_tree(tmp_path / "project", {"secret.txt": "the real content\n"})
    uri = r.pack(project)["uri"]
    digest = subprocess.run(["sha256sum", str(project / "secret.txt")], capture_output=True,
                            text=True).stdout.split()[0]
    key = f"corrupt/{digest[:2]}/{digest}"
    s3["client"].put_object(Bucket=BUCKET, Key=key, Body=b"tampered content\n")
    # The bucket still "has" the blob, so nothing refetches it: the node must catch the damage
    # when it reads it.
    p = r.run({"working_dir": uri}, "cat", "secret.txt", env={"RTENV_NO_AGENT": "1"})
    assert_setup_failed(p, digest[:12])
    assert "tampered" not in p.stdout
    assert not list((r.home / "pkgs").glob("*/secret.txt")), "a corrupt blob was materialized"


def test_a_store_that_is_gone_fails_setup_clearly(rtenv, s3, tmp_path):
    r = _with_s3(rtenv, s3, "gone")
    # Nothing listens on this port: every request fails to connect, is retried, then reported.
    port = _free_port()
    r.env["RTENV_S3_ENDPOINT"] = f"http://127.0.0.1:{port}"
    project = write_tree(tmp_path / "project", {"a.txt": "a\n"})
    start = time.monotonic()
    p = r.run({"working_dir": str(project)}, "true", env={"RTENV_NO_AGENT": "1"}, timeout=120)
    assert_setup_failed(p, f"127.0.0.1:{port}")
    assert time.monotonic() - start < 60
    assert "Traceback" not in p.stderr
