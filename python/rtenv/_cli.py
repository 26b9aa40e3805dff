"""The rtenv binary, called from Python.

Every call is one `rtenv ...` process: the binary owns the rules (validation, packing, locking,
the node agent), this module only finds it (find_binary: $RTENV_BIN, else the binaries the
package's wheel installed, else `rtenv` on PATH), runs it and turns its exit status into
exceptions that carry rtenv's own message (the one line it printed on stderr).

Exit statuses (README): 0 ok, 2 invalid runtime_env or usage, 3 setup failed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
from typing import Any, Mapping, Optional, Sequence

__all__ = [
    "BinaryNotFound",
    "InvalidRuntimeEnv",
    "RtenvError",
    "SetupFailed",
    "create",
    "create_async",
    "env_list",
    "find_binary",
    "own_binary",
    "release",
    "release_async",
    "resolve",
    "run",
    "run_async",
    "schema",
]

EXIT_USAGE = 2
EXIT_SETUP = 3


class RtenvError(RuntimeError):
    """An rtenv command failed. `message` is what rtenv said (its stderr, without the
    `rtenv: ` prefix); `returncode` its exit status; `args` the command line."""

    def __init__(self, message: str, returncode: int, command: Sequence[str]):
        super().__init__(message)
        self.message = message
        self.returncode = returncode
        self.command = list(command)


class InvalidRuntimeEnv(RtenvError, ValueError):
    """The runtime_env is invalid (exit 2); the message names the field."""


class SetupFailed(RtenvError):
    """Setting the env up failed (exit 3); the message says which step, on what, and why."""


class BinaryNotFound(FileNotFoundError):
    """No rtenv binary: $RTENV_BIN is not set, this package was installed without its binaries,
    and `rtenv` is not on PATH (or $RTENV_BIN names no executable)."""


_BINARY = "rtenv"


@functools.lru_cache(maxsize=None)
def own_binary() -> Optional[str]:
    """The `rtenv` binary installed with this package, None if it has none.

    A wheel of the package (`pip install ./python`) carries rtenv, rtenv-full and rtenv-agent as
    scripts: pip puts them in the scripts directory of the environment it installs into (a
    venv's bin/, ~/.local/bin, <target>/bin). The package's record (RECORD in its .dist-info,
    beside this package's directory) says where they went, whatever the install scheme. A
    package imported from a source tree (the repository's python/) has no record: None."""
    import importlib.metadata  # here: `import rtenv` stays light

    site_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for dist in importlib.metadata.distributions(path=[site_dir]):
        if (dist.metadata["Name"] or "").lower() != "rtenv":
            continue
        for file in dist.files or ():
            if file.name != _BINARY or file.parent.name != "bin":
                continue
            # `pip install --target DIR` records the scripts relative to the site-packages it
            # installed into before moving everything to DIR: there they are in DIR/bin.
            for path in (str(dist.locate_file(file)), os.path.join(site_dir, "bin", _BINARY)):
                path = os.path.normpath(path)
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    return path
    return None


def find_binary(env: Optional[Mapping[str, str]] = None) -> str:
    """The rtenv binary: $RTENV_BIN if set (an override, which must be an executable file),
    else the binary installed with this package (own_binary()), else `rtenv` on PATH.
    Raises BinaryNotFound saying what was looked at."""
    environ = os.environ if env is None else env
    given = environ.get("RTENV_BIN")
    if given:
        if os.path.isfile(given) and os.access(given, os.X_OK):
            return given
        raise BinaryNotFound(
            f"RTENV_BIN={given} is not an executable file; point it at the rtenv binary "
            "(e.g. build/src/cli/rtenv, with rtenv-full and rtenv-agent beside it), or unset it "
            "to use the rtenv package's own binaries (or `rtenv` on PATH)")
    own = own_binary()
    if own:
        return own
    found = shutil.which(_BINARY, path=environ.get("PATH"))
    if found:
        return found
    raise BinaryNotFound(
        "the rtenv binary was not found: RTENV_BIN is not set, the rtenv package imported from "
        f"{os.path.dirname(os.path.abspath(__file__))} was not installed with its binaries, and "
        "`rtenv` is not on PATH; install the package with `pip install ./python` from the rtenv "
        "repository (it builds and installs the binaries) or set RTENV_BIN to the rtenv "
        "binary's path (on every node that runs the env)")


def _message(stderr: str, returncode: int) -> str:
    # rtenv prints one line "rtenv: <what failed>: <why>", the installer's relevant lines
    # indented below it; warnings ("rtenv: warning: ...") may come first.
    lines = [l.rstrip() for l in stderr.replace("\r", "\n").splitlines() if l.strip()]
    errors = [i for i, l in enumerate(lines) if not l.startswith("rtenv: warning:")]
    text = "\n".join(lines[errors[0]:] if errors else lines).strip()
    if text.startswith("rtenv: "):
        text = text[len("rtenv: "):]
    return text or f"rtenv exited with status {returncode} and printed nothing"


def _raise_for(returncode: int, stderr: str, command: Sequence[str]) -> None:
    if returncode == 0:
        return
    msg = _message(stderr, returncode)
    if returncode == EXIT_USAGE:
        raise InvalidRuntimeEnv(msg, returncode, command)
    if returncode == EXIT_SETUP:
        raise SetupFailed(msg, returncode, command)
    if returncode < 0:
        msg = f"rtenv was killed by signal {-returncode}: {msg}"
    raise RtenvError(msg, returncode, command)


def run(args: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None, timeout: Optional[float] = None) -> str:
    """Runs `rtenv ARGS...`; returns its stdout; raises RtenvError (or a subclass) on failure."""
    command = [find_binary(env), *args]
    p = subprocess.run(command, env=None if env is None else dict(env), cwd=cwd,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    _raise_for(p.returncode, p.stderr, command)
    return p.stdout


async def run_async(args: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
                    cwd: Optional[str] = None, timeout: Optional[float] = None) -> str:
    """run() without blocking the event loop (an asyncio subprocess)."""
    command = [find_binary(env), *args]
    proc = await asyncio.create_subprocess_exec(
        *command, env=None if env is None else dict(env), cwd=cwd,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        # The agent keeps installing for other callers; only this client goes.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    _raise_for(proc.returncode, err.decode(errors="replace"), command)
    return out.decode()


def _spec_json(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def _one_json(text: str, what: str) -> dict:
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as e:
        raise RtenvError(f"{what} printed no JSON object: {text[:200]!r}", 0, [what]) from e


def resolve(spec: Mapping[str, Any], *, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None) -> dict:
    """Packs the local paths of `spec` into the store and locks its pip/uv, without installing
    anything (`rtenv env create --no-install --json`). Returns {"env_id", "runtime_env"}: the
    URI-only env every node can install from the store."""
    out = run(["env", "create", "--no-install", "--json", "-e", _spec_json(spec)], env=env,
              cwd=cwd)
    return _one_json(out, "rtenv env create --no-install")


def _create_args(spec: Mapping[str, Any], job: str) -> list[str]:
    return ["env", "create", "--json", "--job", job, "-e", _spec_json(spec)]


def create(spec: Mapping[str, Any], job: str, *, env: Optional[Mapping[str, str]] = None) -> dict:
    """Makes the env ready on this node through its agent and holds it for `job`
    (`rtenv env create --job JOB --json`). Returns {"env_id", "installed", "runtime_env",
    "resources", "holder", "plan"} (the launch plan: docs/plugins.md)."""
    return _one_json(run(_create_args(spec, job), env=env), "rtenv env create")


async def create_async(spec: Mapping[str, Any], job: str, *,
                       env: Optional[Mapping[str, str]] = None,
                       timeout: Optional[float] = None) -> dict:
    """create() without blocking the event loop."""
    out = await run_async(_create_args(spec, job), env=env, timeout=timeout)
    return _one_json(out, "rtenv env create")


def release(job: str, *, env: Optional[Mapping[str, str]] = None) -> None:
    """Gives back every reference `job` holds (`rtenv env release --job JOB`)."""
    run(["env", "release", "--job", job], env=env)


async def release_async(job: str, *, env: Optional[Mapping[str, str]] = None) -> None:
    await run_async(["env", "release", "--job", job], env=env)


def env_list(*, env: Optional[Mapping[str, str]] = None) -> dict:
    """The node's envs and resources (`rtenv env list --json`)."""
    return _one_json(run(["env", "list", "--json"], env=env), "rtenv env list")


def schema(*, env: Optional[Mapping[str, str]] = None) -> dict:
    """The JSON Schema of a runtime_env (`rtenv schema`): every built-in field's shapes, other
    top-level fields allowed as plugin fields."""
    try:
        return json.loads(run(["schema"], env=env))
    except json.JSONDecodeError as e:
        raise RtenvError(f"rtenv schema printed no JSON: {e}", 0, ["schema"]) from e
