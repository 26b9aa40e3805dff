"""rtenv's own blob server (`rtenv store serve`) and its client (--store http://...): a package
packed from one RTENV_HOME runs from another through that home's agent; a blob tampered with on
the server's disk is never used; a wrong token and a server that is gone fail setup clearly, and
a restarted server serves again. Everything listens on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import Rtenv, assert_clean_error, assert_ok, assert_setup_failed, stop_agent, write_tree

TOKEN = "e2e-token-5f2c"


class BlobServer:
    """`rtenv store serve` as a child process, on 127.0.0.1."""

    def __init__(self, binary: str, root: Path, token_file: Path | None, env: dict):
        self.binary = binary
        self.root = root
        self.token_file = token_file
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.port = 0

    def start(self, port: int = 0, *flags: str) -> "BlobServer":
        args = [self.binary, "store", "serve", "--root", str(self.root),
                "--listen", f"127.0.0.1:{port}", *flags]
        if self.token_file:
            args += ["--token-file", str(self.token_file)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # the first line names the address, then nothing
        if not line.startswith("listening on http://127.0.0.1:"):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail(f"rtenv store serve did not start: stdout {line!r}, stderr {err!r}")
        self.url = line.split()[2]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        """Stops the server with `sig`; returns its exit status and stderr."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=15)
        code = self.proc.returncode
        self.proc = None
        return code, err

    def blob_path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest


