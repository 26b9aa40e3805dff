"""rtenv for Ray: a runtime_env plugin and a driver-side helper.

On every node (before `ray start`), register the plugin:

    RAY_RUNTIME_ENV_PLUGINS='[{"class": "rtenv.ray.RtenvPlugin"}]'

On the driver, build envs with the helper and pass them to Ray:

    job_env = rtenv.ray.runtime_env(working_dir=".", pip=["requests==2.31.0"])
    ray.init(runtime_env=job_env)
    task_env = rtenv.ray.runtime_env(base=job_env, env_vars={"MODE": "eval"})

`runtime_env` and `merge` need no Ray; `RtenvPlugin` imports Ray (it subclasses Ray's
RuntimeEnvPlugin) when first used.
"""

from __future__ import annotations

from .helper import FIELD, merge, runtime_env, write_schema

__all__ = ["FIELD", "RtenvPlugin", "merge", "runtime_env", "write_schema"]


def __getattr__(name: str):
    if name == "RtenvPlugin":
        from .plugin import RtenvPlugin

        globals()["RtenvPlugin"] = RtenvPlugin
        return RtenvPlugin
    raise AttributeError(f"module 'rtenv.ray' has no attribute {name!r}")
