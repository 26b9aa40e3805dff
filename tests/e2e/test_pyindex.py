"""The package index the Python tests use (pyindex.py), checked with a real installer (uv).

Builds `simple` 1.0 and 2.0, `withdep` 1.0 (needs `simple<2`) and `broken` 0.1 (an sdist whose
build fails), serves them on 127.0.0.1 and installs from there into fresh virtualenvs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from conftest import PY
from pyindex import (build_failing_sdist, build_wheel, dist_project, find_uv,
                     normalize)

BROKEN_MESSAGE = "pyindex-test: the broken package refuses to build"


UV = find_uv(PY)


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dists")
    return {
        "simple-1.0": build_wheel(out, "simple", "1.0"),
        "simple-2.0": build_wheel(out, "simple", "2.0", payload_bytes=64 * 1024),
        "withdep-1.0": build_wheel(out, "withdep", "1.0", deps=["simple<2"]),
        "broken-0.1": build_failing_sdist(out, "broken", "0.1", message=BROKEN_MESSAGE),
    }


@pytest.fixture
def uv_env(tmp_path) -> dict:
    """An environment for uv that sees no user configuration and caches under tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UV_", "PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1",
               UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1", UV_HTTP_RETRIES="0",
               HOME=str(tmp_path / "home"))
    return env


def uv(env: dict, *args, input: str | None = None, timeout: float = 60):
    return subprocess.run([UV, *map(str, args)], env=env, capture_output=True, text=True,
                          input=input, timeout=timeout)


def venv(env: dict, path: Path) -> Path:
    p = uv(env, "venv", path, "--python", PY)
    assert p.returncode == 0, p.stderr
    return path / "bin" / "python"


def versions(python: Path, *modules: str) -> dict:
    code = ("import importlib, json, sys; "
            "print(json.dumps({m: importlib.import_module(m).__version__ for m in sys.argv[1:]}))")
    p = subprocess.run([str(python), "-c", code, *modules], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# ---- the files themselves ---------------------------------------------------------------------


def test_wheel_is_well_formed_and_deterministic(tmp_path, dists):
    again = build_wheel(tmp_path, "withdep", "1.0", deps=["simple<2"])
    assert again.read_bytes() == dists["withdep-1.0"].read_bytes()
    assert again.name == "withdep-1.0-py3-none-any.whl"

    whl = build_wheel(tmp_path, "My-Pkg", "0.3", deps=["a>=1", "b"], payload_bytes=10_000,
                      extra_files={"My_Pkg/data.txt": "hello\n", "extra_mod.py": b"X = 1\n"})
    assert whl.name == "my_pkg-0.3-py3-none-any.whl"
    with zipfile.ZipFile(whl) as zf:
        names = zf.namelist()
        assert zf.read("My_Pkg/__init__.py").decode() == '__version__ = "0.3"\nNAME = "My-Pkg"\n'
        assert len(zf.read("My_Pkg/payload.bin")) == 10_000
        meta = zf.read("my_pkg-0.3.dist-info/METADATA").decode()
        assert "Metadata-Version: 2.1\n" in meta and "Name: My-Pkg\n" in meta
        assert meta.count("Requires-Dist:") == 2
        assert "Root-Is-Purelib: true" in zf.read("my_pkg-0.3.dist-info/WHEEL").decode()
        record = zf.read("my_pkg-0.3.dist-info/RECORD").decode().splitlines()
        listed = {}
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            listed[path] = (digest, size)
        assert set(listed) == set(names)
        for path, (digest, size) in listed.items():
            if path.endswith("/RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = zf.read(path)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert digest == f"sha256={want}" and int(size) == len(data), path


def test_names():
    assert normalize("Foo.Bar__baz") == "foo-bar-baz"
    assert dist_project("my_pkg-0.3-py3-none-any.whl") == "my-pkg"
    assert dist_project("broken-0.1.tar.gz") == "broken"
    assert dist_project("README.txt") is None


# ---- the index, with uv ---------------------------------------------------------------------


def test_install_resolves_dependencies(tmp_path, index, uv_env):
    python = venv(uv_env, tmp_path / "venv")
    p = uv(uv_env, "pip", "install", "--python", python, "--index-url", index.url, "withdep==1.0")
    assert p.returncode == 0, p.stderr
    assert versions(python, "withdep", "simple") == {"withdep": "1.0", "simple": "1.0"}
    # Resolved from the METADATA files: only what is installed was downloaded, each once.
    assert sorted(index.downloads()) == ["simple-1.0-py3-none-any.whl",
                                         "withdep-1.0-py3-none-any.whl"]
    assert index.downloads("simple") == ["simple-1.0-py3-none-any.whl"]
    assert "GET /simple/withdep/" in index.requests

    # Without the upper bound the newest version wins.
    p = uv(uv_env, "pip", "install", "--python", python, "--index-url", index.url, "simple>=2")
    assert p.returncode == 0, p.stderr
    assert versions(python, "simple") == {"simple": "2.0"}


def test_compile_hashes_match_the_files(index, uv_env, dists):
    p = uv(uv_env, "pip", "compile", "-", "--generate-hashes", "--index-url", index.url,
           "--no-header", "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}",
           input="withdep==1.0\n")
    assert p.returncode == 0, p.stderr
    hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", p.stdout)
    names = ("simple-1.0", "withdep-1.0")
    want = {hashlib.sha256(dists[k].read_bytes()).hexdigest() for k in names}
    assert set(hashes) == want, p.stdout
    assert {index.sha256(dists[k].name) for k in names} == want
    for pin in ("simple==1.0", "withdep==1.0"):
        assert re.search(rf"^{re.escape(pin)} ", p.stdout, re.M), p.stdout


def test_failing_sdist_fails_with_its_message(tmp_path, index, uv_env):
    python = venv(uv_env, tmp_path / "venv")
    p = uv(uv_env, "pip", "install", "--python", python, "--index-url", index.url, "broken==0.1")
    assert p.returncode != 0, p.stdout + p.stderr
    assert BROKEN_MESSAGE in p.stdout + p.stderr
    assert index.downloads("broken") == ["broken-0.1.tar.gz"]


@pytest.mark.parametrize("mode", ["503", "close"])
def test_index_down(tmp_path, index, uv_env, mode):
    python = venv(uv_env, tmp_path / "venv")
    index.set_down(True, mode)
    p = uv(uv_env, "pip", "install", "--python", python, "--index-url", index.url, "simple")
    assert p.returncode != 0, p.stdout + p.stderr
    assert any(r.startswith("GET /simple/simple") for r in index.requests), index.requests
    assert index.downloads() == []

    index.set_down(False)
    p = uv(uv_env, "pip", "install", "--python", python, "--index-url", index.url, "simple")
    assert p.returncode == 0, p.stderr
    assert versions(python, "simple") == {"simple": "2.0"}


def test_pages_change_on_add_and_revalidate(tmp_path, index):
    page = index.url + "simple/"
    with urllib.request.urlopen(page) as r:
        etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
        assert int(r.headers["Content-Length"]) == len(r.read())
    for header, value in (("If-None-Match", etag), ("If-Modified-Since", modified)):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(page, headers={header: value}))
        assert e.value.code == 304

    index.add(build_wheel(tmp_path, "simple", "3.0"))
    with urllib.request.urlopen(urllib.request.Request(page, headers={"If-None-Match": etag})) as r:
        assert "simple-3.0-py3-none-any.whl" in r.read().decode()
    with urllib.request.urlopen(urllib.request.Request(page, method="HEAD")) as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) > 0 and r.read() == b""
