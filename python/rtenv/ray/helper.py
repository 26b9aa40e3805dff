"""The driver side: turn what the user wrote into the runtime_env Ray is given.

`runtime_env(...)` packs local directories into the store and locks pip/uv to exact pins
(`rtenv env create --no-install`, which installs nothing on the driver's machine), and returns

    {"rtenv": <the resolved env: package URIs and pins only>, "config": {...}}

for `ray.init(runtime_env=...)`, `@ray.remote(runtime_env=...)` or `.options(runtime_env=...)`.
Each node's plugin (rtenv.ray.RtenvPlugin) then asks its own rtenv agent to install exactly that.

Job and task envs (runtime_env.md §5): Ray replaces a whole top-level key, so a task that sets
`{"rtenv": ...}` would drop every field of the job's. `runtime_env(base=job_env, ...)` does the
merge here instead, by rtenv's own rule (rtenv.runtime_env.merge, the same as the C++ merge):
the new fields replace the base's, `env_vars` merge per variable (the new value wins),
pip/uv/conda are one slot, and Ray gets the merged env whole. No Ray import: this runs wherever the driver
runs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

from .. import _cli
from ..runtime_env import JOB, RuntimeEnv, is_builtin_field
from ..runtime_env import merge as rt_merge

__all__ = ["FIELD", "as_runtime_env", "merge", "runtime_env", "write_schema"]

FIELD = "rtenv"
"""The runtime_env key the plugin handles."""

# The part of rtenv's `config` Ray also understands: it bounds Ray's own wait for the plugin.
_RAY_CONFIG_KEYS = ("setup_timeout_seconds", "eager_install")


def _partition(spec: Mapping[str, Any]) -> tuple[dict, dict]:
    """(built-in fields, plugin fields) of an rtenv spec. A plugin field (one rtenv does not
    build in, served by an exec plugin registered on the nodes) is kept as given: its value is
    the plugin's to validate, through the rtenv binary."""
    builtin, plugins = {}, {}
    for key, value in spec.items():
        (builtin if is_builtin_field(key) else plugins)[key] = value
    return builtin, plugins


def as_runtime_env(spec: Mapping[str, Any], *, level: str = JOB,
                   base_dir: Optional[str] = None) -> RuntimeEnv:
    """`spec` as a RuntimeEnv: the built-in fields validated and normalized (ValueError naming
    the field), plugin fields carried as given (empty values dropped, as for every field)."""
    builtin, plugins = _partition(spec)
    env = RuntimeEnv.from_dict(builtin, level=level, base_dir=base_dir)
    for name in sorted(plugins):
        env = env.with_field(name, plugins[name])
    return env


def merge(base: Mapping[str, Any], child: Mapping[str, Any], *,
          cwd: Optional[str] = None) -> dict:
    """The env a task sees when its own env `child` is given inside a parent env `base` (both
    rtenv specs, i.e. the value of the "rtenv" key), by rtenv's rule (runtime_env.md §5, the
    C++ merge): an empty child inherits the base whole; otherwise the child's top-level fields
    replace the base's, `env_vars` merge per variable with the child winning, pip/uv/conda are
    one slot (a child's `uv` replaces a base's `pip`), and so are image_uri/container.
    Relative local paths resolve against `cwd` (default: the current directory). Returns the
    normalized spec; raises ValueError (naming the field) for an invalid built-in field."""
    return rt_merge(as_runtime_env(base, base_dir=cwd),
                    as_runtime_env(child, base_dir=cwd)).to_dict()


def _split(base: Optional[Mapping[str, Any]]) -> tuple[dict, dict]:
    """(rtenv spec, other top-level Ray keys) of a base env: a dict this helper returned (or
    Ray's RuntimeEnv of the current task, `ray.get_runtime_context().runtime_env`), or a bare
    rtenv spec."""
    if not base:
        return {}, {}
    if FIELD in base:
        spec = base[FIELD]
        if not isinstance(spec, Mapping):
            raise ValueError(f"base[{FIELD!r}] must be a dict (an rtenv runtime_env), "
                             f"got {type(spec).__name__}")
        return dict(spec), {k: v for k, v in base.items() if k != FIELD}
    return dict(base), {}


