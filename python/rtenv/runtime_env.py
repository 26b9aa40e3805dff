"""The runtime_env model in Python: validation, canonical form, env id and job/task merge.

Pure Python (standard library only). It follows the C++ model in src/spec/ rule for rule, so
that for the same input both sides give the same canonical JSON text, byte for byte, the same
env id (SHA-256 of the canonical form without `config`) and the same error messages.

    env = RuntimeEnv(pip=["requests"], env_vars={"MODE": "fast"})
    env = RuntimeEnv.from_dict({"working_dir": "s3://bucket/project.zip"})
    env = RuntimeEnv.from_json('{"uv": ["torch"]}')
    env.canonical()   # '{"uv":{"packages":["torch"]}}'
    env.env_id()      # 64 lowercase hex digits
    merge(job_env, task_env)

Every invalid input raises ValueError with the message the C++ side gives.
"""

from __future__ import annotations

import copy
import dataclasses
import errno as _errno
import hashlib
import math
import os
import re
import stat as _stat
import struct
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
    "is_uri",
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


def _valid_utf8(data: bytes) -> str:
    """Each byte that is not part of a well-formed UTF-8 sequence becomes U+FFFD."""
    out = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        length, lo, hi = 0, 0x80, 0xBF
        if b < 0x80:
            length = 1
        elif 0xC2 <= b <= 0xDF:
            length = 2
        elif 0xE0 <= b <= 0xEF:
            length = 3
            if b == 0xE0:
                lo = 0xA0
            if b == 0xED:
                hi = 0x9F
        elif 0xF0 <= b <= 0xF4:
            length = 4
            if b == 0xF0:
                lo = 0x90
            if b == 0xF4:
                hi = 0x8F
        ok = length > 0 and i + length <= n
        k = 1
        while ok and k < length:
            c = data[i + k]
            ok = (lo <= c <= hi) if k == 1 else (0x80 <= c <= 0xBF)
            k += 1
        if ok:
            out.append(data[i:i + length].decode("utf-8"))
            i += length
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def _error(message: Union[str, bytes]) -> ValueError:
    """A ValueError whose message is valid UTF-8 (as the C++ side sanitizes its messages)."""
    data = message if isinstance(message, bytes) else _utf8(message)
    return ValueError(_valid_utf8(data))


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


# ---- JSON serialization (nlohmann::json dump style) -------------------------------------------

_ESCAPES = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r",
            0x22: b'\\"', 0x5C: b"\\\\"}


def _dump_string(s: str, out: List[bytes]) -> None:
    # Invalid UTF-8 (only lone surrogates can get here) is replaced, as dump() with
    # error_handler_t::replace does: one U+FFFD per maximal ill-formed part.
    text = _utf8(s).decode("utf-8", "replace")
    buf = bytearray(b'"')
    for ch in text:
        c = ord(ch)
        if c < 0x20 or c == 0x22 or c == 0x5C:
            esc = _ESCAPES.get(c)
            buf += esc if esc is not None else b"\\u%04x" % c
        else:
            buf += ch.encode("utf-8")
    buf += b'"'
    out.append(bytes(buf))


_M64 = (1 << 64) - 1


def _cached_power(k: int) -> Tuple[int, int]:
    """10^k as f * 2^e with a 64-bit f (top bit set), rounded to nearest."""
    num, den = (10 ** k, 1) if k >= 0 else (1, 10 ** -k)
    e = num.bit_length() - den.bit_length() - 64
    while True:
        n, d = (num, den << e) if e >= 0 else (num << -e, den)
        f, r = divmod(n, d)
        if f >= 1 << 64:
            e += 1
        elif f < 1 << 63:
            e -= 1
        else:
            break
    if 2 * r >= d:
        f += 1
    if f == 1 << 64:
        f, e = 1 << 63, e + 1
    return f, e


_CACHED_POWERS = [(_cached_power(k) + (k,)) for k in range(-300, 325, 8)]


def _diy_mul(xf: int, yf: int) -> int:
    """The upper 64 bits of xf * yf, rounded (ties up) as Grisu's multiplication does."""
    u_lo, u_hi, v_lo, v_hi = xf & 0xFFFFFFFF, xf >> 32, yf & 0xFFFFFFFF, yf >> 32
    p0, p1, p2, p3 = u_lo * v_lo, u_lo * v_hi, u_hi * v_lo, u_hi * v_hi
    q = (p0 >> 32) + (p1 & 0xFFFFFFFF) + (p2 & 0xFFFFFFFF) + (1 << 31)
    return (p3 + (p2 >> 32) + (p1 >> 32) + (q >> 32)) & _M64


