"""The conda channel the conda tests use (condachannel.py), checked with a real conda
implementation (py-rattler): solve against `file://<root>`, install into fresh prefixes, run what
was installed.

The python interpreter package is built once per session (a few seconds) in a session cache.
"""

from __future__ import annotations

import asyncio
import bz2
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

try:
    import rattler
    from rattler.exceptions import InstallerError
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate
except ImportError as e:
    pytest.fail(f"py-rattler is not importable ({e}); scripts/setup.sh installs it "
                f"(pip install py-rattler==0.28.0)", pytrace=False)

from condachannel import (PYTHON_SITE_PACKAGES, Pkg, bench_channel, build_channel, channel_url,
                          python_pkg, standard_channel)

PLATFORMS = ["linux-64", "noarch"]


def solve(root: Path, specs: list[str], cache: Path) -> dict[str, str]:
    """Solve `specs` against the channel at `root`; returns the records."""
    records = asyncio.run(rattler.solve(
        sources=[channel_url(root)], specs=specs, gateway=rattler.Gateway(cache_dir=cache),
        platforms=PLATFORMS, virtual_packages=[]))
    return records


def versions(records) -> dict[str, str]:
    return {r.name.normalized: str(r.version) for r in records}


def install(records, prefix: Path, cache: Path) -> None:
    asyncio.run(rattler.install(records, target_prefix=prefix, cache_dir=cache,
                                show_progress=False))


def activated_env(prefix: Path) -> dict[str, str]:
    """The environment variables a bash activation of `prefix` sets, starting from an empty one."""
    script = activate(prefix, ActivationVariables(None, ["/usr/bin", "/bin"],
                                                  PathModificationBehavior.Replace),
                      Shell.bash, "linux-64").script
    out = subprocess.run(["env", "-i", "bash", "--norc", "-c", 'eval "$1" && env -0', "bash",
                          script], check=True, capture_output=True, text=True).stdout
    return dict(entry.split("=", 1) for entry in out.split("\0") if entry)


def read_archive(path: Path) -> dict[str, tarfile.TarInfo | bytes]:
    with tarfile.open(fileobj=io.BytesIO(bz2.decompress(path.read_bytes()))) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else m) for m in tar}


def test_layout_and_repodata_match_the_archives(channel):
    assert channel_url(channel) == f"file://{channel.resolve()}"
    seen = {}
    for subdir in ("noarch", "linux-64"):
        repodata = json.loads((channel / subdir / "repodata.json").read_text())
        assert repodata["info"] == {"subdir": subdir}
        for fn, record in repodata["packages"].items():
            data = (channel / subdir / fn).read_bytes()
            assert record["size"] == len(data)
            assert record["sha256"] == hashlib.sha256(data).hexdigest()
            assert record["md5"] == hashlib.md5(data).hexdigest()
            assert record["subdir"] == subdir
            seen[fn] = record
    assert sorted(seen) == ["actpkg-1.0-0.tar.bz2", "broken-1.0-0.tar.bz2", "liba-1.0-0.tar.bz2",
                            "liba-2.0-0.tar.bz2", "libb-1.0-0.tar.bz2"]
    assert seen["libb-1.0-0.tar.bz2"]["depends"] == ["liba"]

    members = read_archive(channel / "noarch" / "libb-1.0-0.tar.bz2")
    index = json.loads(members["info/index.json"])
    record = {k: v for k, v in seen["libb-1.0-0.tar.bz2"].items()
              if k not in ("md5", "sha256", "size")}
    assert index == record
    paths = json.loads(members["info/paths.json"])
    assert paths["paths_version"] == 1
    assert paths["paths"] == [{
        "_path": "bin/libb", "path_type": "hardlink",
        "sha256": hashlib.sha256(members["bin/libb"]).hexdigest(),
        "size_in_bytes": len(members["bin/libb"]),
    }]
    assert members["info/files"] == b"bin/libb\n"


def test_archives_are_deterministic(channel, tmp_path):
    again = standard_channel(tmp_path / "again")
    for subdir in ("noarch", "linux-64"):
        for path in sorted((channel / subdir).iterdir()):
            assert (again / subdir / path.name).read_bytes() == path.read_bytes(), path.name


def test_upper_case_names_are_refused():
    with pytest.raises(ValueError, match="lower case"):
        Pkg("LibA", "1.0")


def test_solve_picks_the_newest_liba(channel, tmp_path):
    assert versions(solve(channel, ["libb"], tmp_path)) == {"libb": "1.0", "liba": "2.0"}


def test_solve_honours_a_pin(channel, tmp_path):
    assert versions(solve(channel, ["libb", "liba=1.0"], tmp_path)) == {"libb": "1.0",
                                                                        "liba": "1.0"}


