"""The runtime_env model in Python: validation, canonical form, env id and job/task merge.

Pure Python (standard library only; YAML input needs PyYAML). It follows the C++ model in
src/spec/ rule for rule, so that for the same input both sides give the same canonical JSON
text, byte for byte, the same env id (SHA-256 of the canonical form without `config`) and the
same validation messages (naming the field path). Syntax errors in JSON or YAML text name the
line and column in the words of the parser used here (the json module, PyYAML).

    env = RuntimeEnv(pip=["requests"], env_vars={"MODE": "fast"})
    env = RuntimeEnv.from_dict({"working_dir": "s3://bucket/project.zip"})
    env = RuntimeEnv.from_json('{"uv": ["torch"]}')
    env.canonical()   # '{"uv":{"packages":["torch"]}}'
    env.env_id()      # 64 lowercase hex digits
    merge(job_env, task_env)

Every invalid input raises ValueError.
"""

from __future__ import annotations

import copy
import dataclasses
import errno as _errno
import hashlib
import json
import math
import os
import re
import stat as _stat
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

__all__ = [
    "RuntimeEnv",
    "PythonPackages",
    "merge",
    "register_plugin_field",
    "unregister_plugin_field",
    "is_plugin_field",
    "is_builtin_field",
    "is_ray_only_field",
    "check_ray_only_field",
    "PIP_INSTALL_OPTIONS",
    "is_uri",
    "archive_suffix",
    "local_uri_path",
    "ARCHIVE_SUFFIXES",
    "BUILTIN_FIELDS",
    "JOB",
    "TASK",
]

JOB = "job"
"""Level of an env given at job submission: local paths are allowed (made absolute)."""
TASK = "task"
"""Level of a task or actor env: only URIs, no local paths."""

BUILTIN_FIELDS: Tuple[str, ...] = (
    "conda", "config", "container", "env_vars", "excludes", "image_uri",
    "java_jars", "pip", "py_executable", "py_modules", "uv", "working_dir",
)  # sorted, as the C++ list

_ROOT = "runtime_env"
_MAX_RENDERED_BYTES = 60
_MAX_SUGGESTION_DISTANCE = 2
_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1
_UINT64_MAX = 2 ** 64 - 1

JsonValue = Any  # None, bool, int, float, str, list, dict


# ---- plugin fields ---------------------------------------------------------------------------

_plugin_lock = threading.Lock()
_plugin_fields: set = set()


def is_builtin_field(name: str) -> bool:
    """True if `name` is one of the built-in top-level fields."""
    return name in BUILTIN_FIELDS


def is_ray_only_field(name: str) -> bool:
    """True if `name` is a field only Ray acts on: worker_process_setup_hook, nsight, rocprof_sys
    and every name starting with "_" (Ray's internal keys: _ray_commit, _inject_current_ray,
    _nsight, ...). Validation checks their types where Ray does and leaves them out of the env,
    with a warning. A built-in or registered plugin field is never one."""
    if is_builtin_field(name) or is_plugin_field(name):
        return False
    return name in ("worker_process_setup_hook", "nsight", "rocprof_sys") or name.startswith("_")


def register_plugin_field(name: str) -> bool:
    """Lets `name` through validation as a plugin field (any non-empty JSON value, kept as is).

    Returns False (and registers nothing) for an empty name or a built-in field."""
    if not name or is_builtin_field(name):
        return False
    with _plugin_lock:
        _plugin_fields.add(name)
    return True


def unregister_plugin_field(name: str) -> None:
    with _plugin_lock:
        _plugin_fields.discard(name)


def is_plugin_field(name: str) -> bool:
    with _plugin_lock:
        return name in _plugin_fields


# ---- small helpers ---------------------------------------------------------------------------


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _is_empty(value: JsonValue) -> bool:
    """null, "", [] and {} mean "absent"."""
    if value is None:
        return True
    if isinstance(value, (str, list, dict)):
        return len(value) == 0
    return False