@pytest.fixture
def server(rtenv_bin, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
    env["RTENV_HOME"] = str(tmp_path / "server-home")
    s = BlobServer(rtenv_bin, tmp_path / "served", token_file, env).start()
    yield s
    if s.proc is not None:
        code, err = s.stop()
        assert code == 0, f"rtenv store serve exited {code} on SIGTERM: {err}"


def _client(r: Rtenv, server: BlobServer, token: str | None = TOKEN) -> Rtenv:
    r.env["RTENV_STORE"] = server.url
    r.env.pop("RTENV_STORE_TOKEN", None)
    if token is not None:
        r.env["RTENV_STORE_TOKEN"] = token
    return r


def _other_home(rtenv_bin, tmp_path, like: Rtenv, name: str) -> Rtenv:
    home = tmp_path / f"{name}-home"
    fake = tmp_path / f"{name}-fake-home"
    fake.mkdir()
    other = Rtenv(rtenv_bin, home, fake)
    other.env.update(like.env, RTENV_HOME=str(home), HOME=str(fake),
                     XDG_CACHE_HOME=str(fake / ".cache"))
    return other


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_packed_on_one_home_runs_on_another_through_the_agent(rtenv, rtenv_bin, server,
                                                              tmp_path):
    client = _client(rtenv, server)
    project = write_tree(tmp_path / "project", {"main.py": "print('hello from the blob server')\n",
                                                "data/x.txt": "x" * 50000})
    packed = client.pack(project)
    assert packed["store"] == server.url
    assert packed["blobs_uploaded"] == packed["blobs"] >= 3, packed
    # Blobs are kept raw on the server: its directory is a plain store.
    x = server.blob_path(_sha256(project / "data/x.txt"))
    assert x.read_text() == "x" * 50000
    again = client.pack(project, "--no-index")
    assert again["blobs_uploaded"] == 0 and again["blobs_present"] == packed["blobs"], again

    other = _other_home(rtenv_bin, tmp_path, client, "other")
    try:
        p = other.run({"working_dir": packed["uri"]}, "python3", "main.py", flags=("-v",))
        assert_ok(p)
        assert p.stdout.strip() == "hello from the blob server"
        assert "installed by the agent" in p.stderr, p.stderr
        copy = next((other.home / "pkgs").glob("*/data/x.txt"))
        assert copy.read_text() == "x" * 50000
        # `rtenv env create` through the agent, as a scheduler would call it.
        third = _other_home(rtenv_bin, tmp_path, client, "third")
        try:
            c = third("env", "create", "--runtime-env", json.dumps({"working_dir": packed["uri"]}),
                      "--job", "j1", "--json")
            assert_ok(c)
            assert next((third.home / "pkgs").glob("*/main.py")).is_file()
            assert_ok(third("env", "release", "--job", "j1"))
        finally:
            stop_agent(third.home)
    finally:
        stop_agent(other.home)


def test_a_tampered_blob_is_refused(rtenv, rtenv_bin, server, tmp_path):
    client = _client(rtenv, server)
    project = write_tree(tmp_path / "project", {"secret.txt": "the real content\n"})
    uri = client.pack(project)["uri"]
    digest = _sha256(project / "secret.txt")
    blob = server.blob_path(digest)
    blob.chmod(0o644)
    blob.write_text("tampered content\n")

    other = _other_home(rtenv_bin, tmp_path, client, "other")
    p = other.run({"working_dir": uri}, "cat", "secret.txt", env={"RTENV_NO_AGENT": "1"})
    assert_setup_failed(p, digest[:12], "corrupt")
    assert "tampered" not in p.stdout
    assert not list((other.home / "pkgs").glob("*/secret.txt")), "a corrupt blob was materialized"

    # The server itself refuses an upload whose content does not match its name.
    claimed = hashlib.sha256(b"what the name promises").hexdigest()
    body = b"\x00" + b"something else"  # blob_codec: tag 0 = raw
    req = urllib.request.Request(f"{server.url}/v1/blobs/{claimed}", data=body, method="PUT",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 400
    message = refused.value.read().decode()
    assert claimed in message and hashlib.sha256(b"something else").hexdigest() in message, message
    assert not server.blob_path(claimed).exists()


def test_a_wrong_or_missing_token_fails_with_a_clear_message(rtenv, server, tmp_path):
    project = write_tree(tmp_path / "project", {"a.txt": "a\n"})
    for token in ("not-the-token", None):
        r = _client(rtenv, server, token)
        p = r("pack", project)
        assert p.returncode == 3, p.stderr
        assert_clean_error(p.stderr)
        assert "refused the token" in p.stderr and "RTENV_STORE_TOKEN" in p.stderr, p.stderr
        assert server.url in p.stderr, p.stderr
        assert TOKEN not in p.stderr and "not-the-token" not in p.stderr, p.stderr
        run = r.run({"working_dir": str(project)}, "true", env={"RTENV_NO_AGENT": "1"})
        assert_setup_failed(run, "RTENV_STORE_TOKEN")
    assert not any(server.root.glob("??/*")), "nothing was stored for a refused caller"


def test_a_server_that_is_gone_fails_clearly_and_works_once_restarted(rtenv, rtenv_bin, server,
                                                                       tmp_path):
    client = _client(rtenv, server)
    project = write_tree(tmp_path / "project", {"a.txt": "from the restarted server\n"})
    uri = client.pack(project)["uri"]
    code, err = server.stop()
    assert code == 0, err

    other = _other_home(rtenv_bin, tmp_path, client, "other")
    start = time.monotonic()
    p = other.run({"working_dir": uri}, "cat", "a.txt", env={"RTENV_NO_AGENT": "1"}, timeout=120)
    assert_setup_failed(p, f"127.0.0.1:{server.port}", "gave up after")
    assert time.monotonic() - start < 60

    server.start(server.port)
    p = other.run({"working_dir": uri}, "cat", "a.txt", env={"RTENV_NO_AGENT": "1"})
    assert_ok(p)
    assert p.stdout == "from the restarted server\n"


def test_serve_through_the_lean_front_logs_and_stops_on_sigint(rtenv_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
    env["RTENV_HOME"] = str(tmp_path / "home")
    # No --root: the home's own store. No token: open (and no warning on loopback).
    s = BlobServer(rtenv_bin, tmp_path / "home" / "store", None, env)
    s.start(0, "--verbose")
    data = b"hello"
    digest = hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"{s.url}/v1/blobs/{digest}", data=b"\x00" + data, method="PUT")
    assert urllib.request.urlopen(req, timeout=10).status == 204
    missing = urllib.request.urlopen(urllib.request.Request(
        f"{s.url}/v1/missing", data=f"{digest}\n{'0' * 64}\n".encode(), method="POST"),
        timeout=10).read().decode()
    assert missing.split() == ["0" * 64]
    assert (tmp_path / "home" / "store" / digest[:2] / digest).read_bytes() == data
    code, err = s.stop(signal.SIGINT)
    assert code == 0, err
    assert f"PUT /v1/blobs/{digest} 204" in err, err
    assert "POST /v1/missing 200" in err, err
    assert "warning" not in err, err


def test_a_request_path_cannot_forge_log_lines(rtenv_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
    env["RTENV_HOME"] = str(tmp_path / "home")
    s = BlobServer(rtenv_bin, tmp_path / "home" / "store", None, env)
    s.start(0, "--verbose")
    forged = "rtenv store: PUT /v1/blobs/forged 204"
    try:
        urllib.request.urlopen(f"{s.url}/v1/x%0A{urllib.parse.quote(forged)}", timeout=10)
    except urllib.error.HTTPError:
        pass
    code, err = s.stop(signal.SIGINT)
    assert code == 0, err
    lines = err.splitlines()
    assert not any(l.startswith(forged) for l in lines), err
    assert any("/v1/x\\x0a" + forged in l for l in lines), err


def test_serve_refuses_a_bad_address(rtenv):
    p = rtenv("store", "serve", "--listen", "127.0.0.1")
    assert p.returncode == 2, p.stderr
    assert "expected HOST:PORT" in p.stderr, p.stderr


def test_the_listen_queue_holds_a_node_opening_many_connections_at_once(server):
    # A node fetches with 16 requests in flight; a short accept queue drops SYNs, which costs a
    # second's retransmission each time.
    out = subprocess.run(["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out and out[0] == "LISTEN", out
    assert int(out[2]) >= 64, f"backlog {out[2]}"


def test_clients_sending_headers_slowly_do_not_starve_authenticated_ones(rtenv, server, tmp_path):
    # 70 connections without a token send a header line every second and never finish their
    # request (a slow-loris). More than the server's 64 handler threads: a server that gave each
    # connection a thread while it read headers stopped answering anyone until they gave up.
    # Some come from the same address as the real client.
    import socket
    import threading

    done = threading.Event()
    slow: list[socket.socket] = []
    for i in range(70):
        s = socket.socket()
        s.bind(("127.0.0.2" if i % 2 else "127.0.0.1", 0))
        s.connect(("127.0.0.1", server.port))
        s.sendall(b"PUT /v1/blobs/" + b"0" * 64 + b" HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)

    def drip():
        for _ in range(20):
            if done.wait(1.0):
                break
            for s in slow:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass  # the server may close the ones that have waited longest
        done.set()

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        work = tmp_path / "slowloris-tree"
        write_tree(work, {"a.txt": "while they dawdle\n", "b/c.txt": "x" * 5000})
        r = _client(rtenv, server)
        p = r("pack", str(work))
        assert_ok(p)
        # Answered while the slow clients were still at it, not after they gave up.
        assert not done.is_set(), "the pack was only answered once the slow clients stopped"
    finally:
        done.set()
        dripper.join()
        for s in slow:
            s.close()


def test_a_body_over_the_package_limit_is_refused_before_it_travels(rtenv_bin, tmp_path):
    # The server takes bodies up to the configured max_package_size; a bigger one is refused as
    # soon as its headers arrive, without reading (or holding in memory) any of it.
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
    env["RTENV_HOME"] = str(tmp_path / "home")
    env["RTENV_MAX_PACKAGE_SIZE"] = "1MB"
    s = BlobServer(rtenv_bin, tmp_path / "served", None, env).start()
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            c.sendall(b"PUT /v1/blobs/" + b"0" * 64 + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 2000000\r\n\r\n")
            answer = c.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 413 "), answer
        assert "larger than this server accepts" in answer, answer
    finally:
        code, err = s.stop()
    assert code == 0, err
