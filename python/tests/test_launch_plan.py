"""rtenv.launch_plan: the applier's rules (docs in the module), and the Ray adaptation."""

import shlex
import subprocess

import pytest

from rtenv import launch_plan as lp


def op(kind, name, **kw):
    return {"op": kind, "name": name, **kw}


def env_of(ops, environ, **plan):
    return lp.apply({"env": ops, **plan}, environ).env


# ---- set / unset / expand ---------------------------------------------------------------------


def test_set_replaces_and_leaves_other_variables():
    environ = {"A": "old", "KEEP": "k"}
    assert env_of([op("set", "A", value="new"), op("set", "B", value="b")], environ) == {
        "A": "new", "B": "b", "KEEP": "k"}
    assert environ == {"A": "old", "KEEP": "k"}  # not modified


def test_expand_uses_the_callers_environment_and_leaves_the_rest_as_is():
    environ = {"HOME": "/h", "X": "x"}
    value = "a ${HOME} b ${UNSET}c $$ $ $X ${X}${X} ${unclosed"
    assert env_of([op("set", "V", value=value, expand=True)], environ)["V"] == (
        "a /h b c $$ $ $X xx ${unclosed")
    # Without "expand" (or false) the value is literal.
    assert env_of([op("set", "V", value="${HOME}")], environ)["V"] == "${HOME}"
    assert env_of([op("set", "V", value="${HOME}", expand=False)], environ)["V"] == "${HOME}"
    # Expansion reads the caller's environment, not what the plan set before.
    ops = [op("set", "HOME", value="/other"), op("set", "V", value="${HOME}", expand=True)]
    assert env_of(ops, environ)["V"] == "/h"


def test_unset_removes_and_a_later_set_wins():
    environ = {"A": "1", "B": "2"}
    result = lp.apply({"env": [op("unset", "A"), op("unset", "NOT_THERE")]}, environ)
    assert result.env == {"B": "2"} and result.unset == ["A"]
    assert env_of([op("unset", "A"), op("set", "A", value="3")], environ)["A"] == "3"
    assert "A" not in env_of([op("set", "A", value="3"), op("unset", "A")], environ)


def test_set_to_empty_stays_set():
    assert env_of([op("set", "E", value="")], {}) == {"E": ""}
    assert env_of([op("set", "E", value="")], {"E": "x"}) == {"E": ""}


# ---- prepend / append -------------------------------------------------------------------------


def test_prepend_and_append_around_the_base_in_plan_order():
    ops = [op("prepend", "PATH", values=["/a", "/b"]), op("append", "PATH", values=["/z"]),
           op("prepend", "PATH", values=["/c"])]
    assert env_of(ops, {"PATH": "/usr/bin:/bin"})["PATH"] == "/a:/b:/c:/usr/bin:/bin:/z"
    # No base: only the plan's parts; an empty base adds no empty entry.
    assert env_of(ops, {})["PATH"] == "/a:/b:/c:/z"
    assert env_of(ops, {"PATH": ""})["PATH"] == "/a:/b:/c:/z"


def test_separator_and_missing_keys_default():
    ops = [{"op": "append", "name": "CP", "values": ["a.jar", "b.jar"], "separator": ";"}]
    assert env_of(ops, {"CP": "base"})["CP"] == "base;a.jar;b.jar"
    # "values" missing: nothing to add; "separator" missing: ":".
    assert env_of([{"op": "prepend", "name": "P"}], {"P": "x"})["P"] == "x"
    assert "P" not in env_of([{"op": "prepend", "name": "P"}], {})
    assert env_of([{"op": "prepend", "name": "P", "values": ["a"]}], {"P": "x"})["P"] == "a:x"


def test_set_then_prepend_builds_on_the_new_base_and_unset_drops_only_the_base():
    ops = [op("prepend", "PYTHONPATH", values=["/w"]), op("set", "PYTHONPATH", value="/s")]
    assert env_of(ops, {"PYTHONPATH": "/node"})["PYTHONPATH"] == "/w:/s"
    ops = [op("prepend", "PYTHONPATH", values=["/w"]), op("unset", "PYTHONPATH")]
    assert env_of(ops, {"PYTHONPATH": "/node"})["PYTHONPATH"] == "/w"


# ---- default ----------------------------------------------------------------------------------