def _type_name(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _error(message: str) -> ValueError:
    """A ValueError whose message is valid UTF-8 (lone surrogates become U+FFFD)."""
    return ValueError(_utf8(message).decode("utf-8", "replace"))


def _edit_distance(a: bytes, b: bytes) -> int:
    """Optimal string alignment distance (insert, delete, substitute, swap neighbours)."""
    n, m = len(a), len(b)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[n][m]


def _join_and(items: List[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _ends_with_ci(s: str, suffix: str) -> bool:
    data = _utf8(s)
    return len(data) >= len(suffix) and data[len(data) - len(suffix):].lower() == suffix.encode()


def is_uri(s: str) -> bool:
    """True if `s` is a URI ("scheme://..."), False if it is a local path."""
    pos = s.find("://")
    if pos <= 0:
        return False
    if not ("a" <= s[0] <= "z"):
        return False
    return all(("a" <= c <= "z") or ("0" <= c <= "9") or c in "+.-" for c in s[1:pos])


# ---- JSON text: the json module, with what the C++ side refuses refused here too --------------


def _dumps(value: JsonValue) -> str:
    """Canonical JSON text: keys sorted, no whitespace, UTF-8 as is, floats as repr() prints
    them (the C++ canonical_json prints them the same way)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                      allow_nan=False)


def _render(value: JsonValue) -> str:
    """`value` as compact JSON for a message, cut to a readable length."""
    data = _utf8(_dumps(value))
    if len(data) <= _MAX_RENDERED_BYTES:
        return data.decode("utf-8", "replace")
    cut = _MAX_RENDERED_BYTES - 3
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut].decode("utf-8", "replace") + "..."


def _type_error(path: str, expected: str, got: JsonValue) -> ValueError:
    return _error("%s: expected %s, got %s (%s)" % (path, expected, _render(got), _type_name(got)))


def _first_surrogate(value: JsonValue) -> Optional[str]:
    """A string (or key) of `value` that is not Unicode text (it holds a lone surrogate, which is
    what invalid UTF-8 or a lone \\ud800 escape becomes in Python), None if there is none."""
    if isinstance(value, str):
        return value if _SURROGATE.search(value) else None
    if isinstance(value, list):
        for item in value:
            found = _first_surrogate(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        for key in sorted(value, key=_utf8):
            found = _first_surrogate(key)
            if found is None:
                found = _first_surrogate(value[key])
            if found is not None:
                return found
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> None:
    raise _JsonSyntaxError("%s is not JSON (JSON has no NaN or infinity)" % name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _JsonSyntaxError("number %s is out of range" % text)
    return value


def _json_int(text: str) -> Union[int, float]:
    """An integer outside 64 bits is a double, as the C++ parser reads it."""
    value = int(text)
    return value if _INT64_MIN <= value <= _UINT64_MAX else float(text)


class _JsonSyntaxError(ValueError):
    pass


def _parse_json_text(text: Union[str, bytes]) -> JsonValue:
    """JSON text as a value. Errors name the line and column (syntax), or what is wrong."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _error("runtime_env: invalid JSON: not valid UTF-8 (byte 0x%02X at offset %d)"
                         % (e.object[e.start], e.start)) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           parse_int=_json_int)
    except json.JSONDecodeError as e:
        raise _error("runtime_env: invalid JSON at line %d, column %d: %s"
                     % (e.lineno, e.colno, e.msg)) from None
    except _JsonSyntaxError as e:
        raise _error("runtime_env: invalid JSON: %s" % e) from None
    except RecursionError:
        raise _error("runtime_env: invalid JSON: nested too deeply") from None
    bad = _first_surrogate(value)
    if bad is not None:
        raise _error("runtime_env: invalid JSON: %s holds a \\u escape of a lone surrogate "
                     "(not a character)" % bad.encode("ascii", "backslashreplace").decode())
    return value


# ---- YAML: PyYAML's parser, scalars typed by the YAML 1.2 core schema (as the C++ side) --------


class _YamlError(Exception):
    pass


_YAML_NULL = ("null", "Null", "NULL", "~", "")
_YAML_DEC_INT = re.compile(r"[-+]?[0-9]+\Z")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_YAML_PLAIN = "!rtenv/plain"  # the tag our loader gives untagged plain scalars
_yaml_loader = None


def _yaml_where(node: Any) -> str:
    mark = node.start_mark
    return " at line %d, column %d" % (mark.line + 1, mark.column + 1)


def _yaml_plain(node: Any) -> JsonValue:
    s = node.value
    if s in _YAML_NULL:
        return None
    if s in ("true", "True", "TRUE"):
        return True
    if s in ("false", "False", "FALSE"):
        return False
    magnitude = None
    negative = False
    if _YAML_DEC_INT.match(s):
        negative = s[0] == "-"
        magnitude = int(s.lstrip("+-"))
    elif len(s) > 2 and s.startswith("0o") and re.fullmatch(r"[0-7]+", s[2:]):
        magnitude = int(s[2:], 8)
    elif len(s) > 2 and s.startswith("0x") and re.fullmatch(r"[0-9a-fA-F]+", s[2:]):
        magnitude = int(s[2:], 16)
    if magnitude is not None:
        if not negative and magnitude <= _UINT64_MAX:
            return magnitude
        if negative and magnitude <= _INT64_MAX + 1:
            return -magnitude
        raise _YamlError("invalid YAML%s: integer %s is out of range" % (_yaml_where(node), s))
    if _YAML_FLOAT.match(s):
        d = float(s)
        mantissa = re.split("[eE]", s)[0]
        if math.isinf(d) or (d == 0.0 and re.search(r"[1-9]", mantissa)):
            raise _YamlError("invalid YAML%s: number %s is out of range" % (_yaml_where(node), s))
        return d
    if s in (".nan", ".NaN", ".NAN") or s.lstrip("+-") in (".inf", ".Inf", ".INF"):
        raise _YamlError("invalid YAML%s: %s has no JSON equivalent (JSON has no infinity or NaN)"
                         % (_yaml_where(node), s))
    return s


def _yaml_convert(node: Any) -> JsonValue:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":  # quoted, block, or tagged !!str
            return node.value
        return _yaml_plain(node)
    if isinstance(node, yaml.SequenceNode):
        return [_yaml_convert(item) for item in node.value]
    out: Dict[str, Any] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise _YamlError("invalid YAML%s: a mapping key must be a scalar" % _yaml_where(key))
        name = key.value
        if key.tag == _YAML_PLAIN and name in _YAML_NULL:
            name = "null"  # a null key
        if name in out:
            raise _YamlError("invalid YAML%s: duplicate key '%s'" % (_yaml_where(key), name))
        out[name] = _yaml_convert(value)
    return out


def _yaml_to_json(text: str) -> JsonValue:
    """YAML text (its first document) as JSON; plain scalars typed by the YAML 1.2 core schema,
    quoted and block scalars stay strings. Errors raise _YamlError without field prefix.
    Needs PyYAML (installed wherever Ray is): ImportError, saying so, without it."""
    global _yaml_loader
    try:
        import yaml
    except ImportError:
        raise ImportError("reading a runtime_env from YAML needs PyYAML, which is not "
                          "installed: pip install pyyaml") from None
    if _yaml_loader is None:
        class Loader(yaml.SafeLoader):
            """Resolves no YAML 1.1 types: plain scalars get one tag, typed by _yaml_plain."""

        Loader.yaml_implicit_resolvers = {}
        Loader.add_implicit_resolver(_YAML_PLAIN, re.compile(".*", re.S), [None, ""])
        _yaml_loader = Loader
    try:
        root = next(iter(yaml.compose_all(text, Loader=_yaml_loader)), None)
        return None if root is None else _yaml_convert(root)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = "" if mark is None else " at line %d, column %d" % (mark.line + 1, mark.column + 1)
        raise _YamlError("invalid YAML%s: %s" % (where, e.problem or e.context)) from None
    except yaml.YAMLError as e:
        raise _YamlError("invalid YAML: %s" % e) from None
    except RecursionError:
        raise _YamlError("invalid YAML: nested too deeply (or a recursive alias)") from None


# ---- paths -----------------------------------------------------------------------------------


def _normal_absolute(path: str, base: str) -> str:
    """`path` against `base` (absolute), lexically normal, without a trailing separator."""
    if not path.startswith("/"):
        path = base.rstrip("/") + "/" + path
    parts: List[str] = []
    for c in path.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if parts:
                parts.pop()
            continue
        parts.append(c)
    return "/" + "/".join(parts)


def _status(path: str) -> Tuple[Optional[os.stat_result], Optional[int]]:
    """(stat, None), (None, ENOENT) for a missing path, (None, errno) otherwise."""
    try:
        return os.stat(path.split("\0", 1)[0]), None
    except OSError as e:
        code = e.errno if e.errno is not None else _errno.EIO
        return None, (_errno.ENOENT if code in (_errno.ENOENT, _errno.ENOTDIR) else code)


# ---- validation ------------------------------------------------------------------------------


class _PathRule:
    def __init__(self, local_suffixes, local_description, remote_suffixes, remote_description,
                 packaged_file_suffix="", packaged_file_name="", local_uris=False):
        self.local_suffixes = local_suffixes
        self.local_description = local_description
        self.remote_suffixes = remote_suffixes
        self.remote_description = remote_description
        # A file in the store (a wheel, a jar): its one-file package plus "/<name><suffix>".
        self.packaged_file_suffix = packaged_file_suffix
        self.packaged_file_name = packaged_file_name
        # local:// URIs (a directory on the node, used in place) are taken.
        self.local_uris = local_uris


ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")
"""The archives working_dir and py_modules take, local or remote, besides a directory."""

_ARCHIVES = "an archive (.zip, .tar.gz, .tgz, .tar.xz, .tar.bz2 or .tar)"


def archive_suffix(name: str) -> str:
    """The one of ARCHIVE_SUFFIXES `name` ends in, ignoring ASCII case; "" if none."""
    for suffix in ARCHIVE_SUFFIXES:
        if _ends_with_ci(name, suffix):
            return suffix
    return ""


def local_uri_path(s: str) -> Optional[str]:
    """The path of a "local://<absolute path>" URI (a directory already on every node, used in
    place); None for any other string."""
    return s[len("local://"):] if s.startswith("local://") else None


_WORKING_DIR_RULE = _PathRule(ARCHIVE_SUFFIXES, "a directory or " + _ARCHIVES, ARCHIVE_SUFFIXES,
                              _ARCHIVES, local_uris=True)
_PY_MODULE_RULE = _PathRule((".py", ".whl"), "a directory, a .py file or a .whl file",
                            ARCHIVE_SUFFIXES + (".whl",), _ARCHIVES + " or a .whl file", ".whl",
                            "a wheel", local_uris=True)
_JAVA_JAR_RULE = _PathRule((".jar", ".zip"), "a directory, a .jar file or a .zip file",
                           (".jar", ".zip"), "a .jar or .zip file", ".jar", "a jar")


def _malformed_url(scheme: str, uri: str) -> str:
    """Why `uri` (of a fetched scheme) is not a URL setup can fetch; "" if it is one."""
    rest = uri[len(scheme) + 3:]
    m = re.compile(r"[/?#]").search(rest)
    authority = rest if m is None else rest[:m.start()]
    path = rest[len(authority):]
    m = re.compile(r"[?#]").search(path)
    path = path if m is None else path[:m.start()]
    if scheme == "file":
        if authority or len(_utf8(path)) < 2:
            return "a file:// URL names an absolute path (file:///path/to/archive)"
        return ""
    if scheme == "s3":
        if not authority or len(_utf8(path)) < 2:
            return "an s3:// URL names a bucket and a key (s3://bucket/key)"
        return ""
    if not authority or not authority[authority.rfind("@") + 1:]:
        return "an %s:// URL names a host (%s://host/path)" % (scheme, scheme)
    return ""


def _check_uri_scheme(path: str, s: str, rule: _PathRule) -> None:
    """Raises unless `s` (a URI, not rtenv://) is one rtenv takes for `rule`: a well-formed
    http(s)://, s3:// or file:// URL, or (where the rule takes them) a local:// URI of an
    absolute path that is not an archive."""
    scheme = s[:s.find("://")]
    shown = _redact_url_credentials(s)
    if scheme == "local":
        if not rule.local_uris:
            raise _error("%s: %s: local:// URIs (a directory already on every node) are taken "
                         "only by working_dir and py_modules; give a local path or a remote URI"
                         % (path, shown))
        local = local_uri_path(s)
        if not local.startswith("/"):
            raise _error("%s: %s is not a valid URI: a local:// URI names an absolute path on "
                         "the node (local:///path/on/node)" % (path, shown))
        suffix = archive_suffix(local)
        if suffix or _ends_with_ci(local, ".whl"):
            raise _error("%s: %s names a %s file, but a local:// directory is used in place and "
                         "never unpacked; give the directory itself, or the file as a local path "
                         "or remote URL" % (path, shown, suffix or ".whl"))
        return
    if scheme in ("gs", "gcs"):
        raise _error(
            "%s: rtenv does not fetch %s:// URIs (%s); %suse the object's https:// URL "
            "(https://storage.googleapis.com/<bucket>/<object>, signed if private), or "
            "s3://<bucket>/<object> with s3_endpoint set to https://storage.googleapis.com and "
            "the bucket's HMAC keys as AWS credentials"
            % (path, scheme, shown,
               "a gcs:// package lives in one Ray cluster's own storage, so give the local path "
               "it was made from (rtenv packs it); for Google Cloud Storage "
               if scheme == "gcs" else ""))
    if scheme in ("azure", "abfss"):
        raise _error("%s: rtenv does not fetch %s:// URIs (%s); use the blob's https:// URL "
                     "(with a SAS token in its query if it is private)" % (path, scheme, shown))
    if scheme not in ("http", "https", "s3", "file"):
        raise _error("%s: %s is not a valid URI: rtenv takes http://, https://, s3:// and file:// "
                     "URLs%s, rtenv:// package URIs and local paths"
                     % (path, shown, ", local:// directories" if rule.local_uris else ""))
    why = _malformed_url(scheme, s)
    if why:
        raise _error("%s: %s is not a valid URI: %s" % (path, shown, why))


_RTENV_URI = re.compile(r"rtenv://sha256/[0-9a-f]{64}\Z")


_URL_AUTHORITY_END = re.compile(r"[/?# \t\r\n\"'<>,;]")


def _redact_url_credentials(text: str) -> str:
    """`text` with the credentials of every URL hidden, as rtenv's messages show them:
    "https://user:pw@host/x" -> "https://user:****@host/x", "https://token@host" ->
    "https://****@host"."""
    out, i = [], 0
    while True:
        scheme_end = text.find("://", i)
        if scheme_end < 0:
            out.append(text[i:])
            return "".join(out)
        start = scheme_end + 3
        out.append(text[i:start])
        m = _URL_AUTHORITY_END.search(text, start)
        end = m.start() if m else len(text)
        authority = text[start:end]
        at = authority.rfind("@")
        if at < 0:
            out.append(authority)
        else:
            user, colon, _ = authority[:at].partition(":")
            out.append(user + ":****" if colon else "****")
            out.append(authority[at:])
        i = end


def _uri_path_part(uri: str) -> str:
    scheme_end = uri.find("://")
    start = 0 if scheme_end < 0 else scheme_end + 3
    m = re.compile(r"[?#]").search(uri, start)
    return uri if m is None else uri[:m.start()]


# pip's install options rtenv takes (name, alias, takes a value), as src/spec/pip_options.cc.
PIP_INSTALL_OPTIONS: Tuple[Tuple[str, str, bool], ...] = (
    ("--index-url", "-i", True),
    ("--extra-index-url", "", True),
    ("--no-index", "", False),
    ("--find-links", "-f", True),
    ("--trusted-host", "", True),
    ("--pre", "", False),
    ("--no-deps", "", False),
    ("--no-binary", "", True),
    ("--only-binary", "", True),
    ("--no-build-isolation", "", False),
    ("--no-cache-dir", "", False),
    ("--disable-pip-version-check", "", False),
    ("--no-input", "", False),
    ("--no-color", "", False),
    ("--quiet", "-q", False),
    ("--verbose", "-v", False),
    ("--progress-bar", "", True),
    ("--root-user-action", "", True),
    ("--no-warn-script-location", "", False),
    ("--no-warn-conflicts", "", False),
    ("--timeout", "", True),
    ("--retries", "", True),
    ("--upgrade", "-U", False),
    ("--force-reinstall", "", False),
    ("--ignore-installed", "-I", False),
)


def _check_pip_install_options(path: str, options: List[str]) -> None:
    i = 0
    while i < len(options):
        item = options[i]
        where = "%s[%d]" % (path, i)
        if not item.startswith("-"):
            raise _error("%s: expected a pip option (starting with '-'), got %s"
                         % (where, _render(item)))
        name, inline = item, False
        if item.startswith("--") and "=" in item:
            name, inline = item.split("=", 1)[0], True
        found = None
        for option in PIP_INSTALL_OPTIONS:
            if name == option[0] or (option[1] and name == option[1]):
                found = option
                break
        if found is None:
            raise _error("%s: %s is not a pip option rtenv takes: it installs with uv or pip, and "
                         "takes the options both can honour (%s); give the others' effect another "
                         "way (docs/runtime_env.md §7e)"
                         % (where, _render(item), ", ".join(o[0] for o in PIP_INSTALL_OPTIONS)))
        if found[2] and not inline:
            if i + 1 >= len(options):
                raise _error("%s: %s needs a value: give it as the next item, or as %s=VALUE"
                             % (where, found[0], found[0]))
            i += 1
        elif not found[2] and inline:
            raise _error("%s: %s takes no value, got %s" % (where, found[0], _render(item)))
        i += 1


def check_ray_only_field(path: str, name: str, value: JsonValue) -> None:
    """Ray's own type checks of a field only Ray acts on, where it makes any (ValueError)."""
    if _is_empty(value):
        return
    if name in ("worker_process_setup_hook", "_ray_commit", "_ray_release"):
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
    if name == "_inject_current_ray" and not isinstance(value, bool):
        raise _type_error(path, "a boolean", value)
    if name in ("nsight", "_nsight", "rocprof_sys", "_rocprof_sys"):
        if not isinstance(value, (str, dict)):
            raise _type_error(path, "a string or a dict", value)


_WORKING_DIR_VARIABLES = ("${RAY_RUNTIME_ENV_CREATE_WORKING_DIR}", "${RTENV_WORKING_DIR}")


class _Validator:
    def __init__(self, level: str, base_dir: Optional[Union[str, os.PathLike]]):
        if level not in (JOB, TASK):
            raise ValueError("level must be %r or %r, got %r" % (JOB, TASK, level))
        self.level = level
        cwd = os.getcwd()
        base = os.fspath(base_dir) if base_dir is not None else cwd
        self.base_dir = _normal_absolute(base, cwd)
        self.warnings: List[str] = []
        self.working_dir_given: Optional[str] = None
        self.working_dir_local: Optional[str] = None

    def run(self, value: JsonValue) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise _type_error(_ROOT, "a dict", value)
        bad = _first_surrogate(value)
        if bad is not None:
            raise _error("%s: a string is not valid UTF-8 (%s)" % (_ROOT, _render(bad)))
        # A null field is absent, whatever its name; a field only Ray acts on is checked and set
        # aside (it is no part of the env rtenv prepares).
        fields: Dict[str, Any] = {}
        ray_only: List[str] = []
        for name in sorted(value, key=_utf8):
            item = value[name]
            if item is None:
                continue
            if is_ray_only_field(name):
                check_ray_only_field(_ROOT + "." + name, name, item)
                if not _is_empty(item):
                    ray_only.append(name)
                continue
            fields[name] = item
        names = sorted(fields, key=_utf8)
        self.check_known_fields(names)
        self.check_combinations(fields, names)
        self.note_working_dir(fields)
        out: Dict[str, Any] = {}
        for name in names:
            item = fields[name]
            if _is_empty(item):
                continue
            normalized = self.field_value(name, _ROOT + "." + name, item)
            if not _is_empty(normalized):
                out[name] = normalized
        if ray_only:
            one = len(ray_only) == 1
            self.warnings.insert(0, "%s: %s %s only under Ray (rtenv.ray.runtime_env passes %s to "
                                 "Ray beside the rtenv env); %s no part of this env and %s "
                                 "ignored here"
                                 % (_ROOT, _join_and(ray_only), "acts" if one else "act",
                                    "it" if one else "them", "it is" if one else "they are",
                                    "is" if one else "are"))
        return out

    def note_working_dir(self, fields: Dict[str, Any]) -> None:
        s = fields.get("working_dir")
        if not isinstance(s, str) or not s:
            return
        self.working_dir_given = s
        if is_uri(s) or self.level == TASK:
            return
        local = _normal_absolute(s, self.base_dir)
        st, err = _status(local)
        if err is None and _stat.S_ISDIR(st.st_mode):
            self.working_dir_local = local

    def expand_working_dir(self, path: str, packages: List[str], depth: int = 0) -> List[str]:
        """`packages` with ${RAY_RUNTIME_ENV_CREATE_WORKING_DIR} and ${RTENV_WORKING_DIR}
        replaced by the working_dir's absolute path; a -r/--requirement line naming a file
        there is replaced by the file's lines."""
        out: List[str] = []
        for line in packages:
            if not any(var in line for var in _WORKING_DIR_VARIABLES):
                out.append(line)
                continue
            if self.working_dir_local is None:
                if self.working_dir_given is None:
                    raise _error("%s: the line %s names the working_dir, and the env has no "
                                 "working_dir: give working_dir, or name the file by its own path"
                                 % (path, _render(line)))
                # An archive or a URI: read from its package once it is packed.
                out.append(line)
                continue
            for var in _WORKING_DIR_VARIABLES:
                line = line.replace(var, self.working_dir_local)
            file = ""
            for flag in ("--requirement", "-r"):
                if not line.startswith(flag):
                    continue
                rest = line[len(flag):]
                if flag == "--requirement" and rest.startswith("="):
                    rest = rest[1:]
                stripped = rest.lstrip(" \t")
                if not stripped:
                    break
                if (stripped == rest and flag == "--requirement"
                        and not line.startswith("--requirement=")):
                    break
                file = stripped
                break
            if not file:
                out.append(line)
                continue
            if depth > 8:
                raise _error("%s: requirements files include each other more than 8 deep" % path)
            out.extend(self.expand_working_dir(path, self.requirements(path, file), depth + 1))
        return out

    @staticmethod
    def check_known_fields(names: List[str]) -> None:
        for name in names:
            if is_builtin_field(name) or is_plugin_field(name):
                continue
            best, best_distance = "", _MAX_SUGGESTION_DISTANCE + 1
            with _plugin_lock:
                candidates = list(BUILTIN_FIELDS) + sorted(_plugin_fields)
            for known in candidates:
                d = _edit_distance(_utf8(name), known.encode())
                if d < best_distance:
                    best, best_distance = known, d
            if best and best_distance < len(_utf8(name)):
                raise _error("%s.%s: unknown field; did you mean '%s'?" % (_ROOT, name, best))
            raise _error("%s.%s: unknown field; known fields are %s"
                         % (_ROOT, name, ", ".join(BUILTIN_FIELDS)))

    @staticmethod
    def check_combinations(value: Dict[str, Any], names: List[str]) -> None:
        def present(name: str) -> bool:
            return name in value and not _is_empty(value[name])

        installers = [n for n in ("pip", "uv", "conda") if present(n)]
        if len(installers) > 1:
            raise _error("%s: at most one of pip, uv and conda may be given, got %s"
                         % (_ROOT, _join_and(installers)))
        image_uri, container = present("image_uri"), present("container")
        if image_uri and container:
            raise _error("%s: image_uri and container cannot both be given (container is the "
                         "older form of image_uri)" % _ROOT)
        if image_uri or container:
            others = [n for n in names if not _is_empty(value[n]) and not _may_accompany_image(n)]
            if others:
                raise _error("%s: %s may only be combined with config, env_vars, working_dir, "
                             "py_modules and excludes, not %s"
                             % (_ROOT, "image_uri" if image_uri else "container",
                                _join_and(others)))

    def field_value(self, name: str, path: str, v: JsonValue) -> JsonValue:
        if name == "working_dir":
            return self.path_entry(path, v, _WORKING_DIR_RULE)
        if name == "py_modules":
            return self.path_list(path, v, _PY_MODULE_RULE)
        if name == "java_jars":
            return self.path_list(path, v, _JAVA_JAR_RULE)
        if name == "excludes":
            return self.string_list(path, v)
        if name in ("pip", "uv"):
            return self.python_packages(path, v, name == "pip")
        if name == "conda":
            return self.conda(path, v)
        if name == "env_vars":
            return self.env_vars(path, v)
        if name in ("py_executable", "image_uri"):
            return self.string_value(path, v)
        if name == "container":
            return self.container(path, v)
        if name == "config":
            return self.config(path, v)
        return copy.deepcopy(v)  # a registered plugin field: passed through as is

    @staticmethod
    def string_value(path: str, v: JsonValue) -> str:
        if not isinstance(v, str):
            raise _type_error(path, "a string", v)
        return v

    @staticmethod
    def boolean_value(path: str, v: JsonValue) -> bool:
        if not isinstance(v, bool):
            raise _type_error(path, "a boolean", v)
        return v

    @staticmethod
    def string_list(path: str, v: JsonValue) -> List[str]:
        if not isinstance(v, list):
            raise _type_error(path, "a list", v)
        for i, item in enumerate(v):
            if not isinstance(item, str):
                raise _type_error("%s[%d]" % (path, i), "a string", item)
        return list(v)

    def path_list(self, path: str, v: JsonValue, rule: _PathRule) -> List[str]:
        if not isinstance(v, list):
            raise _type_error(path, "a list", v)
        return [self.path_entry("%s[%d]" % (path, i), item, rule) for i, item in enumerate(v)]

    def path_entry(self, path: str, v: JsonValue, rule: _PathRule) -> str:
        if not isinstance(v, str):
            raise _type_error(path, "a string", v)
        s = v
        if not s:
            raise _error("%s: empty path" % path)
        if is_uri(s):
            if s.startswith("rtenv://"):
                suffix = rule.packaged_file_suffix.encode()
                data = _utf8(s)
                slash = data.find(b"/", len(b"rtenv://sha256/"))
                packaged = (bool(suffix) and slash >= 0 and data.endswith(suffix)
                            and data.find(b"/", slash + 1) < 0
                            and len(data) > slash + 1 + len(suffix)
                            and _RTENV_URI.match(data[:slash].decode("utf-8", "replace"))
                            is not None)
                if not _RTENV_URI.match(s) and not packaged:
                    raise _error(
                        "%s: invalid rtenv package URI %s (expected rtenv://sha256/<64 lowercase "
                        "hex digits>%s)" % (path, s, ", or that followed by /<name>%s for %s"
                                            % (rule.packaged_file_suffix, rule.packaged_file_name)
                                            if suffix else ""))
                return s
            _check_uri_scheme(path, s, rule)
            if local_uri_path(s) is not None:
                return s
            if not any(_ends_with_ci(_uri_path_part(s), suf) for suf in rule.remote_suffixes):
                raise _error("%s: remote URI %s must name %s"
                             % (path, _redact_url_credentials(s), rule.remote_description))
            return s
        if self.level == TASK:
            raise _error("%s: local path %s is not allowed in a task or actor env: task and actor "
                         "envs take only URIs (local paths are packaged at the job level)"
                         % (path, s))
        local = _normal_absolute(s, self.base_dir)
        st, err = _status(local)
        if err == _errno.ENOENT:
            raise _error("%s: local path %s does not exist" % (path, local))
        if err is not None:
            raise _error("%s: local path %s cannot be accessed: %s"
                         % (path, local, os.strerror(err)))
        ok = _stat.S_ISDIR(st.st_mode) or (
            _stat.S_ISREG(st.st_mode)
            and any(_ends_with_ci(local, suf) for suf in rule.local_suffixes))
        if not ok:
            raise _error("%s: local path %s is not %s" % (path, local, rule.local_description))
        return local

    def read_user_file(self, path: str, what: str, name: str) -> bytes:
        file = _normal_absolute(name, self.base_dir)
        st, err = _status(file)
        if err == _errno.ENOENT:
            raise _error("%s: %s %s does not exist" % (path, what, file))
        if err is None and not _stat.S_ISREG(st.st_mode):
            raise _error("%s: %s %s is not a file" % (path, what, file))
        try:
            fd = os.open(file.split("\0", 1)[0], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise _error("%s: cannot read %s: cannot open %s: %s"
                         % (path, what, file, os.strerror(e.errno or _errno.EIO))) from None
        try:
            chunks = []
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError as e:
                    raise _error("%s: cannot read %s: cannot read %s: %s"
                                 % (path, what, file, os.strerror(e.errno or _errno.EIO))) from None
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def requirements(self, path: str, name: str) -> List[str]:
        """One requirement a line; blank lines and # comments are skipped."""
        if not name:
            return []
        text = self.read_user_file(path, "requirements file", name)
        out = []
        for line in text.split(b"\n"):
            line = line.strip(b" \t\r\f\v")
            if line and not line.startswith(b"#"):
                out.append(line.decode("utf-8", "replace"))
        return out

    def python_packages(self, path: str, v: JsonValue, pip: bool) -> Optional[Dict[str, Any]]:
        check_key = "pip_check" if pip else "uv_check"
        version_key = "pip_version" if pip else "uv_version"
        options_key = "pip_install_options" if pip else "uv_pip_install_options"
        out: Dict[str, Any] = {}
        if isinstance(v, list):
            packages = self.string_list(path, v)
        elif isinstance(v, str):
            packages = self.requirements(path, v)
        elif isinstance(v, dict):
            allowed = ["packages", check_key, version_key, "locked", "system_site_packages",
                       "python", options_key]
            allowed.sort()
            for key in sorted(v, key=_utf8):
                if key not in allowed:
                    raise _error("%s.%s: unknown key; allowed keys are %s"
                                 % (path, key, ", ".join(allowed)))
            if "packages" not in v:
                raise _error("%s: missing required key 'packages'" % path)
            given = v["packages"]
            if isinstance(given, list):
                packages = self.string_list(path + ".packages", given)
            elif isinstance(given, str):
                packages = self.requirements(path + ".packages", given)
            else:
                raise _type_error(path + ".packages", "a list or a string", given)
            if check_key in v and self.boolean_value(path + "." + check_key, v[check_key]):
                out[check_key] = True
            if version_key in v:
                version = self.string_value(path + "." + version_key, v[version_key])
                if version:
                    out[version_key] = version
            if options_key in v:
                options_path = path + "." + options_key
                options = self.string_list(options_path, v[options_key])
                if pip:
                    _check_pip_install_options(options_path, options)
                # Part of the env's identity: they can change what is installed (another index).
                if options:
                    out[options_key] = options
            if "locked" in v and self.boolean_value(path + ".locked", v["locked"]):
                out["locked"] = True
            if "python" in v:
                python = self.string_value(path + ".python", v["python"])
                if python:
                    out["python"] = python
            if "system_site_packages" in v:
                if not self.boolean_value(path + ".system_site_packages",
                                          v["system_site_packages"]):
                    out["system_site_packages"] = False
        else:
            raise _type_error(path, "a list, a string or a dict", v)
        packages = self.expand_working_dir(path, packages)
        if not packages:  # nothing to install: no Python env
            return None
        out["packages"] = packages
        return out

    def conda(self, path: str, v: JsonValue) -> JsonValue:
        if isinstance(v, dict):
            return copy.deepcopy(v)
        if not isinstance(v, str):
            raise _type_error(path, "a dict or a string", v)
        if not _ends_with_ci(v, ".yml") and not _ends_with_ci(v, ".yaml"):
            if not v.startswith("/"):
                return v  # an env name
            # An existing env's directory: one that is not there is refused now, as Ray does.
            st, err = _status(v)
            if err == _errno.ENOENT:
                raise _error("%s: conda env directory %s does not exist; give an existing env's "
                             "directory, an env name, or an environment.yml" % (path, v))
            if err is None and not _stat.S_ISDIR(st.st_mode):
                raise _error("%s: conda env directory %s is not a directory" % (path, v))
            return v
        text = self.read_user_file(path, "conda file", v)
        file = _normal_absolute(v, self.base_dir)
        try:
            parsed = _yaml_to_json(text.decode("utf-8", "replace"))
        except _YamlError as e:
            raise _error("%s: conda file %s: %s" % (path, file, e.args[0])) from None
        if parsed is None:
            raise _error("%s: conda file %s holds no YAML document (it is empty or only "
                         "comments); it must hold the environment's dict (channels, dependencies)"
                         % (path, file))
        if not isinstance(parsed, dict):
            raise _error("%s: conda file %s must contain a dict, got %s (%s)"
                         % (path, file, _render(parsed), _type_name(parsed)))
        return parsed

    @staticmethod
    def env_vars(path: str, v: JsonValue) -> Dict[str, str]:
        if not isinstance(v, dict):
            raise _type_error(path, "a dict", v)
        for name in sorted(v, key=_utf8):
            value = v[name]
            if not name or "=" in name or "\0" in name:
                raise _error("%s: invalid variable name %s: names must be non-empty and contain "
                             "no '=' or NUL" % (path, _render(name)))
            if not isinstance(value, str):
                raise _type_error(path + "." + name, "a string", value)
            if "\0" in value:
                raise _error("%s.%s: the value contains a NUL character" % (path, name))
        return dict(v)

    def container(self, path: str, v: JsonValue) -> Dict[str, Any]:
        if not isinstance(v, dict):
            raise _type_error(path, "a dict", v)
        for key in sorted(v, key=_utf8):
            if key not in ("image", "run_options", "worker_path"):
                raise _error("%s.%s: unknown key; allowed keys are image, run_options, worker_path"
                             % (path, key))
        if "worker_path" in v:
            if self.string_value(path + ".worker_path", v["worker_path"]):
                self.warnings.append("%s.worker_path: deprecated in Ray and ignored: the worker "
                                     "starts as the image has it" % path)
        if "image" not in v:
            raise _error("%s: missing required key 'image'" % path)
        image = self.string_value(path + ".image", v["image"])
        if not image:
            raise _error("%s.image: must not be empty" % path)
        out: Dict[str, Any] = {"image": image}
        if "run_options" in v:
            options = self.string_list(path + ".run_options", v["run_options"])
            if options:
                out["run_options"] = options
        return out

    def config(self, path: str, v: JsonValue) -> Dict[str, Any]:
        if not isinstance(v, dict):
            raise _type_error(path, "a dict", v)
        out: Dict[str, Any] = {}
        for key in sorted(v, key=_utf8):
            item = v[key]
            key_path = path + "." + key
            if key == "setup_timeout_seconds":
                if isinstance(item, bool) or not isinstance(item, int):
                    raise _type_error(key_path, "an integer", item)
                if item > _INT64_MAX:
                    raise _error("%s: %d is out of range" % (key_path, item))
                if item <= 0 and item != -1:
                    raise _error("%s: must be > 0 or -1 (no timeout), got %d" % (key_path, item))
                out[key] = item
            elif key == "eager_install":
                out[key] = self.boolean_value(key_path, item)
            elif key == "log_files":
                # Ray's dashboard shows these files; rtenv keeps them for it (config is no part
                # of the env's identity).
                if item is None:
                    continue
                files = self.string_list(key_path, item)
                if files:
                    out[key] = files
            else:
                raise _error("%s: unknown key; allowed keys are eager_install, log_files, "
                             "setup_timeout_seconds" % key_path)
        return out


def _to_json(value: Any, path: str = _ROOT) -> JsonValue:
    """A Python value as the JSON value C++ would hold (tuples are lists; ints outside 64 bits
    become floats, as a JSON parser reads them)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _UINT64_MAX:
            return int(value)
        return float(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _error("%s: %r is not a JSON value (JSON has no NaN or infinity)"
                         % (path, value))
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_to_json(item, "%s[%d]" % (path, i)) for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _error("%s: a dict key must be a string, got %r" % (path, key))
            out[key] = _to_json(item, path + "." + key)
        return out
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise _error("%s: %s is not a JSON value" % (path, type(value).__name__))


# ---- normalization of single fields (with_field / merge) ------------------------------------


def _normalize_field_shape(name: str, value: JsonValue) -> JsonValue:
    if _is_empty(value):
        return None
    value = copy.deepcopy(value)
    if name in ("pip", "uv") and isinstance(value, (list, dict)):
        if isinstance(value, list):
            value = {"packages": value}
        pip = name == "pip"
        check_key = "pip_check" if pip else "uv_check"
        version_key = "pip_version" if pip else "uv_version"
        if value.get(check_key, True) is False:
            del value[check_key]
        if version_key in value and _is_empty(value[version_key]):
            del value[version_key]
        for options_key in ("uv_pip_install_options", "pip_install_options"):
            if options_key in value and _is_empty(value[options_key]):
                del value[options_key]
        if value.get("locked", True) is False:
            del value["locked"]
        if value.get("system_site_packages", False) is True:
            del value["system_site_packages"]
        if value.get("packages", None) == [] and isinstance(value.get("packages"), list):
            return None
    elif name == "container" and isinstance(value, dict):
        if "run_options" in value and _is_empty(value["run_options"]):
            del value["run_options"]
        value.pop("worker_path", None)
    return value


# ---- the typed model -------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonPackages:
    """`pip` or `uv`, normalized (the typed view of RuntimeEnv.pip / RuntimeEnv.uv)."""

    installer: str  # "pip" or "uv"
    packages: List[str]
    check: bool = False  # pip_check / uv_check
    installer_version: Optional[str] = None  # pip_version / uv_version
    # pip_install_options (pip) or uv_pip_install_options (uv)
    install_options: List[str] = field(default_factory=list)
    locked: bool = False
    system_site_packages: bool = True
    python: Optional[str] = None


_FIELD_NAMES = ("working_dir", "py_modules", "excludes", "pip", "uv", "conda", "env_vars",
                "py_executable", "java_jars", "image_uri", "container", "config")


@dataclass(frozen=True, eq=False)
class RuntimeEnv:
    """A validated, normalized runtime_env.

    Constructor keywords are the fields of the spec; they are validated as a job-level env
    whose relative paths resolve against the current directory (use from_dict for other
    levels or base directories). After construction the attributes hold the normalized values:
    absent/empty fields are None, local paths are absolute, `pip`/`uv` are in their dict form,
    `plugins` holds registered plugin fields. Invalid values raise ValueError.
    """

    working_dir: Optional[str] = None
    py_modules: Optional[List[str]] = None
    excludes: Optional[List[str]] = None
    pip: Union[List[str], str, Dict[str, Any], None] = None
    uv: Union[List[str], str, Dict[str, Any], None] = None
    conda: Union[Dict[str, Any], str, None] = None
    env_vars: Optional[Dict[str, str]] = None
    py_executable: Optional[str] = None
    java_jars: Optional[List[str]] = None
    image_uri: Optional[str] = None
    container: Optional[Dict[str, Any]] = None
    config: Optional[Dict[str, Any]] = None
    plugins: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        raw: Dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                raw[name] = value
        for name, value in (self.plugins or {}).items():
            if name in raw:
                raise ValueError("%s.%s: given both as a field and as a plugin" % (_ROOT, name))
            raw[name] = value
        validator = _Validator(JOB, None)
        self._set_normalized(validator.run(_to_json(raw)), validator.warnings)

    # -- construction ----------------------------------------------------------------------

    def _set_normalized(self, normalized: Dict[str, Any],
                        warnings: Iterable[str] = ()) -> None:
        object.__setattr__(self, "_json", normalized)
        object.__setattr__(self, "_warnings", tuple(warnings))
        for name in _FIELD_NAMES:
            object.__setattr__(self, name, copy.deepcopy(normalized.get(name)))
        plugins = {k: copy.deepcopy(v) for k, v in normalized.items() if k not in BUILTIN_FIELDS}
        object.__setattr__(self, "plugins", plugins or None)

    @classmethod
    def _from_normalized(cls, normalized: Dict[str, Any],
                         warnings: Iterable[str] = ()) -> "RuntimeEnv":
        env = object.__new__(cls)
        env._set_normalized(normalized, warnings)
        return env

    @classmethod
    def _validated(cls, value: JsonValue, level: str,
                   base_dir: Optional[Union[str, os.PathLike]]) -> "RuntimeEnv":
        validator = _Validator(level, base_dir)
        normalized = validator.run(value)
        return cls._from_normalized(normalized, validator.warnings)

    @classmethod
    def from_dict(cls, value: Any, *, level: str = JOB,
                  base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Validates a runtime_env dict (a parsed JSON value).

        level: JOB (local paths allowed, made absolute) or TASK (URIs only).
        base_dir: where relative local paths resolve (default: the current directory)."""
        return cls._validated(_to_json(value), level, base_dir)

    @classmethod
    def from_json(cls, text: Union[str, bytes], *, level: str = JOB,
                  base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Parses JSON text (an object); syntax errors name the line and column."""
        return cls._validated(_parse_json_text(text), level, base_dir)

    @classmethod
    def from_yaml(cls, text: str, *, level: str = JOB,
                  base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Parses YAML text (a mapping; the common block and flow forms)."""
        try:
            value = _yaml_to_json(text)
        except _YamlError as e:
            raise _error("%s: %s" % (_ROOT, e.args[0])) from None
        return cls._validated(value, level, base_dir)

    @classmethod
    def load(cls, arg: str, *, level: str = JOB,
             base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Inline JSON (starting with '{' or '['), or a path to a .json, .yaml or .yml file."""
        stripped = arg.lstrip(" \t\r\n")
        if not stripped:
            raise ValueError("runtime_env: empty argument; expected inline JSON or a path to a "
                             ".json, .yaml or .yml file")
        if stripped[0] in "{[":
            return cls.from_json(arg, level=level, base_dir=base_dir)
        ext = os.path.splitext(os.path.basename(arg))[1].lower()
        if arg.endswith("/") or os.path.basename(arg) in (".", ".."):
            ext = ""
        if ext not in (".json", ".yaml", ".yml"):
            raise _error("runtime_env: cannot load %s: expected inline JSON (starting with '{') or "
                         "a path to a .json, .yaml or .yml file" % arg)
        cwd = os.getcwd()
        base = _normal_absolute(os.fspath(base_dir) if base_dir is not None else cwd, cwd)
        path = _normal_absolute(arg, base)
        st, err = _status(path)
        if err == _errno.ENOENT:
            raise _error("runtime_env: file %s does not exist" % path)
        if err is None and _stat.S_ISDIR(st.st_mode):
            raise _error("runtime_env: %s is a directory, not a file" % path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise _error("runtime_env: cannot open %s: %s"
                         % (path, os.strerror(e.errno or _errno.EIO))) from None
        if ext == ".json":
            return cls.from_json(data, level=level, base_dir=base_dir)
        return cls.from_yaml(data.decode("utf-8", "replace"), level=level, base_dir=base_dir)

    # -- views -----------------------------------------------------------------------------

    @property
    def warnings(self) -> List[str]:
        """What validation noticed that the user should hear about, one line each (fields only
        Ray acts on, deprecated keys that are ignored); with_field keeps them."""
        return list(self._warnings)

    def to_dict(self) -> Dict[str, Any]:
        """The normalized model as a dict (a copy)."""
        return copy.deepcopy(self._json)

    def canonical(self) -> str:
        """Keys sorted, no whitespace, UTF-8 as is: the same text as the C++ canonical()."""
        return _dumps(self._json)

    def env_id(self) -> str:
        """SHA-256 (hex) of the canonical form without `config`: the C++ EnvId."""
        content = {k: v for k, v in self._json.items() if k != "config"}
        return hashlib.sha256(_utf8(_dumps(content))).hexdigest()

    def empty(self) -> bool:
        return not self._json

    def fields(self) -> List[str]:
        """Names of the present top-level fields, sorted."""
        return sorted(self._json, key=_utf8)

    def plugin_fields(self) -> List[str]:
        return [name for name in self.fields() if not is_builtin_field(name)]

    @property
    def setup_timeout_seconds(self) -> int:
        """config.setup_timeout_seconds (-1: no timeout; default 600)."""
        return (self.config or {}).get("setup_timeout_seconds", 600)

    @property
    def eager_install(self) -> bool:
        return (self.config or {}).get("eager_install", True)

    def python_packages(self) -> Optional[PythonPackages]:
        """`pip` or `uv` as a PythonPackages, or None."""
        for installer in ("pip", "uv"):
            value = self._json.get(installer)
            if not isinstance(value, dict):
                continue
            pip = installer == "pip"
            return PythonPackages(
                installer=installer,
                packages=[p for p in value.get("packages", []) if isinstance(p, str)],
                check=value.get("pip_check" if pip else "uv_check") is True,
                installer_version=value.get("pip_version" if pip else "uv_version"),
                install_options=list(value.get("pip_install_options" if pip
                                               else "uv_pip_install_options", [])),
                locked=value.get("locked") is True,
                system_site_packages=value.get("system_site_packages") is not False,
                python=value.get("python"))
        return None

    def with_field(self, name: str, value: Any) -> "RuntimeEnv":
        """The same env with one field replaced (structurally normalized, not re-validated);
        an empty value removes the field."""
        normalized = dict(self._json)
        shaped = _normalize_field_shape(name, _to_json(value))
        if shaped is None:
            normalized.pop(name, None)
        else:
            normalized[name] = shaped
        return RuntimeEnv._from_normalized(normalized, self._warnings)

    def merge(self, child: "RuntimeEnv") -> "RuntimeEnv":
        """This env as the parent (job) of `child` (task/actor): see merge()."""
        return merge(self, child)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RuntimeEnv):
            return NotImplemented
        return self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    def __repr__(self) -> str:
        return "RuntimeEnv(%s)" % self.canonical()


def _is_python_env_field(name: str) -> bool:
    return name in ("pip", "uv", "conda")


def _is_image_field(name: str) -> bool:
    return name in ("image_uri", "container")


def _may_accompany_image(name: str) -> bool:
    return _is_image_field(name) or name in ("config", "env_vars", "working_dir", "py_modules",
                                              "excludes")


def merge(parent: RuntimeEnv, child: RuntimeEnv) -> RuntimeEnv:
    """Job/task merge: an empty child inherits the parent whole; otherwise the child's top-level
    fields replace the parent's, except env_vars, which merge per variable with the child
    winning. pip/uv/conda are one slot, image_uri/container are one slot, and an image drops
    (or is dropped by) the fields it cannot go with."""
    if child.empty():
        return parent
    c = child._json
    child_python = any(_is_python_env_field(n) for n in c)
    child_image = any(_is_image_field(n) for n in c)
    child_other = any(not _may_accompany_image(n) for n in c)
    out = parent
    for name in parent.fields():
        drop = ((child_python and _is_python_env_field(name))
                or (child_image and not _may_accompany_image(name))
                or (child_image and _is_image_field(name))
                or (child_other and _is_image_field(name)))
        if drop:
            out = out.with_field(name, None)
    for name in sorted(c, key=_utf8):
        value = c[name]
        if name == "env_vars" and isinstance(value, dict):
            variables = out._json.get("env_vars", {})
            variables = dict(variables) if isinstance(variables, dict) else {}
            variables.update(value)
            out = out.with_field(name, variables)
        else:
            out = out.with_field(name, value)
    return out
