"""rtenv.RuntimeEnv against the shared vectors of the C++ spec tests (tests/data/spec/):
golden canonical forms and ids, the invalid-input corpus with its exact messages, merge vectors.

"$DATA" in the data stands for the absolute path of tests/data/spec; relative paths resolve in
tests/data/spec/fixtures, as in the C++ tests (job_options / task_options)."""

import json
import os

import pytest

from conftest import SPEC_DATA_DIR

try:  # the package export, when python/rtenv/__init__.py provides it
    from rtenv import RuntimeEnv  # noqa: F401
    from rtenv.runtime_env import merge
except ImportError:  # the module alone
    from rtenv.runtime_env import RuntimeEnv, merge  # type: ignore[no-redef]

from rtenv import runtime_env as rt

GOLDEN_DIR = os.path.join(SPEC_DATA_DIR, "golden")
FIXTURES = os.path.join(SPEC_DATA_DIR, "fixtures")


def expand(value):
    """"$DATA" -> tests/data/spec, in every string (keys included)."""
    if isinstance(value, str):
        return value.replace("$DATA", SPEC_DATA_DIR)
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {expand(k): expand(v) for k, v in value.items()}
    return value


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def job(value):
    return RuntimeEnv.from_dict(value, level=rt.JOB, base_dir=FIXTURES)


def task(value):
    return RuntimeEnv.from_dict(value, level=rt.TASK, base_dir=FIXTURES)


# ---- golden canonical forms ------------------------------------------------------------------

GOLDEN = sorted(f[: -len(".input.json")] for f in os.listdir(GOLDEN_DIR)
                if f.endswith(".input.json"))


def test_golden_corpus_is_there():
    assert len(GOLDEN) >= 5


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name):
    text = expand(read(os.path.join(GOLDEN_DIR, name + ".input.json")))
    canonical = expand(read(os.path.join(GOLDEN_DIR, name + ".canonical.json")))
    env = RuntimeEnv.from_json(text, base_dir=FIXTURES)
    assert env.canonical() == canonical
    assert env.canonical().encode("utf-8") == canonical.encode("utf-8")
    # A fixed point, with the same id.
    again = RuntimeEnv.from_json(canonical, base_dir=FIXTURES)
    assert again.canonical() == canonical
    assert again.env_id() == env.env_id()
    # The dict route gives the same as the text route.
    assert RuntimeEnv.from_dict(json.loads(text.lstrip("\ufeff")), base_dir=FIXTURES).canonical() == canonical
    assert RuntimeEnv.from_dict(env.to_dict(), base_dir=FIXTURES).canonical() == canonical
    id_file = os.path.join(GOLDEN_DIR, name + ".id")
    if os.path.exists(id_file):
        assert env.env_id() == read(id_file).strip()
    # What the user is told about the accepted env (none unless the file lists some).
    warnings_file = os.path.join(GOLDEN_DIR, name + ".warnings")
    expected = json.loads(read(warnings_file)) if os.path.exists(warnings_file) else []
    assert env.warnings == expected


# ---- invalid inputs --------------------------------------------------------------------------

with open(os.path.join(SPEC_DATA_DIR, "invalid.json"), "rb") as _f:
    INVALID = json.loads(_f.read().decode("utf-8"))


def test_invalid_corpus_is_there():
    assert len(INVALID) >= 45


def _check_error(exc, expected):
    message = str(exc.value)
    if expected.startswith("runtime_env"):
        assert message == expected
    else:
        assert expected in message


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid(case):
    expected = expand(case["error"])
    if "spec" in case:
        with pytest.raises(ValueError) as exc:
            RuntimeEnv.from_dict(expand(case["spec"]), base_dir=FIXTURES)
        _check_error(exc, expected)
        text = json.dumps(expand(case["spec"]), ensure_ascii=False)
    else:
        text = expand(case["text"])
    with pytest.raises(ValueError) as exc:
        RuntimeEnv.from_json(text, base_dir=FIXTURES)
    _check_error(exc, expected)
    with pytest.raises(ValueError) as exc:
        RuntimeEnv.load(text, base_dir=FIXTURES)
    _check_error(exc, expected)


