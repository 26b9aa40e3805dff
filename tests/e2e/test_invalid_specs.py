"""Every case of tests/data/spec/invalid.json is rejected by `rtenv run` with exit 2."""

import json

import pytest

from conftest import SPEC_DATA, assert_clean_error

CORPUS = SPEC_DATA / "invalid.json"
DATA = str(SPEC_DATA)


def load_cases():
    if not CORPUS.exists():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{CORPUS} does not exist yet"), id="missing-corpus")]
    cases = json.loads(CORPUS.read_text())
    assert isinstance(cases, list) and cases, f"{CORPUS} must be a non-empty JSON list"
    return [pytest.param(c, id=c.get("name", f"case{i}")) for i, c in enumerate(cases)]


def sub(text: str) -> str:
    return text.replace("$DATA", DATA)


@pytest.mark.parametrize("case", load_cases())
def test_invalid_spec(rtenv, tmp_path, case):
    assert "error" in case and ("spec" in case) != ("text" in case), f"malformed case: {case}"
    if "text" in case:
        arg = sub(case["text"])
    else:
        # Substitute in the JSON text; $DATA is an absolute path with no JSON-special characters.
        arg = sub(json.dumps(case["spec"]))
    expected = sub(case["error"])
    p = rtenv("run", "--runtime-env", arg, "--", "true", cwd=tmp_path)
    assert p.returncode == 2, f"exit {p.returncode}, expected 2\nstderr: {p.stderr}"
    assert expected in p.stderr, f"expected error not in stderr\nexpected: {expected}\ngot:      {p.stderr}"
    assert_clean_error(p.stderr)
    assert p.stderr.startswith("rtenv: "), p.stderr
