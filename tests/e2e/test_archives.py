"""Archives other than .zip (.tar.gz, .tgz, .tar.xz, .tar.bz2, .tar) for working_dir and
py_modules, local and over http:// and s3:// (moto); hostile tar entries refused; URI schemes
rtenv does not take refused at validation; local:// directories used in place."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from conftest import PY, assert_clean_error, assert_ok, assert_setup_failed, make_zip
from test_s3_store import BUCKET, s3  # noqa: F401  (s3 is a fixture)

# Suffix -> tarfile write mode.
TAR_MODES = {".tar.gz": "w:gz", ".tgz": "w:gz", ".tar.xz": "w:xz", ".tar.bz2": "w:bz2",
             ".tar": "w"}
FORMATS = list(TAR_MODES) + [".zip"]

LIST = ("import json, os; print(json.dumps(sorted(os.path.join(d, f) "
        "for d, ds, fs in os.walk('.') for f in fs)))")


def make_archive(path: Path, entries: list) -> Path:
    """entries as conftest.make_zip takes them: (name, content) files, (name, target, "symlink")
    symlinks; for tars also (name, target, "hardlink"), (name, "", "fifo") and (name, "", "chr")."""
    suffix = next((s for s in FORMATS if path.name.endswith(s)), None)
    assert suffix, path
    if suffix == ".zip":
        return make_zip(path, entries)
    with tarfile.open(path, TAR_MODES[suffix], format=tarfile.GNU_FORMAT) as t:
        for e in entries:
            info = tarfile.TarInfo(e[0])
            info.mode = 0o644
            if len(e) == 3:
                info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[e[2]]
                info.linkname = e[1]
                t.addfile(info)
            else:
                data = e[1].encode() if isinstance(e[1], str) else e[1]
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return path


def listing(rtenv, runtime_env, cwd):
    p = rtenv.run(runtime_env, PY, "-c", LIST, cwd=cwd, timeout=60)
    assert_ok(p)
    return json.loads(p.stdout)


PROJECT = [("project/main.py", "print('hello from the archive')\n"),
           ("project/sub/data.txt", "data\n")]
MODULES = [("mylib/__init__.py", "WHO = 'mylib from the archive'\n")]


# ---- each format, local, over HTTP and from S3 ------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_local_archive_as_working_dir(rtenv, tmp_path, suffix):
    # A local archive is the package as it is (its top-level directory kept), as for zips.
    make_archive(tmp_path / f"job{suffix}", PROJECT)
    p = rtenv.run({"working_dir": f"job{suffix}"}, PY, "project/main.py", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "hello from the archive\n"
    assert listing(rtenv, {"working_dir": f"job{suffix}"}, tmp_path) == [
        "./project/main.py", "./project/sub/data.txt"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_http_archive_as_working_dir_and_py_modules(rtenv, tmp_path, http_server, suffix):
    www, base = http_server
    make_archive(www / f"job{suffix}", PROJECT)
    make_archive(www / f"mods{suffix}", MODULES)
    # A remote working_dir's single top-level directory is stripped, as for zips.
    env = {"working_dir": f"{base}/job{suffix}", "py_modules": [f"{base}/mods{suffix}"]}
    p = rtenv.run(env, PY, "-c", "import mylib, runpy; print(mylib.WHO); "
                  "runpy.run_path('main.py')", cwd=tmp_path, timeout=60)
    assert_ok(p)
    assert p.stdout == "mylib from the archive\nhello from the archive\n"
    assert listing(rtenv, {"working_dir": f"{base}/job{suffix}"}, tmp_path) == [
        "./main.py", "./sub/data.txt"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_s3_archive_as_working_dir_and_py_modules(rtenv, tmp_path, s3, suffix):  # noqa: F811
    rtenv.env.update(s3["env"])
    for name, entries in ((f"job{suffix}", PROJECT), (f"mods{suffix}", MODULES)):
        archive = make_archive(tmp_path / name, entries)
        s3["client"].put_object(Bucket=BUCKET, Key=f"archives/{name}", Body=archive.read_bytes())
        archive.unlink()
    env = {"working_dir": f"s3://{BUCKET}/archives/job{suffix}",
           "py_modules": [f"s3://{BUCKET}/archives/mods{suffix}"]}
    p = rtenv.run(env, PY, "-c", "import mylib, os; print(mylib.WHO); print(sorted(os.listdir()))",
                  cwd=tmp_path, timeout=60)
    assert_ok(p)
    assert p.stdout == "mylib from the archive\n['main.py', 'sub']\n"


def test_a_remote_archive_is_fetched_once_per_store(rtenv, tmp_path):
    # As wheel URLs: the store remembers what a URL was packed into (with the wrapper stripped
    # and the env's excludes), so later runs, on this machine or another using the store, fetch
    # nothing; other excludes make another package, fetched again.
    from httpfiles import Server

    www = tmp_path / "served"
    www.mkdir()
    make_archive(www / "job.tar.gz", PROJECT)
    server = Server(www)
    try:
        env = {"working_dir": f"{server.url}/job.tar.gz"}
        assert listing(rtenv, env, tmp_path) == ["./main.py", "./sub/data.txt"]
        assert listing(rtenv, env, tmp_path) == ["./main.py", "./sub/data.txt"]
        assert server.gets == ["/job.tar.gz"], server.gets
        p = rtenv.run(env, "true", cwd=tmp_path, flags=("-v",))
        assert_ok(p)
        assert "fetched before" in p.stderr, p.stderr
        assert listing(rtenv, {**env, "excludes": ["sub"]}, tmp_path) == ["./main.py"]
        assert server.gets == ["/job.tar.gz"] * 2, server.gets
    finally:
        server.close()


def test_s3_archive_missing_is_a_setup_failure_naming_it(rtenv, tmp_path, s3):  # noqa: F811
    rtenv.env.update(s3["env"])
    url = f"s3://{BUCKET}/archives/none.tar.gz"
    p = rtenv.run({"working_dir": url}, "true", cwd=tmp_path, timeout=60)
    assert_setup_failed(p, "working_dir", url, "not found")


def test_env_create_takes_a_remote_tarball(rtenv, tmp_path, http_server):
    # The path the Ray plugin takes: env create resolves the archive and answers the plan.
    www, base = http_server
    make_archive(www / "job.tar.xz", PROJECT)
    p = rtenv("env", "create", "-e", json.dumps({"working_dir": f"{base}/job.tar.xz"}), "--json",
              cwd=tmp_path, timeout=60)
    assert_ok(p)
    cwd = json.loads(p.stdout)["plan"]["cwd"]
    assert sorted(os.listdir(cwd)) == ["main.py", "sub"]
    assert cwd.startswith(str(rtenv.home)), cwd


def test_a_file_that_is_not_the_tarball_it_is_named_is_a_setup_failure(rtenv, tmp_path,
                                                                       http_server):
    www, base = http_server
    make_zip(www / "job.tar.gz", PROJECT)  # a zip under a tarball's name
    p = rtenv.run({"working_dir": f"{base}/job.tar.gz"}, "true", cwd=tmp_path, timeout=60)
    assert_setup_failed(p, "working_dir", f"{base}/job.tar.gz", "is not a readable tar archive")
    assert str(rtenv.home) not in p.stderr  # the URL is named, not the download's temp file


def test_archive_over_the_package_limit_is_refused(rtenv, tmp_path):
    # Compresses to almost nothing, unpacks to 4 MiB: bounded by what is written.
    make_archive(tmp_path / "big.tar.xz", [("zeros.bin", b"\0" * (4 << 20))])
    p = rtenv.run({"working_dir": "big.tar.xz"}, "true", cwd=tmp_path,
                  flags=("--max-package-size", "1MiB"))
    assert_setup_failed(p, "working_dir", "package limit")


def test_hard_link_inside_a_tarball_is_kept(rtenv, tmp_path):
    make_archive(tmp_path / "job.tar.gz", [("a.txt", "shared\n"), ("sub/b.txt", "a.txt", "hardlink")])
    p = rtenv.run({"working_dir": "job.tar.gz"}, PY, "-c",
                  "print(open('a.txt').read() + open('sub/b.txt').read(), end='')", cwd=tmp_path)
    assert_ok(p)
    assert p.stdout == "shared\nshared\n"


# ---- hostile tar entries ----------------------------------------------------------------------


def hostile_cases(outside: Path):
    """(id, entries, what the error names). Unpacked naively, each writes under `outside`, makes
    it reachable, or creates a device or FIFO."""
    marker = outside / "MARKER"
    rel_marker = "../" * 30 + str(marker).lstrip("/")
    return [
        ("dotdot", [("ok.txt", "ok"), (rel_marker, "pwned")], rel_marker),
        ("dotdot-middle", [("ok.txt", "ok"), ("sub/../../" + rel_marker, "pwned")], "sub/../../"),
        ("absolute", [("ok.txt", "ok"), (str(marker), "pwned")], str(marker)),
        ("symlink-outside", [("ok.txt", "ok"), ("link", str(outside), "symlink")], "link"),
        ("symlink-relative-outside", [("d/link", "../../..", "symlink")], "d/link"),
        ("write-through-symlink", [("link", str(outside), "symlink"), ("link/MARKER", "pwned")],
         "link"),
        ("hardlink-outside", [("ok.txt", "ok"), ("h", str(marker), "hardlink")], "h"),
        ("hardlink-dotdot", [("ok.txt", "ok"), ("h", rel_marker, "hardlink")], "h"),
        ("hardlink-to-nothing", [("h", "missing.txt", "hardlink")], "h"),
        ("hardlink-then-write", [("ok.txt", "ok"), ("h", "ok.txt", "hardlink"), ("h", "pwned")],
         "appears twice"),
        ("fifo", [("ok.txt", "ok"), ("pipe", "", "fifo")], "pipe"),
        ("char-device", [("ok.txt", "ok"), ("null", "", "chr")], "null"),
    ]


HOSTILE_IDS = [c[0] for c in hostile_cases(Path("/x"))]


@pytest.mark.parametrize("source", ["local", "http"])
@pytest.mark.parametrize("case", HOSTILE_IDS)
def test_hostile_tarball_refused(rtenv, tmp_path, http_server, case, source):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "MARKER").write_text("original\n")  # what hard links would reach
    www, base = http_server
    _, entries, needle = next(c for c in hostile_cases(outside) if c[0] == case)
    make_archive((tmp_path if source == "local" else www) / "evil.tar.gz", entries)
    working_dir = "evil.tar.gz" if source == "local" else f"{base}/evil.tar.gz"
    p = rtenv.run({"working_dir": working_dir}, "sh", "-c", "echo RAN > ran.txt", cwd=tmp_path)
    assert_setup_failed(p, "working_dir", needle)
    assert "refusing to unpack" in p.stderr
    assert sorted(x.name for x in outside.iterdir()) == ["MARKER"]
    assert (outside / "MARKER").read_text() == "original\n"
    assert os.stat(outside / "MARKER").st_nlink == 1, "a hard link to a file outside was made"
    # Nothing was left half unpacked in the home's tmp/.
    assert not any((rtenv.home / "tmp").iterdir()) if (rtenv.home / "tmp").exists() else True
    assert not os.path.exists("/MARKER")


# ---- URI schemes: refused at validation ------------------------------------------------------


@pytest.mark.parametrize("uri, needle", [
    ("unknown://abc.zip", "unknown://abc.zip is not a valid URI: rtenv takes http://, https://, "
                          "s3:// and file:// URLs, local:// directories"),
    ("gs://bucket/project.tar.gz", "rtenv does not fetch gs:// URIs (gs://bucket/project.tar.gz); "
                                   "use the object's https:// URL"),
    ("gcs://_ray_pkg_abc.zip", "a gcs:// package lives in one Ray cluster's own storage"),
    ("s3://project.zip", "s3://project.zip is not a valid URI: an s3:// URL names a bucket and a "
                         "key"),
    ("local://relative/dir", "is not a valid URI: a local:// URI names an absolute path"),
])
def test_uri_rtenv_does_not_take_is_refused_at_validation(rtenv, tmp_path, uri, needle):
    for env in ({"working_dir": uri}, {"py_modules": [uri]}):
        p = rtenv.run(env, "true", cwd=tmp_path)
        assert p.returncode == 2, f"exit {p.returncode}, expected 2\nstderr: {p.stderr}"
        assert needle in p.stderr, p.stderr
        assert_clean_error(p.stderr)
        # Refused at validation: nothing was set up.
        assert not rtenv.pkgs.exists() or not any(rtenv.pkgs.iterdir())
    p = rtenv("env", "create", "-e", json.dumps({"working_dir": uri}), "--json", cwd=tmp_path)
    assert p.returncode == 2 and needle in p.stderr, p.stderr


# ---- local:// directories, used in place ------------------------------------------------------


def test_local_uri_working_dir_is_used_in_place(rtenv, tmp_path):
    app = tmp_path / "image" / "app"
    app.mkdir(parents=True)
    (app / "helper.py").write_text("NAME = 'helper in place'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import os, sys, helper; print(os.getcwd()); print(sys.path[1]); print(helper.NAME); "
            "open('written.txt', 'w').write('from the job\\n')")
    p = rtenv.run({"working_dir": f"local://{app}"}, PY, "-c", code, cwd=elsewhere, flags=("-v",))
    assert_ok(p)
    cwd, path0, name = p.stdout.splitlines()
    assert cwd == str(app)  # the directory itself, not a copy
    assert path0 == str(app)  # the front of PYTHONPATH (sys.path[0] is the -c script's '')
    assert name == "helper in place"
    assert (app / "written.txt").read_text() == "from the job\n"
    assert not (elsewhere / "written.txt").exists()
    # Never packed or copied: no package on the node, nothing in the store.
    assert not rtenv.pkgs.exists() or not any(rtenv.pkgs.iterdir())
    assert "rtenv://sha256/" not in p.stderr, p.stderr  # no packing reported


def test_local_uri_py_modules_go_on_pythonpath_in_order(rtenv, tmp_path):
    libs = tmp_path / "libs"
    (libs / "mylib").mkdir(parents=True)
    (libs / "mylib" / "__init__.py").write_text("WHO = 'in place'\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.py").write_text("X = 1\n")
    env = {"py_modules": [f"local://{libs}", f"local://{other}"]}
    p = rtenv.run(env, PY, "-c", "import os, mylib, extra; print(mylib.__file__); "
                  "print(os.environ['PYTHONPATH'])", cwd=tmp_path)
    assert_ok(p)
    where, pythonpath = p.stdout.splitlines()
    assert where == str(libs / "mylib" / "__init__.py")
    assert pythonpath.split(":")[:2] == [str(libs), str(other)]


def test_local_uri_mixed_with_packed_modules(rtenv, tmp_path, http_server):
    www, base = http_server
    make_archive(www / "mods.tgz", MODULES)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "extra.py").write_text("X = 'extra in place'\n")
    env = {"py_modules": [f"{base}/mods.tgz", f"local://{shared}"]}
    p = rtenv.run(env, PY, "-c", "import mylib, extra; print(mylib.WHO, '/', extra.X)",
                  cwd=tmp_path, timeout=60)
    assert_ok(p)
    assert p.stdout == "mylib from the archive / extra in place\n"


def test_local_uri_missing_directory_is_a_setup_failure(rtenv, tmp_path):
    missing = tmp_path / "not-here"
    p = rtenv.run({"working_dir": f"local://{missing}"}, "true", cwd=tmp_path)
    assert_setup_failed(p, "runtime_env.working_dir", str(missing),
                        "must already exist on every node")
    p = rtenv.run({"py_modules": [f"local://{missing}"]}, "true", cwd=tmp_path)
    assert_setup_failed(p, "runtime_env.py_modules[0]", str(missing))


def test_local_uri_through_the_agent_and_its_identity(rtenv, tmp_path):
    # env create: the agent reads the env at task level, where local:// is taken like any URI.
    app = tmp_path / "app"
    app.mkdir()
    env = {"working_dir": f"local://{app}", "env_vars": {"A": "1"}}
    p = rtenv("env", "create", "-e", json.dumps(env), "--json", cwd=tmp_path, timeout=60)
    assert_ok(p)
    out = json.loads(p.stdout)
    assert out["plan"]["cwd"] == str(app)
    # The path string is the identity: the same string gives the same env, another path another.
    again = json.loads(rtenv("env", "create", "-e", json.dumps(env), "--json", cwd=tmp_path,
                             timeout=60).stdout)
    other_dir = tmp_path / "app2"
    other_dir.mkdir()
    other = json.loads(rtenv("env", "create", "-e",
                             json.dumps({**env, "working_dir": f"local://{other_dir}"}), "--json",
                             cwd=tmp_path, timeout=60).stdout)
    id_key = next(k for k in ("env_id", "id") if k in out)
    assert again[id_key] == out[id_key] != other[id_key]


def test_local_uri_is_not_a_directory_of_an_archive(rtenv, tmp_path):
    p = rtenv.run({"working_dir": f"local://{tmp_path}/app.tar.gz"}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "a local:// directory is used in place and never unpacked" in p.stderr
