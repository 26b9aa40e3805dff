"""Fixtures of the differential test: the rtenv binary ($RTENV_BIN, or <repo>/build/src/cli/rtenv),
and the harness's modules importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def rtenv_bin() -> str:
    path = Path(os.environ.get("RTENV_BIN", str(REPO / "build" / "src" / "cli" / "rtenv")))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"rtenv binary not found or not executable at {path}; build it "
                    "(BUILD_DIR=build bash scripts/build.sh) or set RTENV_BIN", pytrace=False)
    return str(path)
