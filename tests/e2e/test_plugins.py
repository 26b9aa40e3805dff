"""Exec plugins (docs/plugins.md), end to end: a Python plugin written by each test, registered in
RTENV_PLUGINS (or $RTENV_HOME/config.json), driven through `rtenv run`, `rtenv env create/list`
and `rtenv gc` with a real agent. The plugin appends one JSON line per call to a log, so the
tests count calls and see each request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import (  # noqa: F401
    agent_factory, env_create, env_list, env_release, pgroup_members, resource)
from conftest import (
    HEX64,
    PY,
    REPO,
    assert_clean_error,
    assert_ok,
    assert_setup_failed,
    proc_state,
    wait_for,
    wait_gone,
)

PROTOCOL = "rtenv-plugin/1"
EXAMPLE = REPO / "examples" / "plugins" / "hello" / "rtenv-plugin-hello"

# A plugin for any field. The value (a JSON object) says how it behaves, per verb:
#   {"tag": "a",                                   any value: part of the cache key
#    "validate": {"fail": "message"},              exit 1 with the message on stderr
#    "create": {"fail": "message", "noise": 30,    ... after `noise` lines of stderr
#               "hang": true,                      start a child `sleep` and sleep forever
#               "wait_for": "/path",               wait until the file exists (30 s at most)
#               "size": 4096},                     bytes of data/blob.bin (default 1000)
#    "fragment": {...}}                            the context's reply, "@DIR@" replaced by dir
# By default `create` writes bin/<field>-tool (prints "<field>-tool ran") and data/blob.bin, and
# `context` replies {"env": {"PLUGIN_<FIELD>": tag}, "prepend": {"PATH": [dir + "/bin"]}}.
PLUGIN = r'''#!{python}
import json, os, subprocess, sys, time

LOG = {log!r}


def log(entry):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def fail(step, status=1):
    for i in range(step.get("noise", 0)):
        print("noise-%02d" % i, file=sys.stderr)
    print(step["fail"], file=sys.stderr)
    sys.exit(status)


def main():
    verb = sys.argv[1] if len(sys.argv) == 2 else ""
    req = json.load(sys.stdin)
    d = req.get("dir")
    log({{"verb": verb, "pid": os.getpid(), "pgid": os.getpgid(0), "req": req,
          "dir_entries": sorted(os.listdir(d)) if d and os.path.isdir(d) else None}})
    if req.get("protocol") != "rtenv-plugin/1":
        print("unsupported protocol %r" % req.get("protocol"), file=sys.stderr)
        sys.exit(2)
    field = req["field"]
    value = req.get("value")
    opts = value if isinstance(value, dict) else {{}}
    step = opts.get(verb) or {{}}
    if verb == "validate":
        if "fail" in step:
            fail(step)
        reply = {{}}
    elif verb == "create":
        if step.get("hang"):
            child = subprocess.Popen(["sleep", "600"])
            log({{"verb": "create-child", "pid": child.pid}})
            time.sleep(600)
        if "wait_for" in step:
            deadline = time.monotonic() + 30
            while not os.path.exists(step["wait_for"]) and time.monotonic() < deadline:
                time.sleep(0.01)
        if "fail" in step:
            fail(step)
        os.makedirs(os.path.join(d, "bin"))
        os.makedirs(os.path.join(d, "data"))
        tool = os.path.join(d, "bin", field + "-tool")
        with open(tool, "w") as f:
            f.write("#!/bin/sh\necho %s-tool ran\n" % field)
        os.chmod(tool, 0o755)
        with open(os.path.join(d, "data", "blob.bin"), "wb") as f:
            f.write(b"x" * step.get("size", 1000))
        size = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(d) for n in ns)
        reply = {{"size_bytes": size}}
    elif verb == "context":
        if "fragment" in opts:
            reply = json.loads(json.dumps(opts["fragment"]).replace("@DIR@", d))
        else:
            reply = {{"env": {{"PLUGIN_" + field.upper(): str(opts.get("tag", ""))}},
                      "prepend": {{"PATH": [os.path.join(d, "bin")]}}}}
    elif verb == "delete":
        reply = {{}}
    else:
        print("unknown verb %r" % verb, file=sys.stderr)
        sys.exit(2)
    json.dump(reply, sys.stdout)


main()
'''


class Plugin:
    """A logging plugin script in the test's directory."""

    def __init__(self, tmp_path: Path, field: str, priority: int | None = None):
        self.field = field
        self.priority = priority
        self.log = tmp_path / f"plugin-{field}.log"
        self.path = tmp_path / "plugins" / f"rtenv-plugin-{field}"
        self.path.parent.mkdir(exist_ok=True)
        self.path.write_text(PLUGIN.format(python=PY, log=str(self.log)))
        self.path.chmod(0o755)

    def entry(self) -> dict:
        e = {"field": self.field, "exec": str(self.path)}
        if self.priority is not None:
            e["priority"] = self.priority
        return e

    def calls(self, verb: str | None = None) -> list[dict]:
        """The logged calls (all, or those of one verb), each request checked for the protocol
        and the field."""
        if not self.log.exists():
            return []
        out = [json.loads(line) for line in self.log.read_text().splitlines()]
        for c in out:
            if c["verb"] == "create-child":
                continue
            assert c["req"].get("protocol") == PROTOCOL, c
            assert c["req"].get("field") == self.field, c
        return [c for c in out if verb is None or c["verb"] == verb]

    def count(self, verb: str) -> int:
        return len(self.calls(verb))