def runtime_env(
    working_dir: Optional[str] = None,
    *,
    py_modules: Optional[list] = None,
    pip: Any = None,
    uv: Any = None,
    env_vars: Optional[Mapping[str, str]] = None,
    excludes: Optional[list] = None,
    config: Optional[Mapping[str, Any]] = None,
    base: Optional[Mapping[str, Any]] = None,
    cwd: Optional[str] = None,
    **fields: Any,
) -> dict:
    """Builds the runtime_env to give Ray for an rtenv env.

    The fields mean what they mean in rtenv's runtime_env (docs/runtime_env.md): `working_dir`
    and `py_modules` may be local paths (relative to `cwd`, default the current directory),
    which are packed into the store now; `pip`/`uv` are resolved to exact pins now, so every
    node installs the same versions. Any other rtenv field can be given as a keyword, and so can
    a plugin field (`hello={...}` for an exec plugin registered for `hello` on the nodes and
    where this runs): its value goes to rtenv as given.

    `base`: an env this function returned before (e.g. the job's), or the runtime_env of the
    running task (`ray.get_runtime_context().runtime_env`); the result is `base` with these
    fields merged in per runtime_env.md §5 (replace per field, env_vars per variable, pip/uv/conda
    one slot).

    Returns {"rtenv": resolved env[, "config": {...}]}. Raises rtenv.InvalidRuntimeEnv (a
    ValueError) for an invalid env, with rtenv's message naming the field, and
    rtenv.SetupFailed if packing or locking fails.
    """
    child: dict[str, Any] = dict(fields)
    for key, value in (("working_dir", working_dir), ("py_modules", py_modules), ("pip", pip),
                       ("uv", uv), ("env_vars", env_vars), ("excludes", excludes),
                       ("config", config)):
        if value is not None:
            child[key] = value
    base_spec, ray_fields = _split(base)
    for native in ("pip", "uv", "conda", "working_dir", "py_modules", "py_executable"):
        if native in ray_fields:
            raise ValueError(
                f"base has Ray's own {native!r} beside {FIELD!r}: give every field to rtenv "
                f"(rtenv.ray.runtime_env({native}=...)) so one tool prepares the env")
    try:
        spec = merge(base_spec, child, cwd=cwd) if child else base_spec
    except ValueError as e:  # rtenv's validation message, naming the field
        raise _cli.InvalidRuntimeEnv(str(e), _cli.EXIT_USAGE, ["rtenv.ray.runtime_env"]) from None
    if not spec:
        return dict(ray_fields)
    if child or not base_spec:
        spec = _cli.resolve(spec, cwd=cwd or os.getcwd())["runtime_env"]
    out = dict(ray_fields)
    out[FIELD] = spec
    ray_config = {k: spec["config"][k] for k in _RAY_CONFIG_KEYS
                  if isinstance(spec.get("config"), Mapping) and k in spec["config"]}
    if ray_config:
        out["config"] = {**(out.get("config") or {}), **ray_config}
    return out


def write_schema(path: str, *, env: Optional[Mapping[str, str]] = None) -> str:
    """Writes the JSON Schema of the `rtenv` field (`rtenv schema`, titled "rtenv") to `path`, a
    .json file or an existing directory (then `path`/rtenv.json), and returns the file's path.

    Name the file (or its directory) in RAY_RUNTIME_ENV_PLUGIN_SCHEMAS wherever Ray builds a
    runtime_env (the driver, and each node before `ray start`): Ray then checks the value of
    the `rtenv` key against it when the env is built (jsonschema.ValidationError naming the
    path), before anything is sent to a node. Plugin fields pass the schema as they are."""
    schema = _cli.schema(env=env)
    schema["title"] = FIELD  # Ray applies a schema to the runtime_env key named by its title
    if os.path.isdir(path):
        path = os.path.join(path, FIELD + ".json")
    elif not path.endswith(".json"):
        raise ValueError(f"write_schema: {path} is neither a directory nor a .json file (Ray "
                         "reads only *.json schema files)")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(schema, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path
