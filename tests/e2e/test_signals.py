"""Signals sent to the rtenv process reach the command."""

import signal

import pytest

from conftest import PY, write_tree

HANDLER = """
import os, signal, sys, time
# os.write, not print: the signal may arrive while "ready" is still being written, and a print
# from the handler would then be a reentrant call on sys.stdout.
def on_signal(signum, frame):
    os.write(1, ("caught %s\\n" % signal.Signals(signum).name).encode())
    os._exit(40 + signum)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, on_signal)
os.write(1, b"ready\\n")
time.sleep(20)
os.write(1, b"not interrupted\\n")
sys.exit(99)
"""


def start_and_signal(rtenv, runtime_env, command, cwd, sig):
    proc = rtenv.popen(runtime_env, *command, cwd=cwd)
    try:
        first = proc.stdout.readline()
        assert first == "ready\n", f"command did not start: {first!r}; stderr: {proc.stderr.read()}"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_signal_forwarded_to_handler(rtenv, tmp_path, sig):
    write_tree(tmp_path / "w", {"handler.py": HANDLER})
    code, out, err = start_and_signal(
        rtenv, {"working_dir": "w"}, [PY, "handler.py"], tmp_path, sig
    )
    assert out == f"caught {sig.name}\n", (out, err)
    assert code == 40 + sig, (code, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_unhandled_signal_gives_128_plus_n(rtenv, tmp_path, sig):
    code, out, err = start_and_signal(
        rtenv, {"env_vars": {"A": "1"}}, ["sh", "-c", "echo ready; exec sleep 20"], tmp_path, sig
    )
    assert code == 128 + sig, (code, out, err)
