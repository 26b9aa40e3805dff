"""The differential corpus: runtime_env dicts as Ray users write them, each with an id and a level.

Written from Ray's documentation (the runtime_env guide, the RuntimeEnv / RuntimeEnvConfig
docstrings) and from the forms Ray's own validation and tests exercise (validation.py,
runtime_env.py, protocol.py, packaging.py): valid and invalid, job level (`ray.init`) and task
level (`.options()`), every field.

A case is `{"id", "level", "env"[, "run"]}`:
- `env` is the dict; strings in it may hold placeholders the harness fills (fixtures.py):
  `@ROOT@` the fixture tree (also the current directory, so relative paths like "project" are
  real), `@HTTP@` an HTTP server on 127.0.0.1 serving the tree's archives, `@S3@` a bucket of
  moto's S3 server holding the same, `@CHANNEL@` a conda channel on disk (file://), `@PY@` the
  interpreter running the tests, `@TOOL_SHA@` the sha256 of the served wheel, `@INDEX@` the
  loopback package index. Every package a pip/uv list names is served by that index.
- `run` (a sample of the cases both sides accept): what `rtenv run` must show inside the env:
  `files` (relative to the cwd, present), `absent` (not present), `env` (variables and values),
  `env_prefix` (variables and the start of their values), `imports` ({module: version or
  null}: importable, with `__version__` when given).
"""

from __future__ import annotations

JOB = "job"
TASK = "task"

HEX = "0" * 63 + "1"
# Images on the world's docker-registry (harness.World pushes them; @REGISTRY@ is its host).
IMAGE = "@REGISTRY@/rayproject/ray:2.39.0-py312-cu123"
SMALL_IMAGE = "@REGISTRY@/library/python:3.11"
CONTAINER = {"image": "@REGISTRY@/anyscale/ray-ml:nightly-py38-cpu",
             "run_options": ["--cap-drop SYS_ADMIN", "--log-level=debug"]}
CONDA = {"channels": ["@CHANNEL@"], "dependencies": ["libb"]}

CASES: list[dict] = []


def case(id: str, env, level: str = JOB, run: dict | None = None) -> None:
    entry = {"id": id, "level": level, "env": env}
    if run is not None:
        entry["run"] = run
    CASES.append(entry)


# ---- working_dir -------------------------------------------------------------------------------
case("wd-local-dir", {"working_dir": "project"},
     run={"files": ["main.py", "data/input.csv"]})