def test_default_applies_only_when_absent_and_unblocked():
    d = op("default", "PYTHONPYCACHEPREFIX", value="/home/pycache",
           unless_set=["PYTHONDONTWRITEBYTECODE"])
    assert env_of([d], {})["PYTHONPYCACHEPREFIX"] == "/home/pycache"
    # Set by the caller: kept.
    assert env_of([d], {"PYTHONPYCACHEPREFIX": "/mine"})["PYTHONPYCACHEPREFIX"] == "/mine"
    # Set (even to "") by the caller: kept.
    assert env_of([d], {"PYTHONPYCACHEPREFIX": ""})["PYTHONPYCACHEPREFIX"] == ""
    # Set by the plan: the plan's value.
    assert env_of([d, op("set", "PYTHONPYCACHEPREFIX", value="/p")], {})[
        "PYTHONPYCACHEPREFIX"] == "/p"
    # Blocked by a variable in the caller's environment or in the result.
    assert "PYTHONPYCACHEPREFIX" not in env_of([d], {"PYTHONDONTWRITEBYTECODE": "1"})
    assert "PYTHONPYCACHEPREFIX" not in env_of(
        [op("set", "PYTHONDONTWRITEBYTECODE", value="1"), d], {})
    # "unless_set" missing: only "absent" counts.
    assert env_of([op("default", "D", value="v")], {})["D"] == "v"
    # Unset by the plan: absent, so the default applies.
    assert env_of([op("unset", "D"), op("default", "D", value="v")], {"D": "x"})["D"] == "v"
    # The first default wins.
    assert env_of([op("default", "D", value="1"), op("default", "D", value="2")], {})["D"] == "1"


# ---- cwd, wrapper, errors ---------------------------------------------------------------------


def test_cwd_and_wrapper():
    result = lp.apply({"env": [], "cwd": "/w d", "wrapper": ["conda", "run", "-n", "x"],
                       "py_executable": "/v/bin/python", "resources": ["rtenv://sha256/x"]}, {})
    assert result.cwd == "/w d" and result.argv_prefix == ["conda", "run", "-n", "x"]
    empty = lp.apply({}, {"A": "1"})
    assert empty == lp.Applied({"A": "1"}, None, [], [])
    assert lp.apply({"cwd": None, "py_executable": None}, {}).cwd is None
    # As the C++ side (LaunchPlan::from_json): lists are lists, not null.
    for plan in ({"env": None}, {"wrapper": None}, {"wrapper": "sh"}, {"cwd": 3}):
        with pytest.raises(ValueError, match="launch plan"):
            lp.apply(plan, {})


def test_malformed_plans_are_refused():
    for plan in ({"env": {"op": "set"}}, {"env": [{"op": "rename", "name": "A"}]},
                 {"env": [{"op": "set", "value": "x"}]}, {"env": [{"op": "set", "name": ""}]},
                 {"env": [{"op": "set", "name": "A"}]}, {"env": [{"op": "set", "name": "A", "value": 5}]},
                 {"env": [{"op": "set", "name": "A", "value": "x", "expand": "false"}]},
                 {"env": [{"op": "prepend", "name": "A", "values": "abc"}]},
                 {"env": [{"op": "prepend", "name": "A", "values": ["a"], "separator": None}]},
                 {"env": [{"op": "default", "name": "A", "value": "x", "unless_set": "FOO"}]}):
        with pytest.raises(ValueError, match="launch plan"):
            lp.apply(plan, {})


def test_a_whole_plan_like_rtenv_env_create_gives():
    plan = {
        "env": [
            op("set", "MODE", value="fast ${USER}", expand=True),
            op("unset", "BAR"),
            op("prepend", "PYTHONPATH", values=["/w", "/m0"], separator=":"),
            op("append", "CLASSPATH", values=["/a.jar"], separator=":"),
            op("set", "VIRTUAL_ENV", value="/venv"),
            op("prepend", "PATH", values=["/venv/bin"]),
            op("default", "PYTHONPYCACHEPREFIX", value="/home/pycache",
               unless_set=["PYTHONDONTWRITEBYTECODE"]),
        ],
        "cwd": "/w", "wrapper": [], "py_executable": "/venv/bin/python",
        "resources": ["rtenv://sha256/" + "0" * 64, "pyenv://abc"],
    }
    environ = {"USER": "u", "BAR": "b", "PATH": "/usr/bin", "PYTHONPATH": "/node"}
    result = lp.apply(plan, environ)
    assert result.env == {
        "USER": "u", "MODE": "fast u", "PYTHONPATH": "/w:/m0:/node", "CLASSPATH": "/a.jar",
        "VIRTUAL_ENV": "/venv", "PATH": "/venv/bin:/usr/bin",
        "PYTHONPYCACHEPREFIX": "/home/pycache"}
    assert result.unset == ["BAR"] and result.cwd == "/w" and result.argv_prefix == []
    assert lp.names(plan) == ["MODE", "BAR", "PYTHONPATH", "CLASSPATH", "VIRTUAL_ENV", "PATH",
                              "PYTHONPYCACHEPREFIX"]


