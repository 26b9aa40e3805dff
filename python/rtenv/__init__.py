"""rtenv from Python: runtime environments prepared by the node's rtenv agent.

- `rtenv.RuntimeEnv`: a typed runtime_env (from `rtenv.runtime_env`, imported on first use).
- `rtenv.ray`: Ray's runtime_env plugin and the driver-side helper (needs Ray where it is used).
- The binary is `$RTENV_BIN` (an override), else the one installed with this package (its
  wheel's, `pip install ./python`), else `rtenv` on PATH (`rtenv.find_binary()`).

Importing `rtenv` imports neither Ray nor anything outside the standard library.
"""

from __future__ import annotations

from ._cli import (
    BinaryNotFound,
    InvalidRuntimeEnv,
    RtenvError,
    SetupFailed,
    find_binary,
)

__version__ = "0.1.0"

__all__ = [
    "BinaryNotFound",
    "InvalidRuntimeEnv",
    "RtenvError",
    "RuntimeEnv",
    "SetupFailed",
    "find_binary",
]


def __getattr__(name: str):
    # Lazy: `rtenv.runtime_env` is its own module, imported only when asked for.
    if name == "RuntimeEnv":
        try:
            from .runtime_env import RuntimeEnv
        except ImportError as e:
            raise AttributeError(
                f"rtenv.RuntimeEnv is not available: importing rtenv.runtime_env failed ({e})"
            ) from e
        globals()["RuntimeEnv"] = RuntimeEnv
        return RuntimeEnv
    raise AttributeError(f"module 'rtenv' has no attribute {name!r}")
