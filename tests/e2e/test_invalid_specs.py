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


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_a_runtime_env_nested_50000_deep_is_refused_not_a_crash(rtenv, tmp_path, form):
    deep = "[" * 50000 + "]" * 50000  # one argument holds at most 128 KiB
    if form == "json":
        arg = '{"hello": ' + deep + "}"
    else:
        (tmp_path / "deep.yaml").write_text("hello: " + deep + "\n")
        arg = "deep.yaml"
    p = rtenv("run", "--runtime-env", arg, "--", "true", cwd=tmp_path)
    assert p.returncode == 2, f"exit {p.returncode}, expected 2\nstderr: {p.stderr}"
    assert "nested deeper than 100 levels" in p.stderr, p.stderr
    assert_clean_error(p.stderr)
