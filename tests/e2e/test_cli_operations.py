"""Using rtenv day to day, through the real binary: interrupting a command while it resolves (its
helper programs end with it, and it says what was interrupted), -q and -v, `env release --json`,
`env logs`, shell completion, and the hint for a file rtenv cannot read."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PY, assert_ok, wait_for
from pyindex import PackageIndex, build_wheel


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, already dead, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


# A stand-in for uv that never answers: it records its pid and its child's, then waits.
SLOW_UV = """#!/bin/sh
sleep 300 &
echo "$$ $!" > {pids}
wait
"""


@pytest.fixture
def slow_uv(tmp_path) -> tuple[Path, Path]:
    pids = tmp_path / "uv.pids"
    script = tmp_path / "slow-uv"
    script.write_text(SLOW_UV.format(pids=pids))
    script.chmod(0o755)
    return script, pids


def default_signals():
    """preexec_fn: INT and TERM as a shell starts a foreground command (a test runner started in
    the background by a non-interactive shell has INT ignored, which its children would
    inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


INTERRUPTED = {
    "lock": ["lock", "-e"],
    "run": ["run", "-e"],
    "env create": ["env", "create", "-e"],
}


@pytest.mark.parametrize("command", list(INTERRUPTED))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_resolving_ends_the_resolver_and_says_what_it_stopped(
        rtenv, slow_uv, tmp_path, command, sig):
    script, pids = slow_uv
    spec = json.dumps({"pip": ["--index-url http://127.0.0.1:9/simple/", "somepkg"]})
    args = [rtenv.binary, *INTERRUPTED[command], spec]
    if command == "run":
        args += ["--", "true"]
    env = rtenv._env({"RTENV_UV": str(script), "RTENV_INSTALLER": "uv", "RTENV_PYTHON": PY})
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_signals)
    try:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30,
                 "the resolver to start")
        uv_pid, sleep_pid = map(int, pids.read_text().split())
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    # Ended by the signal, as the shell expects (^C: status 130).
    assert p.returncode == -sig, err
    assert ("rtenv: interrupted while resolving 1 Python requirement with uv; "
            "nothing was installed") in err
    assert "failed" not in err, err  # the killed resolver is not reported as a failure
    # The resolver and what it started are gone, not re-parented to init.
    wait_for(lambda: not alive(uv_pid) and not alive(sleep_pid), 5, "the resolver's group to end")


def test_an_interrupt_while_the_agent_installs_says_the_agent_finishes_it(rtenv, tmp_path):
    # An exec plugin whose create waits for a file: the agent is busy with it while `run` waits.
    from test_plugins import Plugin
    plugin = Plugin(tmp_path, "slowfield")
    rtenv.env["RTENV_PLUGINS"] = json.dumps([plugin.entry()])
    gate = tmp_path / "gate"
    spec = json.dumps({"slowfield": {"create": {"wait_for": str(gate)}}})
    p = subprocess.Popen([rtenv.binary, "run", "-e", spec, "--", "true"], env=rtenv._env(None),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_signals)
    try:
        wait_for(lambda: plugin.count("create") == 1, 30, "the agent to start the install")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGINT, err
    assert ("rtenv: interrupted while the agent installs the env; the agent finishes it, so the "
            "next run finds it ready") in err
    gate.write_text("")
    # The install went on without the run that asked for it: the next run finds it there.
    wait_for(lambda: list((rtenv.home / "plugins" / "slowfield").glob("*/bin")), 30,
             "the agent to finish the install")
    again = rtenv("run", "-e", spec, "--", "slowfield-tool", timeout=60)
    assert_ok(again)
    assert again.stdout == "slowfield-tool ran\n"
    assert plugin.count("create") == 1


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    build_wheel(out, "quietpkg", "1.0")
    return out


@pytest.fixture
def index(wheel_dir):
    ix = PackageIndex(wheel_dir)
    yield ix
    ix.stop()


def test_lock_says_what_resolving_took_with_v_and_nothing_with_q(py, index):
    spec = json.dumps({"pip": [f"--index-url {index.url}", "quietpkg"]})
    verbose = py("lock", "-v", "-e", spec, timeout=60)
    assert_ok(verbose)
    assert "quietpkg==1.0" in verbose.stdout
    assert "rtenv: resolved 1 Python requirement to 1 pin with uv in " in verbose.stderr
    quiet = py("lock", "-q", "--refresh", "-e", spec, timeout=60)
    assert_ok(quiet)
    assert quiet.stdout == verbose.stdout
    assert quiet.stderr == ""
    both = py("lock", "-q", "-v", "-e", spec)
    assert both.returncode == 2 and "excludes" in both.stderr


