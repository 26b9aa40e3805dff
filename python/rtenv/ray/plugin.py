"""Ray's runtime_env plugin for the `rtenv` field.

Ray loads it in each node's runtime env agent (RAY_RUNTIME_ENV_PLUGINS, set before `ray
start`). For an env `{"rtenv": SPEC}` (SPEC already resolved on the driver by
rtenv.ray.runtime_env: package URIs and pinned packages only):

- get_uris: one URI per env, `rtenv-ray://<sha256 of SPEC's canonical form>` (rtenv's
  canonical JSON, rtenv.RuntimeEnv.canonical), so Ray's own cache answers a second task with
  the same env without calling the plugin at all;
- create: `rtenv env create --job <holder> --json` in a subprocess (the event loop stays free);
  the node's rtenv agent installs what the node lacks (once, however many ask) and holds the env
  for the holder `job:ray-<this Ray agent's pid.start time>-<uri hash>`;
- modify_context: the worker starts inside the env: the launch plan `rtenv env create` printed
  (environment operations, cwd, wrapper, interpreter) is applied to Ray's worker context by
  rtenv.launch_plan.to_ray_context, with this node's Ray environment as the caller's;
- delete_uri (Ray evicts an unused URI when its cache for this plugin is over
  RAY_RUNTIME_ENV_RTENV_CACHE_SIZE_GB): `rtenv env release --job <holder>`; the rtenv agent then
  keeps the files until its own cache limit needs the room.

Holders of a Ray agent that is gone (a node restarted) are released the first time the plugin
creates an env.

Per node state: the plugin uses $RTENV_HOME of the Ray processes; when it is not set, a
directory `rtenv` inside the node's runtime resources directory (`--runtime-env-dir` of the agent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from typing import Any, Dict, List, Optional

from ray._private.runtime_env.context import RuntimeEnvContext
from ray._private.runtime_env.plugin import RuntimeEnvPlugin

from .. import _cli, launch_plan
from ..runtime_env import TASK
from .helper import FIELD, as_runtime_env

__all__ = ["RtenvPlugin"]

default_logger = logging.getLogger(__name__)

URI_SCHEME = "rtenv-ray://"
HOLDER_PREFIX = "ray-"

# Ray's own fields that prepare the same thing as an rtenv field: one tool per env.
_CONFLICTS = ("pip", "uv", "conda", "py_executable", "working_dir", "py_modules")
_LOCAL_PATH_FIELDS = ("working_dir", "py_modules")


def _canonical(spec: Any) -> str:
    """rtenv's canonical form of a (resolved) spec; plugin fields carried as given. An invalid
    spec gets a plain sorted JSON form: `create` then fails with rtenv's message (Ray turns an
    exception in get_uris into an HTTP 500 that says nothing)."""
    try:
        return as_runtime_env(spec, level=TASK).canonical()
    except (ValueError, TypeError):
        return json.dumps(spec, sort_keys=True, separators=(",", ":"), default=repr)


def _is_uri(value: Any) -> bool:
    return isinstance(value, str) and "://" in value


def _start_time(pid: int) -> Optional[str]:
    """The start time of `pid` (field 22 of /proc/<pid>/stat), None if there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[19]


def _arg_value(argv: List[str], flag: str) -> Optional[str]:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _plan_of(result: dict) -> dict:
    """The launch plan of `rtenv env create --json`'s result."""
    plan = result.get("plan")
    if not isinstance(plan, dict):
        raise RuntimeError("rtenv: `rtenv env create --json` printed no launch plan; the rtenv "
                           "binary and the Python package are from different versions")
    return plan


def _spec_of(runtime_env: Any) -> Any:
    try:
        return runtime_env.get(FIELD)
    except AttributeError:
        return None