def register(rtenv, *plugins: Plugin):
    """RTENV_PLUGINS for every later command and agent of this test."""
    rtenv.env["RTENV_PLUGINS"] = json.dumps([p.entry() for p in plugins])


def published_dirs(rtenv, field: str) -> list[str]:
    root = rtenv.home / "plugins" / field
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and HEX64.match(p.name))


def plugin_resources(listing: dict, field: str) -> list[dict]:
    return [r for r in listing["resources"] if r["uri"].startswith(f"plugin://{field}/")]


def key_of(uri: str) -> str:
    m = re.fullmatch(r"plugin://([^/]+)/([0-9a-f]{64})", uri)
    assert m, f"not a plugin resource URI: {uri}"
    return m.group(2)


def names_field(message: str, field: str) -> bool:
    """The message says which field failed (not only the plugin's path, which names it too)."""
    return any(s in message for s in (f"runtime_env.{field}", f"plugin:{field}", f"plugin://{field}/",
                                      f"plugin {field} "))


def holders(listing: dict) -> list[str]:
    return [h for e in listing["envs"] for h in e["holders"]]


# A command that prints its view of the environment as one JSON line.
SHOW_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def run_env(rtenv, spec, cwd, env=None) -> dict:
    p = rtenv.run(spec, PY, "-c", SHOW_ENV, cwd=cwd, env=env, timeout=60)
    assert_ok(p)
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---- validate --------------------------------------------------------------------------------


