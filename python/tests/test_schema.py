"""`rtenv schema` (the C++ field table as a JSON Schema) against the shared vectors: it accepts
every golden env and refuses the wrongly shaped ones of invalid.json. Needs the binary
($RTENV_BIN) and jsonschema (scripts/setup.sh installs it)."""

import json
import os
import subprocess

import pytest

from conftest import SPEC_DATA_DIR

jsonschema = pytest.importorskip("jsonschema")

RTENV_BIN = os.environ.get("RTENV_BIN", "")
pytestmark = pytest.mark.skipif(not os.access(RTENV_BIN, os.X_OK),
                                reason="RTENV_BIN does not name the rtenv binary")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(subprocess.run([RTENV_BIN, "schema"], check=True, capture_output=True,
                                       text=True).stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def golden_values():
    golden = os.path.join(SPEC_DATA_DIR, "golden")
    for name in sorted(os.listdir(golden)):
        if name.endswith(".json"):
            with open(os.path.join(golden, name), "rb") as f:
                yield name, json.loads(f.read().decode("utf-8-sig"))


def test_accepts_every_golden_input_and_canonical_form(validator):
    values = list(golden_values())
    assert len(values) >= 10
    for name, value in values:
        errors = [e.message for e in validator.iter_errors(value)]
        assert not errors, (name, errors)


# Wrongly shaped values: the schema refuses them, as rtenv does.
REFUSED = [
    "top_level_list", "env_vars_value_integer", "env_vars_value_null", "env_vars_list",
    "working_dir_integer", "py_modules_string", "py_modules_entry_integer", "pip_integer",
    "pip_unknown_key", "pip_uv_key_in_pip", "pip_missing_packages", "pip_check_string",
    "uv_install_options_string", "conda_integer", "container_missing_image",
    "container_unknown_key", "config_timeout_zero", "config_timeout_minus_two",
    "config_unknown_key", "config_eager_install_string",
]
# What needs more than a value's shape (the filesystem, other fields, a plugin): left to rtenv.
ACCEPTED = ["unknown_field_far", "pip_and_uv", "working_dir_missing_local",
            "image_uri_with_pip_and_py_modules", "working_dir_bad_rtenv_uri"]


def test_refuses_wrong_shapes_and_leaves_the_rest_to_rtenv(validator):
    with open(os.path.join(SPEC_DATA_DIR, "invalid.json"), "rb") as f:
        cases = {c["name"]: c for c in json.loads(f.read().decode("utf-8"))}
    for name in REFUSED:
        assert not validator.is_valid(cases[name]["spec"]), name
    for name in ACCEPTED:
        assert validator.is_valid(cases[name]["spec"]), name




def test_every_field_is_described(validator):
    from rtenv.runtime_env import BUILTIN_FIELDS

    properties = validator.schema["properties"]
    assert sorted(properties) == sorted(BUILTIN_FIELDS)
    assert validator.is_valid({"hello": {"greeting": "hi"}, "env_vars": {"A": "1"}})
    assert validator.is_valid({name: None for name in BUILTIN_FIELDS})
    assert validator.is_valid({"pip": [], "conda": {}, "working_dir": ""})