class RtenvPlugin(RuntimeEnvPlugin):
    """The `rtenv` runtime_env field: envs prepared by the node's rtenv agent."""

    name = FIELD
    priority = 10

    def __init__(self) -> None:
        self._env = dict(os.environ)
        if not self._env.get("RTENV_HOME"):
            # Ray's agent gets the node's runtime resources directory; a node without its own
            # RTENV_HOME keeps rtenv's state there (one per node, as Ray's own fields do).
            runtime_env_dir = _arg_value(sys.argv, "--runtime-env-dir")
            if runtime_env_dir:
                self._env["RTENV_HOME"] = os.path.join(runtime_env_dir, "rtenv")
        pid = os.getpid()
        self._holder_tag = f"{HOLDER_PREFIX}{pid}.{_start_time(pid) or 0}-"
        self._plans: Dict[str, dict] = {}
        self._stale_checked = False

    # ---- the plugin API -----------------------------------------------------------------

    @staticmethod
    def validate(runtime_env_dict: dict) -> None:
        """Raises ValueError, naming the field, for what cannot be an rtenv env on a node."""
        spec = runtime_env_dict.get(FIELD)
        if spec is None:
            return
        if not isinstance(spec, dict):
            raise ValueError(f"runtime_env.{FIELD}: expected a dict (an rtenv runtime_env, as "
                             f"rtenv.ray.runtime_env() returns), got {type(spec).__name__}")
        both = [k for k in _CONFLICTS if runtime_env_dict.get(k)]
        if both:
            raise ValueError(
                f"runtime_env has Ray's own {', '.join(both)} beside {FIELD!r}: give these "
                f"fields to rtenv (rtenv.ray.runtime_env({both[0]}=...)) so one tool prepares "
                "the env")
        for field in ("image_uri", "container"):
            if spec.get(field):
                raise ValueError(
                    f"runtime_env.{FIELD}.{field}: starting Ray workers inside a container image "
                    "is not supported by rtenv's Ray plugin yet; use `rtenv run` with the image, "
                    "or Ray's own image_uri")
        for field in _LOCAL_PATH_FIELDS:
            value = spec.get(field)
            values = value if isinstance(value, list) else [value] if value else []
            for v in values:
                if isinstance(v, str) and not _is_uri(v):
                    raise ValueError(
                        f"runtime_env.{FIELD}.{field}: {v!r} is a local path, which a node "
                        "cannot read; build the env with rtenv.ray.runtime_env() on the "
                        "driver, which packs it into the store")

    def get_uris(self, runtime_env: Any) -> List[str]:
        spec = _spec_of(runtime_env)
        if not spec:
            return []
        return [URI_SCHEME + hashlib.sha256(_canonical(spec).encode()).hexdigest()]

    async def create(self, uri: Optional[str], runtime_env: Any, context: RuntimeEnvContext,
                     logger: logging.Logger = default_logger) -> float:
        spec = _spec_of(runtime_env)
        if not spec:
            return 0
        if uri is None:
            uri = self.get_uris(runtime_env)[0]
        if not self._stale_checked:
            self._stale_checked = True
            await self._release_stale_holders(logger)
        job = self._job_of(uri)
        try:
            result = await _cli.create_async(spec, job, env=self._env)
        except _cli.RtenvError as e:
            # rtenv's own sentence: which step, on what, and why.
            raise RuntimeError(f"rtenv: {e.message}") from None
        except _cli.BinaryNotFound as e:
            raise RuntimeError(f"rtenv: {e}") from None
        self._plans[uri] = _plan_of(result)
        logger.info("rtenv env %s %s (%s)", result["env_id"][:12],
                    "installed" if result["installed"] else "already on this node",
                    result["holder"])
        return await self._size_of(result.get("resources") or [], logger)

    def modify_context(self, uris: List[str], runtime_env: Any, context: RuntimeEnvContext,
                       logger: logging.Logger = default_logger) -> None:
        spec = _spec_of(runtime_env)
        if not spec or not uris:
            return
        plan = self._plans.get(uris[0])
        if plan is None:
            # Created by an earlier instance of this agent (Ray cached the URI, this plugin
            # did not); ask the rtenv agent again, which answers from what is on the node.
            plan = _plan_of(_cli.create(spec, self._job_of(uris[0]), env=self._env))
            self._plans[uris[0]] = plan
        launch_plan.to_ray_context(plan, self._env, context)

    def delete_uri(self, uri: str, logger: logging.Logger = default_logger) -> float:
        self._plans.pop(uri, None)
        try:
            _cli.release(self._job_of(uri), env=self._env)
        except (_cli.RtenvError, _cli.BinaryNotFound) as e:
            logger.warning("rtenv: releasing %s failed: %s", uri, e)
        # The files stay until the rtenv agent's cache limit needs the room.
        return 0

    # ---- helpers ------------------------------------------------------------------------

    def _job_of(self, uri: str) -> str:
        return self._holder_tag + uri[len(URI_SCHEME):][:24]

    async def _size_of(self, resources: List[str], logger: logging.Logger) -> float:
        try:
            info = json.loads((await _cli.run_async(["env", "list", "--json"], env=self._env))
                              .strip().splitlines()[-1])
        except (_cli.RtenvError, ValueError, IndexError) as e:
            logger.warning("rtenv: could not read the env's size: %s", e)
            return 0
        wanted = set(resources)
        return float(sum(r.get("size_bytes", 0) for r in info.get("resources", [])
                         if r.get("uri") in wanted))

    async def _release_stale_holders(self, logger: logging.Logger) -> None:
        """Releases the references of Ray agents on this node that are gone."""
        try:
            info = json.loads((await _cli.run_async(["env", "list", "--json"], env=self._env))
                              .strip().splitlines()[-1])
        except (_cli.RtenvError, _cli.BinaryNotFound, ValueError, IndexError) as e:
            logger.warning("rtenv: could not list the node's envs: %s", e)
            return
        stale = set()
        for env in info.get("envs", []):
            for holder in env.get("holders", []):
                m = re.fullmatch(r"job:" + HOLDER_PREFIX + r"(\d+)\.(\d+)-[0-9a-f]+", holder)
                if m and _start_time(int(m.group(1))) != m.group(2):
                    stale.add(holder[len("job:"):])
        for job in sorted(stale):
            try:
                await _cli.release_async(job, env=self._env)
                logger.info("rtenv: released %s (its Ray agent is gone)", job)
            except _cli.RtenvError as e:
                logger.warning("rtenv: releasing %s failed: %s", job, e)
