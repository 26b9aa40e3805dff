"""Test setup: import rtenv from this checkout (python/), and where the shared spec data is."""

import os
import sys

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)

REPO_DIR = os.path.dirname(PYTHON_DIR)
SPEC_DATA_DIR = os.path.join(REPO_DIR, "tests", "data", "spec")
