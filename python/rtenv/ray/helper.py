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

import importlib
import json
import os
import types
from typing import Any, Iterable, Mapping, Optional

from .. import _cli
from ..runtime_env import (JOB, RuntimeEnv, check_ray_only_field, is_builtin_field,
                           is_ray_only_field)
from ..runtime_env import merge as rt_merge

__all__ = ["FIELD", "as_runtime_env", "merge", "ray_plugin_fields", "runtime_env",
           "write_schema"]

FIELD = "rtenv"
"""The runtime_env key the plugin handles."""

# The part of rtenv's `config` Ray also understands: it bounds Ray's own wait for the plugin
# (and log_files are Ray's dashboard's).
_RAY_CONFIG_KEYS = ("setup_timeout_seconds", "eager_install", "log_files")

_RAY_PLUGINS_VARIABLE = "RAY_RUNTIME_ENV_PLUGINS"


def ray_plugin_fields(environ: Optional[Mapping[str, str]] = None) -> set:
    """The runtime_env fields the Ray plugins registered in RAY_RUNTIME_ENV_PLUGINS own (each
    class's `name`), rtenv's own plugin (`rtenv`) left out. A class that cannot be imported
    here owns nothing here (Ray reports it where it loads plugins)."""
    text = (os.environ if environ is None else environ).get(_RAY_PLUGINS_VARIABLE, "")
    if not text.strip():
        return set()
    try:
        configs = json.loads(text)
    except ValueError:
        return set()
    names = set()
    for config in configs if isinstance(configs, list) else []:
        path = config.get("class") if isinstance(config, dict) else None
        if not isinstance(path, str) or "." not in path:
            continue
        module_name, _, class_name = path.rpartition(".")
        try:
            name = getattr(getattr(importlib.import_module(module_name), class_name), "name", None)
        except Exception:  # noqa: BLE001 - a plugin that does not import here is Ray's to report
            continue
        if isinstance(name, str) and name and name != FIELD:
            names.add(name)
    return names


def _module_path(entry: Any, index: int) -> Any:
    """A py_modules entry given as an imported module, as ray.init takes it: a package is its
    directory, a single-file module its .py file. Other entries are returned as they are."""
    if not isinstance(entry, types.ModuleType):
        return entry
    where = f"runtime_env.py_modules[{index}]"
    paths = list(getattr(entry, "__path__", None) or [])
    if hasattr(entry, "__path__"):
        if len(paths) != 1:
            raise ValueError(f"{where}: the package {entry.__name__} lies in {len(paths)} "
                             f"directories ({', '.join(paths) or 'none'}); give the one to "
                             "ship as a path")
        return paths[0]
    file = getattr(entry, "__file__", None)
    if not file or not file.endswith(".py"):
        raise ValueError(f"{where}: the module {entry.__name__} is not a package or a .py file "
                         f"({file or 'built in'}); give a path to ship instead")
    return file


def _split_ray_fields(fields: Mapping[str, Any], ray_plugins: Iterable[str]) -> tuple[dict, dict]:
    """(fields for rtenv, fields only Ray acts on): worker_process_setup_hook, nsight,
    rocprof_sys, `_`-prefixed keys, and the fields of Ray plugins registered here. Ray's own
    checks of their types are made here (a callable setup hook is Ray's to export)."""
    mine, ray = {}, {}
    plugins = set(ray_plugins)
    for key, value in fields.items():
        if key in plugins and not is_builtin_field(key):
            ray[key] = value
        elif is_ray_only_field(key):
            if not (key == "worker_process_setup_hook" and callable(value)):
                check_ray_only_field("runtime_env." + key, key, value)
            if value is not None:
                ray[key] = value
        else:
            mine[key] = value
    return mine, ray


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
    where this runs): its value goes to rtenv as given. Fields only Ray acts on
    (`worker_process_setup_hook`, a callable too; `nsight`, `rocprof_sys`, `_`-prefixed keys such
    as `_ray_commit`, and the field of any Ray plugin registered in RAY_RUNTIME_ENV_PLUGINS here)
    go to Ray beside the `rtenv` key, their types checked as Ray checks them. `py_modules` may
    name imported modules, as ray.init takes them: a package ships its directory, a single-file
    module its .py file.

    `base`: an env this function returned before (e.g. the job's), or the runtime_env of the
    running task (`ray.get_runtime_context().runtime_env`); the result is `base` with these
    fields merged in per runtime_env.md §5 (replace per field, env_vars per variable, pip/uv/conda
    one slot).

    Returns {"rtenv": resolved env[, "config": {...}]}. Raises rtenv.InvalidRuntimeEnv (a
    ValueError) for an invalid env, with rtenv's message naming the field, and
    rtenv.SetupFailed if packing or locking fails.
    """
    if py_modules is not None:
        py_modules = [_module_path(m, i) for i, m in enumerate(py_modules)]
    others = {k: v for k, v in fields.items() if not is_builtin_field(k)}
    try:
        own, ray_own = _split_ray_fields(others, ray_plugin_fields() if others else ())
    except ValueError as e:
        raise _cli.InvalidRuntimeEnv(str(e), _cli.EXIT_USAGE, ["rtenv.ray.runtime_env"]) from None
    child: dict[str, Any] = {k: v for k, v in fields.items() if is_builtin_field(k)}
    child.update(own)
    for key, value in (("working_dir", working_dir), ("py_modules", py_modules), ("pip", pip),
                       ("uv", uv), ("env_vars", env_vars), ("excludes", excludes),
                       ("config", config)):
        if value is not None:
            child[key] = value
    base_spec, ray_fields = _split(base)
    ray_fields.update(ray_own)
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