# ---- Ray's RuntimeEnvContext ------------------------------------------------------------------


class FakeContext:
    """The attributes of ray._private.runtime_env.context.RuntimeEnvContext the plugin sets."""

    def __init__(self, env_vars=None):
        self.env_vars = dict(env_vars or {})
        self.py_executable = "/usr/bin/python3"
        self.command_prefix = []
        self.java_jars = []


def test_ray_context_gets_env_vars_cwd_and_interpreter():
    plan = {"env": [op("set", "MODE", value="fast"), op("prepend", "PYTHONPATH", values=["/w"]),
                    op("unset", "BAR"), op("unset", "NEVER_SET")],
            "cwd": "/w dir", "py_executable": "/venv/bin/python"}
    context = FakeContext({"FROM_RAY": "1", "PYTHONPATH": "/ray"})
    lp.to_ray_context(plan, {"BAR": "b", "PYTHONPATH": "/node"}, context)
    # What Ray's own fields put into the context counts as the caller's value.
    assert context.env_vars == {"FROM_RAY": "1", "MODE": "fast", "PYTHONPATH": "/w:/ray"}
    # Every name the plan removes is unset in the worker, which may have it even if this
    # process's environment does not.
    assert context.command_prefix == ["unset", "BAR", "NEVER_SET", "&&", "cd", "'/w dir'", "&&"]
    assert context.py_executable == "/venv/bin/python"


def test_ray_context_gives_java_workers_the_class_path():
    plan = {"env": [op("append", "CLASSPATH", values=["/pkgs/a/greeter.jar", "/pkgs/b/*"]),
                    op("set", "OTHER", value="x")]}
    context = FakeContext()
    context.java_jars = ["/from/ray"]
    lp.to_ray_context(plan, {"CLASSPATH": "/caller.jar"}, context)
    # Ray's Java worker gets `-cp RAY:/from/ray/*:/from/ray:...` from these, not from CLASSPATH.
    assert context.java_jars == ["/from/ray", "/pkgs/a/greeter.jar", "/pkgs/b"]
    assert context.env_vars["CLASSPATH"] == "/caller.jar:/pkgs/a/greeter.jar:/pkgs/b/*"


def test_ray_context_keeps_dollars_literal_and_wraps_the_interpreter(tmp_path):
    plan = {"env": [op("set", "LIT", value="a $HOME ${HOME} 'q'")],
            "wrapper": ["env", "WRAPPED=yes"], "cwd": str(tmp_path)}
    context = FakeContext()
    lp.to_ray_context(plan, {}, context)
    assert "LIT" not in context.env_vars  # Ray would expand it
    assert context.py_executable == "env WRAPPED=yes /usr/bin/python3"
    # Run it the way Ray's exec_worker does: bash -c "PREFIX exec PY ARGS".
    script = "import os; print(os.getcwd(), os.environ['LIT'], os.environ['WRAPPED'], sep='|')"
    cmd = context.command_prefix + ["exec", context.py_executable, "-c", shlex.quote(script)]
    out = subprocess.run(["bash", "-c", " ".join(cmd)], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/h"}).stdout
    assert out.strip() == "%s|a $HOME ${HOME} 'q'|yes" % tmp_path


def test_shared_vectors_agree_with_the_cpp_applier():
    """tests/data/launch_plan/apply.json: the C++ unit test checks the same cases."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tests" / "data" / "launch_plan" / "apply.json"
    cases = json.loads(path.read_text())
    assert len(cases) >= 10
    for case in cases:
        assert lp.apply(case["plan"], case["environ"]).env == case["expect"], case["name"]
