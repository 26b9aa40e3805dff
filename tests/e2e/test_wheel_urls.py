"""Wheels named by URL in py_modules (http://, https://, file://, s3://), and zips on S3: fetched
once on the submitting side, checked against a #sha256= fragment, packed into the store like a
local wheel, installed on the node as local wheels are. Servers run on 127.0.0.1: a counting HTTP
server started here and moto's S3 server (test_s3_store's fixture)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from conftest import PY, assert_ok, assert_setup_failed, make_zip
from httpfiles import Server
from pyindex import build_wheel
from test_s3_store import BUCKET, _free_port, s3  # noqa: F401  (s3 is a fixture)

WHEEL_URI = re.compile(r"rtenv://sha256/[0-9a-f]{64}/fetched_demo-1\.0-py3-none-any\.whl")
IMPORT = "import fetched_demo; print(fetched_demo.__version__, fetched_demo.__file__)"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dists"), "fetched-demo", "1.0")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def server(tmp_path, wheel):
    root = tmp_path / "www"
    root.mkdir()
    (root / wheel.name).write_bytes(wheel.read_bytes())
    s = Server(root)
    yield s
    s.close()


def run_import(py, url: str, *flags):
    p = py.run({"py_modules": [url]}, "python", "-c", IMPORT, flags=flags, timeout=120)
    assert_ok(p)
    version, where = p.stdout.split()
    assert version == "1.0"
    return where, p.stderr


def packed_uri(py, url: str) -> str:
    p = py("env", "create", "--no-install", "--json", "-e", json.dumps({"py_modules": [url]}),
           timeout=60)
    assert_ok(p)
    (uri,) = json.loads(p.stdout)["runtime_env"]["py_modules"]
    return uri


def test_http_wheel_is_fetched_once_and_installed_like_a_local_one(py, server, wheel):
    url = f"{server.url}/{wheel.name}"
    where, err = run_import(py, url, "-v")
    assert where.startswith(str(py.home)), where  # installed into the node's cache, not imported
    assert "downloading " + url in err, err
    assert "install py_modules[0] pyenv://" in err, err
    assert server.gets == [f"/{wheel.name}"]
    # Nothing of the download stays behind in tmp/.
    assert not [p for p in (py.home / "tmp").iterdir() if "fetch" in p.name]

    # Again: the store remembers the URL, so no GET; the node has the install, so no install.
    where_again, err = run_import(py, url, "-v")
    assert where_again == where
    assert server.gets == [f"/{wheel.name}"], "the second run fetched the wheel again"
    assert "everything was on this machine already" in err, err
    assert "downloading" not in err, err

    # The prepared env names the wheel in the store, as a local wheel's does: any node (or a
    # task-level env) gets it from there, under its own name.
    uri = packed_uri(py, url)
    assert WHEEL_URI.fullmatch(uri), uri
    assert uri == packed_uri(py, str(wheel)), "a fetched wheel packs as the same local wheel"
    assert server.gets == [f"/{wheel.name}"]


def test_sha256_fragment_is_checked(py, server, wheel):
    good = f"{server.url}/{wheel.name}#sha256={sha256(wheel)}"
    run_import(py, good)
    assert server.gets == [f"/{wheel.name}"], "the fragment is not sent"

    wrong = "0" * 64
    p = py.run({"py_modules": [f"{server.url}/{wheel.name}#sha256={wrong}"]}, "python", "-c",
               IMPORT, timeout=60)
    assert_setup_failed(p, f"{server.url}/{wheel.name}", f"expected {wrong}",
                        f"got {sha256(wheel)}")
    assert p.stdout == ""

    p = py.run({"py_modules": [f"{server.url}/{wheel.name}#md5=abc"]}, "true", timeout=60)
    assert_setup_failed(p, "#sha256=<64 hex digits>")


def test_file_url_wheel(py, wheel):
    where, _ = run_import(py, f"file://{wheel}")
    assert where.startswith(str(py.home)), where
    assert WHEEL_URI.fullmatch(packed_uri(py, f"file://{wheel}"))


def test_a_missing_wheel_is_a_setup_failure_naming_the_url(py, server):
    url = f"{server.url}/nothere-1.0-py3-none-any.whl"
    p = py.run({"py_modules": [url]}, "true", timeout=60)
    assert_setup_failed(p, "runtime_env.py_modules[0]", url, "not found (HTTP 404)")
    p = py.run({"py_modules": [f"file://{server.root}/nothere-1.0-py3-none-any.whl"]}, "true")
    assert_setup_failed(p, "not found")


def test_an_unreachable_server_fails_after_its_retries(py):
    url = f"http://127.0.0.1:{_free_port()}/fetched_demo-1.0-py3-none-any.whl"
    p = py.run({"py_modules": [url]}, "true", timeout=120)
    assert_setup_failed(p, url, "gave up after 4 attempts")


def test_what_is_not_a_wheel_is_refused(py, server, wheel):
    # An HTML page saved under a wheel's name is not packed.
    (server.root / "page-1.0-py3-none-any.whl").write_text("<html>sign in first</html>")
    p = py.run({"py_modules": [f"{server.url}/page-1.0-py3-none-any.whl"]}, "true")
    assert_setup_failed(p, "not a zip archive")
    # Neither a wheel nor an archive: the spec's validation, as before (exit 2).
    p = py.run({"py_modules": [f"{server.url}/x.tar.zst"]}, "true")
    assert p.returncode == 2, p.stderr
    assert "must name an archive (.zip, .tar.gz, .tgz, .tar.xz, .tar.bz2 or .tar) or a .whl file" \
        in p.stderr, p.stderr


def test_credentials_in_the_url_are_sent_but_never_shown(py, tmp_path, wheel):
    root = tmp_path / "private"
    root.mkdir()
    (root / wheel.name).write_bytes(wheel.read_bytes())
    secret = "hunter2-secret"
    srv = Server(root, credentials=f"alice:{secret}")
    try:
        authed = srv.url.replace("http://", f"http://alice:{secret}@")
        _, err = run_import(py, f"{authed}/{wheel.name}", "-v")
        assert "downloading http://alice:****@127.0.0.1" in err, err
        assert secret not in err
        for bad in (f"{authed}/missing-1.0-py3-none-any.whl",
                    f"{authed}/{wheel.name}#sha256={'1' * 64}"):
            p = py.run({"py_modules": [bad]}, "true", timeout=60)
            assert_setup_failed(p, "alice:****@")
            assert secret not in p.stderr + p.stdout
        # Wrong credentials: the server's refusal, still without the password.
        wrong = srv.url.replace("http://", "http://alice:not-it@")
        p = py.run({"py_modules": [f"{wrong}/{wheel.name}"]}, "true", timeout=60)
        assert_setup_failed(p, "HTTP 401")
        assert "not-it" not in p.stderr
    finally:
        srv.close()


# ---- S3 -----------------------------------------------------------------------------------------


def _with_s3(rtenv, s3):  # noqa: F811
    rtenv.env.update(s3["env"])
    return rtenv


def test_s3_wheel(py, s3, wheel):  # noqa: F811
    _with_s3(py, s3)
    key = f"wheels/{wheel.name}"
    s3["client"].put_object(Bucket=BUCKET, Key=key, Body=wheel.read_bytes())
    url = f"s3://{BUCKET}/{key}"
    where, err = run_import(py, f"{url}#sha256={sha256(wheel)}", "-v")
    assert where.startswith(str(py.home)), where
    assert f"downloading {url}" in err, err
    # A second run does not fetch it again.
    _, err = run_import(py, f"{url}#sha256={sha256(wheel)}", "-v")
    assert "downloading" not in err, err
    assert "everything was on this machine already" in err, err

    p = py.run({"py_modules": [f"s3://{BUCKET}/wheels/none-1.0-py3-none-any.whl"]}, "true",
               timeout=60)
    assert_setup_failed(p, f"s3://{BUCKET}/wheels/none-1.0-py3-none-any.whl",
                        "not found (HTTP 404)")


def test_s3_zip_as_working_dir(rtenv, s3, tmp_path):  # noqa: F811
    _with_s3(rtenv, s3)
    archive = make_zip(tmp_path / "project.zip", [("project/main.py", "print('from an s3 zip')\n"),
                                                   ("project/data.txt", "payload\n")])
    s3["client"].put_object(Bucket=BUCKET, Key="zips/project.zip", Body=archive.read_bytes())
    p = rtenv.run({"working_dir": f"s3://{BUCKET}/zips/project.zip"}, PY, "main.py", timeout=60)
    assert_ok(p)
    assert p.stdout.strip() == "from an s3 zip"
    # The same archive as a py_modules entry (a package of modules), with its digest checked.
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    p = rtenv.run({"py_modules": [f"s3://{BUCKET}/zips/project.zip#sha256={digest}"]}, PY, "-c",
                  "import project.main", timeout=60)
    assert_ok(p)
    assert p.stdout.strip() == "from an s3 zip"
