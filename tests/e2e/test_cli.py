"""Help output and usage errors."""

import subprocess
import sys

import pytest

from conftest import REPO, assert_clean_error, assert_ok


def test_top_level_help(rtenv):
    p = rtenv("--help")
    assert_ok(p)
    for word in ("run", "pack", "RTENV_HOME"):
        assert word in p.stdout, f"{word!r} not in `rtenv --help`:\n{p.stdout}"


def test_run_help(rtenv):
    p = rtenv("run", "--help")
    assert_ok(p)
    for word in ("--runtime-env", "--verbose", "-v", "--max-package-size", "--store", "working_dir"):
        assert word in p.stdout, f"{word!r} not in `rtenv run --help`:\n{p.stdout}"
    usage = [line for line in p.stdout.splitlines() if line.startswith("Usage:")]
    assert usage == ["Usage: rtenv run [OPTIONS] [--] COMMAND [ARGS...]  (everything from COMMAND "
                     "on is passed to the command untouched)"], p.stdout


def test_pack_help(rtenv):
    p = rtenv("pack", "--help")
    assert_ok(p)
    for word in ("--json", "--excludes", "--max-package-size", "--no-index", "--threads", "--store"):
        assert word in p.stdout, f"{word!r} not in `rtenv pack --help`:\n{p.stdout}"


@pytest.mark.parametrize("words", [[], ["run"], ["env", "create"], ["store", "serve"]])
def test_help_command_is_the_commands_own_help(rtenv, words):
    p = rtenv("help", *words)
    assert_ok(p)
    assert p.stdout == rtenv(*words, "--help").stdout
    assert "Usage: rtenv" in p.stdout


def test_help_of_an_unknown_command_says_which_there_are(rtenv):
    p = rtenv("help", "rn")
    assert p.returncode == 2, p.stderr
    assert "unknown command 'rn'; did you mean 'run'?" in p.stderr, p.stderr


def test_version_names_the_version_the_commit_and_the_features(rtenv, rtenv_bin):
    import re
    import subprocess
    from pathlib import Path

    for binary in (rtenv_bin, str(Path(rtenv_bin).with_name("rtenv-full"))):
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
        first, features = out.stdout.splitlines()
        m = re.fullmatch(r"rtenv (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12}(\+changes)?|unknown)\)",
                         first)
        assert m, out.stdout
        assert features.startswith("features: "), out.stdout
        head = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse",
                               "--short=12", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0 and m.group(2) != "unknown":
            # Built from this checkout (the header is rewritten on every build).
            assert m.group(2).split("+")[0] == head.stdout.strip(), (m.group(2), head.stdout)
    full = subprocess.run([str(Path(rtenv_bin).with_name("rtenv-full")), "--version"],
                          capture_output=True, text=True).stdout
    assert "agent" in full and "conda" in full and "archives" in full, full


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--bogus", "run", "--", "true"],
        ["run", "--bogus", "--", "true"],
        ["run", "--runtime-env", "{}", "--bogus", "true"],
        ["run", "--bogus"],
        ["pack", "--bogus", "."],
    ],
    ids=["top", "top-before-subcommand", "run", "run-without-dashes", "run-alone", "pack"],
)
def test_unknown_flag_exits_2(rtenv, tmp_path, args):
    p = rtenv(*args, cwd=tmp_path)
    assert p.returncode == 2, f"exit {p.returncode}: {p.stderr}"
    assert_clean_error(p.stderr)


def test_unknown_subcommand_exits_2(rtenv, tmp_path):
    p = rtenv("frobnicate", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert_clean_error(p.stderr)
    assert "unknown command 'frobnicate'" in p.stderr and "did you mean" not in p.stderr
    assert "run, pack" in p.stderr, p.stderr  # the commands there are


@pytest.mark.parametrize("args,typo,meant", [
    (["rn", "--", "true"], "rn", "run"),
    (["pakc", "."], "pakc", "pack"),
    (["env", "lst"], "env: unknown command 'lst'", "list"),
    (["agent", "stat"], "agent: unknown command 'stat'", "status"),
], ids=["rn", "pakc", "env-lst", "agent-stat"])
def test_a_mistyped_command_gets_did_you_mean(rtenv, tmp_path, args, typo, meant):
    p = rtenv(*args, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert_clean_error(p.stderr)
    assert typo in p.stderr and f"did you mean '{meant}'?" in p.stderr, p.stderr


def test_run_without_command_exits_2(rtenv, tmp_path):
    p = rtenv("run", "--runtime-env", "{}", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert_clean_error(p.stderr)


def test_bad_max_package_size_exits_2(rtenv, tmp_path):
    p = rtenv("run", "--max-package-size", "lots", "--", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert_clean_error(p.stderr)
    assert "lots" in p.stderr


def test_runtime_env_not_json_nor_file_exits_2(rtenv, tmp_path):
    p = rtenv("run", "--runtime-env", "working_dir=.", "--", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert_clean_error(p.stderr)
    assert p.stderr.startswith("rtenv: ")


def test_runtime_env_file_missing_exits_2(rtenv, tmp_path):
    p = rtenv("run", "--runtime-env", "nope.yaml", "--", "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert str(tmp_path / "nope.yaml") in p.stderr


def test_a_store_url_of_no_known_kind_names_every_kind_there_is(rtenv, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a\n")
    p = rtenv("pack", "--store", "foo://user:secret@host/x", str(tmp_path / "d"))
    assert p.returncode == 3, p.stderr
    for named in ("no foo:// store", "file:///abs/dir", "s3://bucket", "`rtenv store serve`"):
        assert named in p.stderr, p.stderr
    assert "secret" not in p.stderr


def test_cmake_install_puts_the_programs_side_by_side(rtenv, rtenv_bin, tmp_path):
    import json
    import shutil
    import subprocess
    from pathlib import Path
    build = Path(rtenv_bin).resolve().parents[2]
    if not (build / "CMakeCache.txt").exists() or shutil.which("cmake") is None:
        pytest.skip(f"{rtenv_bin} is not in a CMake build directory")
    prefix = tmp_path / "prefix"
    r = subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("rtenv", "rtenv-full", "rtenv-agent"):
        assert (prefix / "bin" / name).is_file(), name
    for name in ("task_prolog.sh", "epilog.sh"):
        assert (prefix / "share" / "rtenv" / "slurm" / name).is_file(), name
    if (build / "src" / "slurm" / "rtenv_spank.so").exists():
        assert (prefix / "lib" / "rtenv" / "rtenv_spank.so").is_file()
    # The installed front finds the installed rtenv-full beside it (env create goes there).
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("a")
    installed = dict(rtenv.env)
    r = subprocess.run([str(prefix / "bin" / "rtenv"), "env", "create", "--no-install", "--json",
                        "-e", json.dumps({"working_dir": str(proj), "env_vars": {"A": "1"}})],
                       env=installed, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["runtime_env"]["working_dir"].startswith("rtenv://sha256/")
    r = subprocess.run([str(prefix / "bin" / "rtenv"), "env", "list", "--json"], env=installed,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    subprocess.run([str(prefix / "bin" / "rtenv"), "agent", "stop"], env=installed,
                   capture_output=True, timeout=90)


def test_the_cli_reference_is_the_binarys_own_help(rtenv_bin):
    # docs/cli.md is generated from the binary; a command or flag changed without it fails here.
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "cli_reference.py"), "--check",
                        "--bin", rtenv_bin], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