def _grisu2(value: float) -> Tuple[str, int]:
    """Digits and decimal exponent (value = digits * 10^exponent) of a finite positive double,
    by the Grisu2 algorithm as nlohmann::json runs it (not always the shortest digits)."""
    bits = struct.unpack("<Q", struct.pack("<d", value))[0]
    biased, fraction = bits >> 52, bits & ((1 << 52) - 1)
    if biased == 0:
        vf, ve = fraction, 1 - 1075
    else:
        vf, ve = fraction + (1 << 52), biased - 1075
    lower_closer = fraction == 0 and biased > 1
    plus_f, plus_e = 2 * vf + 1, ve - 1
    minus_f, minus_e = (4 * vf - 1, ve - 2) if lower_closer else (2 * vf - 1, ve - 1)
    shift = 64 - plus_f.bit_length()
    plus_f, plus_e = plus_f << shift, plus_e - shift
    minus_f, minus_e = minus_f << (minus_e - plus_e), plus_e
    shift = 64 - vf.bit_length()
    w_f, w_e = vf << shift, ve - shift
    # A cached power c = 10^-k with -60 <= e_c + e + 64 <= -32.
    f = -60 - plus_e - 1
    k = (f * 78913) // (1 << 18) if f * 78913 >= 0 else -((-f * 78913) // (1 << 18))
    k += 1 if f > 0 else 0
    c_f, c_e, c_k = _CACHED_POWERS[(300 + k + 7) // 8]
    w = _diy_mul(w_f, c_f)
    m_minus = _diy_mul(minus_f, c_f) + 1
    m_plus = _diy_mul(plus_f, c_f) - 1
    e = plus_e + c_e + 64
    decimal_exponent = -c_k
    # Digit generation.
    delta, dist = m_plus - m_minus, m_plus - w
    one_e = -e
    one_f = 1 << one_e
    p1, p2 = m_plus >> one_e, m_plus & (one_f - 1)
    digits: List[int] = []
    n = len(str(p1)) if p1 else 1
    pow10 = 10 ** (n - 1)

    def round_last(rest: int, ten_k: int) -> None:
        while (rest < dist and delta - rest >= ten_k
               and (rest + ten_k < dist or dist - rest > rest + ten_k - dist)):
            digits[-1] -= 1
            rest += ten_k

    while n > 0:
        d, p1 = divmod(p1, pow10)
        digits.append(d)
        n -= 1
        rest = (p1 << one_e) + p2
        if rest <= delta:
            decimal_exponent += n
            round_last(rest, pow10 << one_e)
            return "".join(map(str, digits)), decimal_exponent
        pow10 //= 10
    m = 0
    while True:
        p2 = (p2 * 10) & _M64
        digits.append(p2 >> one_e)
        p2 &= one_f - 1
        m += 1
        delta = (delta * 10) & _M64
        dist = (dist * 10) & _M64
        if p2 <= delta:
            break
    decimal_exponent -= m
    round_last(p2, one_f)
    return "".join(map(str, digits)), decimal_exponent


def _format_float(x: float) -> str:
    """A double as nlohmann::json prints it: Grisu2 digits, printf("%g")-like layout."""
    if math.isnan(x) or math.isinf(x):
        return "null"
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    digits, exponent = _grisu2(abs(x))
    k = len(digits)
    n = k + exponent  # value = 0.d1d2...dk * 10^n
    min_exp, max_exp = -4, 15
    if k <= n <= max_exp:
        body = digits + "0" * (n - k) + ".0"
    elif 0 < n <= max_exp:
        body = digits[:n] + "." + digits[n:]
    elif min_exp < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mant = digits if k == 1 else digits[0] + "." + digits[1:]
        body = mant + "e" + ("-" if e < 0 else "+") + ("%02d" % abs(e))
    return sign + body


def _dump(value: JsonValue, out: List[bytes]) -> None:
    if value is None:
        out.append(b"null")
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif isinstance(value, int):
        out.append(str(value).encode())
    elif isinstance(value, float):
        out.append(_format_float(value).encode())
    elif isinstance(value, str):
        _dump_string(value, out)
    elif isinstance(value, list):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _dump(item, out)
        out.append(b"]")
    elif isinstance(value, dict):
        out.append(b"{")
        for i, key in enumerate(sorted(value, key=_utf8)):
            if i:
                out.append(b",")
            _dump_string(key, out)
            out.append(b":")
            _dump(value[key], out)
        out.append(b"}")
    else:  # not reachable for values that went through _to_json
        raise TypeError("not a JSON value: %r" % (value,))


def _dumps(value: JsonValue) -> str:
    out: List[bytes] = []
    _dump(value, out)
    return b"".join(out).decode("utf-8")


def _render(value: JsonValue) -> str:
    """`value` as compact JSON for a message, cut to a readable length."""
    data = _utf8(_dumps(value))
    if len(data) <= _MAX_RENDERED_BYTES:
        return data.decode("utf-8")
    cut = _MAX_RENDERED_BYTES - 3
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut].decode("utf-8") + "..."


def _type_error(path: str, expected: str, got: JsonValue) -> ValueError:
    return _error("%s: expected %s, got %s (%s)" % (path, expected, _render(got), _type_name(got)))


def _first_invalid_utf8(value: JsonValue) -> Optional[str]:
    """The reason nlohmann's dump() would give for the first string that is not valid UTF-8."""
    if isinstance(value, str):
        return _utf8_problem(_utf8(value))
    if isinstance(value, list):
        for item in value:
            problem = _first_invalid_utf8(item)
            if problem:
                return problem
    if isinstance(value, dict):
        for key in sorted(value, key=_utf8):
            problem = _utf8_problem(_utf8(key)) or _first_invalid_utf8(value[key])
            if problem:
                return problem
    return None