def test_validate_failure_is_an_invalid_spec_naming_the_field(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent_factory()
    msg = "greeting: expected a string, got 3"
    p = rtenv.run({"hello": {"tag": "v", "validate": {"fail": msg}}}, "true", cwd=tmp_path)
    assert p.returncode == 2, f"exit {p.returncode}, expected 2 (invalid spec)\nstderr: {p.stderr}"
    assert_clean_error(p.stderr)
    assert p.stderr.startswith("rtenv: "), p.stderr
    assert f"runtime_env.hello: {msg}" in p.stderr, p.stderr
    assert plugin.count("validate") >= 1
    assert plugin.count("create") == 0, "create was called for a value validate rejected"
    validate = plugin.calls("validate")[0]["req"]
    assert validate["value"] == {"tag": "v", "validate": {"fail": msg}}
    assert "dir" not in validate, validate
    assert published_dirs(rtenv, "hello") == []

    # The same plugin accepts another value: the failure was the plugin's verdict on that value.
    p = rtenv.run({"hello": {"tag": "ok"}}, "true", cwd=tmp_path, timeout=60)
    assert_ok(p)


# ---- create once, context reused ---------------------------------------------------------------


def test_create_runs_once_for_sequential_and_concurrent_runs(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent_factory()

    # Two runs one after the other.
    a = {"hello": {"tag": "a"}}
    for _ in range(2):
        p = rtenv.run(a, "hello-tool", cwd=tmp_path, timeout=60)
        assert_ok(p)
        assert p.stdout == "hello-tool ran\n"
    assert plugin.count("create") == 1, plugin.calls()
    assert plugin.count("context") == 1, "the context is kept beside the resource and reused"
    # The second run found the resource published: it asked the plugin nothing at all.
    assert plugin.count("validate") == 1, plugin.calls()
    calls_before = len(plugin.calls())
    assert_ok(rtenv.run(a, "hello-tool", cwd=tmp_path, timeout=60))
    assert len(plugin.calls()) == calls_before, "a warm run started a plugin process"
    create = plugin.calls("create")[0]
    assert create["req"]["value"] == {"tag": "a"}
    assert create["dir_entries"] == [], "create must be given an empty directory"
    context = plugin.calls("context")[0]["req"]
    assert context["value"] == {"tag": "a"}
    [key] = published_dirs(rtenv, "hello")
    published = rtenv.home / "plugins" / "hello" / key
    assert context["dir"] == str(published), "context gets the published directory"
    assert create["req"]["dir"] != context["dir"], "create fills a temp directory, then it is published"
    assert not Path(create["req"]["dir"]).exists(), "the temp directory was left behind"
    assert (published / "bin" / "hello-tool").is_file()
    assert (published / "data" / "blob.bin").read_bytes() == b"x" * 1000

    # Two runs at once of another value: one create between them. The plugin's create waits for
    # a gate, opened once both runs are holders of the env (both asked the agent for it).
    gate = tmp_path / "gate"
    b = {"hello": {"tag": "b", "create": {"wait_for": str(gate)}}}
    runs = [rtenv.popen(b, "hello-tool", cwd=tmp_path) for _ in range(2)]
    try:
        def both_waiting():
            for r in runs:
                if r.poll() is not None:
                    pytest.fail(f"rtenv run exited early ({r.returncode}): {r.stderr.read()}")
            hs = holders(env_list(rtenv))
            return all(any(h.startswith(f"pid:{r.pid}:") for h in hs) for r in runs)

        wait_for(both_waiting, 30, "both concurrent runs to be holders of the env")
        gate.touch()
        outs = [r.communicate(timeout=60) for r in runs]
    finally:
        gate.touch()
        for r in runs:
            if r.poll() is None:
                r.kill()
                r.wait(5)
    for r, (out, err) in zip(runs, outs):
        assert r.returncode == 0, f"exit {r.returncode}: {err}"
        assert out == "hello-tool ran\n"
    creates = plugin.calls("create")
    assert len(creates) == 2, f"expected one create for 'a' and one for 'b': {creates}"
    assert creates[1]["req"]["value"]["tag"] == "b"
    assert plugin.count("context") == 2
    assert len(published_dirs(rtenv, "hello")) == 2

    # Back to the first value: nothing is created again.
    assert_ok(rtenv.run(a, "true", cwd=tmp_path, timeout=60))
    assert plugin.count("create") == 2
    assert plugin.count("context") == 2

    # A different value creates again.
    assert_ok(rtenv.run({"hello": {"tag": "c"}}, "true", cwd=tmp_path, timeout=60))
    assert plugin.count("create") == 3
    assert len(published_dirs(rtenv, "hello")) == 3


# ---- the context reaches the command -----------------------------------------------------------


def test_context_env_and_path_reach_the_command(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent_factory()
    fragment = {
        "env": {"HELLO_LITERAL": "a ${HOME} b", "HELLO_DIR": "@DIR@"},
        "prepend": {"PATH": ["@DIR@/bin"], "HELLO_LIST": ["front"]},
        "append": {"HELLO_LIST": ["back"]},
        "unset": ["HELLO_GONE"],
    }
    spec = {"hello": {"tag": "ctx", "fragment": fragment}}
    caller = {"HELLO_LIST": "mid", "HELLO_GONE": "still here", "PATH": rtenv.env["PATH"]}
    env = run_env(rtenv, spec, tmp_path, env=caller)
    [key] = published_dirs(rtenv, "hello")
    published = str(rtenv.home / "plugins" / "hello" / key)
    assert env.get("HELLO_DIR") == published
    assert env.get("HELLO_LITERAL") == "a ${HOME} b", "context env values are set literally"
    assert env["PATH"].split(":")[0] == f"{published}/bin"
    assert env["PATH"].split(":")[1:] == caller["PATH"].split(":"), "the caller's PATH follows"
    assert env.get("HELLO_LIST") == "front:mid:back"
    assert "HELLO_GONE" not in env

    # The command itself is looked up on the resulting PATH.
    p = rtenv.run(spec, "hello-tool", cwd=tmp_path, env=caller)
    assert_ok(p)
    assert p.stdout == "hello-tool ran\n"
    assert plugin.count("create") == 1


def test_default_context_of_a_plugin_and_builtin_fields_together(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent_factory()
    spec = {"hello": {"tag": "with-env-vars"}, "env_vars": {"OTHER": "${HOME}/x"}}
    env = run_env(rtenv, spec, tmp_path)
    assert env.get("PLUGIN_HELLO") == "with-env-vars"
    assert env.get("OTHER") == f"{rtenv.env['HOME']}/x", "env_vars still expand"
    [key] = published_dirs(rtenv, "hello")
    assert env["PATH"].startswith(f"{rtenv.home}/plugins/hello/{key}/bin:")


# ---- timeout -------------------------------------------------------------------------------------


def _kill_if_alive(*pids: int):
    for pid in pids:
        if proc_state(pid) not in (None, "Z", "X"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_hanging_create_is_killed_at_the_setup_timeout(rtenv, agent_factory, tmp_path, request):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent = agent_factory()
    spec = {"hello": {"tag": "hang", "create": {"hang": True}}, "config": {"setup_timeout_seconds": 2}}
    t0 = time.monotonic()
    p = rtenv.run(spec, "true", cwd=tmp_path, timeout=60)
    took = time.monotonic() - t0
    print(f"\nhanging create: rtenv run failed after {took:.1f} s")
    assert_setup_failed(p, "timed out", "setup_timeout_seconds")
    assert names_field(p.stderr, "hello"), p.stderr
    assert took >= 1.5, f"failed after {took:.1f} s, before the 2 s timeout"
    assert took < 20, f"took {took:.1f} s with a 2 s timeout"

    [create] = plugin.calls("create")
    [child] = plugin.calls("create-child")
    request.addfinalizer(lambda: _kill_if_alive(create["pid"], child["pid"]))
    assert create["pgid"] != os.getpgid(agent.pid), "the plugin must run in its own process group"
    assert wait_gone(create["pid"], 5), "the plugin outlived its timeout"
    assert wait_gone(child["pid"], 5), "the plugin's child outlived the timeout"
    wait_for(lambda: not pgroup_members(create["pgid"]), 5, "the plugin's process group to be gone")
    assert agent.proc.poll() is None, "the agent died"
    assert published_dirs(rtenv, "hello") == [], "a killed create was published"
    tmp = rtenv.home / "tmp"
    assert not tmp.exists() or not os.listdir(tmp), f"left in tmp/: {os.listdir(tmp)}"
    wait_for(lambda: not Path(create["req"]["dir"]).exists(), 5,
             "the killed create's directory to be removed")


# ---- failure -------------------------------------------------------------------------------------


def test_failing_create_exits_3_with_the_stderr_tail_redacted(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent_factory()
    last = "download of https://bob:s3cret@127.0.0.1:9/hello.tar failed: connection refused"
    spec = {"hello": {"tag": "fail", "create": {"fail": last, "noise": 40}}}
    p = rtenv.run(spec, "true", cwd=tmp_path, timeout=60)
    assert_setup_failed(p, "connection refused", "noise-39")
    assert names_field(p.stderr, "hello"), p.stderr
    assert "s3cret" not in p.stderr, f"credentials leaked: {p.stderr}"
    assert "https://bob:****@127.0.0.1:9/hello.tar" in p.stderr, p.stderr
    assert "noise-00" not in p.stderr, "the message is the tail of stderr, not all of it"
    assert plugin.count("create") == 1
    assert published_dirs(rtenv, "hello") == [], "a failed create was published"
    assert not Path(plugin.calls("create")[0]["req"]["dir"]).exists(), "the failed create's directory was left"
    agent_log = "".join(f.read_text(errors="replace") for f in tmp_path.glob("agent-*.log"))
    assert "s3cret" not in agent_log, "credentials leaked into the agent's log"


# ---- eviction ------------------------------------------------------------------------------------


def test_gc_evicts_the_plugin_directory_only_when_unused(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    # The limits in the clients' environment too: `rtenv gc` must not find its configuration
    # different from the agent's.
    rtenv.env.update({"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"})
    agent = agent_factory()
    started, go = tmp_path / "started", tmp_path / "go"
    script = 'touch "$0"; while [ ! -e "$1" ]; do sleep 0.02; done; exec hello-tool'
    run = rtenv.popen({"hello": {"tag": "evict", "create": {"size": 20_000}}},
                      "sh", "-c", script, str(started), str(go), cwd=tmp_path)
    try:
        def running():
            if run.poll() is not None:
                pytest.fail(f"rtenv run exited early ({run.returncode}): {run.stderr.read()}")
            return started.exists()

        wait_for(running, 30, "the command of the run to start")
        [r] = plugin_resources(env_list(rtenv), "hello")
        key = key_of(r["uri"])
        published = rtenv.home / "plugins" / "hello" / key
        assert published_dirs(rtenv, "hello") == [key]

        gc = rtenv("gc")
        assert_ok(gc)
        assert r["uri"] not in gc.stdout, f"evicted the plugin resource of a running command: {gc.stdout}"
        assert published.is_dir() and (published / "bin" / "hello-tool").is_file()
        assert plugin.count("delete") == 0, "delete was called on a resource in use"

        go.touch()
        out, err = run.communicate(timeout=30)
    finally:
        go.touch()
        if run.poll() is None:
            run.kill()
            run.wait(5)
    assert run.returncode == 0, f"exit {run.returncode}: {err}"
    assert out == "hello-tool ran\n", "the plugin's files changed under the running command"

    def unused():
        listing = env_list(rtenv)
        res = resource(listing, r["uri"])
        return not holders(listing) and (res is None or (res["env_references"] == 0
                                                          and res["process_leases"] == 0))

    wait_for(unused, 10, "the finished run to give its reference and lease back")
    listed_before = resource(env_list(rtenv), r["uri"]) is not None
    gc = rtenv("gc")
    assert_ok(gc)
    evicted = [line.split()[-1] for line in gc.stdout.splitlines() if line.startswith("evicted")]
    if listed_before:
        assert r["uri"] in evicted, gc.stdout
    assert not published.exists(), f"{published} is still there after gc"
    assert plugin_resources(env_list(rtenv), "hello") == []
    deletes = plugin.calls("delete")
    assert len(deletes) == 1, deletes
    assert deletes[0]["req"]["dir"] == str(published), deletes[0]
    assert "value" not in deletes[0]["req"] or deletes[0]["req"]["value"] == {
        "tag": "evict", "create": {"size": 20_000}}
    assert agent.proc.poll() is None

    # Evicted means gone: the next run creates it again.
    p = rtenv.run({"hello": {"tag": "evict", "create": {"size": 20_000}}}, "hello-tool",
                  cwd=tmp_path, timeout=60)
    assert_ok(p)
    assert plugin.count("create") == 2


# ---- fields without a plugin ---------------------------------------------------------------------


def test_unknown_field_without_a_plugin_is_still_an_error(rtenv, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    # Nothing registered: `hello` is unknown.
    p = rtenv.run({"hello": {"tag": "x"}}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "runtime_env.hello: unknown field" in p.stderr, p.stderr
    assert_clean_error(p.stderr)

    register(rtenv, plugin)
    for spec, error in [
        ({"helo": {"tag": "x"}}, "runtime_env.helo: unknown field; did you mean 'hello'?"),
        ({"working_dri": "s3://b/x.zip"}, "runtime_env.working_dri: unknown field; did you mean 'working_dir'?"),
        ({"hello": {"tag": "x"}, "envvars": {"A": "1"}}, "runtime_env.envvars: unknown field; did you mean 'env_vars'?"),
    ]:
        p = rtenv.run(spec, "true", cwd=tmp_path)
        assert p.returncode == 2, f"{spec}: exit {p.returncode}\n{p.stderr}"
        assert error in p.stderr, f"{spec}: expected {error!r}\ngot: {p.stderr}"
        assert_clean_error(p.stderr)
    assert plugin.count("create") == 0


def test_registration_errors_are_reported(rtenv, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    cases = [
        ([{"field": "hello", "exec": "relative/rtenv-plugin-hello"}], ("RTENV_PLUGINS", "absolute")),
        ([{"field": "pip", "exec": str(plugin.path)}], ("'pip'", "built-in")),
        ([{"field": "hello", "exec": str(plugin.path)}, {"field": "hello", "exec": str(plugin.path)}],
         ("hello",)),
    ]
    for entries, needles in cases:
        env = {"RTENV_PLUGINS": json.dumps(entries)}
        p = rtenv.run({"env_vars": {"A": "1"}}, "true", cwd=tmp_path, env=env)
        assert p.returncode != 0, f"{entries} was accepted"
        assert_clean_error(p.stderr)
        for n in needles:
            assert n in p.stderr, f"{n!r} not in {p.stderr!r}"
    assert plugin.calls() == []


# ---- priority ------------------------------------------------------------------------------------


def test_plugins_apply_in_ascending_priority(rtenv, agent_factory, tmp_path):
    def spec_for(field):
        return {"tag": field, "fragment": {"prepend": {"ORDER": [field]}, "append": {"ORDER_BACK": [field]}}}

    # Listed alpha first, and alpha sorts first by name: only the priority puts zeta first.
    alpha, zeta = Plugin(tmp_path, "alpha", priority=20), Plugin(tmp_path, "zeta", priority=5)
    register(rtenv, alpha, zeta)
    agent = agent_factory()
    spec = {"alpha": spec_for("alpha"), "zeta": spec_for("zeta"),
            "env_vars": {"ORDER": "base", "ORDER_BACK": "base"}}
    env = run_env(rtenv, spec, tmp_path)
    assert env.get("ORDER") == "zeta:alpha:base", env.get("ORDER")
    assert env.get("ORDER_BACK") == "base:zeta:alpha", env.get("ORDER_BACK")

    # The other way round (a fresh agent with the new configuration).
    agent.stop()
    alpha.priority, zeta.priority = 5, 20
    register(rtenv, alpha, zeta)
    agent_factory()
    env = run_env(rtenv, spec, tmp_path)
    assert env.get("ORDER") == "alpha:zeta:base", env.get("ORDER")
    assert env.get("ORDER_BACK") == "base:alpha:zeta", env.get("ORDER_BACK")
    assert alpha.count("create") == zeta.count("create") == 1, "priority is not part of the key"


# ---- listing -------------------------------------------------------------------------------------


def test_env_create_and_list_show_the_plugin_resource(rtenv, agent_factory, tmp_path):
    plugin = Plugin(tmp_path, "hello")
    register(rtenv, plugin)
    agent_factory()
    reply = env_create(rtenv, {"hello": {"tag": "listed", "create": {"size": 50_000}}}, job="j")
    assert reply["installed"] is True
    [uri] = [u for u in reply["resources"] if u.startswith("plugin://")]
    key = key_of(uri)
    assert uri == f"plugin://hello/{key}"
    assert uri in reply["plan"]["resources"], reply["plan"]
    assert published_dirs(rtenv, "hello") == [key]
    listing = env_list(rtenv)
    [r] = plugin_resources(listing, "hello")
    assert r["uri"] == uri
    assert r["kind"] == "plugin:hello", r
    assert r["size_bytes"] >= 50_000, r
    assert r["env_references"] == 1, r
    [e] = listing["envs"]
    assert e["resources"] == [uri] and e["holders"] == ["job:j"] and e["state"] == "ready", e

    again = env_create(rtenv, {"hello": {"tag": "listed", "create": {"size": 50_000}}}, job="k")
    assert again["installed"] is False and again["env_id"] == reply["env_id"]
    assert plugin.count("create") == 1
    assert env_release(rtenv, "j") == 1 and env_release(rtenv, "k") == 1
    assert resource(env_list(rtenv), uri)["env_references"] == 0


# ---- the example plugin --------------------------------------------------------------------------


def _example_request(verb: str, **req) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXAMPLE), verb], input=json.dumps({"protocol": PROTOCOL, **req}),
                          capture_output=True, text=True, timeout=30)


def test_example_plugin_by_hand(tmp_path):
    assert os.access(EXAMPLE, os.X_OK), f"{EXAMPLE} is not executable"
    value = {"greeting": "it's me", "files": {"motd.txt": "welcome\n"}}
    assert _example_request("validate", field="hello", value=value).stdout.strip() == "{}"
    for bad, needle in [([1], "expected an object"), ({}, "greeting"), ({"greeting": 3}, "greeting"),
                        ({"greeting": "x", "files": {"../up": "x"}}, "../up")]:
        p = _example_request("validate", field="hello", value=bad)
        assert p.returncode == 1 and needle in p.stderr, (bad, p.returncode, p.stderr)
    d = tmp_path / "tmpdir"
    d.mkdir()
    p = _example_request("create", field="hello", value=value, dir=str(d))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["size_bytes"] > 0
    published = tmp_path / "published"
    d.rename(published)  # what rtenv does: the create-time path must not matter
    assert str(d) not in (published / "bin" / "hello").read_text()
    out = subprocess.run([str(published / "bin" / "hello")], capture_output=True, text=True, timeout=10)
    assert out.stdout == "it's me\nwelcome\n", out
    p = _example_request("context", field="hello", value=value, dir=str(published))
    assert json.loads(p.stdout) == {"env": {"HELLO_GREETING": "it's me"},
                                    "prepend": {"PATH": [f"{published}/bin"]}}
    assert _example_request("delete", field="hello", dir=str(published)).stdout.strip() == "{}"
    assert _example_request("frobnicate", field="hello").returncode == 2
    p = subprocess.run([str(EXAMPLE), "validate"], input=json.dumps({"protocol": "rtenv-plugin/9"}),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "rtenv-plugin/1" in p.stderr, p.stderr


def test_example_plugin_end_to_end_from_config_json(rtenv, agent_factory, tmp_path):
    rtenv.home.mkdir(parents=True, exist_ok=True)
    (rtenv.home / "config.json").write_text(
        json.dumps({"plugins": [{"field": "hello", "exec": str(EXAMPLE)}]}))
    agent_factory()
    spec = {"hello": {"greeting": "hi there", "files": {"motd.txt": "welcome\n"}}}
    p = rtenv.run(spec, "hello", cwd=tmp_path, timeout=60)
    assert_ok(p)
    assert p.stdout == "hi there\nwelcome\n"
    p = rtenv.run(spec, "sh", "-c", 'echo "$HELLO_GREETING"', cwd=tmp_path, timeout=60)
    assert_ok(p)
    assert p.stdout == "hi there\n"
    [r] = plugin_resources(env_list(rtenv), "hello")
    assert r["kind"] == "plugin:hello"
    assert published_dirs(rtenv, "hello") == [key_of(r["uri"])]

    p = rtenv.run({"hello": {"greeting": 3}}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "runtime_env.hello: greeting: expected a string, got 3" in p.stderr, p.stderr
    p = rtenv.run({"hello": {"files": {}}}, "true", cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "runtime_env.hello: missing 'greeting'" in p.stderr, p.stderr
