"""A command that changes its working_dir copy must not change what the next run sees."""

import os

import pytest

from conftest import PY, assert_ok, snapshot, write_tree

MUTATIONS = {
    # Same size, mtime put back: only the content differs.
    "edit-same-size-restore-mtime": """
st = os.stat("a.txt")
with open("a.txt", "w") as f:
    f.write("HELLO\\n")
os.utime("a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
""",
    "edit-in-place-restore-mtime": """
st = os.stat("sub/b.txt")
with open("sub/b.txt", "r+b") as f:
    f.write(b"X")
os.utime("sub/b.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
""",
    "truncate": """
open("a.txt", "w").close()
""",
    "append-to-deep-file": """
with open("sub/deep/c.txt", "a") as f:
    f.write("more\\n")
""",
    "delete-file": """
os.remove("sub/b.txt")
""",
    "delete-dir": """
import shutil
shutil.rmtree("sub/deep")
""",
    "add-file": """
with open("new.txt", "w") as f:
    f.write("new\\n")
""",
    "add-file-in-subdir": """
os.makedirs("sub/newdir")
with open("sub/newdir/n.txt", "w") as f:
    f.write("new\\n")
""",
    "chmod-add-exec": """
os.chmod("a.txt", 0o755)
""",
    "chmod-remove-exec": """
os.chmod("run.sh", 0o644)
""",
    "replace-with-symlink": """
os.remove("a.txt")
os.symlink("sub/b.txt", "a.txt")
""",
    "chmod-directories": """
os.chmod("sub", 0o000)
os.chmod(".", 0o700)
""",
    "hard-link-then-edit": """
os.link("a.txt", "hl.txt")
with open("hl.txt", "r+b") as f:
    f.write(b"J")
""",
    "rename": """
os.rename("a.txt", "renamed.txt")
""",
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_changes_do_not_leak_into_next_run(rtenv, tmp_path, mutation):
    w = write_tree(
        tmp_path / "w",
        {
            "a.txt": "hello\n",
            "sub/b.txt": "bye\n",
            "sub/deep/c.txt": "deep\n",
            "run.sh": "#!/bin/sh\necho run\n",
        },
    )
    os.chmod(w / "run.sh", 0o755)
    env = {"working_dir": "w"}
    before = snapshot(rtenv, env, cwd=tmp_path)

    p = rtenv.run(env, PY, "-c", "import os\n" + MUTATIONS[mutation], cwd=tmp_path)
    assert_ok(p)

    after = snapshot(rtenv, env, cwd=tmp_path)
    assert after == before, f"the run after '{mutation}' saw a different tree"
    # The caller's source tree is untouched too.
    assert (w / "a.txt").read_text() == "hello\n"
    assert (w / "sub/b.txt").read_text() == "bye\n"
    assert sorted(os.listdir(w)) == ["a.txt", "run.sh", "sub"]


def test_changes_do_not_leak_into_py_modules(rtenv, tmp_path):
    write_tree(tmp_path / "lib/mylib", {"__init__.py": "VALUE = 1\n"})
    env = {"py_modules": ["lib/mylib"]}
    edit = (
        "import mylib, os\n"
        "p = mylib.__file__\n"
        "st = os.stat(p)\n"
        "open(p, 'w').write('VALUE = 2\\n')\n"
        "os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))\n"
    )
    assert_ok(rtenv.run(env, PY, "-c", edit, cwd=tmp_path))
    p = rtenv.run(env, PY, "-B", "-c", "import mylib; print(mylib.VALUE)", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "1\n"


def test_failing_command_changes_do_not_leak(rtenv, tmp_path):
    write_tree(tmp_path / "w", {"a.txt": "hello\n"})
    env = {"working_dir": "w"}
    p = rtenv.run(env, "sh", "-c", "echo HELLO > a.txt; exit 5", cwd=tmp_path)
    assert p.returncode == 5, p.stderr
    p = rtenv.run(env, "cat", "a.txt", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "hello\n"


def test_edit_does_not_corrupt_shared_blobs(rtenv, tmp_path):
    """Another package holding the same content must still see it after an in-place edit."""
    write_tree(tmp_path / "w", {"a.txt": "shared content\n"})
    write_tree(tmp_path / "w2", {"same.txt": "shared content\n", "other.txt": "o\n"})
    edit = "f = open('a.txt', 'r+b'); f.write(b'XXXXXX'); f.close()"
    assert_ok(rtenv.run({"working_dir": "w"}, PY, "-c", edit, cwd=tmp_path))
    p = rtenv.run({"working_dir": "w2"}, "cat", "same.txt", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "shared content\n"
    p = rtenv("pack", tmp_path / "w2", "--json", "--no-index")
    assert_ok(p)
