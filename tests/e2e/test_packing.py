"""What goes into a package: excludes, .gitignore, .rtenvignore, .git/, modes, symlinks."""

import os

import pytest

from conftest import assert_ok, assert_setup_failed, snapshot, write_tree


@pytest.fixture
def tree(tmp_path):
    w = tmp_path / "w"
    write_tree(
        w,
        {
            "keep.txt": "keep\n",
            "x.log": "excluded by *.log\n",
            "sub/x.log": "excluded by *.log at any depth\n",
            "logs/l.txt": "excluded by anchored /logs/\n",
            "sub/logs/k.txt": "kept: /logs/ is anchored at the root\n",
            "cache/c.bin": "excluded by **/cache/\n",
            "sub/deep/cache/c.bin": "excluded by **/cache/\n",
            "notes/a.md": "excluded by notes/*.md ...\n",
            "notes/README.md": "... but kept by !notes/README.md\n",
            # .gitignore in a subdirectory: patterns relative to that directory.
            "sub/.gitignore": "*.tmp\n!keep.tmp\n/only_here.txt\nbuild/\n",
            "sub/y.tmp": "excluded by sub/.gitignore\n",
            "sub/deep/z.tmp": "excluded by sub/.gitignore (unanchored)\n",
            "sub/deep/keep.tmp": "kept by negation\n",
            "sub/only_here.txt": "excluded (anchored in sub/)\n",
            "sub/deep/only_here.txt": "kept: the anchor is sub/\n",
            "only_here.txt": "kept: sub/.gitignore does not apply here\n",
            "sub/build/o.o": "excluded by build/ in sub/.gitignore\n",
            "build/o.o": "kept: sub/.gitignore does not apply here\n",
            # root .gitignore
            ".gitignore": "*.pyc\n__pycache__/\n",
            "mod.pyc": "excluded\n",
            "pkg/__pycache__/m.cpython.pyc": "excluded\n",
            "pkg/m.py": "kept\n",
            # .rtenvignore
            ".rtenvignore": "secret*\n/private/\n",
            "secret.key": "excluded by .rtenvignore\n",
            "sub/secret2": "excluded by .rtenvignore at any depth\n",
            "private/p.txt": "excluded by .rtenvignore\n",
            # .git/
            ".git/HEAD": "ref: refs/heads/main\n",
            ".git/objects/ab/cdef": "blob\n",
            "sub/.git/config": "nested repo metadata\n",
            "tool.sh": "#!/bin/sh\necho tool ran\n",
        },
    )
    os.chmod(w / "tool.sh", 0o755)
    return w


EXCLUDES = ["*.log", "/logs/", "**/cache/", "notes/*.md", "!notes/README.md"]

EXPECTED_FILES = {
    "./keep.txt",
    "./sub/logs/k.txt",
    "./notes/README.md",
    "./sub/deep/keep.tmp",
    "./sub/deep/only_here.txt",
    "./only_here.txt",
    "./build/o.o",
    "./pkg/m.py",
    "./tool.sh",
}
# Ignore files themselves may or may not be packaged; nothing else may be.
OPTIONAL_FILES = {"./.gitignore", "./sub/.gitignore", "./.rtenvignore"}


def test_excludes_gitignore_rtenvignore_git(rtenv, tree, tmp_path):
    snap = snapshot(rtenv, {"working_dir": "w", "excludes": EXCLUDES}, cwd=tmp_path)
    files = {p for p, v in snap["tree"].items() if v[0] != "dir"}
    missing = EXPECTED_FILES - files
    extra = files - EXPECTED_FILES - OPTIONAL_FILES
    assert not missing, f"files that should have been packaged are missing: {sorted(missing)}"
    assert not extra, f"files that should have been excluded were packaged: {sorted(extra)}"
    assert "./.git/" not in snap["tree"] and "./sub/.git/" not in snap["tree"]


def test_executable_bit_kept(rtenv, tree, tmp_path):
    snap = snapshot(rtenv, {"working_dir": "w"}, cwd=tmp_path)
    assert int(snap["tree"]["./tool.sh"][1], 8) & 0o111, snap["tree"]["./tool.sh"]
    assert not int(snap["tree"]["./keep.txt"][1], 8) & 0o111
    p = rtenv.run({"working_dir": "w"}, "./tool.sh", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "tool ran\n"


def test_changing_only_the_mode_changes_the_package(rtenv, tree, tmp_path):
    before = snapshot(rtenv, {"working_dir": "w"}, cwd=tmp_path)
    os.chmod(tree / "keep.txt", 0o755)
    after = snapshot(rtenv, {"working_dir": "w"}, cwd=tmp_path)
    assert before["cwd"] != after["cwd"], "the executable bit is part of the package identity"
    assert int(after["tree"]["./keep.txt"][1], 8) & 0o111


def test_symlinks_inside_stay_symlinks(rtenv, tree, tmp_path):
    os.symlink("keep.txt", tree / "link.txt")
    os.symlink("sub/deep", tree / "deeplink")
    os.symlink("../keep.txt", tree / "sub" / "up.txt")
    snap = snapshot(rtenv, {"working_dir": "w"}, cwd=tmp_path)
    t = snap["tree"]
    assert t["./link.txt"] == ["link", "keep.txt"]
    assert t["./deeplink"] == ["link", "sub/deep"]
    assert t["./sub/up.txt"] == ["link", "../keep.txt"]
    p = rtenv.run({"working_dir": "w"}, "cat", "sub/up.txt", "deeplink/keep.tmp", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "keep\nkept by negation\n"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../..", "../../outside-file"], ids=["absolute", "relative-dir", "relative-file"])
def test_symlink_leading_outside_fails(rtenv, tree, tmp_path, target):
    (tmp_path / "outside-file").write_text("outside\n")
    os.symlink(target, tree / "sub" / "escape")
    p = rtenv.run({"working_dir": "w"}, "true", cwd=tmp_path)
    assert_setup_failed(p, "working_dir", "sub/escape", "excludes")
    # Excluding it makes the package fine again.
    assert_ok(rtenv.run({"working_dir": "w", "excludes": ["sub/escape"]}, "true", cwd=tmp_path))


def test_package_over_max_size_fails_naming_largest_files(rtenv, tmp_path):
    w = write_tree(
        tmp_path / "w",
        {"big/huge.bin": b"x" * 60000, "medium.dat": b"y" * 30000, "small.txt": "s\n"},
    )
    p = rtenv.run({"working_dir": "w"}, "true", cwd=tmp_path, flags=["--max-package-size", "20K"])
    assert_setup_failed(p, "working_dir", "big/huge.bin", "medium.dat", "excludes")
    assert p.stderr.index("big/huge.bin") < p.stderr.index("medium.dat"), "largest first"
    # The same through the environment variable; and raising the limit makes it work.
    p = rtenv.run({"working_dir": "w"}, "true", cwd=tmp_path, env={"RTENV_MAX_PACKAGE_SIZE": "20K"})
    assert_setup_failed(p, "big/huge.bin")
    assert_ok(rtenv.run({"working_dir": "w"}, "true", cwd=tmp_path, flags=["--max-package-size", "1M"]))
    assert w.exists()
