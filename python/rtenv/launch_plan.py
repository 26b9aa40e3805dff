"""The launch plan: what a process inside an env is started with, applied as `rtenv run` does.

A plan is the "plan" object of `rtenv env create --json`:

    {"env": [OP, ...],            # environment operations, in order (rules below)
     "cwd": "/dir" or None,       # working directory (working_dir's node copy)
     "wrapper": ["argv", ...],    # the command runs as wrapper + command
     "py_executable": "/venv/bin/python" or None,
     "resources": ["rtenv://sha256/...", ...]}

OP is one of
    {"op": "set", "name": N, "value": V, "expand": bool}
    {"op": "unset", "name": N}
    {"op": "prepend", "name": N, "values": [...], "separator": ":"}
    {"op": "append", "name": N, "values": [...], "separator": ":"}
    {"op": "default", "name": N, "value": V, "unless_set": [M, ...]}
("separator", "expand", "unless_set" and "values" may be missing: ":", false, [], []).

Applied to a caller's environment E, per variable V the plan names:
- base(V) = E[V] if set; each `set` replaces it (with `${NAME}` replaced by E[NAME], or by ""
  when NAME is unset, if "expand" is true; `$$` and a lone `$` stay as they are); `unset` makes
  it absent;
- front(V) = every `prepend` value for V in plan order, back(V) = every `append` value in order;
- V = front + [base, if present and non-empty] + back joined with the separator; with nothing
  to add, V = base (a `set` to "" stays set to "", and V is absent only if base is);
- then each `default`: if V is absent after the above and no variable of "unless_set" is
  present in E or in the result, V = value.

`apply(plan, environ)` is that rule as a pure function; `to_ray_context(plan, environ, context)`
puts a plan into Ray's RuntimeEnvContext. Standard library only.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

__all__ = ["Applied", "apply", "expand", "names", "to_ray_context"]

_VAR = re.compile(r"\$\{([^}]*)\}")
_OPS = ("set", "unset", "prepend", "append", "default")


class Applied(NamedTuple):
    env: Dict[str, str]
    """The whole resulting environment: `environ` with the plan applied (unset names absent)."""
    cwd: Optional[str]
    """The directory to start in, None for the caller's."""
    argv_prefix: List[str]
    """What goes before the command: the plan's wrapper."""
    unset: List[str]
    """Names the plan leaves absent that `environ` has (sorted)."""


def expand(value: str, environ: Mapping[str, str]) -> str:
    """`${NAME}` becomes NAME's value in `environ`, or nothing when it is unset; nothing else is
    touched (`$$`, a lone `$`, `$NAME`, an unclosed `${`)."""
    return _VAR.sub(lambda m: environ.get(m.group(1), ""), value)


