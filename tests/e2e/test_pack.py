"""`rtenv pack DIR --json`: identity, incremental hashing, incremental upload, size limit."""

import os
import re
import time
from pathlib import Path

import pytest

from conftest import age_tree, assert_clean_error, assert_ok, write_tree

KEYS = {"uri", "files", "files_hashed", "blobs", "blobs_uploaded", "blobs_present"}
URI = re.compile(r"^rtenv://sha256/[0-9a-f]{64}$")

# Distinct contents everywhere, so no two files share a blob.
TREE = {
    "top.txt": "top\n",
    "a.py": "print('a')\n",
    "d1/one.txt": "one\n",
    "d1/two.txt": "two\n",
    "d1/d2/deep.txt": "deep\n",
    "d1/d2/deeper.txt": "deeper\n",
    "e1/x.txt": "x\n",
}
DIRS = {"d1", "d1/d2", "e1"}


def settle(root):
    """Timestamps older than 1 s, then wait out the index's 50 ms 'racily clean' window
    (os.utime itself sets ctime to now, and files changed within it are re-read on purpose)."""
    age_tree(root)
    time.sleep(0.12)


def change(path: Path, text: str):
    """Rewrites one file, makes its mtime old, and waits out the racily-clean window. Only this
    file is touched: its ctime changes, the others' stat info stays as the index recorded it."""
    path.write_text(text)
    t = time.time() - 100
    os.utime(path, (t, t))
    time.sleep(0.12)


@pytest.fixture
def tree(tmp_path):
    root = write_tree(tmp_path / "t", TREE)
    settle(root)
    return root


def test_pack_json_fields(rtenv, tree):
    r = rtenv.pack(tree)
    assert KEYS <= set(r), f"missing keys: {KEYS - set(r)}"
    assert URI.match(r["uri"]), r["uri"]
    assert r["files"] == len(TREE)
    assert r["files_hashed"] == len(TREE)
    # One blob per file plus one manifest per directory (root included).
    assert r["blobs"] == len(TREE) + len(DIRS) + 1
    assert r["blobs_uploaded"] == r["blobs"]
    assert r["blobs_present"] == 0


def test_repack_unchanged(rtenv, tree):
    first = rtenv.pack(tree)
    second = rtenv.pack(tree)
    assert second["uri"] == first["uri"]
    assert second["files_hashed"] == 0, second
    assert second["blobs_uploaded"] == 0, second
    assert second["blobs_present"] == second["blobs"] == first["blobs"]


@pytest.mark.parametrize("rel", ["top.txt", "d1/one.txt", "d1/d2/deep.txt"], ids=["depth0", "depth1", "depth2"])
def test_change_one_file_uploads_file_and_manifests_on_its_path(rtenv, tree, rel):
    first = rtenv.pack(tree)
    change(tree / rel, "changed content of " + rel + "\n")
    r = rtenv.pack(tree)
    depth = rel.count("/")
    assert r["uri"] != first["uri"]
    assert r["files_hashed"] == 1, r
    # The file blob, plus the manifests of the root and of every directory above the file.
    assert r["blobs_uploaded"] == 1 + (depth + 1), r
    # Changing it back gives the first package again, with nothing to upload.
    change(tree / rel, TREE[rel])
    back = rtenv.pack(tree)
    assert back["uri"] == first["uri"]
    assert back["files_hashed"] == 1 and back["blobs_uploaded"] == 0, back


def test_same_size_same_mtime_edit_is_noticed(rtenv, tree):
    """The index must not trust size+mtime alone (ctime changes on every write)."""
    first = rtenv.pack(tree)
    p = tree / "d1/two.txt"
    st = os.stat(p)
    p.write_text("TWO\n")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(0.12)
    r = rtenv.pack(tree)
    assert r["uri"] != first["uri"]
    assert r["files_hashed"] == 1, r


def test_pack_uri_matches_run_package(rtenv, tree, tmp_path):
    r = rtenv.pack(tree)
    p = rtenv.run({"working_dir": str(tree)}, "pwd", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    # The package a run uses is the one pack made: same content, same id, nothing new stored.
    again = rtenv.pack(tree)
    assert again["uri"] == r["uri"] and again["blobs_uploaded"] == 0


def test_pack_excludes_flag(rtenv, tree):
    full = rtenv.pack(tree)
    r = rtenv.pack(tree, "--excludes", "d1/d2/", "-x", "*.py")
    assert r["files"] == len(TREE) - 3
    assert r["uri"] != full["uri"]


def test_pack_over_max_size_names_largest_files(rtenv, tmp_path):
    root = write_tree(
        tmp_path / "big",
        {"data/huge.bin": b"h" * 50000, "model.ckpt": b"m" * 20000, "small.txt": "s\n"},
    )
    p = rtenv("pack", root, "--json", "--max-package-size", "10K")
    assert p.returncode != 0
    assert_clean_error(p.stderr)
    assert "data/huge.bin" in p.stderr and "model.ckpt" in p.stderr, p.stderr
    assert p.stderr.index("data/huge.bin") < p.stderr.index("model.ckpt")
    assert "excludes" in p.stderr or ".rtenvignore" in p.stderr, p.stderr
    assert "--max-package-size" in p.stderr, p.stderr
    assert p.stdout == ""


def test_pack_honours_ignore_files(rtenv, tmp_path):
    root = write_tree(
        tmp_path / "t",
        {
            "a.txt": "a\n",
            "b.log": "b\n",
            ".gitignore": "*.log\n",
            "s/.rtenvignore": "*.tmp\n",
            "s/c.tmp": "c\n",
            "s/d.txt": "d\n",
            ".git/HEAD": "ref\n",
        },
    )
    with_ignored = rtenv.pack(root)
    for f in ("b.log", "s/c.tmp", ".git/HEAD"):
        os.remove(root / f)
    os.rmdir(root / ".git")
    without = rtenv.pack(root)
    assert with_ignored["uri"] == without["uri"], "ignored files must not be part of the package"


def test_the_uri_alone_goes_to_stdout_and_what_it_took_to_stderr(rtenv, tmp_path):
    # So that URI=$(rtenv pack dir) works; counts say "1 file", not "1 files".
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "only.txt").write_text("one\n")
    p = rtenv("pack", str(tmp_path / "d"))
    assert_ok(p)
    assert re.fullmatch(r"rtenv://sha256/[0-9a-f]{64}\n", p.stdout), p.stdout
    assert "1 file, 0 directories, 0 symlinks" in p.stderr, p.stderr
    assert "read 1 file " in p.stderr and "2 blobs: 2 uploaded" in p.stderr, p.stderr
    assert p.stdout.strip() == rtenv.pack(tmp_path / "d")["uri"]