# ---- merge -----------------------------------------------------------------------------------

MERGE_FILE = os.path.join(SPEC_DATA_DIR, "merge.json")
MERGE = json.loads(read(MERGE_FILE)) if os.path.exists(MERGE_FILE) else []


def test_merge_corpus_is_there():
    assert len(MERGE) >= 10


def _parse_side(case, side):
    level = case.get(side + "_level", rt.JOB if side == "parent" else rt.TASK)
    return RuntimeEnv.from_dict(expand(case[side]), level=level, base_dir=FIXTURES)


@pytest.mark.parametrize("case", MERGE, ids=[c["name"] for c in MERGE])
def test_merge(case):
    parent, child = _parse_side(case, "parent"), _parse_side(case, "child")
    merged = merge(parent, child)
    assert merged.canonical() == expand(case["merged"])
    assert parent.merge(child).canonical() == merged.canonical()
    # The result is a valid env that reparses to itself, with the same id.
    again = RuntimeEnv.from_json(merged.canonical(), base_dir=FIXTURES)
    assert again.canonical() == merged.canonical()
    assert again.env_id() == merged.env_id()


# ---- inputs whose results were taken from the C++ side ---------------------------------------

from cpp_checked_cases import CPP_CHECKED, CPP_CHECKED_YAML, INVALID_JSON  # noqa: E402


def _result(parse):
    try:
        return parse().canonical()
    except ValueError as e:
        return str(e)


@pytest.mark.parametrize("text,task_level,expected", CPP_CHECKED)
def test_same_result_as_cpp(text, task_level, expected):
    level = rt.TASK if task_level else rt.JOB
    result = _result(lambda: RuntimeEnv.from_json(text, level=level, base_dir=FIXTURES))
    if expected is INVALID_JSON:
        # Refused as JSON text; the parser's own words are not compared.
        assert result.startswith(INVALID_JSON + " at line ") or result.startswith(
            INVALID_JSON + ": "), result
    else:
        assert result == expand(expected)


@pytest.mark.parametrize("text,expected", CPP_CHECKED_YAML)
def test_same_yaml_result_as_cpp(text, expected):
    assert _result(lambda: RuntimeEnv.from_yaml(text, base_dir=FIXTURES)) == expand(expected)


# ---- the typed Python API --------------------------------------------------------------------


def test_constructor_keywords_are_validated_and_normalized():
    env = RuntimeEnv(working_dir="s3://b/x.zip", pip=["six"], env_vars={"B": "2", "A": "1"},
                     config={"setup_timeout_seconds": 5}, excludes=[], conda=None)
    assert env.pip == {"packages": ["six"]}
    assert env.excludes is None and env.conda is None and env.uv is None
    assert env.env_vars == {"A": "1", "B": "2"}
    assert env.setup_timeout_seconds == 5 and env.eager_install is True
    assert env.canonical() == ('{"config":{"setup_timeout_seconds":5},"env_vars":{"A":"1","B":"2"},'
                               '"pip":{"packages":["six"]},"working_dir":"s3://b/x.zip"}')
    assert env == RuntimeEnv.from_dict(env.to_dict())
    assert hash(env) == hash(RuntimeEnv.from_json(env.canonical()))
    assert env.python_packages() == rt.PythonPackages(installer="pip", packages=["six"])
    with pytest.raises(dataclasses_frozen_error()):
        env.working_dir = "s3://b/y.zip"  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses
    return dataclasses.FrozenInstanceError


def test_constructor_errors_are_the_spec_messages():
    with pytest.raises(ValueError) as exc:
        RuntimeEnv(env_vars={"FOO": 3})
    assert str(exc.value) == "runtime_env.env_vars.FOO: expected a string, got 3 (integer)"
    with pytest.raises(ValueError) as exc:
        RuntimeEnv(pip=["a"], uv=["b"])
    assert str(exc.value) == "runtime_env: at most one of pip, uv and conda may be given, got pip and uv"