def _utf8_problem(data: bytes) -> Optional[str]:
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        if 0xC2 <= b <= 0xDF:
            ranges = [(0x80, 0xBF)]
        elif b == 0xE0:
            ranges = [(0xA0, 0xBF), (0x80, 0xBF)]
        elif b == 0xED:
            ranges = [(0x80, 0x9F), (0x80, 0xBF)]
        elif 0xE1 <= b <= 0xEF:
            ranges = [(0x80, 0xBF), (0x80, 0xBF)]
        elif b == 0xF0:
            ranges = [(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]
        elif b == 0xF4:
            ranges = [(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]
        elif 0xF1 <= b <= 0xF3:
            ranges = [(0x80, 0xBF)] * 3
        else:
            return "invalid UTF-8 byte at index %d: 0x%02X" % (i, b)
        for k, (lo, hi) in enumerate(ranges, 1):
            if i + k >= n:
                return "incomplete UTF-8 string; last byte: 0x%02X" % data[n - 1]
            if not lo <= data[i + k] <= hi:
                return "invalid UTF-8 byte at index %d: 0x%02X" % (i + k, data[i + k])
        i += len(ranges) + 1
    return None


# ---- JSON text parsing (nlohmann::json's lexer and parser, for the same values and errors) ----

_T_UNINIT, _T_TRUE, _T_FALSE, _T_NULL, _T_STRING, _T_UNSIGNED, _T_INTEGER, _T_FLOAT = range(8)
_T_BEGIN_ARRAY, _T_BEGIN_OBJECT, _T_END_ARRAY, _T_END_OBJECT = range(8, 12)
_T_NAME_SEP, _T_VALUE_SEP, _T_ERROR, _T_END, _T_LITERAL_OR_VALUE = range(12, 17)

_TOKEN_NAMES = {
    _T_UNINIT: "<uninitialized>", _T_TRUE: "true literal", _T_FALSE: "false literal",
    _T_NULL: "null literal", _T_STRING: "string literal", _T_UNSIGNED: "number literal",
    _T_INTEGER: "number literal", _T_FLOAT: "number literal", _T_BEGIN_ARRAY: "'['",
    _T_BEGIN_OBJECT: "'{'", _T_END_ARRAY: "']'", _T_END_OBJECT: "'}'", _T_NAME_SEP: "':'",
    _T_VALUE_SEP: "','", _T_ERROR: "<parse error>", _T_END: "end of input",
    _T_LITERAL_OR_VALUE: "'[', '{', or a literal",
}

_EOF = -1

_UTF8_RANGES = {}
for _b in range(0xC2, 0xE0):
    _UTF8_RANGES[_b] = ((0x80, 0xBF),)
_UTF8_RANGES[0xE0] = ((0xA0, 0xBF), (0x80, 0xBF))
for _b in list(range(0xE1, 0xED)) + [0xEE, 0xEF]:
    _UTF8_RANGES[_b] = ((0x80, 0xBF), (0x80, 0xBF))
_UTF8_RANGES[0xED] = ((0x80, 0x9F), (0x80, 0xBF))
_UTF8_RANGES[0xF0] = ((0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF))
for _b in range(0xF1, 0xF4):
    _UTF8_RANGES[_b] = ((0x80, 0xBF),) * 3
_UTF8_RANGES[0xF4] = ((0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF))

_CONTROL_NAMES = ["NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT",
                  "FF", "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB",
                  "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"]
_CONTROL_SHORT = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}


class _JsonSyntaxError(Exception):
    def __init__(self, message: bytes):
        super().__init__(message)
        self.message = message


class _Lexer:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.current = _EOF
        self.next_unget = False
        self.chars_total = 0
        self.chars_line = 0
        self.lines = 0
        self.token = bytearray()  # token_string: what was read for the current token
        self.buffer = bytearray()  # token_buffer: the decoded string or number text
        self.error = ""
        self.value: Any = None

    def get(self) -> int:
        self.chars_total += 1
        self.chars_line += 1
        if self.next_unget:
            self.next_unget = False
        elif self.pos < len(self.data):
            self.current = self.data[self.pos]
            self.pos += 1
        else:
            self.current = _EOF
        if self.current != _EOF:
            self.token.append(self.current)
        if self.current == 0x0A:
            self.lines += 1
            self.chars_line = 0
        return self.current

    def unget(self) -> None:
        self.next_unget = True
        self.chars_total -= 1
        if self.chars_line == 0:
            if self.lines > 0:
                self.lines -= 1
        else:
            self.chars_line -= 1
        if self.current != _EOF:
            self.token.pop()

    def reset(self) -> None:
        self.buffer = bytearray()
        self.token = bytearray()
        if self.current != _EOF:
            self.token.append(self.current & 0xFF)

    def token_string(self) -> bytes:
        out = bytearray()
        for c in self.token:
            if c <= 0x1F:
                out += b"<U+%04X>" % c
            else:
                out.append(c)
        return bytes(out)

    def scan(self) -> int:
        if self.chars_total == 0:
            if self.get() == 0xEF:
                if not (self.get() == 0xBB and self.get() == 0xBF):
                    self.error = "invalid BOM; must be 0xEF 0xBB 0xBF if given"
                    return _T_ERROR
            else:
                self.unget()
        self.get()
        while self.current in (0x20, 0x09, 0x0A, 0x0D):
            self.get()
        c = self.current
        simple = {0x5B: _T_BEGIN_ARRAY, 0x5D: _T_END_ARRAY, 0x7B: _T_BEGIN_OBJECT,
                  0x7D: _T_END_OBJECT, 0x3A: _T_NAME_SEP, 0x2C: _T_VALUE_SEP}
        if c in simple:
            return simple[c]
        if c == 0x74:
            return self.scan_literal(b"true", _T_TRUE)
        if c == 0x66:
            return self.scan_literal(b"false", _T_FALSE)
        if c == 0x6E:
            return self.scan_literal(b"null", _T_NULL)
        if c == 0x22:
            return self.scan_string()
        if c == 0x2D or 0x30 <= c <= 0x39:
            return self.scan_number()
        if c == 0 or c == _EOF:
            return _T_END
        self.error = "invalid literal"
        return _T_ERROR

    def scan_literal(self, text: bytes, kind: int) -> int:
        for expected in text[1:]:
            if self.get() != expected:
                self.error = "invalid literal"
                return _T_ERROR
        return kind

    def get_codepoint(self) -> int:
        codepoint = 0
        for factor in (12, 8, 4, 0):
            c = self.get()
            if 0x30 <= c <= 0x39:
                codepoint += (c - 0x30) << factor
            elif 0x41 <= c <= 0x46:
                codepoint += (c - 0x37) << factor
            elif 0x61 <= c <= 0x66:
                codepoint += (c - 0x57) << factor
            else:
                return -1
        return codepoint

    def scan_string(self) -> int:
        self.reset()
        simple_escapes = {0x22: 0x22, 0x5C: 0x5C, 0x2F: 0x2F, 0x62: 0x08, 0x66: 0x0C,
                          0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09}
        while True:
            c = self.get()
            if c == _EOF:
                self.error = "invalid string: missing closing quote"
                return _T_ERROR
            if c == 0x22:
                self.value = self.buffer.decode("utf-8")
                return _T_STRING
            if c == 0x5C:
                e = self.get()
                if e in simple_escapes:
                    self.buffer.append(simple_escapes[e])
                    continue
                if e != 0x75:
                    self.error = "invalid string: forbidden character after backslash"
                    return _T_ERROR
                cp1 = self.get_codepoint()
                cp = cp1
                if cp1 == -1:
                    self.error = "invalid string: '\\u' must be followed by 4 hex digits"
                    return _T_ERROR
                if 0xD800 <= cp1 <= 0xDBFF:
                    if self.get() == 0x5C and self.get() == 0x75:
                        cp2 = self.get_codepoint()
                        if cp2 == -1:
                            self.error = "invalid string: '\\u' must be followed by 4 hex digits"
                            return _T_ERROR
                        if 0xDC00 <= cp2 <= 0xDFFF:
                            cp = (cp1 << 10) + cp2 - 0x35FDC00
                        else:
                            self.error = ("invalid string: surrogate U+D800..U+DBFF must be "
                                          "followed by U+DC00..U+DFFF")
                            return _T_ERROR
                    else:
                        self.error = ("invalid string: surrogate U+D800..U+DBFF must be "
                                      "followed by U+DC00..U+DFFF")
                        return _T_ERROR
                elif 0xDC00 <= cp1 <= 0xDFFF:
                    self.error = "invalid string: surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF"
                    return _T_ERROR
                self.buffer += chr(cp).encode("utf-8")
                continue
            if c < 0x20:
                hint = _CONTROL_SHORT.get(c)
                self.error = "invalid string: control character U+%04X (%s) must be escaped to \\u%04X%s" % (
                    c, _CONTROL_NAMES[c], c, (" or " + hint) if hint else "")
                return _T_ERROR
            if c < 0x80:
                self.buffer.append(c)
                continue
            ranges = _UTF8_RANGES.get(c)
            if ranges is None:
                self.error = "invalid string: ill-formed UTF-8 byte"
                return _T_ERROR
            self.buffer.append(c)
            for lo, hi in ranges:
                n = self.get()
                if lo <= n <= hi:
                    self.buffer.append(n)
                else:
                    self.error = "invalid string: ill-formed UTF-8 byte"
                    return _T_ERROR

    def scan_number(self) -> int:
        self.reset()
        kind = _T_UNSIGNED
        digits = range(0x30, 0x3A)
        c = self.current
        self.buffer.append(c)
        state = "minus" if c == 0x2D else ("zero" if c == 0x30 else "any1")
        while True:
            if state == "minus":
                kind = _T_INTEGER
                c = self.get()
                if c == 0x30:
                    state = "zero"
                elif c in digits:
                    state = "any1"
                else:
                    self.error = "invalid number; expected digit after '-'"
                    return _T_ERROR
                self.buffer.append(c)
            elif state in ("zero", "any1"):
                c = self.get()
                if state == "any1" and c in digits:
                    self.buffer.append(c)
                elif c == 0x2E:
                    self.buffer.append(c)
                    state = "decimal1"
                elif c in (0x65, 0x45):
                    self.buffer.append(c)
                    state = "exponent"
                else:
                    break
            elif state == "decimal1":
                kind = _T_FLOAT
                c = self.get()
                if c not in digits:
                    self.error = "invalid number; expected digit after '.'"
                    return _T_ERROR
                self.buffer.append(c)
                state = "decimal2"
            elif state == "decimal2":
                c = self.get()
                if c in digits:
                    self.buffer.append(c)
                elif c in (0x65, 0x45):
                    self.buffer.append(c)
                    state = "exponent"
                else:
                    break
            elif state == "exponent":
                kind = _T_FLOAT
                c = self.get()
                if c in (0x2B, 0x2D):
                    state = "sign"
                elif c in digits:
                    state = "any2"
                else:
                    self.error = "invalid number; expected '+', '-', or digit after exponent"
                    return _T_ERROR
                self.buffer.append(c)
            elif state == "sign":
                c = self.get()
                if c not in digits:
                    self.error = "invalid number; expected digit after exponent sign"
                    return _T_ERROR
                self.buffer.append(c)
                state = "any2"
            else:  # any2
                c = self.get()
                if c in digits:
                    self.buffer.append(c)
                else:
                    break
        self.unget()
        text = self.buffer.decode("ascii")
        if kind == _T_UNSIGNED:
            v = int(text)
            if v <= _UINT64_MAX:
                self.value = v
                return _T_UNSIGNED
        elif kind == _T_INTEGER:
            v = int(text)
            if v >= _INT64_MIN:
                self.value = v
                return _T_INTEGER
        self.value = float(text)
        return _T_FLOAT


class _JsonParser:
    def __init__(self, data: bytes):
        self.lexer = _Lexer(data)
        self.last = _T_UNINIT

    def get_token(self) -> int:
        self.last = self.lexer.scan()
        return self.last

    def fail(self, expected: int, context: str) -> _JsonSyntaxError:
        lx = self.lexer
        msg = b"syntax error while parsing " + context.encode() + b" - "
        if self.last == _T_ERROR:
            msg += lx.error.encode() + b"; last read: '" + lx.token_string() + b"'"
        else:
            msg += b"unexpected " + _TOKEN_NAMES[self.last].encode()
        if expected != _T_UNINIT:
            msg += b"; expected " + _TOKEN_NAMES[expected].encode()
        where = b"at line %d, column %d: " % (lx.lines + 1, lx.chars_line)
        return _JsonSyntaxError(b"runtime_env: invalid JSON " + where + msg)

    def parse(self) -> JsonValue:
        self.get_token()
        value = self.parse_value()
        if self.get_token() != _T_END:
            raise self.fail(_T_END, "value")
        return value

    def parse_value(self) -> JsonValue:
        # Iterative, as nlohmann's parser: deep nesting never hits Python's recursion limit.
        stack: List[Tuple[Any, Optional[str]]] = []  # (container, pending key)
        while True:
            t = self.last
            if t == _T_BEGIN_OBJECT:
                if self.get_token() == _T_END_OBJECT:
                    value: Any = {}
                else:
                    if self.last != _T_STRING:
                        raise self.fail(_T_STRING, "object key")
                    key = self.lexer.value
                    if self.get_token() != _T_NAME_SEP:
                        raise self.fail(_T_NAME_SEP, "object separator")
                    stack.append(({}, key))
                    self.get_token()
                    continue
            elif t == _T_BEGIN_ARRAY:
                if self.get_token() == _T_END_ARRAY:
                    value = []
                else:
                    stack.append(([], None))
                    continue
            elif t == _T_FLOAT:
                value = self.lexer.value
                if math.isinf(value):
                    raise _JsonSyntaxError(b"runtime_env: invalid JSON: number overflow parsing '"
                                           + self.lexer.token_string() + b"'")
            elif t in (_T_STRING, _T_UNSIGNED, _T_INTEGER):
                value = self.lexer.value
            elif t == _T_TRUE:
                value = True
            elif t == _T_FALSE:
                value = False
            elif t == _T_NULL:
                value = None
            elif t == _T_ERROR:
                raise self.fail(_T_UNINIT, "value")
            else:
                raise self.fail(_T_LITERAL_OR_VALUE, "value")
            # A value is complete: put it into its container, close finished containers.
            while True:
                if not stack:
                    return value
                container, key = stack[-1]
                if isinstance(container, list):
                    container.append(value)
                    if self.get_token() == _T_VALUE_SEP:
                        self.get_token()
                        break
                    if self.last == _T_END_ARRAY:
                        stack.pop()
                        value = container
                        continue
                    raise self.fail(_T_END_ARRAY, "array")
                container[key] = value
                if self.get_token() == _T_VALUE_SEP:
                    if self.get_token() != _T_STRING:
                        raise self.fail(_T_STRING, "object key")
                    stack[-1] = (container, self.lexer.value)
                    if self.get_token() != _T_NAME_SEP:
                        raise self.fail(_T_NAME_SEP, "object separator")
                    self.get_token()
                    break
                if self.last == _T_END_OBJECT:
                    stack.pop()
                    value = container
                    continue
                raise self.fail(_T_END_OBJECT, "object")


def _parse_json_text(text: Union[str, bytes]) -> JsonValue:
    data = text if isinstance(text, bytes) else _utf8(text)
    try:
        return _JsonParser(data).parse()
    except _JsonSyntaxError as e:
        raise _error(e.message) from None


# ---- YAML (the subset conda environment files and seed files use) ---------------------------


class _YamlError(Exception):
    pass


class _Scalar:
    __slots__ = ("text", "plain", "line", "column", "str_tag")

    def __init__(self, text: str, plain: bool, line: int, column: int, str_tag: bool = False):
        self.text, self.plain, self.line, self.column = text, plain, line, column
        self.str_tag = str_tag


_DQ_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
               "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
               "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029"}