def test_run_v_reports_the_resolve_and_q_prints_only_the_commands_output(py, index, tmp_path):
    spec = {"pip": [f"--index-url {index.url}", "quietpkg"]}
    p = py.run(spec, "python", "-c", "import quietpkg; print('hi')", flags=["-v"], timeout=120)
    assert_ok(p)
    assert "resolved 1 Python requirement to 1 pin with uv" in p.stderr
    q = py.run(spec, "python", "-c", "print('hi')", flags=["-q"], timeout=60)
    assert_ok(q)
    assert q.stdout == "hi\n" and q.stderr == ""


def test_pack_q_prints_the_uri_alone_and_v_adds_timings(rtenv, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("a")
    q = rtenv("pack", "-q", tree)
    assert_ok(q)
    assert q.stdout.startswith("rtenv://sha256/") and q.stderr == ""
    v = rtenv("pack", "-v", tree)
    assert_ok(v)
    assert v.stdout == q.stdout
    assert "1 file, " in v.stderr and "time: walk" in v.stderr
    plain = rtenv("pack", tree)
    assert "1 file, " in plain.stderr and "time: walk" not in plain.stderr


def test_env_release_json_and_a_holder_or_job_is_required(rtenv, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "f").write_text("x")
    spec = json.dumps({"working_dir": str(wd)})
    assert_ok(rtenv("env", "create", "--job", "j1", "-e", spec, timeout=60))
    r = rtenv("env", "release", "--job", "j1", "--json")
    assert_ok(r)
    assert json.loads(r.stdout) == {"released": 1, "holders": ["job:j1"]}
    again = rtenv("env", "release", "--job", "j1")
    assert_ok(again)
    assert again.stdout == "released 0 references of job j1\n"
    none = rtenv("env", "release")
    assert none.returncode == 2 and "--job" in none.stderr and "--holder" in none.stderr


def test_env_logs_prints_what_setting_the_env_up_did(rtenv, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "f").write_text("x")
    created = rtenv("env", "create", "--job", "logjob", "--json", "-e",
                    json.dumps({"working_dir": str(wd)}), timeout=60)
    assert_ok(created)
    env_id = json.loads(created.stdout)["env_id"]
    logs = rtenv("env", "logs", env_id[:10])
    assert_ok(logs)
    lines = logs.stdout.splitlines()
    assert lines, logs.stderr
    assert all(f" env {env_id[:12]} " in line for line in lines)
    assert any("ready in" in line for line in lines), lines
    missing = rtenv("env", "logs", "0000000")
    assert missing.returncode == 2 and "no env 0000000" in missing.stderr


def complete(rtenv, shell: str, words: list[str]) -> list[str]:
    """What the completion script offers for `words` (the last one being completed)."""
    script = rtenv("completion", shell)
    assert_ok(script)
    quoted = " ".join(f'"{w}"' for w in words)
    if shell == "bash":
        program = (f'{script.stdout}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n'
                   f'_rtenv; printf "%s\\n" "${{COMPREPLY[@]}}"\n')
        p = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    else:
        # zsh runs the function through bashcompinit, which sets these from its own `words`
        # (counted from 1) and calls it under `emulate -L sh` (compgen): so here.
        program = (f'{script.stdout}\nwords=({quoted}); CURRENT={len(words)}\n'
                   'COMP_WORDS=("${words[@]}"); COMP_CWORD=$((CURRENT - 1))\n'
                   'call() { emulate -L sh; setopt kshglob noshglob braceexpand; _rtenv; '
                   'print -l -- "${COMPREPLY[@]}"; }\ncall\n')
        p = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "HOME": str(rtenv.home.parent)})
    assert p.returncode == 0, p.stderr
    offered = [w for w in p.stdout.splitlines() if w]
    # zsh's compadd keeps the matches that begin with the word being completed (bash's compgen
    # does that itself).
    return [w for w in offered if w.startswith(words[-1])]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_offers_commands_subcommands_and_flags(rtenv, shell):
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed (scripts/setup.sh installs it)")
    assert {"run", "pack", "env", "gc", "completion"} <= set(complete(rtenv, shell, ["rtenv", ""]))
    assert complete(rtenv, shell, ["rtenv", "env", "l"]) == ["list", "logs"]
    assert "--runtime-env" in complete(rtenv, shell, ["rtenv", "run", "--"])
    assert "--holder" in complete(rtenv, shell, ["rtenv", "env", "release", "--h"])
    # After a flag that takes a value, and in the job's command: nothing of rtenv's.
    assert complete(rtenv, shell, ["rtenv", "run", "-e", ""]) == []
    assert complete(rtenv, shell, ["rtenv", "run", "-e", "x.json", "python3", "-"]) == []


def test_completion_of_an_unknown_shell_exits_2(rtenv):
    p = rtenv("completion", "fish")
    assert p.returncode == 2 and "bash and zsh" in p.stderr