def test_defaults_and_empty_env():
    env = RuntimeEnv()
    assert env.empty() and env.canonical() == "{}" and env.to_dict() == {}
    assert env.env_id() == RuntimeEnv.from_dict({"config": {"eager_install": False}}).env_id()
    assert env.setup_timeout_seconds == 600 and env.eager_install is True
    assert env.python_packages() is None


def test_to_dict_is_a_copy():
    env = RuntimeEnv.from_dict({"env_vars": {"A": "1"}})
    d = env.to_dict()
    d["env_vars"]["A"] = "changed"
    assert env.canonical() == '{"env_vars":{"A":"1"}}'


def test_local_paths_become_absolute_and_task_envs_refuse_them():
    env = job({"working_dir": "proj/", "py_modules": ["./proj/pkg/../pkg"]})
    assert env.working_dir == os.path.join(FIXTURES, "proj")
    assert env.py_modules == [os.path.join(FIXTURES, "proj", "pkg")]
    with pytest.raises(ValueError) as exc:
        task({"working_dir": "proj"})
    assert str(exc.value) == (
        "runtime_env.working_dir: local path proj is not allowed in a task or actor env: task and "
        "actor envs take only URIs (local paths are packaged at the job level)")


def test_plugin_fields_need_registration():
    with pytest.raises(ValueError, match="unknown field"):
        RuntimeEnv.from_dict({"my_plugin": {"x": 1}})
    assert rt.register_plugin_field("my_plugin")
    assert not rt.register_plugin_field("pip") and not rt.register_plugin_field("")
    try:
        env = RuntimeEnv.from_dict({"my_plugin": {"x": 1.5, "y": [None]}})
        assert env.plugins == {"my_plugin": {"x": 1.5, "y": [None]}}
        assert env.plugin_fields() == ["my_plugin"]
        assert env.canonical() == '{"my_plugin":{"x":1.5,"y":[null]}}'
        assert RuntimeEnv(plugins={"my_plugin": 1}).canonical() == '{"my_plugin":1}'
    finally:
        rt.unregister_plugin_field("my_plugin")
    assert not rt.is_plugin_field("my_plugin")


def test_python_values_map_to_json_values():
    env = RuntimeEnv.from_dict({"conda": {"t": (1, 2), "big": 2 ** 70, "neg": -(2 ** 64),
                                          "u": 2 ** 64 - 1}})
    assert env.canonical() == ('{"conda":{"big":1.1805916207174113e+21,'
                               '"neg":-1.8446744073709552e+19,"t":[1,2],"u":18446744073709551615}}')
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError) as exc:
            RuntimeEnv.from_dict({"conda": {"x": [bad]}})
        assert str(exc.value).startswith("runtime_env.conda.x[0]: %r is not a JSON value" % bad)
    with pytest.raises(ValueError, match="is not a JSON value"):
        RuntimeEnv.from_dict({"conda": {"x": object()}})
    with pytest.raises(ValueError) as exc:
        RuntimeEnv.from_dict({"config": {"setup_timeout_seconds": 2 ** 63}})
    assert str(exc.value) == ("runtime_env.config.setup_timeout_seconds: 9223372036854775808 is "
                              "out of range")


def test_strings_that_are_not_unicode_text_are_refused():
    # A lone surrogate is what invalid UTF-8 becomes in Python.
    for value in ({"env_vars": {"A": "x\ud800"}}, {"conda": {"x\udcff": 1}}):
        with pytest.raises(ValueError) as exc:
            RuntimeEnv.from_dict(value)
        assert str(exc.value).startswith("runtime_env: a string is not valid UTF-8")
        str(exc.value).encode("utf-8")  # the message itself is valid text
    # Text: invalid UTF-8 bytes, and \u escapes that make no character.
    for text in (b'{"env_vars": {"A": "\xff"}}', b'{"env_vars": {"A": "\\ud800"}}',
                 b'{"env_vars": {"A": "\\udc00x"}}'):
        with pytest.raises(ValueError) as exc:
            RuntimeEnv.from_json(text)
        assert str(exc.value).startswith("runtime_env: invalid JSON"), str(exc.value)


