"""Constants the Ray tests share (imported by name: `conftest` is ambiguous when pytest runs
several test directories at once)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PY = sys.executable

JOB_ENV_VARS = {"JOB_A": "job_a", "JOB_B": "job_b", "JOB_Z": "job_z"}
BROKEN_MESSAGE = "rtenv-ray-test: brokenbuild refuses to build on purpose"