@pytest.fixture
def nobody_dir():
    """A directory that belongs to the user nobody, under /tmp (which every user can search, as
    the test's own temporary directory is not)."""
    import tempfile
    nobody = pwd.getpwnam("nobody")
    root = Path(tempfile.mkdtemp(prefix="rtenv-nobody-", dir="/tmp"))
    os.chown(root, nobody.pw_uid, nobody.pw_gid)
    yield root, nobody
    shutil.rmtree(root, ignore_errors=True)


def test_a_file_rtenv_cannot_read_fails_with_the_way_to_leave_it_out(rtenv, nobody_dir):
    root, nobody = nobody_dir
    tree = root / "tree"
    tree.mkdir()
    (tree / "ok.txt").write_text("fine")
    (tree / "secret.key").write_text("no")
    os.chmod(tree / "secret.key", 0)
    for p in (tree, tree / "ok.txt"):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    env = rtenv._env({"RTENV_HOME": str(root / "home"), "HOME": str(root)})
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups", rtenv.binary, "pack", str(tree)]
    p = subprocess.run(as_nobody, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stderr
    assert "secret.key: Permission denied" in p.stderr
    assert "add it to excludes or to .rtenvignore" in p.stderr
    # Left out as the hint says, the rest packs.
    (tree / ".rtenvignore").write_text("secret.key\n")
    os.chown(tree / ".rtenvignore", nobody.pw_uid, nobody.pw_gid)
    assert_ok(subprocess.run(as_nobody, env=env, capture_output=True, text=True, timeout=60))


def test_every_command_that_reports_prints_one_json_document_with_json(rtenv, tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "f").write_text("x")
    spec = json.dumps({"working_dir": str(wd)})

    def one_json(*args):
        p = rtenv(*args, "--json", timeout=60)
        assert_ok(p)
        try:
            return json.loads(p.stdout)  # exactly one document: trailing text fails here
        except json.JSONDecodeError as e:
            pytest.fail(f"rtenv {' '.join(args)} --json: not one JSON document ({e}): {p.stdout!r}")

    assert one_json("pack", wd)["uri"].startswith("rtenv://sha256/")
    created = one_json("env", "create", "--job", "j", "-e", spec)
    assert one_json("env", "list")["envs"][0]["env_id"] == created["env_id"]
    assert one_json("env", "show", created["env_id"][:8])["env_id"] == created["env_id"]
    assert one_json("env", "release", "--job", "j")["released"] == 1
    assert "bytes_freed" in one_json("gc", "--dry-run")
    assert one_json("config", "show")
    assert one_json("agent", "status")["running"] is True
    assert one_json("agent", "stop")["stopped"] is True
    assert one_json("agent", "stop") == {"stopped": False, "running": False}


def run_on_a_terminal(args: list[str], env: dict, timeout: float = 30) -> tuple[int, str]:
    """Runs `args` with stdout and stderr on a pseudo-terminal; returns (exit status, output)."""
    import pty
    import select
    primary, secondary = pty.openpty()
    p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=secondary,
                         stderr=secondary, close_fds=True)
    os.close(secondary)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(primary)
    return p.wait(timeout=10), out.decode(errors="replace")


def test_on_a_terminal_a_resolve_shows_what_it_does_and_for_how_long(rtenv, tmp_path):
    # A resolver that takes 1.5 s and then fails: the live line must have counted the time.
    uv = tmp_path / "slow-failing-uv"
    uv.write_text("#!/bin/sh\nsleep 1.5\necho 'no solution' >&2\nexit 1\n")
    uv.chmod(0o755)
    spec = json.dumps({"pip": ["--index-url http://127.0.0.1:9/simple/", "somepkg"]})
    env = rtenv._env({"RTENV_UV": str(uv), "RTENV_INSTALLER": "uv", "RTENV_PYTHON": PY})
    status, out = run_on_a_terminal([rtenv.binary, "lock", "-e", spec], env)
    assert status == 3, out
    assert "rtenv: resolving 1 Python requirement with uv (1." in out, out
    assert "no solution" in out
    quiet_status, quiet_out = run_on_a_terminal([rtenv.binary, "lock", "-q", "-e", spec], env)
    assert quiet_status == 3
    assert "resolving 1 Python requirement" not in quiet_out, quiet_out


def test_a_signal_ignored_when_rtenv_started_stays_ignored(rtenv, slow_uv):
    # As nohup, or Slurm's release hook, which must outlive the TERM sent to the step's processes.
    script, pids = slow_uv
    spec = json.dumps({"pip": ["--index-url http://127.0.0.1:9/simple/", "somepkg"]})
    env = rtenv._env({"RTENV_UV": str(script), "RTENV_INSTALLER": "uv", "RTENV_PYTHON": PY})
    p = subprocess.Popen([rtenv.binary, "lock", "-e", spec], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: (default_signals(),
                                             signal.signal(signal.SIGTERM, signal.SIG_IGN)))
    try:
        wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, 30,
                 "the resolver to start")
        p.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=1)  # still resolving
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == -signal.SIGINT, err
    assert "interrupted while resolving" in err
