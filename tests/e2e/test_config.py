"""The one configuration: `rtenv config show`, errors in config.json, and an on-demand agent that
follows the caller's configuration (RTENV_CACHE_LIMIT, RTENV_INSTALLER) instead of keeping its own.
"""

from __future__ import annotations

import json
import time

from agent_helpers import agent_factory, env_create, env_release  # noqa: F401 (fixtures)
from conftest import assert_ok, wait_for, wait_gone, write_tree


def show(rtenv, *flags, env=None) -> dict:
    p = rtenv("config", "show", "--json", *flags, env=env)
    assert_ok(p)
    return json.loads(p.stdout)


def status(rtenv, env=None) -> dict:
    p = rtenv("agent", "status", "--json", env=env)
    assert p.returncode in (0, 1), p.stderr
    return json.loads(p.stdout)


def test_config_show_names_each_origin(rtenv):
    rtenv.home.mkdir(parents=True)
    config_file = rtenv.home / "config.json"
    config_file.write_text(json.dumps({"python": "python3.99", "cache_limit": "2G"}))
    got = show(rtenv, "--store", "/somewhere/else", env={"RTENV_CACHE_LIMIT": "3G",
                                                         "RTENV_STORE_TOKEN": "s3cret"})
    assert got["installer"] == {"value": "auto", "origin": "default"}
    assert got["python"] == {"value": "python3.99", "origin": str(config_file)}
    assert got["cache_limit"] == {"value": 3 << 30, "origin": "RTENV_CACHE_LIMIT"}
    assert got["cache_low"]["value"] == (3 << 30) // 10 * 8
    assert got["store"] == {"value": "/somewhere/else", "origin": "--store"}
    assert got["home"] == {"value": str(rtenv.home), "origin": "RTENV_HOME"}
    assert got["store_token"]["origin"] == "RTENV_STORE_TOKEN"
    assert "s3cret" not in json.dumps(got)

    p = rtenv("config", "show", env={"RTENV_STORE_TOKEN": "s3cret"})
    assert_ok(p)
    assert "s3cret" not in p.stdout
    lines = {line.split()[0]: line for line in p.stdout.splitlines()}
    assert lines["python"].endswith(f"({config_file})")
    assert "python3.99" in lines["python"]
    assert lines["cache_limit"].split()[1] == "2G"
    assert lines["installer"].endswith("(default)")