def _strings(value: Any, what: str) -> List[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("launch plan: %s: expected a list of strings, got %r" % (what, value))
    return value


def _ops(plan: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The plan's operations, checked as the C++ side checks them (LaunchPlan::from_json)."""
    if not isinstance(plan, Mapping):
        raise ValueError("launch plan: expected a JSON object, got %s" % type(plan).__name__)
    ops = plan.get("env", [])
    if not isinstance(ops, list):
        raise ValueError("launch plan: \"env\" must be a list of operations, got %s"
                         % type(ops).__name__)
    for i, op in enumerate(ops):
        if not isinstance(op, Mapping) or op.get("op") not in _OPS:
            raise ValueError("launch plan: env[%d] is not an operation (%s): %r"
                             % (i, ", ".join(_OPS), op))
        if not isinstance(op.get("name"), str) or not op["name"]:
            raise ValueError("launch plan: env[%d] has no variable name: %r" % (i, op))
        kind, where = op["op"], "env[%d] %s" % (i, op["name"])
        if kind in ("set", "default") and not isinstance(op.get("value"), str):
            raise ValueError("launch plan: %s: \"value\" must be a string" % where)
        if kind in ("prepend", "append"):
            _strings(op.get("values", []), where + " values")
            if not isinstance(op.get("separator", ":"), str):
                raise ValueError("launch plan: %s: \"separator\" must be a string" % where)
        if not isinstance(op.get("expand", False), bool):
            raise ValueError("launch plan: %s: \"expand\" must be a bool" % where)
        _strings(op.get("unless_set", []), where + " unless_set")
    for key in ("cwd", "py_executable"):
        if plan.get(key) is not None and not isinstance(plan[key], str):
            raise ValueError("launch plan: %s: expected a string or null" % key)
    _strings(plan.get("wrapper", []), "wrapper")
    return ops


def names(plan: Mapping[str, Any]) -> List[str]:
    """The variables the plan's operations name, in first-mention order."""
    seen: Dict[str, None] = {}
    for op in _ops(plan):
        seen.setdefault(op["name"], None)
    return list(seen)


def apply(plan: Mapping[str, Any], environ: Mapping[str, str]) -> Applied:
    """Applies `plan` to the caller's environment `environ` (not modified)."""
    ops = _ops(plan)
    base: Dict[str, Optional[str]] = {}
    front: Dict[str, List[str]] = {}
    back: Dict[str, List[str]] = {}
    separator: Dict[str, str] = {}
    for op in ops:
        name, kind = op["name"], op["op"]
        if kind == "set":
            value = op["value"]
            base[name] = expand(value, environ) if op.get("expand", False) else value
        elif kind == "unset":
            base[name] = None
        elif kind in ("prepend", "append"):
            (front if kind == "prepend" else back).setdefault(name, []).extend(
                op.get("values", []))
            separator[name] = op.get("separator", ":")
    env = dict(environ)
    for name in names(plan):
        value = base[name] if name in base else environ.get(name)
        parts = front.get(name, []) + ([value] if value else []) + back.get(name, [])
        if parts:
            env[name] = separator.get(name, ":").join(parts)
        elif name in base or value is not None:
            # Absent: unset by the plan, or set to "" with nothing to add.
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
    for op in ops:
        if op["op"] != "default":
            continue
        name = op["name"]
        if name in env:
            continue
        if any(m in environ or m in env for m in op.get("unless_set") or []):
            continue
        env[name] = op["value"]
    cwd = plan.get("cwd") or None
    wrapper = list(plan.get("wrapper", []))
    unset = sorted(n for n in environ if n not in env)
    return Applied(env, cwd, wrapper, unset)


def to_ray_context(plan: Mapping[str, Any], environ: Mapping[str, str], context: Any) -> None:
    """Points Ray's worker context (ray._private.runtime_env.context.RuntimeEnvContext) at a
    plan. `environ` is the environment the worker starts from (the node's Ray environment);
    what `context.env_vars` already sets (Ray's own fields, earlier plugins) counts as part of
    it.

    Ray starts a worker as `bash -c "PREFIX... exec PY_EXECUTABLE ARGS..."` after setting
    context.env_vars with os.path.expandvars applied to each value. So:
    - a result without `$` goes into context.env_vars; one with `$` (which Ray would expand) and
      the names the plan removes go into the prefix as `export N=V &&` / `unset N &&`;
    - the cwd is `cd DIR &&` in the prefix;
    - the wrapper goes before the interpreter in context.py_executable (after `exec`, so the
      worker is the wrapper's child as with `rtenv run`), with the plan's py_executable or else
      Ray's. Everything is shell-quoted;
    - what the plan puts on CLASSPATH also goes into context.java_jars, which Ray's Java workers
      read instead (a `DIR/*` entry as DIR)."""
    caller = dict(environ)
    caller.update(context.env_vars)
    result = apply(plan, caller)
    prefix: List[str] = []
    removed = []
    for name in names(plan):
        if name in result.env:
            value = result.env[name]
            if "$" in value:
                context.env_vars.pop(name, None)
                prefix += ["export", shlex.quote(name + "=" + value), "&&"]
            else:
                context.env_vars[name] = value
        else:
            # Removed by the plan: also from the worker's own environment, which may have it
            # even if this process's does not.
            context.env_vars.pop(name, None)
            removed.append(name)
    if removed:
        prefix = ["unset"] + [shlex.quote(n) for n in removed] + ["&&"] + prefix
    if result.cwd:
        prefix += ["cd", shlex.quote(result.cwd), "&&"]
    # Ray starts Java workers with a `-cp` of its own (its jars, then `DIR/*` and `DIR` for each
    # of context.java_jars), which does not read CLASSPATH: what the plan puts on CLASSPATH
    # (java_jars) goes there too.
    for op in _ops(plan):
        if op["name"] == "CLASSPATH" and op["op"] in ("prepend", "append"):
            for entry in op.get("values", []):
                path = entry[:-2] if entry.endswith("/*") else entry
                if path not in context.java_jars:
                    context.java_jars.append(path)
    py = plan.get("py_executable")
    if py:
        context.py_executable = shlex.quote(py)
    if result.argv_prefix:
        context.py_executable = " ".join(
            [shlex.quote(a) for a in result.argv_prefix] + [context.py_executable])
    context.command_prefix += prefix