class _Yaml:
    """A small block/flow YAML reader: mappings, sequences, plain, quoted and block scalars."""

    def __init__(self, text: str):
        self.lines: List[Tuple[int, int, str]] = []  # (line number, indent, content)
        raw = text.split("\n")
        i = 0
        self.raw = raw
        started = False
        while i < len(raw):
            line = raw[i].rstrip("\r")
            stripped = line.strip()
            if stripped.startswith("%") and not started:
                i += 1
                continue
            if stripped == "---" or line.startswith("--- "):
                if started:
                    break
                started = True
                rest = line[3:].strip()
                if rest and not rest.startswith("#"):
                    self.lines.append((i, 4, rest))
                i += 1
                continue
            if stripped == "...":
                break
            if "\t" in line[:len(line) - len(line.lstrip())]:
                raise _YamlError(i, 0, "tabs are not allowed as indentation")
            content = self._strip_comment(line)
            if content.strip():
                started = True
                self.lines.append((i, len(content) - len(content.lstrip(" ")), content.strip()))
            i += 1
        self.i = 0

    @staticmethod
    def _strip_comment(line: str) -> str:
        quote = None
        for k, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = None
                elif ch == "\\" and quote == '"':
                    continue
            elif ch in "\"'" and (k == 0 or line[k - 1] in " \t[{,:-?"):
                quote = ch
            elif ch == "#" and (k == 0 or line[k - 1] in " \t"):
                return line[:k].rstrip()
        return line

    def parse(self) -> Any:
        if not self.lines:
            return None
        node = self.block(self.lines[0][1])
        if self.i < len(self.lines):
            ln, ind, _ = self.lines[self.i]
            raise _YamlError(ln, ind, "unexpected content")
        return node

    # A block node starting at the current line, at exactly `indent`.
    def block(self, indent: int) -> Any:
        ln, ind, content = self.lines[self.i]
        if content == "-" or content.startswith("- "):
            return self.sequence(ind)
        if self._key_split(content) is not None:
            return self.mapping(ind)
        self.i += 1
        return self.inline(content, ln, ind, indent)

    def sequence(self, indent: int) -> list:
        out = []
        while self.i < len(self.lines):
            ln, ind, content = self.lines[self.i]
            if ind != indent or not (content == "-" or content.startswith("- ")):
                if ind > indent:
                    raise _YamlError(ln, ind, "bad indentation of a sequence entry")
                break
            rest = content[1:].lstrip(" ")
            if not rest:
                self.i += 1
                if self.i < len(self.lines) and self.lines[self.i][1] > indent:
                    out.append(self.block(self.lines[self.i][1]))
                else:
                    out.append(None)
                continue
            col = ind + (len(content) - len(rest))
            # The rest of the line is a node at column `col` (a compact nested block).
            self.lines[self.i] = (ln, col, rest)
            out.append(self.block(col))
        return out

    def _key_split(self, content: str) -> Optional[Tuple[str, str, bool]]:
        """(key, rest, quoted) if `content` is a mapping entry."""
        if content[0] in "\"'":
            end = self._quoted_end(content)
            if end is None:
                return None
            after = content[end:]
            if after.startswith(":") and (len(after) == 1 or after[1] == " "):
                return content[:end], after[1:].strip(), True
            return None
        if content[0] in "[{":
            return None
        m = re.search(r":( |$)", content)
        if not m:
            return None
        return content[:m.start()].rstrip(), content[m.end():].strip(), False

    @staticmethod
    def _quoted_end(s: str) -> Optional[int]:
        q = s[0]
        k = 1
        while k < len(s):
            if s[k] == "\\" and q == '"':
                k += 2
                continue
            if s[k] == q:
                if q == "'" and k + 1 < len(s) and s[k + 1] == "'":
                    k += 2
                    continue
                return k + 1
            k += 1
        return None

    def mapping(self, indent: int) -> list:
        out: List[Tuple[_Scalar, Any]] = []
        while self.i < len(self.lines):
            ln, ind, content = self.lines[self.i]
            if ind != indent:
                if ind > indent:
                    raise _YamlError(ln, ind, "bad indentation of a mapping entry")
                break
            split = self._key_split(content)
            if split is None:
                raise _YamlError(ln, ind, "illegal map value")
            key_text, rest, quoted = split
            key = self.scalar(key_text, ln, ind) if quoted else _Scalar(key_text, True, ln, ind)
            self.i += 1
            if rest:
                col = ind + content.index(rest, len(key_text)) if rest in content else ind
                value = self.inline(rest, ln, col, indent)
            elif self.i < len(self.lines) and (
                    self.lines[self.i][1] > indent or
                    (self.lines[self.i][1] == indent and (self.lines[self.i][2] == "-" or
                                                          self.lines[self.i][2].startswith("- ")))):
                value = self.block(self.lines[self.i][1])
            else:
                value = _Scalar("", True, ln, ind)
            out.append((key, value))
        return _Mapping(out)

    def inline(self, text: str, ln: int, col: int, parent_indent: int) -> Any:
        """A node that starts within a line: flow collection, quoted, block or plain scalar."""
        if text.startswith(("&", "*", "!")) and not text.startswith(("!!str ", "!!str")):
            raise _YamlError(ln, col, "anchors, aliases and tags are not supported here")
        str_tag = False
        if text.startswith("!!str"):
            str_tag = True
            text = text[5:].lstrip()
            if not text:
                return _Scalar("", True, ln, col, True)
        if text[0] in "[{":
            full = text
            while not self._flow_complete(full) and self.i < len(self.lines):
                full += " " + self.lines[self.i][2]
                self.i += 1
            node, end = self.flow(full, 0, ln, col)
            if full[end:].strip():
                raise _YamlError(ln, col + end, "unexpected content after a flow collection")
            return node
        if text[0] in "|>":
            return self.block_scalar(text, ln, col, parent_indent)
        if text[0] in "\"'":
            full = text
            while self._quoted_end(full) is None and self.i < len(self.lines):
                full += "\n" + self.lines[self.i][2]
                self.i += 1
            end = self._quoted_end(full)
            if end is None:
                raise _YamlError(ln, col, "end of quoted scalar not found")
            if full[end:].strip():
                raise _YamlError(ln, col + end, "unexpected content after a quoted scalar")
            node = self.scalar(full, ln, col)
            node.str_tag = node.str_tag or str_tag
            return node
        # A plain scalar may continue on more-indented lines.
        parts = [text]
        while (self.i < len(self.lines) and self.lines[self.i][1] > parent_indent
               and self._key_split(self.lines[self.i][2]) is None
               and not self.lines[self.i][2].startswith("- ")):
            parts.append(self.lines[self.i][2])
            self.i += 1
        return _Scalar(" ".join(parts), not str_tag, ln, col, str_tag)

    @staticmethod
    def _flow_complete(s: str) -> bool:
        depth, quote, k = 0, None, 0
        while k < len(s):
            ch = s[k]
            if quote:
                if ch == "\\" and quote == '"':
                    k += 1
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch in "[{":
                depth += 1
            elif ch in "]}":
                depth -= 1
            k += 1
        return depth <= 0

    def flow(self, s: str, k: int, ln: int, col: int) -> Tuple[Any, int]:
        def skip(k: int) -> int:
            while k < len(s) and s[k] in " \t\n":
                k += 1
            return k

        k = skip(k)
        if k >= len(s):
            raise _YamlError(ln, col + k, "end of flow collection not found")
        ch = s[k]
        if ch in "[{":
            close = "]" if ch == "[" else "}"
            items: list = []
            k = skip(k + 1)
            while True:
                if k >= len(s):
                    raise _YamlError(ln, col + k, "end of flow collection not found")
                if s[k] == close:
                    k += 1
                    break
                if ch == "[":
                    item, k = self.flow(s, k, ln, col)
                    items.append(item)
                else:
                    key, k = self.flow(s, k, ln, col)
                    k = skip(k)
                    if k < len(s) and s[k] == ":":
                        value, k = self.flow(s, k + 1, ln, col)
                    else:
                        value = _Scalar("", True, ln, col + k)
                    items.append((key, value))
                k = skip(k)
                if k < len(s) and s[k] == ",":
                    k = skip(k + 1)
                elif k < len(s) and s[k] == close:
                    continue
                else:
                    raise _YamlError(ln, col + k, "end of flow collection not found")
            return (items if ch == "[" else _Mapping(items)), k
        if ch in "\"'":
            end = self._quoted_end(s[k:])
            if end is None:
                raise _YamlError(ln, col + k, "end of quoted scalar not found")
            return self.scalar(s[k:k + end], ln, col + k), k + end
        start = k
        while k < len(s) and s[k] not in ",[]{}" and not (
                s[k] == ":" and (k + 1 >= len(s) or s[k + 1] in " ,[]{}")):
            k += 1
        return _Scalar(s[start:k].strip(), True, ln, col + start), k

    def block_scalar(self, header: str, ln: int, col: int, parent_indent: int) -> _Scalar:
        style = header[0]
        chomp = "clip"
        for ch in header[1:].strip():
            if ch == "-":
                chomp = "strip"
            elif ch == "+":
                chomp = "keep"
        # Block scalars keep their lines as written: read them from the raw text.
        body: List[str] = []
        start_line = ln + 1
        indent = None
        j = start_line
        while j < len(self.raw):
            line = self.raw[j].rstrip("\r")
            if line.strip() == "":
                body.append("")
                j += 1
                continue
            ind = len(line) - len(line.lstrip(" "))
            if indent is None:
                if ind <= parent_indent:
                    break
                indent = ind
            if ind < indent:
                break
            body.append(line[indent:])
            j += 1
        while self.i < len(self.lines) and self.lines[self.i][0] < j:
            self.i += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if style == "|":
            text = "\n".join(body)
        else:
            text = ""
            for idx, line in enumerate(body):
                if idx == 0:
                    text = line
                elif line == "" or line.startswith(" ") or body[idx - 1].startswith(" "):
                    text += "\n" + line
                elif body[idx - 1] == "":
                    text += line
                else:
                    text += " " + line
        if body:
            if chomp == "clip":
                text += "\n"
            elif chomp == "keep":
                text += "\n" * (1 + trailing)
        return _Scalar(text, False, ln, col)

    @staticmethod
    def scalar(text: str, ln: int, col: int) -> _Scalar:
        if text[0] == "'":
            inner = text[1:-1].replace("''", "'")
            return _Scalar(_Yaml._fold(inner), False, ln, col)
        inner = text[1:-1]
        out = []
        k = 0
        while k < len(inner):
            ch = inner[k]
            if ch == "\\" and k + 1 < len(inner):
                e = inner[k + 1]
                if e in _DQ_ESCAPES:
                    out.append(_DQ_ESCAPES[e])
                    k += 2
                    continue
                width = {"x": 2, "u": 4, "U": 8}.get(e)
                if width and re.fullmatch(r"[0-9a-fA-F]{%d}" % width, inner[k + 2:k + 2 + width]):
                    out.append(chr(int(inner[k + 2:k + 2 + width], 16)))
                    k += 2 + width
                    continue
                if e == "\n":
                    k += 2
                    while k < len(inner) and inner[k] in " \t":
                        k += 1
                    continue
                raise _YamlError(ln, col + k, "unknown escape character: " + e)
            out.append(ch)
            k += 1
        return _Scalar(_Yaml._fold("".join(out)), False, ln, col)

    @staticmethod
    def _fold(s: str) -> str:
        if "\n" not in s:
            return s
        lines = [p.strip(" \t") for p in s.split("\n")]
        out = lines[0]
        blank = 0
        for line in lines[1:]:
            if line == "":
                blank += 1
                continue
            out += ("\n" * blank) if blank else " "
            out += line
            blank = 0
        return out