def test_json_text_errors_say_where():
    cases = {
        b'{"pip": ["requests",]}': "runtime_env: invalid JSON at line 1, column 21: ",
        b'{\n  "env_vars": {"A": "1"}\n  "pip": []\n}': "runtime_env: invalid JSON at line 3, ",
        b'{"pip": NaN}': "runtime_env: invalid JSON: NaN is not JSON",
        b'{"pip": -Infinity}': "runtime_env: invalid JSON: -Infinity is not JSON",
        b'{"config": {"setup_timeout_seconds": 1e400}}':
            "runtime_env: invalid JSON: number 1e400 is out of range",
    }
    for text, prefix in cases.items():
        with pytest.raises(ValueError) as exc:
            RuntimeEnv.from_json(text)
        assert str(exc.value).startswith(prefix), str(exc.value)
    # A BOM is allowed, as the C++ side allows it; duplicate keys: the last one wins (both sides).
    assert RuntimeEnv.from_json(b'\xef\xbb\xbf{"pip": ["a"], "pip": ["b"]}').pip == {
        "packages": ["b"]}
    assert RuntimeEnv.from_json('\ufeff{}').empty()


def test_yaml_errors_say_where():
    with pytest.raises(ValueError) as exc:
        RuntimeEnv.from_yaml("env_vars: {A: '1'\n")
    assert str(exc.value).startswith("runtime_env: invalid YAML at line "), str(exc.value)
    with pytest.raises(ValueError) as exc:
        RuntimeEnv.from_yaml("pip:\n  - a\n - b\n")
    assert str(exc.value).startswith("runtime_env: invalid YAML at line 3"), str(exc.value)
    # Anchors and aliases are YAML: they work.
    env = RuntimeEnv.from_yaml("env_vars: &v {A: '1'}\nconda: {variables: *v}\n")
    assert env.conda == {"variables": {"A": "1"}}


def test_yaml_without_pyyaml_says_to_install_it(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` fails
    monkeypatch.setattr(rt, "_yaml_loader", None)
    with pytest.raises(ImportError, match="pip install pyyaml"):
        RuntimeEnv.from_yaml("pip: [a]\n")
    assert RuntimeEnv.from_json('{"pip": ["a"]}').pip == {"packages": ["a"]}


def test_merge_function_and_method():
    job_env = job({"working_dir": "s3://b/x.zip", "env_vars": {"A": "1"}})
    assert merge(job_env, RuntimeEnv()) is job_env
    merged = job_env.merge(task({"env_vars": {"B": "2"}, "pip": ["six"]}))
    assert merged.env_vars == {"A": "1", "B": "2"}
    assert merged.pip == {"packages": ["six"]}
    assert merged.working_dir == "s3://b/x.zip"


def test_load_files():
    env = RuntimeEnv.load("env.yaml", base_dir=FIXTURES)
    assert env.working_dir == os.path.join(FIXTURES, "proj")
    assert env.env_vars == {"MODE": "fast", "RETRIES": "3"}
    assert env.setup_timeout_seconds == 120
    assert RuntimeEnv.load("env.json", base_dir=FIXTURES).env_vars == {"MODE": "fast"}
    with pytest.raises(ValueError, match="invalid JSON"):
        RuntimeEnv.load("broken.json", base_dir=FIXTURES)
    with pytest.raises(ValueError, match="cannot load env.txt"):
        RuntimeEnv.load("env.txt", base_dir=FIXTURES)


def test_the_tests_can_fail():
    # The comparisons above are exact: a changed byte is a different canonical form and id.
    a = RuntimeEnv.from_json('{"env_vars": {"A": "\\u001f"}}')
    b = RuntimeEnv.from_json('{"env_vars": {"A": "\\u001e"}}')
    assert a.canonical() != b.canonical() and a.env_id() != b.env_id()