case("wd-local-dot-relative", {"working_dir": "./project"})
case("wd-local-abs", {"working_dir": "@ROOT@/project"})
case("wd-local-zip", {"working_dir": "project.zip"}, run={"files": ["main.py"]})
case("wd-local-tar-gz", {"working_dir": "project.tar.gz"}, run={"files": ["main.py"]})
case("wd-local-tgz", {"working_dir": "project.tgz"})
case("wd-local-tar-xz", {"working_dir": "project.tar.xz"})
case("wd-local-tar-bz2", {"working_dir": "project.tar.bz2"})
case("wd-local-tar", {"working_dir": "project.tar"})
case("wd-local-missing", {"working_dir": "no_such_dir"})
case("wd-symlink-leaving-the-tree", {"working_dir": "linked"})
case("wd-local-plain-file", {"working_dir": "notes.txt"})
case("wd-http-zip", {"working_dir": "@HTTP@/project.zip"}, run={"files": ["main.py"]})
case("wd-http-zip-query", {"working_dir": "@HTTP@/project.zip?raw=true"})
case("wd-http-tar-gz", {"working_dir": "@HTTP@/project.tar.gz"})
case("wd-http-tgz", {"working_dir": "@HTTP@/project.tgz"})
case("wd-http-tar-xz", {"working_dir": "@HTTP@/project.tar.xz"}, run={"files": ["main.py"]})
case("wd-http-upper-zip", {"working_dir": "@HTTP@/PROJECT.ZIP"})
case("wd-http-not-archive", {"working_dir": "@HTTP@/project"})
case("wd-s3-zip", {"working_dir": "@S3@/project.zip"}, run={"files": ["main.py"]})
case("wd-s3-tar-gz", {"working_dir": "@S3@/project.tar.gz"}, run={"files": ["main.py"]})
case("wd-file-uri-zip", {"working_dir": "file://@ROOT@/project.zip"}, run={"files": ["main.py"]})
case("wd-gs-zip", {"working_dir": "gs://bucket/project.zip"})
case("wd-gcs-ray-package", {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"})
case("wd-azure-zip", {"working_dir": "azure://container/project.zip"})
case("wd-unknown-scheme", {"working_dir": "unknown://abc.zip"})
case("wd-local-uri", {"working_dir": "local://@ROOT@/project"},
     run={"files": ["main.py", "data/input.csv"]})
case("wd-local-uri-relative", {"working_dir": "local://project"})
case("wd-local-uri-archive", {"working_dir": "local://@ROOT@/project.zip"})
case("wd-rtenv-package-uri", {"working_dir": "rtenv://sha256/" + HEX})
case("wd-int", {"working_dir": 5})
case("wd-list", {"working_dir": ["project"]})
case("wd-null", {"working_dir": None})
case("wd-task-http-zip", {"working_dir": "@HTTP@/project.zip"}, TASK)
case("wd-task-s3-zip", {"working_dir": "@S3@/project.zip"}, TASK)
case("wd-task-gcs-ray-package", {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"}, TASK)
case("wd-task-local-dir", {"working_dir": "project"}, TASK)
case("wd-task-local-zip", {"working_dir": "project.zip"}, TASK)
case("wd-task-http-tar-gz", {"working_dir": "@HTTP@/project.tar.gz"}, TASK)
case("wd-task-unknown-scheme", {"working_dir": "unknown://abc.zip"}, TASK)
case("wd-task-http-not-archive", {"working_dir": "@HTTP@/project"}, TASK)

# ---- py_modules --------------------------------------------------------------------------------
case("pm-local-dir", {"py_modules": ["mylib"]}, run={"imports": {"mylib": "0.1"}})
case("pm-local-abs-dir", {"py_modules": ["@ROOT@/mylib"]})
case("pm-local-py-file", {"py_modules": ["helpers.py"]}, run={"imports": {"helpers": None}})
case("pm-local-whl", {"py_modules": ["dist/tool-1.0-py3-none-any.whl"]},
     run={"imports": {"tool": "1.0"}})
case("pm-local-zip", {"py_modules": ["mylib.zip"]})
case("pm-local-tar-gz", {"py_modules": ["mylib.tar.gz"]})
case("pm-http-zip", {"py_modules": ["@HTTP@/mylib.zip"]}, run={"imports": {"mylib": "0.1"}})
case("pm-http-whl", {"py_modules": ["@HTTP@/tool-1.0-py3-none-any.whl"]},
     run={"imports": {"tool": "1.0"}})
case("pm-http-whl-sha256", {"py_modules": ["@HTTP@/tool-1.0-py3-none-any.whl#sha256=@TOOL_SHA@"]})
case("pm-http-tar-gz", {"py_modules": ["@HTTP@/mylib.tar.gz"]})
case("pm-http-jar", {"py_modules": ["@HTTP@/greeter.jar"]})
case("pm-s3-whl", {"py_modules": ["@S3@/tool-1.0-py3-none-any.whl"]},
     run={"imports": {"tool": "1.0"}})
case("pm-s3-zip", {"py_modules": ["@S3@/mylib.zip"]})
case("pm-file-uri-zip", {"py_modules": ["file://@ROOT@/mylib.zip"]})
case("pm-gs-whl", {"py_modules": ["gs://bucket/tool-1.0-py3-none-any.whl"]})
case("pm-local-uri", {"py_modules": ["local://@ROOT@/mylib"]}, run={"imports": {"mylib": "0.1"}})
case("pm-mixed", {"py_modules": ["mylib", "helpers.py", "@HTTP@/tool-1.0-py3-none-any.whl"]},
     run={"imports": {"mylib": "0.1", "helpers": None, "tool": "1.0"}})
case("pm-missing", {"py_modules": ["nosuch"]})
case("pm-plain-file", {"py_modules": ["notes.txt"]})
case("pm-not-list", {"py_modules": "mylib"})
case("pm-int-entry", {"py_modules": [1]})
case("pm-null-entry", {"py_modules": [None]})
case("pm-empty-list", {"py_modules": []})
case("pm-unknown-scheme", {"py_modules": ["unknown://abc.zip"]})
case("pm-task-http-whl", {"py_modules": ["@HTTP@/tool-1.0-py3-none-any.whl"]}, TASK)
case("pm-task-s3-zip", {"py_modules": ["@S3@/mylib.zip"]}, TASK)
case("pm-task-local-dir", {"py_modules": ["mylib"]}, TASK)
case("pm-task-http-not-archive", {"py_modules": ["@HTTP@/mylib"]}, TASK)

# ---- excludes ----------------------------------------------------------------------------------
case("ex-with-working-dir", {"working_dir": "project", "excludes": ["*.log", "data/"]},
     run={"files": ["main.py"], "absent": ["debug.log", "data/input.csv"]})
case("ex-gitignore-syntax",
     {"working_dir": "project", "excludes": ["/data", "!keep.log", "**/*.tmp"]})
case("ex-with-py-modules", {"py_modules": ["mylib"], "excludes": ["*.tmp"]})
case("ex-alone", {"excludes": ["*.pyc"]})
case("ex-empty", {"excludes": []})
case("ex-string", {"working_dir": "project", "excludes": "*.log"})
case("ex-int-item", {"working_dir": "project", "excludes": [1]})
case("ex-alone-string", {"excludes": "*.log"})
case("ex-task", {"excludes": ["*.log"]}, TASK)
case("ex-task-string", {"excludes": "*.log"}, TASK)

# ---- pip ---------------------------------------------------------------------------------------
case("pip-list", {"pip": ["requests==2.27.1", "pendulum"]},
     run={"imports": {"requests": "2.27.1", "pendulum": "3.0.0"}})
case("pip-list-single", {"pip": ["emoji"]})
case("pip-requirements-file", {"pip": "requirements.txt"}, run={"imports": {"requests": "2.31.0"}})
case("pip-requirements-missing", {"pip": "nosuch.txt"})
case("pip-dict-docs", {"pip": {"packages": ["tensorflow", "requests"], "pip_check": False,
                               "pip_version": "==22.0.2;python_version=='3.8.11'"}})
case("pip-dict-pip-check", {"pip": {"packages": ["emoji"], "pip_check": True}})
case("pip-dict-packages-file", {"pip": {"packages": "requirements.txt"}})
case("pip-dict-install-options",
     {"pip": {"packages": ["emoji"], "pip_install_options": ["--no-cache-dir"]}},
     run={"imports": {"emoji": "2.8.0"}})
case("pip-dict-install-options-default",
     {"pip": {"packages": ["emoji"],
              "pip_install_options": ["--disable-pip-version-check", "--no-cache-dir"]}})
case("pip-dict-install-options-unknown",
     {"pip": {"packages": ["emoji"], "pip_install_options": ["--prefer-binary"]}})
case("pip-dict-install-options-string",
     {"pip": {"packages": ["emoji"], "pip_install_options": "--no-cache-dir"}})
case("pip-dict-install-options-int", {"pip": {"packages": ["emoji"], "pip_install_options": [1]}})
case("pip-dict-unknown-key", {"pip": {"packages": ["emoji"], "foo": 1}})
case("pip-dict-missing-packages", {"pip": {"pip_check": True}})
case("pip-dict-check-string", {"pip": {"packages": ["emoji"], "pip_check": "yes"}})
case("pip-dict-version-int", {"pip": {"packages": ["emoji"], "pip_version": 22}})
case("pip-dict-packages-int", {"pip": {"packages": 3}})
case("pip-dict-empty-packages", {"pip": {"packages": []}})
case("pip-dict-rtenv-locked", {"pip": {"packages": ["emoji"], "locked": False}})
case("pip-int", {"pip": 5})
case("pip-list-with-int", {"pip": ["emoji", 1]})
case("pip-empty-list", {"pip": []})
case("pip-null", {"pip": None})
case("pip-duplicates", {"pip": ["emoji", "emoji"]})
case("pip-env-marker", {"pip": ["emoji; python_version >= '3.8'"]})
case("pip-index-url-line", {"pip": ["--index-url @INDEX@", "emoji"]})
case("pip-working-dir-variable",
     {"working_dir": "project",
      "pip": ["-r ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}/requirements.txt"]},
     run={"files": ["main.py"], "imports": {"emoji": "2.8.0"}})
case("pip-with-conda", {"pip": ["emoji"], "conda": CONDA})
case("pip-with-uv", {"pip": ["emoji"], "uv": ["emoji"]})
case("pip-with-env-vars", {"pip": ["emoji"], "env_vars": {"MODE": "fast"}},
     run={"imports": {"emoji": "2.8.0"}, "env": {"MODE": "fast"}})
case("pip-task", {"pip": ["emoji"]}, TASK)
case("pip-task-requirements-file", {"pip": "requirements.txt"}, TASK)

# ---- uv ----------------------------------------------------------------------------------------
case("uv-list", {"uv": ["emoji"]}, run={"imports": {"emoji": "2.8.0"}})
case("uv-requirements-file", {"uv": "requirements.txt"})
case("uv-requirements-missing", {"uv": "nosuch.txt"})
case("uv-dict", {"uv": {"packages": ["emoji"], "uv_check": False}})
case("uv-dict-version", {"uv": {"packages": ["emoji"], "uv_version": "==0.4.0"}})
case("uv-dict-install-options",
     {"uv": {"packages": ["emoji"], "uv_pip_install_options": ["--no-cache"]}})
case("uv-dict-install-options-string",
     {"uv": {"packages": ["emoji"], "uv_pip_install_options": "--no-cache"}})
case("uv-dict-unknown-key", {"uv": {"packages": ["emoji"], "pip_check": True}})
case("uv-dict-missing-packages", {"uv": {"uv_check": True}})
case("uv-dict-check-string", {"uv": {"packages": ["emoji"], "uv_check": "no"}})
case("uv-dict-packages-file", {"uv": {"packages": "requirements.txt"}})
case("uv-int", {"uv": 5})
case("uv-empty-list", {"uv": []})
case("uv-with-conda", {"uv": ["emoji"], "conda": CONDA})
case("uv-task", {"uv": ["emoji"]}, TASK)

# ---- conda -------------------------------------------------------------------------------------
case("conda-dict", {"conda": CONDA})
case("conda-dict-pip-section",
     {"conda": {"channels": ["@CHANNEL@"], "dependencies": ["libb", {"pip": ["emoji"]}]}})
case("conda-env-name", {"conda": "pytorch_p36"})
case("conda-yaml-file", {"conda": "environment.yml"})
case("conda-yaml-missing", {"conda": "nosuch.yml"})
case("conda-yaml-broken", {"conda": "broken.yml"})
case("conda-yaml-list", {"conda": "list.yml"})
case("conda-abs-dir", {"conda": "@ROOT@/condaenv"})
case("conda-abs-dir-missing", {"conda": "/nonexistent/conda/env"})
case("conda-int", {"conda": 3})
case("conda-list", {"conda": ["libb"]})
case("conda-empty-dict", {"conda": {}})
case("conda-task-name", {"conda": "pytorch_p36"}, TASK)
case("conda-task-dict", {"conda": CONDA}, TASK)

# ---- env_vars ----------------------------------------------------------------------------------
case("ev-basic", {"env_vars": {"OMP_NUM_THREADS": "32", "TF_WARNINGS": "none"}},
     run={"env": {"OMP_NUM_THREADS": "32", "TF_WARNINGS": "none"}})
case("ev-expand", {"env_vars": {"MY_PATH": "/opt/tools/bin:${PATH}"}},
     run={"env_prefix": {"MY_PATH": "/opt/tools/bin:/"}})
case("ev-unicode", {"env_vars": {"GREETING": "h\u00e9llo"}}, run={"env": {"GREETING": "h\u00e9llo"}})
case("ev-dotted-name", {"env_vars": {"my.var": "1"}})
case("ev-pythonpath", {"env_vars": {"PYTHONPATH": "/opt/lib"}})
case("ev-empty", {"env_vars": {}})
case("ev-int-value", {"env_vars": {"N": 3}})
case("ev-null-value", {"env_vars": {"N": None}})
case("ev-bool-value", {"env_vars": {"DEBUG": True}})
case("ev-empty-name", {"env_vars": {"": "x"}})
case("ev-name-with-equals", {"env_vars": {"A=B": "x"}})
case("ev-nul-in-value", {"env_vars": {"A": "x\u0000y"}})
case("ev-list", {"env_vars": ["A=1"]})
case("ev-string", {"env_vars": "A=1"})
case("ev-task", {"env_vars": {"MODE": "eval"}}, TASK)
case("ev-task-int-value", {"env_vars": {"N": 3}}, TASK)

# ---- py_executable -----------------------------------------------------------------------------
case("pyexe-abs", {"py_executable": "@PY@"})
case("pyexe-command-name", {"py_executable": "python3"})
case("pyexe-command-prefix", {"py_executable": "uv run --with emoji"})
case("pyexe-relative-to-working-dir", {"working_dir": "project", "py_executable": "bin/python"})
case("pyexe-with-pip", {"py_executable": "@PY@", "pip": ["emoji"]})
case("pyexe-int", {"py_executable": 3})
case("pyexe-list", {"py_executable": ["python3"]})
case("pyexe-task", {"py_executable": "python3"}, TASK)

# ---- java_jars ---------------------------------------------------------------------------------
case("jj-local-jar", {"java_jars": ["libs/greeter.jar"]})
case("jj-local-dir", {"java_jars": ["libs/third_party"]})
case("jj-http-jar", {"java_jars": ["@HTTP@/greeter.jar"]})
case("jj-http-zip", {"java_jars": ["@HTTP@/deps.zip"]})
case("jj-s3-zip", {"java_jars": ["@S3@/deps.zip"]})
case("jj-missing", {"java_jars": ["nosuch.jar"]})
case("jj-not-list", {"java_jars": "libs/greeter.jar"})
case("jj-int", {"java_jars": 5})
case("jj-task-http-zip", {"java_jars": ["@HTTP@/deps.zip"]}, TASK)
case("jj-task-local-jar", {"java_jars": ["libs/greeter.jar"]}, TASK)

# ---- image_uri and container -------------------------------------------------------------------
case("img-basic", {"image_uri": IMAGE})
case("img-with-env-vars", {"image_uri": IMAGE, "env_vars": {"A": "1"}})
case("img-with-config", {"image_uri": IMAGE, "config": {"setup_timeout_seconds": 300}})
case("img-with-pip", {"image_uri": IMAGE, "pip": ["emoji"]})
case("img-with-working-dir", {"image_uri": IMAGE, "working_dir": "project"})
case("img-int", {"image_uri": 3})
case("img-task", {"image_uri": IMAGE}, TASK)
case("ctr-docs", {"container": CONTAINER})
case("ctr-image-only", {"container": {"image": SMALL_IMAGE}})
case("ctr-worker-path", {"container": {"image": SMALL_IMAGE,
                                       "worker_path": "/root/python/ray/workers/default_worker.py"}})
case("ctr-no-image", {"container": {"run_options": ["--rm"]}})
case("ctr-string", {"container": "python:3.11"})
case("ctr-with-pip", {"container": CONTAINER, "pip": ["emoji"]})
case("ctr-with-env-vars", {"container": CONTAINER, "env_vars": {"A": "1"}})
case("ctr-and-image-uri", {"container": CONTAINER, "image_uri": IMAGE})

# ---- config ------------------------------------------------------------------------------------
case("cfg-timeout", {"config": {"setup_timeout_seconds": 300}})
case("cfg-eager-install", {"config": {"eager_install": False}})
case("cfg-both", {"config": {"setup_timeout_seconds": 300, "eager_install": True}})
case("cfg-no-timeout", {"config": {"setup_timeout_seconds": -1}})
case("cfg-zero", {"config": {"setup_timeout_seconds": 0}})
case("cfg-negative", {"config": {"setup_timeout_seconds": -5}})
case("cfg-float", {"config": {"setup_timeout_seconds": 10.0}})
case("cfg-string", {"config": {"setup_timeout_seconds": "10"}})
case("cfg-bool-timeout", {"config": {"setup_timeout_seconds": True}})
case("cfg-eager-string", {"config": {"eager_install": "yes"}})
case("cfg-log-files", {"config": {"log_files": ["/tmp/ray/session_latest/logs/worker.log"]}})
case("cfg-ray-runtime-env-config",
     {"config": {"setup_timeout_seconds": 600, "eager_install": True, "log_files": []}})
case("cfg-log-files-string", {"config": {"log_files": "worker.log"}})
case("cfg-unknown-key", {"config": {"foo": 1}})
case("cfg-not-dict", {"config": 5})
case("cfg-task", {"config": {"setup_timeout_seconds": 30}}, TASK)
case("cfg-task-zero", {"config": {"setup_timeout_seconds": 0}}, TASK)

# ---- Ray-only fields, unknown fields, nulls, combinations ---------------------------------------
case("ray-worker-process-setup-hook", {"worker_process_setup_hook": "mymodule.setup"})
case("ray-worker-process-setup-hook-int", {"worker_process_setup_hook": 5})
case("ray-nsight", {"nsight": "default", "env_vars": {"MODE": "fast"}},
     run={"env": {"MODE": "fast"}})
case("ray-nsight-dict", {"nsight": {"t": "cuda,cudnn,cublas", "stop-on-exit": "true"}})
case("ray-rocprof-sys", {"rocprof_sys": {"env": {"ROCPROFSYS_TIMEMORY_COMPONENTS": "wall_clock"},
                                         "args": {"F": "true"}}})
case("ray-internal-commit", {"_ray_commit": "0123456789abcdef"})
case("ray-internal-release", {"_ray_release": "2.60.0"})
case("ray-internal-inject-current-ray", {"_inject_current_ray": True})
case("ray-task-worker-process-setup-hook", {"worker_process_setup_hook": "mymodule.setup"}, TASK)
case("unknown-field", {"foo": "bar"})
case("misspelled-field", {"working_dirr": "project"})
case("unknown-field-null", {"foo": None})
case("ray-only-field-null", {"worker_process_setup_hook": None})
case("empty-env", {})
case("all-null", {"pip": None, "conda": None, "working_dir": None})
case("docs-combined",
     {"working_dir": "project", "excludes": ["*.log"], "pip": ["emoji"],
      "env_vars": {"TF_WARNINGS": "none"}},
     run={"files": ["main.py"], "absent": ["debug.log"], "imports": {"emoji": "2.8.0"},
          "env": {"TF_WARNINGS": "none"}})
case("docs-combined-remote",
     {"working_dir": "@S3@/project.zip", "py_modules": ["@HTTP@/mylib.zip"],
      "env_vars": {"A": "1"}},
     run={"files": ["main.py"], "imports": {"mylib": "0.1"}, "env": {"A": "1"}})
case("task-combined", {"pip": ["emoji"], "env_vars": {"A": "1"},
                       "config": {"setup_timeout_seconds": 60}}, TASK)
case("task-empty", {}, TASK)