def test_a_misspelled_key_fails_every_command_with_a_suggestion(rtenv, tmp_path):
    rtenv.home.mkdir(parents=True)
    (rtenv.home / "config.json").write_text('{"cache_limt": "1G"}')
    for args in (["config", "show"], ["gc"], ["env", "list"]):
        t0 = time.monotonic()
        p = rtenv(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "unknown key 'cache_limt'; did you mean 'cache_limit'?" in p.stderr, p.stderr
        assert time.monotonic() - t0 < 5
    p = rtenv.run(None, "true")
    assert p.returncode == 2, p.stderr
    assert "did you mean 'cache_limit'?" in p.stderr
    assert not (rtenv.home / "agent.pid").exists()


def test_a_malformed_file_names_line_and_column(rtenv):
    rtenv.home.mkdir(parents=True)
    config_file = rtenv.home / "config.json"
    config_file.write_text('{\n  "cache_limit": "1G",\n}\n')
    t0 = time.monotonic()
    p = rtenv("gc")
    assert p.returncode == 2, p.stderr
    assert f"{config_file}:3:1:" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 5


def test_a_wrongly_typed_value_names_the_key_and_its_origin(rtenv):
    p = rtenv("config", "show", env={"RTENV_INSTALLER": "conda"})
    assert p.returncode == 2
    assert "installer (from RTENV_INSTALLER): must be auto, uv, pip" in p.stderr, p.stderr


def test_a_changed_cache_limit_reaches_the_next_gc(rtenv, tmp_path):
    src = write_tree(tmp_path / "wd", {"data.bin": "x" * 20000})
    created = env_create(rtenv, {"working_dir": str(src)}, job="j1")
    assert created["resources"]
    first_pid = status(rtenv)["pid"]
    env_release(rtenv, "j1")

    p = rtenv("gc")
    assert_ok(p)
    assert "evicted" not in p.stdout, p.stdout  # 20 KB is far under the default 10G

    p = rtenv("gc", "-v", env={"RTENV_CACHE_LIMIT": "1K"})
    assert_ok(p)
    assert any(line.startswith("evicted ") and line.split()[-1].startswith("rtenv://")
               for line in p.stdout.splitlines()), p.stdout
    assert "restarted it with this one" in p.stderr, p.stderr
    assert wait_gone(first_pid)
    now = status(rtenv, env={"RTENV_CACHE_LIMIT": "1K"})
    assert now["config_matches"] and now["on_demand"] and now["pid"] != first_pid


def test_a_changed_installer_reaches_the_agent(rtenv):
    assert_ok(rtenv("gc"))
    before = status(rtenv)
    assert before["config_matches"]

    assert_ok(rtenv("gc", env={"RTENV_INSTALLER": "pip"}))
    after = status(rtenv, env={"RTENV_INSTALLER": "pip"})
    assert after["config_matches"], after
    assert after["pid"] != before["pid"]
    # Seen from a shell without the variable, the agent now runs with pip.
    other = status(rtenv)
    assert not other["config_matches"]
    assert other["differing_keys"] == ["installer"]


# A plugin whose create waits for a gate file: an install that runs as long as the test wants.
GATED_PLUGIN = """#!/usr/bin/env python3
import json, os, sys, time
req = json.load(sys.stdin)
if sys.argv[1] == "create":
    gate = req["value"]["gate"]
    open(gate + ".started", "w").close()
    while not os.path.exists(gate):
        time.sleep(0.02)
print(json.dumps({"size_bytes": 0} if sys.argv[1] == "create" else {}))
"""


def test_a_busy_agent_is_not_restarted_for_another_configuration(rtenv, tmp_path):
    plugin = tmp_path / "gated"
    plugin.write_text(GATED_PLUGIN)
    plugin.chmod(0o755)
    plugins = json.dumps([{"field": "gated", "exec": str(plugin)}])
    gate = tmp_path / "gate"
    first = rtenv.popen({"gated": {"gate": str(gate)}}, "true", env={"RTENV_PLUGINS": plugins})
    try:
        wait_for(lambda: (tmp_path / "gate.started").exists(), 20, "the first install to start")
        pid = status(rtenv, env={"RTENV_PLUGINS": plugins})["pid"]
        # Another configuration arrives while the agent installs for the first run: the agent
        # keeps going, the newcomer is told and uses it as it is.
        p = rtenv("gc", env={"RTENV_PLUGINS": plugins, "RTENV_CACHE_LIMIT": "5G"})
        assert_ok(p)
        assert "not restarted" in p.stderr and "installing" in p.stderr, p.stderr
        assert status(rtenv, env={"RTENV_PLUGINS": plugins})["pid"] == pid
    finally:
        gate.touch()
    out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    # Idle now: the next caller with the other configuration restarts it.
    p = rtenv("gc", "-v", env={"RTENV_PLUGINS": plugins, "RTENV_CACHE_LIMIT": "5G"})
    assert_ok(p)
    assert "restarted it with this one" in p.stderr, p.stderr
    assert wait_gone(pid)


def test_listing_and_releasing_never_restart_the_agent(rtenv):
    # An engine's release hook (a Slurm epilog) runs with another environment than the jobs that
    # started the node's agent: it uses the agent as it is, without a word.
    assert_ok(rtenv("gc", env={"RTENV_CACHE_LIMIT": "5G"}))
    pid = status(rtenv, env={"RTENV_CACHE_LIMIT": "5G"})["pid"]
    for args in (["env", "list"], ["env", "release", "--holder", "slurm:1.*"],
                 ["env", "release", "--job", "j"]):
        p = rtenv(*args)
        assert_ok(p)
        assert "warning" not in p.stderr and "restart" not in p.stderr, p.stderr
    assert status(rtenv, env={"RTENV_CACHE_LIMIT": "5G"})["pid"] == pid
    # What acts on the configuration (gc) still restarts it.
    p = rtenv("gc", "-v")
    assert_ok(p)
    assert "restarted it with this one" in p.stderr, p.stderr


def test_an_agent_started_by_hand_is_kept_with_a_warning(rtenv, agent_factory):  # noqa: F811
    agent = agent_factory(env={"RTENV_CACHE_LIMIT": "1K"})
    p = rtenv("gc")
    assert_ok(p)
    assert "warning:" in p.stderr and "cache_limit" in p.stderr, p.stderr
    assert "rtenv agent stop" in p.stderr
    s = status(rtenv)
    assert s["pid"] == agent.pid
    assert not s["on_demand"]
    assert not s["config_matches"]
    assert s["differing_keys"] == ["cache_limit", "cache_low"]
    p = rtenv("agent", "status")
    assert_ok(p)
    assert "by hand" in p.stdout and "cache_limit" in p.stdout

    p = rtenv("agent", "stop")
    assert_ok(p)
    assert f"pid {agent.pid}" in p.stdout
    agent.proc.wait(5)
    assert status(rtenv) == {"running": False, "socket": str(rtenv.home / "agent.sock")}
    p = rtenv("agent", "stop")
    assert_ok(p)
    assert "no rtenv agent is running" in p.stdout


def test_agent_status_and_stop_of_an_on_demand_agent(rtenv):
    p = rtenv("agent", "status")
    assert p.returncode == 1
    assert "no rtenv agent is running" in p.stdout
    assert_ok(rtenv("gc"))
    s = status(rtenv)
    assert s["running"] and s["on_demand"] and s["config_matches"]
    assert s["socket"] == str(rtenv.home / "agent.sock")
    assert s["version"]
    assert_ok(rtenv("agent", "stop"))
    assert wait_gone(s["pid"], 1.0)
    assert not (rtenv.home / "agent.sock").exists()


def test_an_agent_that_cannot_start_says_why_at_once(rtenv):
    rtenv.home.mkdir(parents=True)
    (rtenv.home / "agent.db").mkdir()  # the agent cannot open its state
    t0 = time.monotonic()
    p = rtenv("env", "list")
    took = time.monotonic() - t0
    assert p.returncode == 3, p.stderr
    assert "the rtenv agent exited at once" in p.stderr, p.stderr
    assert "agent.db" in p.stderr, p.stderr
    assert took < 5, f"took {took:.1f} s"