def test_install_and_run_libb(channel, tmp_path):
    cache, prefix = tmp_path / "cache", tmp_path / "env"
    install(solve(channel, ["libb", "liba=1.0"], cache), prefix, cache)
    assert (prefix / "share" / "liba" / "VERSION").read_text() == "1.0"
    assert sorted(p.name for p in (prefix / "conda-meta").glob("*.json")) == [
        "liba-1.0-0.json", "libb-1.0-0.json"]
    run = subprocess.run([prefix / "bin" / "libb"], env={"CONDA_PREFIX": str(prefix)},
                         capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "libb uses liba 1.0\n"), run.stderr
    # Without an activated environment the script says so instead of printing a wrong line.
    run = subprocess.run([prefix / "bin" / "libb"], env={}, capture_output=True, text=True)
    assert run.returncode != 0 and "CONDA_PREFIX is not set" in run.stderr


def test_activation_script_exports_the_variable(channel, tmp_path):
    cache, prefix = tmp_path / "cache", tmp_path / "env"
    install(solve(channel, ["actpkg"], cache), prefix, cache)
    assert (prefix / "etc/conda/activate.d/actpkg.sh").read_text() == \
        'export ACTPKG_HOME="$CONDA_PREFIX/share/actpkg"\n'
    assert (prefix / "etc/conda/deactivate.d/actpkg.sh").is_file()
    env = activated_env(prefix)
    assert env["CONDA_PREFIX"] == str(prefix)
    assert env["ACTPKG_HOME"] == f"{prefix}/share/actpkg"


def test_broken_solves_but_fails_to_install(channel, tmp_path):
    cache = tmp_path / "cache"
    records = solve(channel, ["broken"], cache)
    assert versions(records) == {"broken": "1.0"}
    with pytest.raises(InstallerError, match="broken-1.0-0"):
        install(records, tmp_path / "env", cache)
    assert not (tmp_path / "env" / "share" / "broken").exists()


def test_bench_channel_installs_a_chain(tmp_path):
    root = bench_channel(tmp_path / "bench")
    cache, prefix = tmp_path / "cache", tmp_path / "env"
    records = solve(root, ["bench1"], cache)
    assert versions(records) == {f"bench{i}": "1.0" for i in range(1, 6)}
    for record in records:
        assert record.size > 200 * 1024  # incompressible payload: the archive stays large
    install(records, prefix, cache)
    for i in range(1, 6):
        assert sum(p.stat().st_size for p in (prefix / "share" / f"bench{i}").iterdir()) \
            == 256 * 1024


def test_build_channel_writes_empty_subdirs(tmp_path):
    root = build_channel(tmp_path / "empty", [])
    for subdir in ("noarch", "linux-64"):
        assert json.loads((root / subdir / "repodata.json").read_text())["packages"] == {}


def test_python_package_is_cached(python_channel, python_cache):
    pkg = python_pkg(python_cache)
    assert pkg.prebuilt.parent == python_cache and pkg.subdir == "linux-64"
    assert list(python_cache.glob("*.tar.bz2")) == [pkg.prebuilt]
    # The channel's copy is the cached archive.
    assert (python_channel / "linux-64" / pkg.filename).read_bytes() == pkg.prebuilt.read_bytes()
    record = json.loads((python_channel / "linux-64" / "repodata.json").read_text())[
        "packages"][pkg.filename]
    assert record["python_site_packages_path"] == PYTHON_SITE_PACKAGES


def test_python_and_noarch_python_package(python_channel, tmp_path):
    cache, prefix = tmp_path / "cache", tmp_path / "env"
    records = solve(python_channel, ["python", "greet"], cache)
    assert versions(records)["greet"] == "1.0"
    assert versions(records)["python"].startswith("3.11.")
    install(records, prefix, cache)

    code = ("import greet, json, sys; greet.hello(); print(json.dumps({'prefix': sys.prefix, "
            "'base_prefix': sys.base_prefix, 'executable': sys.executable, "
            "'greet': greet.__file__, 'path': sys.path}))")
    for python in ("python", "python3", "python3.11"):
        run = subprocess.run([prefix / "bin" / python, "-c", code], env={}, capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr
        line, facts = run.stdout.splitlines()
        assert line == "hello from greet 1.0"
        facts = json.loads(facts)
        assert facts["prefix"] == facts["base_prefix"] == str(prefix)
        assert facts["executable"] == str(prefix / "bin" / python)
        assert facts["greet"] == str(prefix / PYTHON_SITE_PACKAGES / "greet" / "__init__.py")
        # The env's python sees only the env: no Debian directory on its path.
        assert [p for p in facts["path"] if p and not p.startswith(str(prefix))] == []

    run = subprocess.run([prefix / "bin" / "greet"], env={}, capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (0, "hello from greet 1.0\n"), run.stderr
