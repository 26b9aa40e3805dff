"""working_dir as a local .zip or an http:// URL of a .zip; malicious zips are refused."""

import json
import os
import zipfile
from pathlib import Path

import pytest

from conftest import PY, assert_ok, assert_setup_failed, make_zip

LIST = "import json, os; print(json.dumps(sorted(os.path.join(d, f) for d, ds, fs in os.walk('.') for f in fs)))"


def listing(rtenv, working_dir, cwd):
    p = rtenv.run({"working_dir": working_dir}, PY, "-c", LIST, cwd=cwd)
    assert_ok(p)
    return json.loads(p.stdout)


def test_local_zip_is_unpacked(rtenv, tmp_path):
    make_zip(tmp_path / "job.zip", [("main.py", "print('from zip')\n"), ("pkg/data.txt", "d\n")])
    p = rtenv.run({"working_dir": "job.zip"}, PY, "main.py", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "from zip\n"
    assert listing(rtenv, "job.zip", tmp_path) == ["./main.py", "./pkg/data.txt"]


def test_a_zips_own_ignore_files_are_not_obeyed_but_excludes_are(rtenv, tmp_path):
    # What an archive holds is the package, as Ray keeps it: a .gitignore of "*" inside the zip
    # does not empty it. The env's excludes still apply.
    make_zip(tmp_path / "job.zip", [(".gitignore", "*\n"), (".rtenvignore", "data/\n"),
                                    ("main.py", "print('kept')\n"), ("data/a.txt", "a\n"),
                                    ("b.txt", "b\n")])
    assert listing(rtenv, "job.zip", tmp_path) == ["./.gitignore", "./.rtenvignore",
                                                    "./b.txt", "./data/a.txt", "./main.py"]
    p = rtenv.run({"working_dir": "job.zip", "excludes": ["b.txt"]}, PY, "-c", LIST,
                  cwd=tmp_path)
    assert_ok(p)
    assert "./b.txt" not in json.loads(p.stdout) and "./main.py" in json.loads(p.stdout)


def test_remote_zip_top_level_dir_stripped(rtenv, tmp_path, http_server):
    www, base = http_server
    make_zip(www / "job.zip", [("project/main.py", "print('remote')\n"), ("project/sub/x.txt", "x\n")])
    p = rtenv.run({"working_dir": f"{base}/job.zip"}, PY, "main.py", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "remote\n"
    assert listing(rtenv, f"{base}/job.zip", tmp_path) == ["./main.py", "./sub/x.txt"]


def test_remote_zip_several_top_level_entries_kept(rtenv, tmp_path, http_server):
    www, base = http_server
    make_zip(www / "job.zip", [("a/x.txt", "x\n"), ("b/y.txt", "y\n"), ("top.txt", "t\n")])
    assert listing(rtenv, f"{base}/job.zip", tmp_path) == ["./a/x.txt", "./b/y.txt", "./top.txt"]


def test_remote_zip_not_found_exit_3(rtenv, tmp_path, http_server):
    _, base = http_server
    p = rtenv.run({"working_dir": f"{base}/missing.zip"}, "true", cwd=tmp_path)
    assert_setup_failed(p, "working_dir", f"{base}/missing.zip")


def test_remote_zip_not_a_zip_exit_3(rtenv, tmp_path, http_server):
    www, base = http_server
    (www / "fake.zip").write_text("this is not a zip file\n")
    p = rtenv.run({"working_dir": f"{base}/fake.zip"}, "true", cwd=tmp_path)
    assert_setup_failed(p, "working_dir")


# ---- malicious zips -----------------------------------------------------------------------


def malicious_cases(outside):
    """(id, entries, name that the error should mention). Every case, if unpacked naively,
    writes under `outside` (or makes it reachable through a link)."""
    marker = outside / "MARKER"
    rel_marker = "../" * 30 + str(marker).lstrip("/")
    climb = [("a", ".", "symlink")]
    # a -> . ; a/b1 -> .. ; a/b2 -> b1/.. ; ... each target looks lexically inside but the
    # chain climbs out of the package; the last entry writes through it.
    climb.append(("a/b1", "..", "symlink"))
    for i in range(2, 31):
        climb.append((f"a/b{i}", f"b{i - 1}/..", "symlink"))
    climb.append(("a/b30/" + str(marker).lstrip("/"), "pwned"))
    return [
        ("dotdot", [("ok.txt", "ok"), (rel_marker, "pwned")], rel_marker),
        ("dotdot-middle", [("ok.txt", "ok"), ("sub/../../" + rel_marker, "pwned")], "sub/../../"),
        ("absolute", [("ok.txt", "ok"), (str(marker), "pwned")], str(marker)),
        ("symlink-absolute-outside", [("ok.txt", "ok"), ("link", str(outside), "symlink")], "link"),
        ("symlink-relative-outside", [("ok.txt", "ok"), ("d/link", "../../..", "symlink")], "d/link"),
        (
            "write-through-symlink-outside",
            [("ok.txt", "ok"), ("link", str(outside), "symlink"), ("link/MARKER", "pwned")],
            "link",
        ),
        (
            "write-through-symlink-inside",
            [("sub/ok.txt", "ok"), ("link", "sub", "symlink"), ("link/MARKER", "pwned")],
            "link",
        ),
        ("symlink-chain-climbing-out", climb, "a"),
    ]


CASE_IDS = [c[0] for c in malicious_cases(Path("/x"))]


@pytest.mark.parametrize("source", ["local", "http"])
@pytest.mark.parametrize("case", CASE_IDS)
def test_malicious_zip_rejected(rtenv, tmp_path, http_server, case, source):
    outside = tmp_path / "outside"
    outside.mkdir()
    www, base = http_server
    _, entries, needle = next(c for c in malicious_cases(outside) if c[0] == case)
    zpath = make_zip((tmp_path if source == "local" else www) / "evil.zip", entries)
    working_dir = "evil.zip" if source == "local" else f"{base}/evil.zip"
    p = rtenv.run({"working_dir": working_dir}, "sh", "-c", "echo RAN > ran.txt", cwd=tmp_path)
    assert_setup_failed(p, "working_dir", needle)
    assert list(outside.iterdir()) == [], f"something was written outside: {list(outside.iterdir())}"
    # Nothing but the inputs appeared next to RTENV_HOME either.
    expected = {"outside", "rtenv-home", "fake-home", "www"} | ({zpath.name} if source == "local" else set())
    assert {p.name for p in tmp_path.iterdir()} == expected
    assert not os.path.exists("/MARKER")


def test_remote_zip_with_directory_entries_stripped(rtenv, tmp_path, http_server):
    """Zips made by `zip -r` carry explicit directory entries ("project/")."""
    www, base = http_server
    with zipfile.ZipFile(www / "job.zip", "w") as z:
        z.writestr("project/", "")
        z.writestr("project/sub/", "")
        z.writestr("project/main.py", "print('main')\n")
        z.writestr("project/sub/data.txt", "data\n")
    assert listing(rtenv, f"{base}/job.zip", tmp_path) == ["./main.py", "./sub/data.txt"]


def test_remote_zip_single_top_level_file_kept(rtenv, tmp_path, http_server):
    www, base = http_server
    make_zip(www / "one.zip", [("main.py", "print('one')\n")])
    p = rtenv.run({"working_dir": f"{base}/one.zip"}, PY, "main.py", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "one\n"
