"""A venv another node published is used only if it is what the lock says (docs/cluster.md,
"What a store writer can do"). These tests play the one who can write the store: after a node
built and published an env, they repoint its record at another venv, or publish a changed copy of
the venv (a changed file of a pinned package, an added .pth file, a RECORD rewritten to match),
and check that the next node refuses it, says why, builds the env itself and never runs the
planted code; and that with signing keys configured, only records signed by a trusted key are
used at all."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import assert_ok
from test_shared_builds import PROBE, cluster, installs, run_probe, spec, wheels  # noqa: F401

# What a published venv leaves out (python_env.cc, kUnpublished): the copy published here too.
UNPUBLISHED = ["bin/python", "bin/python3", "bin/activate", "pyvenv.cfg", "lib64",
               "rtenv-requirements.txt", "rtenv-pip-version.txt", ".lock"]


def records_dir(cluster) -> Path:
    return cluster["store"] / "records" / "pyenvs"


def built_env(node, package: str) -> tuple[str, Path]:
    """The key and directory of the env on `node` that has `package` installed."""
    for ready in (node.home / "pyenvs").glob("*.ready"):
        key = ready.name[:-len(".ready")]
        env_dir = node.home / "pyenvs" / key
        if list(env_dir.glob(f"lib/python*/site-packages/{package}")):
            return key, env_dir
    raise AssertionError(f"no env with {package} on {node.home}")


def publish_copy(cluster, tmp_path: Path, env_dir: Path, change) -> str:
    """Packs a changed copy of `env_dir` into the shared store, as a store writer could (they
    need no rtenv: blobs and manifests are plain files), and returns its package URI."""
    copy = tmp_path / f"tampered-{len(list(tmp_path.glob('tampered-*')))}"
    shutil.copytree(env_dir, copy, symlinks=True)
    for rel in UNPUBLISHED:
        path = copy / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    for extra in copy.glob("bin/python3.*"):
        extra.unlink()
    for pth in copy.glob("lib/python*/site-packages/~rtenv-base-venv.pth"):
        pth.unlink()
    for cache in list(copy.rglob("__pycache__")):
        shutil.rmtree(cache)
    change(copy)
    packed = cluster["nodes"][0].pack(copy)
    assert packed["store"] == f"file://{cluster['store']}", packed
    return packed["uri"]


def repoint(cluster, key: str, **fields) -> dict:
    path = records_dir(cluster) / f"{key}.json"
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))
    return record


def site_packages(venv: Path) -> Path:
    (sp,) = venv.glob("lib/python*/site-packages")
    return sp


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def plant_in_init(marker: Path, fix_record: bool):
    """A change to sharedpkg/__init__.py that writes `marker` when imported; with `fix_record`,
    RECORD is rewritten to match it, as a careful forger would."""
    def change(venv: Path):
        sp = site_packages(venv)
        init = sp / "sharedpkg" / "__init__.py"
        init.write_text(init.read_text() + f"open({str(marker)!r}, 'w').write('ran')\n")
        if fix_record:
            (record,) = sp.glob("sharedpkg-*.dist-info/RECORD")
            data = init.read_bytes()
            lines = []
            for line in record.read_text().splitlines():
                if line.startswith("sharedpkg/__init__.py,"):
                    line = f"sharedpkg/__init__.py,{record_hash(data)},{len(data)}"
                lines.append(line)
            record.write_text("\n".join(lines) + "\n")
    return change


def refused_then_built_here(cluster, node, env, marker: Path, *needles: str) -> None:
    """`node` runs the env: it refuses the store's copy (saying why, with `needles`), builds it
    itself and runs the real package; the planted code never ran."""
    before = len(installs(cluster["log"]))
    agent_log = node.home / "logs" / "agent.log"
    logged = len(agent_log.read_text().splitlines()) if agent_log.exists() else 0
    p = node.run(env, "python", "-c", PROBE, flags=("-v",), timeout=120)
    assert_ok(p)
    version, prefix = p.stdout.strip().splitlines()[-2].split(" ", 1)
    assert version == "1.0" and str(node.home) in prefix, p.stdout
    assert not marker.exists(), "the planted code ran"
    # The node's agent says why, in its log (and the env's).
    log = (node.home / "logs" / "agent.log").read_text()
    said = [line for line in log.splitlines()[logged:] if "refusing the Python env" in line]
    assert len(said) == 1, log
    assert said[0].endswith(": building it here"), said
    for needle in needles:
        assert needle in said[0], (needle, said[0])
    after = installs(cluster["log"])
    assert len(after) == before + 1 and after[-1].startswith(f"{node.env['RTENV_TEST_NODE']} "), after


def test_a_record_repointed_at_another_venv_is_refused(cluster, tmp_path):
    nodes, index = cluster["nodes"], cluster["index"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    assert_ok(nodes[0].run(spec(index, "otherpkg==2.0"), "python", "-c", "import otherpkg",
                           timeout=120))
    key, _ = built_env(nodes[0], "sharedpkg")
    other_key, _ = built_env(nodes[0], "otherpkg")
    other = json.loads((records_dir(cluster) / f"{other_key}.json").read_text())
    repoint(cluster, key, package=other["package"])
    refused_then_built_here(cluster, nodes[1], env, tmp_path / "never",
                            "a distribution its lock does not pin")
    # The other record, copied whole under this env's name, claims the other env's key.
    (records_dir(cluster) / f"{key}.json").write_text(json.dumps(other))
    refused_then_built_here(cluster, nodes[2], env, tmp_path / "never",
                            f"is the record of env {other_key}, not of {key}")


def test_a_changed_file_of_a_pinned_package_is_refused(cluster, tmp_path):
    nodes, index = cluster["nodes"], cluster["index"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, env_dir = built_env(nodes[0], "sharedpkg")
    marker = tmp_path / "planted-init-ran"
    repoint(cluster, key, package=publish_copy(cluster, tmp_path, env_dir,
                                               plant_in_init(marker, fix_record=False)))
    refused_then_built_here(cluster, nodes[1], env, marker, "does not match its lock",
                            "sharedpkg/__init__.py is not the file the RECORD of sharedpkg 1.0 "
                            "lists")


def test_a_changed_script_is_refused(cluster, tmp_path):
    nodes, index = cluster["nodes"], cluster["index"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, env_dir = built_env(nodes[0], "sharedpkg")
    marker = tmp_path / "planted-script-ran"

    def change(venv: Path):
        tool = venv / "bin" / "sharedtool"
        tool.write_text(tool.read_text() + f"open({str(marker)!r}, 'w').write('ran')\n")
    repoint(cluster, key, package=publish_copy(cluster, tmp_path, env_dir, change))
    refused_then_built_here(cluster, nodes[1], env, marker, "bin/sharedtool is not the file")


def test_an_added_pth_file_is_refused(cluster, tmp_path):
    nodes, index = cluster["nodes"], cluster["index"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, env_dir = built_env(nodes[0], "sharedpkg")
    marker = tmp_path / "planted-pth-ran"

    def change(venv: Path):
        (site_packages(venv) / "zzz-planted.pth").write_text(
            f"import os; open({str(marker)!r}, 'w').write('ran')\n")
    repoint(cluster, key, package=publish_copy(cluster, tmp_path, env_dir, change))
    refused_then_built_here(cluster, nodes[1], env, marker,
                            "zzz-planted.pth is not a file of any pinned distribution")


def test_an_untouched_copy_is_still_shared_and_records_are_never_replaced(cluster, tmp_path):
    """The check accepts what a builder publishes (also a copy packed again), and a node that
    built an env itself does not replace the record already there."""
    nodes, index, log = cluster["nodes"], cluster["index"], cluster["log"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, env_dir = built_env(nodes[0], "sharedpkg")
    repoint(cluster, key, package=publish_copy(cluster, tmp_path, env_dir, lambda venv: None))
    version, prefix, tool = run_probe(nodes[1], env)
    assert version == "1.0" and str(nodes[1].home) in prefix and tool == prefix
    assert len(installs(log)) == 1, installs(log)
    ready = json.loads((nodes[1].home / "pyenvs" / f"{key}.ready").read_text())
    assert ready["verified"] == "lock"
    # A planted record is refused, and stays: the node that built the env instead does not
    # overwrite it (records are created, never replaced).
    record = records_dir(cluster) / f"{key}.json"
    record.write_text('{"format": 1, "package": 7}')
    run_probe(nodes[2], env)
    assert len(installs(log)) == 2, installs(log)
    assert record.read_text() == '{"format": 1, "package": 7}'


# Signed records ---------------------------------------------------------------------------------

def make_key(tmp_path: Path, name: str) -> tuple[Path, Path]:
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)],
                   check=True, capture_output=True)
    return private, public


@pytest.fixture
def signed(cluster, tmp_path):
    """The cluster with a builder key: nodes 0 and 1 sign what they publish, node 2 only has the
    public key (it verifies, and publishes nothing)."""
    private, public = make_key(tmp_path, "builder")
    nodes = cluster["nodes"]
    nodes[0].env["RTENV_BUILD_SIGNING_KEY"] = str(private)
    nodes[1].env["RTENV_BUILD_SIGNING_KEY"] = str(private)
    nodes[2].env["RTENV_BUILD_VERIFY_KEY"] = str(public)
    return dict(cluster, private_key=private)


def test_a_signed_build_is_shared(signed):
    nodes, index, log = signed["nodes"], signed["index"], signed["log"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, _ = built_env(nodes[0], "sharedpkg")
    record = json.loads((records_dir(signed) / f"{key}.json").read_text())
    assert record["key"] == key and len(record["signature"]) == 128 and record["signed_by"]
    for node in nodes[1:]:
        version, prefix, tool = run_probe(node, env)
        assert version == "1.0" and str(node.home) in prefix and tool == prefix
    assert len(installs(log)) == 1, installs(log)
    ready = json.loads((nodes[2].home / "pyenvs" / f"{key}.ready").read_text())
    assert ready["verified"] == "lock, signature " + record["signed_by"]


def test_a_forged_venv_with_a_matching_record_is_refused_when_records_are_signed(signed, tmp_path):
    """What the lock check alone cannot see (a file changed along with its RECORD line) the
    signature does: the record no longer signs the package it names."""
    nodes, index = signed["nodes"], signed["index"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, env_dir = built_env(nodes[0], "sharedpkg")
    marker = tmp_path / "forged-init-ran"
    repoint(signed, key, package=publish_copy(signed, tmp_path, env_dir,
                                              plant_in_init(marker, fix_record=True)))
    refused_then_built_here(signed, nodes[2], env, marker,
                            "is not a valid signature of this env by a key this node trusts")


def test_unsigned_and_foreign_signed_records_are_refused(signed, tmp_path):
    nodes, index = signed["nodes"], signed["index"]
    env = spec(index, "sharedpkg==1.0")
    run_probe(nodes[0], env)
    key, _ = built_env(nodes[0], "sharedpkg")
    path = records_dir(signed) / f"{key}.json"
    original = json.loads(path.read_text())
    repoint(signed, key, signature="", signed_by="")
    refused_then_built_here(signed, nodes[1], env, tmp_path / "never", "its record is not signed")

    # Signed by a key of the forger's own: not one the nodes trust.
    foreign, _ = make_key(tmp_path, "forger")
    # Ed25519 is deterministic: the builder's key signs the record as rtenv did, so the text
    # signed here is the one rtenv signs.
    assert sign(signed["private_key"], original, tmp_path) == original["signature"]
    record = dict(original, signed_by="forger")
    path.write_text(json.dumps(dict(record, signature=sign(foreign, record, tmp_path))))
    refused_then_built_here(signed, nodes[2], env, tmp_path / "never",
                            "its record's signature (by key \"forger\") is not a valid signature")


def sign(private: Path, record: dict, tmp_path: Path) -> str:
    """The signature rtenv makes of a published venv's record (records.cc, signed_text)."""
    message = tmp_path / "signed-text"
    text = json.dumps(dict(record, signature=""), sort_keys=True, separators=(",", ":"))
    message.write_bytes(b"rtenv published venv 1\n" + text.encode())
    return subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(private),
                           "-in", str(message)], check=True, capture_output=True).stdout.hex()


def test_an_unreadable_key_fails_the_env_clearly(signed, tmp_path):
    nodes, index = signed["nodes"], signed["index"]
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("not a key\n")
    nodes[1].env["RTENV_BUILD_SIGNING_KEY"] = str(bad)
    p = nodes[1].run(spec(index, "otherpkg==2.0"), "python", "-c", "import otherpkg",
                     timeout=120)
    assert p.returncode != 0
    assert f"build_signing_key (from RTENV_BUILD_SIGNING_KEY): {bad} is not an Ed25519 private " \
           "key" in p.stderr, p.stderr