class _Mapping(list):
    """A YAML mapping as (key, value) pairs in document order."""


_YAML_DEC_INT = re.compile(r"[-+]?[0-9]+\Z")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")


def _yaml_where(node: _Scalar) -> str:
    return " at line %d, column %d" % (node.line + 1, node.column + 1)


def _yaml_plain(node: _Scalar) -> JsonValue:
    s = node.text
    if s in ("null", "Null", "NULL", "~", ""):
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
        if math.isinf(d) or (d == 0.0 and re.search(r"[1-9]", s.split("e")[0].split("E")[0])):
            raise _YamlError("invalid YAML%s: number %s is out of range" % (_yaml_where(node), s))
        return d
    bare = s.lstrip("+-") if s[:1] in "+-" else s
    if s in (".nan", ".NaN", ".NAN") or bare in (".inf", ".Inf", ".INF"):
        raise _YamlError("invalid YAML%s: %s has no JSON equivalent (JSON has no infinity or NaN)"
                         % (_yaml_where(node), s))
    return s


def _yaml_convert(node: Any) -> JsonValue:
    if node is None:
        return None
    if isinstance(node, _Scalar):
        if node.str_tag or not node.plain:
            return node.text
        return _yaml_plain(node)
    if isinstance(node, _Mapping):
        out: Dict[str, Any] = {}
        for key, value in node:
            if not isinstance(key, _Scalar):
                where = ""
                raise _YamlError("invalid YAML%s: a mapping key must be a scalar" % where)
            name = key.text
            if key.plain and not key.str_tag and name in ("null", "Null", "NULL", "~", ""):
                name = "null"  # a null key
            if name in out:
                raise _YamlError("invalid YAML%s: duplicate key '%s'" % (_yaml_where(key), name))
            out[name] = _yaml_convert(value)
        return out
    return [_yaml_convert(item) for item in node]


