"""Ray's verdict on runtime_env dicts: each one through the validation Ray itself runs before it
installs anything, without a cluster.

Job level (`ray.init(runtime_env=d)`, ray/_private/worker.py `connect`): the local `py_modules` and
`working_dir` are checked and turned into package URIs (`upload_py_modules_if_needed`,
`upload_working_dir_if_needed`, with an upload function that uploads nothing, as Ray's job
submission client passes its own), the setup hook is exported into `env_vars`, `excludes` is
dropped, then `JobConfig.set_runtime_env(validate=True)` builds `RuntimeEnv(**env)` and refuses
local paths left over, and `get_runtime_env_info` checks `config` and serializes the env.

Task level (`f.options(runtime_env=d)`, ray/remote_function.py and ray/actor.py):
`parse_runtime_env_for_task_or_actor` (`RuntimeEnv(**d)`, then no local paths), then
`get_runtime_env_info`.

Run as a program: reads {"root": dir, "cases": [{"id", "level", "env"}]} on stdin, works in
`root` (relative paths resolve there, as they do for a driver started there), prints
{id: {"accepted": bool, "message": str}} on stdout. Run apart from the tests so Ray's imports,
logging and process-wide state stay out of them.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys


def _no_upload(*args, **kwargs) -> None:
    """Stands in for the upload to the cluster: the checks before it have run."""


def job_level(env: dict) -> None:
    from ray._private.runtime_env.py_modules import upload_py_modules_if_needed
    from ray._private.runtime_env.setup_hook import upload_worker_process_setup_hook_if_needed
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed
    from ray._private.utils import get_runtime_env_info
    from ray.job_config import JobConfig

    if not env:  # ray.init skips an empty runtime_env
        return
    env = copy.deepcopy(env)
    env = upload_py_modules_if_needed(env, include_gitignore=True, upload_fn=_no_upload)
    env = upload_working_dir_if_needed(env, include_gitignore=True, upload_fn=_no_upload)
    env = upload_worker_process_setup_hook_if_needed(env, None)
    env.pop("excludes", None)
    job_config = JobConfig()
    job_config.set_runtime_env(env, validate=True)
    get_runtime_env_info(job_config.runtime_env, is_job_runtime_env=True, serialize=True)


def task_level(env: dict) -> None:
    from ray._private.utils import get_runtime_env_info, parse_runtime_env_for_task_or_actor

    parsed = parse_runtime_env_for_task_or_actor(copy.deepcopy(env))
    if parsed:
        get_runtime_env_info(parsed, is_job_runtime_env=False, serialize=True)


def verdict(env: dict, level: str) -> dict:
    try:
        (job_level if level == "job" else task_level)(env)
    except Exception as e:  # every refusal Ray raises is an exception of some type
        return {"accepted": False, "message": f"{type(e).__name__}: {e}"}
    return {"accepted": True, "message": ""}


def main() -> int:
    request = json.load(sys.stdin)
    os.environ.pop("RAY_RUNTIME_ENV_PLUGIN_SCHEMAS", None)
    os.environ.pop("RAY_RUNTIME_ENV_LOCAL_DEV_MODE", None)
    os.environ.pop("RAY_RUNTIME_ENV_HOOK", None)
    logging.disable(logging.CRITICAL)  # Ray's warnings (ignored config keys...) are not verdicts
    os.chdir(request["root"])
    import ray  # noqa: F401  (fails here, clearly, when Ray is missing)

    out = {c["id"]: verdict(c["env"], c["level"]) for c in request["cases"]}
    json.dump({"ray_version": ray.__version__, "verdicts": out}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
