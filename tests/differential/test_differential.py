"""rtenv against Ray's own validator, on the corpus (corpus.py, harness.py).

- rtenv's Python model and its binary always agree on accept vs reject.
- rtenv and Ray agree on every case, except the ones the "Intended differences from Ray" table of
  docs/runtime_env.md names, each with its reason; a row naming a case that no longer differs is
  stale and fails too, so the table stays true.
- A setup failure where Ray accepts (the binary validated the dict, then could not pack, fetch or
  lock what it names) is a disagreement: a Ray user's dict that does not work.
- A sample of the dicts both accept, with content on loopback (local paths, the HTTP server,
  moto S3, the package index), is set up and run with `rtenv run`, and what the env provides is
  checked from inside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import corpus
import harness
from harness import ACCEPT, REJECT, SETUP_FAILED

FIELDS = ("working_dir", "py_modules", "excludes", "pip", "uv", "conda", "env_vars",
          "py_executable", "java_jars", "image_uri", "container", "config",
          "worker_process_setup_hook", "nsight", "rocprof_sys")

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = harness.World(tmp_path_factory.mktemp("difftest"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def results(world, rtenv_bin):
    version, results = harness.collect(world, rtenv_bin)
    print(f"\ndifferential: Ray {version}, {len(results)} cases")
    return {r.id: r for r in results}


@pytest.fixture(scope="module")
def intended():
    return harness.intended_differences()


def test_the_corpus_covers_every_field_both_levels_and_both_verdicts():
    ids = [c["id"] for c in corpus.CASES]
    assert len(ids) >= 150, f"only {len(ids)} cases"
    assert len(set(ids)) == len(ids), "duplicate case ids"
    for c in corpus.CASES:
        assert c["level"] in (corpus.JOB, corpus.TASK), c
        assert isinstance(c["env"], dict), c
    seen = {k for c in corpus.CASES for k in c["env"]}
    assert not set(FIELDS) - seen, f"no case for {sorted(set(FIELDS) - seen)}"
    levels = {c["level"] for c in corpus.CASES}
    assert levels == {corpus.JOB, corpus.TASK}


def test_the_corpus_has_cases_ray_accepts_and_cases_it_rejects(results):
    outcomes = {r.ray.outcome for r in results.values()}
    assert outcomes == {ACCEPT, REJECT}, outcomes


def test_the_python_model_and_the_binary_agree(results):
    """The binary validates at job level; where the Python model (at job level) accepts, the
    binary accepts too (it may then fail to set the env up, exit 3), and where it rejects, the
    binary rejects (exit 2)."""
    bad = []
    for r in results.values():
        python_ok = r.python_job.outcome == ACCEPT
        binary_ok = r.binary.outcome in (ACCEPT, SETUP_FAILED)
        if python_ok != binary_ok or r.binary.outcome not in (ACCEPT, REJECT, SETUP_FAILED):
            bad.append(f"{r.id}: python {r.python_job.outcome} ({r.python_job.message}); "
                       f"binary {r.binary.outcome} ({r.binary.message})")
    assert not bad, "rtenv's Python model and binary disagree:\n" + "\n".join(bad)


def test_the_ray_helper_and_the_binary_agree(results):
    """rtenv.ray.runtime_env(**d) reaches the same verdict as the binary it calls."""
    bad = [f"{r.id}: helper {r.helper.outcome} ({r.helper.message}); binary {r.binary.outcome} "
           f"({r.binary.message})" for r in results.values()
           if r.helper is not None and r.helper.outcome != r.binary.outcome]
    assert not bad, "rtenv.ray.runtime_env and the binary disagree:\n" + "\n".join(bad)


def test_rtenv_agrees_with_ray_except_the_intended_differences(results, intended):
    wrong = [r for r in results.values() if not harness.as_expected(r, intended)]
    assert not wrong, (
        f"{len(wrong)} case(s) where rtenv and Ray differ other than as docs/runtime_env.md's "
        "'Intended differences from Ray' table says: fix rtenv, or (for an intended difference) "
        "add or correct the case's row with its reason\n"
        + "\n".join(r.describe() + (f"\n    table: Ray {intended[r.id].ray}, rtenv "
                                     f"{intended[r.id].rtenv}" if r.id in intended else "")
                     for r in wrong))


def test_the_table_names_only_cases_of_the_corpus(results, intended):
    unknown = sorted(set(intended) - set(results))
    assert not unknown, f"the table names cases the corpus does not have: {unknown}"


# ---- both accept: set the env up and look inside ----------------------------------------------

CHECK = r"""
import importlib, json, os, sys
spec = json.loads(sys.argv[1])
out = {"files": {f: os.path.exists(f) for f in spec.get("files", []) + spec.get("absent", [])},
       "env": {k: os.environ.get(k) for k in list(spec.get("env", {})) + list(spec.get("env_prefix", {}))},
       "imports": {}}
for name in spec.get("imports", {}):
    try:
        m = importlib.import_module(name)
        out["imports"][name] = getattr(m, "__version__", "")
    except Exception as e:
        out["imports"][name] = "ImportError: %s" % e
print(json.dumps(out))
"""

RUN_CASES = [c for c in corpus.CASES if "run" in c]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c["id"] for c in RUN_CASES])
def test_an_env_both_accept_is_set_up_and_provides_what_it_names(case, world, results, rtenv_bin,
                                                                   tmp_path):
    r = results[case["id"]]
    if not (r.ray.outcome == ACCEPT and r.rtenv == ACCEPT):
        # Only a case already reported above (a disagreement) gets here.
        pytest.skip(f"not accepted by both (Ray {r.ray.outcome}, rtenv {r.rtenv}): "
                    "reported by the comparison")
    expect = case["run"]
    home = tmp_path / "home"
    env = world.rtenv_environ(home)
    p = subprocess.run([rtenv_bin, "run", "-e", json.dumps(r.env), "--", "python", "-c", CHECK,
                        json.dumps(expect)], cwd=world.root, env=env, capture_output=True,
                       text=True, timeout=300)
    try:
        assert p.returncode == 0, f"rtenv run failed ({p.returncode}): {p.stderr}"
        got = json.loads(p.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([rtenv_bin, "agent", "stop"], env=env, capture_output=True, timeout=90)
    for f in expect.get("files", []):
        assert got["files"][f], f"{f} missing in the env's cwd"
    for f in expect.get("absent", []):
        assert not got["files"][f], f"{f} present although excluded"
    for k, v in expect.get("env", {}).items():
        assert got["env"][k] == v, (k, got["env"][k])
    for k, v in expect.get("env_prefix", {}).items():
        assert (got["env"][k] or "").startswith(v), (k, got["env"][k])
    for name, version in expect.get("imports", {}).items():
        assert not got["imports"][name].startswith("ImportError"), got["imports"][name]
        if version is not None:
            assert got["imports"][name] == version, (name, got["imports"][name])