def _yaml_to_json(text: str) -> JsonValue:
    """YAML text (its first document) as JSON; plain scalars typed by the YAML 1.2 core schema.

    Errors raise _YamlError with a message without field prefix."""
    try:
        tree = _Yaml(text).parse()
    except _YamlError as e:
        if len(e.args) == 3:
            ln, col, msg = e.args
            raise _YamlError("invalid YAML at line %d, column %d: %s" % (ln + 1, col + 1, msg))
        raise
    return _yaml_convert(tree)


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
    def __init__(self, local_suffixes, local_description, remote_suffixes, remote_description):
        self.local_suffixes = local_suffixes
        self.local_description = local_description
        self.remote_suffixes = remote_suffixes
        self.remote_description = remote_description


_WORKING_DIR_RULE = _PathRule((".zip",), "a directory or a .zip file", (".zip",), "a .zip file")
_PY_MODULE_RULE = _PathRule((".py", ".whl"), "a directory, a .py file or a .whl file",
                            (".zip", ".whl"), "a .zip or .whl file")
_JAVA_JAR_RULE = _PathRule((".jar", ".zip"), "a directory, a .jar file or a .zip file",
                           (".jar", ".zip"), "a .jar or .zip file")

_RTENV_URI = re.compile(r"rtenv://sha256/[0-9a-f]{64}\Z")


