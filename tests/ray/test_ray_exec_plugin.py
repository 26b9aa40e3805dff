"""An exec plugin field under Ray: a task whose env is rtenv.ray.runtime_env(hello={...}) runs
with what the `hello` plugin's context sets, on both nodes.

Its own two-node cluster (the plugin is registered through RTENV_PLUGINS in every node's
environment and the driver's, before the nodes start), so it does not disturb the shared one.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path

import pytest
import ray

import rtenv.ray
from ray_testlib import PY, for_nodes
from raycluster import RayCluster, driver_connected, node_resource

# The plugin (protocol rtenv-plugin/1, docs/plugins.md): validate refuses a value without a
# string "greeting"; create writes the greeting and a `hello-rtenv` command into its directory;
# context sets HELLO_GREETING (the value's greeting), HELLO_DIR (the published directory) and
# puts its bin/ first on PATH. Every call is logged to $RTENV_HOME/hello-calls.log.
PLUGIN = textwrap.dedent('''\
    #!{python}
    import json, os, sys

    verb = sys.argv[1]
    request = json.load(sys.stdin)
    home = os.environ.get("RTENV_HOME", "/tmp")
    with open(os.path.join(home, "hello-calls.log"), "a") as log:
        log.write(verb + "\\n")
    assert request["protocol"] == "rtenv-plugin/1", request
    value = request.get("value")
    if verb == "validate":
        if not isinstance(value, dict) or not isinstance(value.get("greeting"), str):
            sys.stderr.write("expected {{\\"greeting\\": <string>}}, got %s\\n" % json.dumps(value))
            sys.exit(1)
        print("{{}}")
    elif verb == "create":
        d = request["dir"]
        os.makedirs(os.path.join(d, "bin"))
        with open(os.path.join(d, "greeting.txt"), "w") as f:
            f.write(value["greeting"])
        cmd = os.path.join(d, "bin", "hello-rtenv")
        with open(cmd, "w") as f:
            f.write("#!/bin/sh\\ncat \\"$(dirname \\"$0\\")/../greeting.txt\\"\\n")
        os.chmod(cmd, 0o755)
        print(json.dumps({{"size_bytes": len(value["greeting"]) + 64}}))
    elif verb == "context":
        d = request["dir"]
        print(json.dumps({{"env": {{"HELLO_GREETING": value["greeting"], "HELLO_DIR": d}},
                          "prepend": {{"PATH": [os.path.join(d, "bin")]}}}}))
    elif verb == "delete":
        print("{{}}")
    else:
        sys.stderr.write("unknown verb %s\\n" % verb)
        sys.exit(1)
''')


@ray.remote(num_cpus=0.5)
def greet():
    import os
    import shutil
    import subprocess

    import ray

    hello = shutil.which("hello-rtenv")
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "greeting": os.environ.get("HELLO_GREETING"),
        "dir": os.environ.get("HELLO_DIR"),
        "job_a": os.environ.get("JOB_A"),
        "hello": subprocess.run([hello], capture_output=True, text=True).stdout if hello else None,
    }


@pytest.fixture(scope="module")
def plugin_cluster(rtenv_bin):
    root = Path(tempfile.mkdtemp(prefix="rtplug-", dir="/tmp"))  # short: Ray's socket paths
    plugin = root / "hello-plugin"
    plugin.write_text(PLUGIN.format(python=PY))
    plugin.chmod(0o755)
    plugins = json.dumps([{"field": "hello", "exec": str(plugin), "priority": 10}])

    rc = RayCluster(root, **for_nodes(rtenv_bin), nodes={"head": 2, "w1": 2},
                    extra_env={"RTENV_PLUGINS": plugins})
    with driver_connected(rc, root, rtenv.ray.runtime_env(env_vars={"JOB_A": "a"})):
        yield rc


def calls(rc: RayCluster, node: str) -> list[str]:
    log = rc.homes[node] / "hello-calls.log"
    return log.read_text().split() if log.exists() else []


def test_a_plugin_fields_context_reaches_the_task_on_every_node(plugin_cluster):
    rc = plugin_cluster
    env = rtenv.ray.runtime_env(hello={"greeting": "hi"})
    assert env["rtenv"]["hello"] == {"greeting": "hi"}  # passed through unchanged
    task_env = rtenv.ray.runtime_env(base=env, env_vars={"JOB_A": "task"})
    for node in rc.nodes:
        for runtime_env in (env, task_env):
            r = ray.get(greet.options(runtime_env=runtime_env,
                                      resources={node_resource(node): 1}).remote(), timeout=180)
            assert r["node_id"] == rc.node_id(node)
            assert r["greeting"] == "hi", r
            assert r["hello"] == "hi", r  # its bin/ is on PATH
            assert r["dir"] and r["dir"].startswith(str(rc.homes[node])), r
        # One value, one directory: created once per node however many envs use it.
        assert calls(rc, node).count("create") == 1, calls(rc, node)
    assert ray.get(greet.options(runtime_env=task_env).remote(), timeout=180)["job_a"] == "task"


def test_an_invalid_plugin_value_fails_on_the_driver_naming_the_field(plugin_cluster):
    with pytest.raises(rtenv.InvalidRuntimeEnv) as e:
        rtenv.ray.runtime_env(hello={"greet": "typo"})
    assert str(e.value).startswith("runtime_env.hello: "), str(e.value)
    assert "expected {\"greeting\": <string>}" in str(e.value)
