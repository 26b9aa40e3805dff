"""Constants the Ray tests share (imported by name: `conftest` is ambiguous when pytest runs
several test directories at once), and which rtenv package and binaries they test."""

from __future__ import annotations

import importlib.machinery
import os
import sys
from pathlib import Path
from typing import Optional

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PYTHON_PKG = REPO / "python"
PY = sys.executable

JOB_ENV_VARS = {"JOB_A": "job_a", "JOB_B": "job_b", "JOB_Z": "job_z"}
BROKEN_MESSAGE = "rtenv-ray-test: brokenbuild refuses to build on purpose"


def _installed_in_venv() -> bool:
    """True when the interpreter running the tests is a venv with the rtenv package installed
    in it (scripts/test.sh: the wheel's venv); the repository's python/ does not count."""
    if sys.prefix == sys.base_prefix:
        return False
    elsewhere = [p for p in sys.path if p and Path(p).resolve() != PYTHON_PKG]
    spec = importlib.machinery.PathFinder.find_spec("rtenv", elsewhere)
    origin = spec.origin if spec else None
    return bool(origin) and Path(origin).resolve().is_relative_to(Path(sys.prefix).resolve())


# Run by the python of a venv that the rtenv wheel is installed in, the tests use that package,
# its code and its own binaries, as a cluster set up with `pip install` does (no RTENV_BIN unless
# the caller sets one). Otherwise the repository's python/ (conftest puts it on sys.path, the
# cluster on PYTHONPATH) and $RTENV_BIN, else build/src/cli/rtenv.
INSTALLED = _installed_in_venv()

# Read once, at import: a running RayCluster takes RTENV_* out of this process's environment.
_RTENV_BIN = os.environ.get("RTENV_BIN") or None
_RTENV_WHEEL = os.environ.get("RTENV_WHEEL") or None


def for_nodes(rtenv_bin: str) -> dict:
    """RayCluster's arguments for the package under test: installed, the nodes import it and
    find its binaries themselves (unless RTENV_BIN overrides them); else python/ and rtenv_bin."""
    if INSTALLED:
        return {"rtenv_bin": _RTENV_BIN, "package_dir": None}
    return {"rtenv_bin": rtenv_bin, "package_dir": str(PYTHON_PKG)}


def rtenv_wheel() -> Path:
    """The rtenv wheel under test: $RTENV_WHEEL (scripts/test.sh builds it once with
    scripts/build_wheel.sh). Without it the test fails in CI and is skipped elsewhere."""
    given: Optional[str] = _RTENV_WHEEL
    if given and Path(given).is_file():
        return Path(given)
    why = (f"RTENV_WHEEL={given} is not a file" if given else "RTENV_WHEEL is not set") + \
        ": build the wheel with `bash scripts/build_wheel.sh` and set RTENV_WHEEL to the path " \
        "it prints last"
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)