def _uri_path_part(uri: str) -> str:
    scheme_end = uri.find("://")
    start = 0 if scheme_end < 0 else scheme_end + 3
    m = re.compile(r"[?#]").search(uri, start)
    return uri if m is None else uri[:m.start()]


class _Validator:
    def __init__(self, level: str, base_dir: Optional[Union[str, os.PathLike]]):
        if level not in (JOB, TASK):
            raise ValueError("level must be %r or %r, got %r" % (JOB, TASK, level))
        self.level = level
        cwd = os.getcwd()
        base = os.fspath(base_dir) if base_dir is not None else cwd
        self.base_dir = _normal_absolute(base, cwd)

    def run(self, value: JsonValue) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise _type_error(_ROOT, "a dict", value)
        problem = _first_invalid_utf8(value)
        if problem:
            raise _error("%s: a string is not valid UTF-8 (%s)" % (_ROOT, problem))
        names = sorted(value, key=_utf8)
        self.check_known_fields(names)
        self.check_combinations(value, names)
        out: Dict[str, Any] = {}
        for name in names:
            item = value[name]
            if _is_empty(item):
                continue
            normalized = self.field_value(name, _ROOT + "." + name, item)
            if not _is_empty(normalized):
                out[name] = normalized
        return out

    @staticmethod
    def check_known_fields(names: List[str]) -> None:
        for name in names:
            if is_builtin_field(name) or is_plugin_field(name):
                continue
            best, best_distance = "", _MAX_SUGGESTION_DISTANCE + 1
            for known in BUILTIN_FIELDS:
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
            others = [n for n in names if not _is_empty(value[n])
                      and n not in ("image_uri", "container", "config", "env_vars")]
            if others:
                raise _error("%s: %s may only be combined with config and env_vars, not %s"
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
                wheels = ".whl" in rule.remote_suffixes
                data = _utf8(s)
                slash = data.find(b"/", len(b"rtenv://sha256/"))
                wheel = (wheels and slash >= 0 and data.endswith(b".whl")
                         and data.find(b"/", slash + 1) < 0 and len(data) > slash + 5
                         and _RTENV_URI.match(data[:slash].decode("utf-8", "replace")) is not None)
                if not _RTENV_URI.match(s) and not wheel:
                    raise _error(
                        "%s: invalid rtenv package URI %s (expected rtenv://sha256/<64 lowercase "
                        "hex digits>%s)" % (path, s, ", or that followed by /<name>.whl for a wheel"
                                            if wheels else ""))
                return s
            if not any(_ends_with_ci(_uri_path_part(s), suf) for suf in rule.remote_suffixes):
                raise _error("%s: remote URI %s must name %s" % (path, s, rule.remote_description))
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
        options_key = "uv_pip_install_options"
        out: Dict[str, Any] = {}
        if isinstance(v, list):
            packages = self.string_list(path, v)
        elif isinstance(v, str):
            packages = self.requirements(path, v)
        elif isinstance(v, dict):
            allowed = ["packages", check_key, version_key, "locked", "system_site_packages",
                       "python"]
            if not pip:
                allowed.append(options_key)
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
            if not pip and options_key in v:
                options = self.string_list(path + "." + options_key, v[options_key])
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
            return v  # an env name or an env directory
        text = self.read_user_file(path, "conda file", v)
        file = _normal_absolute(v, self.base_dir)
        try:
            parsed = _yaml_to_json(text.decode("utf-8", "replace"))
        except _YamlError as e:
            raise _error("%s: conda file %s: %s" % (path, file, e.args[0])) from None
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
            if key not in ("image", "run_options"):
                raise _error("%s.%s: unknown key; allowed keys are image, run_options"
                             % (path, key))
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
            else:
                raise _error("%s: unknown key; allowed keys are eager_install, "
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
        if "uv_pip_install_options" in value and _is_empty(value["uv_pip_install_options"]):
            del value["uv_pip_install_options"]
        if value.get("locked", True) is False:
            del value["locked"]
        if value.get("system_site_packages", False) is True:
            del value["system_site_packages"]
        if value.get("packages", None) == [] and isinstance(value.get("packages"), list):
            return None
    elif name == "container" and isinstance(value, dict):
        if "run_options" in value and _is_empty(value["run_options"]):
            del value["run_options"]
    return value


# ---- the typed model -------------------------------------------------------------------------


@dataclass(frozen=True)
class PythonPackages:
    """`pip` or `uv`, normalized (the typed view of RuntimeEnv.pip / RuntimeEnv.uv)."""

    installer: str  # "pip" or "uv"
    packages: List[str]
    check: bool = False  # pip_check / uv_check
    installer_version: Optional[str] = None  # pip_version / uv_version
    install_options: List[str] = field(default_factory=list)  # uv_pip_install_options
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
        self._set_normalized(_Validator(JOB, None).run(_to_json(raw)))

    # -- construction ----------------------------------------------------------------------

    def _set_normalized(self, normalized: Dict[str, Any]) -> None:
        object.__setattr__(self, "_json", normalized)
        for name in _FIELD_NAMES:
            object.__setattr__(self, name, copy.deepcopy(normalized.get(name)))
        plugins = {k: copy.deepcopy(v) for k, v in normalized.items() if k not in BUILTIN_FIELDS}
        object.__setattr__(self, "plugins", plugins or None)

    @classmethod
    def _from_normalized(cls, normalized: Dict[str, Any]) -> "RuntimeEnv":
        env = object.__new__(cls)
        env._set_normalized(normalized)
        return env

    @classmethod
    def from_dict(cls, value: Any, *, level: str = JOB,
                  base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Validates a runtime_env dict (a parsed JSON value).

        level: JOB (local paths allowed, made absolute) or TASK (URIs only).
        base_dir: where relative local paths resolve (default: the current directory)."""
        return cls._from_normalized(_Validator(level, base_dir).run(_to_json(value)))

    @classmethod
    def from_json(cls, text: Union[str, bytes], *, level: str = JOB,
                  base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Parses JSON text (an object); syntax errors name the line and column."""
        return cls._from_normalized(_Validator(level, base_dir).run(_parse_json_text(text)))

    @classmethod
    def from_yaml(cls, text: str, *, level: str = JOB,
                  base_dir: Optional[Union[str, os.PathLike]] = None) -> "RuntimeEnv":
        """Parses YAML text (a mapping; the common block and flow forms)."""
        try:
            value = _yaml_to_json(text)
        except _YamlError as e:
            raise _error("%s: %s" % (_ROOT, e.args[0])) from None
        return cls._from_normalized(_Validator(level, base_dir).run(value))

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
                install_options=[] if pip else list(value.get("uv_pip_install_options", [])),
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
        return RuntimeEnv._from_normalized(normalized)

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
    return _is_image_field(name) or name in ("config", "env_vars")


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
