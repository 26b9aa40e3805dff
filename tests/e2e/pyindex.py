"""Python distributions built on the fly, and a PEP 503 package index on 127.0.0.1 serving them.

The end-to-end tests and the Python benchmark never reach PyPI: they build the packages they need
with `build_wheel` / `build_failing_sdist` and serve them with `PackageIndex`.

    with PackageIndex() as index:
        index.add(build_wheel(tmp, "simple", "1.0"))
        index.add(build_wheel(tmp, "withdep", "1.0", deps=["simple>=1"]))
        ... pip install --index-url {index.url} withdep ...
        assert index.downloads("simple") == ["simple-1.0-py3-none-any.whl"]

Standard library only. Everything built here is deterministic: the same arguments give the same
bytes (fixed timestamps and modes in the archives, seeded payloads).
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import html
import io
import os
import random
import re
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import urllib.parse
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = [
    "PackageIndex",
    "build_failing_sdist",
    "build_wheel",
    "dist_project",
    "find_uv",
    "normalize",
    "sha256_file",
]

def find_uv(python: str) -> str:
    """The uv to use with `python`: the one installed beside it first (a pyenv shim on PATH costs
    ~100 ms a call), else uv on PATH. Raises if there is none (scripts/setup.sh installs it)."""
    beside = Path(python).parent / "uv"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError(f"uv not found (neither next to {python} nor on PATH); "
                           "scripts/setup.sh installs it")
    return found


# Zip entries need a date; 1980-01-01 is the earliest a zip can hold (what SOURCE_DATE_EPOCH
# tools use too).
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_TAR_MTIME = 315532800  # the same instant as a Unix time

_DIST_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz")


def logging_uv(tmp_path: Path, uv: str) -> tuple[Path, Path]:
    """A stand-in for `uv` that appends its arguments to a log, then runs the real one; returns
    (the stand-in, the log)."""
    log = tmp_path / "uv-calls.log"
    script = tmp_path / "uv-logging"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{uv}" "$@"\n')
    script.chmod(0o755)
    return script, log


def normalize(name: str) -> str:
    """PEP 503 project name normalization: `Foo.Bar_baz` -> `foo-bar-baz`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _escaped(name: str) -> str:
    """The name as it appears in distribution file names and `.dist-info` directories."""
    return re.sub(r"[-_.]+", "_", name).lower()


def dist_project(filename: str) -> str | None:
    """The normalized project name of a distribution file name, or None if it is not one."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        return normalize(parts[0]) if len(parts) in (5, 6) else None
    for suffix in _DIST_SUFFIXES[1:]:
        if filename.endswith(suffix):
            stem = filename[: -len(suffix)]
            if "-" not in stem:
                return None
            return normalize(stem.rsplit("-", 1)[0])
    return None


def sha256_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _as_bytes(content: str | bytes) -> bytes:
    return content if isinstance(content, bytes) else content.encode("utf-8")


def _payload(name: str, version: str, size: int) -> bytes:
    # A str seed is hashed with SHA-512: the same on every run and every interpreter.
    return random.Random(f"payload:{name}:{version}").randbytes(size)


# ---------------------------------------------------------------------------- wheels


def build_wheel(
    out_dir: Path,
    name: str,
    version: str,
    deps: list[str] | tuple[str, ...] = (),
    extra_files: dict[str, str | bytes] | None = None,
    payload_bytes: int = 0,
    console_scripts: dict[str, str] | None = None,
) -> Path:
    """Writes `{name}-{version}-py3-none-any.whl` (name escaped as wheel file names require) to
    out_dir and returns its path.

    The wheel holds the module `<name with - as _>` whose `__init__.py` defines `__version__` and
    `NAME`; `extra_files` ({path inside the wheel: content}) adds files next to it (e.g.
    `"simple/data.txt"` or a top-level `"other_module.py"`); `payload_bytes` adds
    `<module>/payload.bin` of that many random (incompressible) bytes. `deps` become
    `Requires-Dist:` lines, e.g. `["simple>=1,<2", "other; python_version >= '3'"]`.
    `console_scripts` ({script name: "module:function"}) become entry points that installers
    turn into scripts in the environment's bin/.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist = _escaped(name)
    dist_info = f"{dist}-{version}.dist-info"

    files: list[tuple[str, bytes]] = [
        (f"{module}/__init__.py", f'__version__ = "{version}"\nNAME = "{name}"\n'.encode()),
    ]
    if payload_bytes:
        files.append((f"{module}/payload.bin", _payload(name, version, payload_bytes)))
    for rel, content in sorted((extra_files or {}).items()):
        rel = rel.lstrip("/")
        if rel.startswith(dist_info + "/"):
            raise ValueError(f"extra file {rel!r} would overwrite the wheel's metadata")
        files = [(r, c) for r, c in files if r != rel]
        files.append((rel, _as_bytes(content)))

    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {name} {version}, built for rtenv's tests",
    ]
    metadata += [f"Requires-Dist: {d}" for d in deps]
    files.append((f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()))
    files.append((
        f"{dist_info}/WHEEL",
        b"Wheel-Version: 1.0\nGenerator: rtenv-tests-pyindex\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    ))
    files.append((f"{dist_info}/top_level.txt", f"{module}\n".encode()))
    if console_scripts:
        lines = ["[console_scripts]"] + [f"{k} = {v}" for k, v in sorted(console_scripts.items())]
        files.append((f"{dist_info}/entry_points.txt", ("\n".join(lines) + "\n").encode()))

    record_path = f"{dist_info}/RECORD"
    record = io.StringIO()
    for rel, data in files:
        record.write(f"{rel},{_record_hash(data)},{len(data)}\n")
    record.write(f"{record_path},,\n")
    files.append((record_path, record.getvalue().encode()))

    path = out_dir / f"{dist}-{version}-py3-none-any.whl"
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for rel, data in files:
            info = zipfile.ZipInfo(rel, date_time=_ZIP_DATE)
            info.external_attr = (0o100644 << 16)
            incompressible = rel.endswith("/payload.bin")
            info.compress_type = zipfile.ZIP_STORED if incompressible else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------- sdists

_FAILING_BACKEND = '''\
"""A PEP 517 build backend that cannot build anything (for tests of build failures)."""

import sys

MESSAGE = {message!r}


def _fail(hook):
    sys.stderr.write(MESSAGE + "\\n")
    sys.stderr.flush()
    raise RuntimeError(MESSAGE + " (in " + hook + ")")


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    _fail("prepare_metadata_for_build_wheel")


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    _fail("prepare_metadata_for_build_editable")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _fail("build_wheel")


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _fail("build_editable")


def build_sdist(sdist_directory, config_settings=None):
    _fail("build_sdist")
'''


def build_failing_sdist(
    out_dir: Path,
    name: str,
    version: str,
    message: str = "rtenv test package: this build fails on purpose",
) -> Path:
    """Writes `{name}-{version}.tar.gz`, an sdist whose build fails, printing `message` to
    stderr. It needs nothing from the network: `requires = []` and an in-tree backend
    (`failing_backend.py`, found through `backend-path`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dist = _escaped(name)
    top = f"{dist}-{version}"
    members = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": (
            "[build-system]\n"
            "requires = []\n"
            'build-backend = "failing_backend"\n'
            'backend-path = ["."]\n'
            "\n"
            "[project]\n"
            f'name = "{name}"\n'
            f'version = "{version}"\n'
        ),
        "failing_backend.py": _FAILING_BACKEND.format(message=message),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dir_info = tarfile.TarInfo(top)
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        dir_info.mtime = _TAR_MTIME
        tf.addfile(dir_info)
        for rel, text in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = _TAR_MTIME
            tf.addfile(info, io.BytesIO(data))
    path = out_dir / f"{top}.tar.gz"
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        # mtime=0 and no file name in the gzip header: the same bytes every time.
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            gz.write(raw.getvalue())
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------- the index


class _Page:
    __slots__ = ("body", "content_type", "etag", "last_modified", "mtime", "cache_control")

    def __init__(self, body: bytes, content_type: str, mtime: float, cache_control: str):
        self.body = body
        self.content_type = content_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self.mtime = int(mtime)
        self.last_modified = email.utils.formatdate(self.mtime, usegmt=True)
        self.cache_control = cache_control


class _Dist:
    __slots__ = ("filename", "project", "sha256", "size", "mtime_ns", "metadata")

    def __init__(self, filename, project, sha256, size, mtime_ns, metadata):
        self.filename = filename
        self.project = project
        self.sha256 = sha256
        self.size = size
        self.mtime_ns = mtime_ns
        self.metadata = metadata  # the wheel's METADATA (PEP 658), or None


def _wheel_metadata(path: Path) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as zf:
            for n in zf.namelist():
                parts = n.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    return zf.read(n)
    except (OSError, zipfile.BadZipFile):
        pass
    return None


class PackageIndex:
    """A PEP 503 "simple" index of the distributions in a directory, on 127.0.0.1 (or `host`).

    - `url`: `http://<host>:<port>/simple/`, for `--index-url`.
    - `/simple/` lists the projects; `/simple/<normalized name>/` lists their files, each link with
      a `#sha256=` fragment; other spellings of a name redirect to the normalized one. The files
      are at `/files/<filename>`. With `metadata=True` (the default) wheels also get their
      METADATA at `/files/<wheel>.metadata`, announced as PyPI does (PEP 658/714), so resolvers
      need not download a wheel to learn its dependencies.
    - Responses carry Content-Length, Last-Modified and an ETag, and answer If-None-Match /
      If-Modified-Since with 304. Pages say `Cache-Control: max-age=<max_age>` (0 by default, so
      a client sees what `add` put in at once; PyPI says 600); files are immutable.
    - `requests` lists "METHOD /path" of every request, `downloads()` the distribution files
      fetched; `set_down(True)` makes the index fail every request.

    `directory` is served as it is at start and after each `add`; without one, a private temporary
    directory is used and deleted by `stop`.
    """

    def __init__(self, directory: Path | str | None = None, *, max_age: int = 0,
                 metadata: bool = True, host: str = "127.0.0.1"):
        if directory is None:
            self._owned = Path(tempfile.mkdtemp(prefix="rtenv-pyindex-"))
            self.directory = self._owned
        else:
            self._owned = None
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age
        self.metadata = metadata
        self.host = host
        self._lock = threading.Lock()
        self._dists: dict[str, _Dist] = {}
        self._pages: dict[str, _Page] = {}
        self._log: list[tuple[str, str, int]] = []  # (method, path, status)
        self._down: str | None = None
        self._connections: set[socket.socket] = set()
        self.refresh()

        index = self

        class Handler(_Handler):
            owner = index

        self._server = _Server((host, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"pyindex:{self.port}", daemon=True)
        self._thread.start()

    # ---- public

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/simple/"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def file_url(self, filename: str) -> str:
        return f"{self.base_url}/files/{urllib.parse.quote(filename)}"

    def add(self, path: Path | str) -> Path:
        """Copies a distribution (wheel or sdist) into the index; returns its path there."""
        path = Path(path)
        if dist_project(path.name) is None:
            raise ValueError(f"not a distribution file name: {path.name}")
        dest = self.directory / path.name
        if path.resolve() != dest.resolve():
            tmp = dest.with_name(f".{dest.name}.part")
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        self.refresh()
        return dest

    def refresh(self) -> None:
        """Rescans the directory and regenerates the pages (`add` does it)."""
        dists: dict[str, _Dist] = {}
        for entry in sorted(os.scandir(self.directory), key=lambda e: e.name):
            if not entry.is_file() or entry.name.startswith("."):
                continue
            project = dist_project(entry.name)
            if project is None:
                continue
            st = entry.stat()
            old = self._dists.get(entry.name)
            if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                dists[entry.name] = old
                continue
            meta = _wheel_metadata(Path(entry.path)) if entry.name.endswith(".whl") else None
            dists[entry.name] = _Dist(entry.name, project, sha256_file(entry.path), st.st_size,
                                      st.st_mtime_ns, meta)
        pages = self._render(dists)
        with self._lock:
            old_pages = self._pages
            # A page whose content did not change keeps its Last-Modified; one that changed gets
            # a later one, even within the same second (If-Modified-Since has 1 s resolution).
            for key, page in pages.items():
                prev = old_pages.get(key)
                if prev is None:
                    continue
                if prev.etag == page.etag:
                    pages[key] = prev
                elif page.mtime <= prev.mtime:
                    pages[key] = _Page(page.body, page.content_type, prev.mtime + 1,
                                       page.cache_control)
            self._dists = dists
            self._pages = pages

    def files(self) -> list[str]:
        with self._lock:
            return sorted(self._dists)

    def sha256(self, filename: str) -> str:
        """The SHA-256 (hex) of a distribution the index serves."""
        with self._lock:
            return self._dists[filename].sha256

    @property
    def requests(self) -> list[str]:
        """"METHOD /path" of every request so far, in order (a copy)."""
        with self._lock:
            return [f"{m} {p}" for m, p, _ in self._log]

    @property
    def request_log(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far, in order (a copy)."""
        with self._lock:
            return list(self._log)

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def downloads(self, name_prefix: str | None = None) -> list[str]:
        """File names of the distributions fetched (each successful GET counts once, in order);
        with `name_prefix`, only those whose file name or normalized project name starts with
        it. METADATA files (`.metadata`) are not counted."""
        out = []
        norm = normalize(name_prefix) if name_prefix else None
        for method, path, status in self.request_log:
            if method != "GET" or status not in (200, 206) or not path.startswith("/files/"):
                continue
            filename = urllib.parse.unquote(path[len("/files/"):])
            project = dist_project(filename)
            if project is None:
                continue
            if name_prefix and not (filename.startswith(name_prefix) or project.startswith(norm)):
                continue
            out.append(filename)
        return out

    def set_down(self, down: bool = True, mode: str = "503") -> None:
        """While down, every request fails: mode "503" answers 503 Service Unavailable, "close"
        closes the connection without answering."""
        if mode not in ("503", "close"):
            raise ValueError(f"mode must be '503' or 'close', not {mode!r}")
        with self._lock:
            self._down = mode if down else None

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._connections)
        for c in conns:  # kept-alive connections would otherwise still be served
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._server = None
        if self._owned is not None:
            shutil.rmtree(self._owned, ignore_errors=True)

    def __enter__(self) -> "PackageIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- pages

    def _render(self, dists: dict[str, _Dist]) -> dict[str, _Page]:
        now = time.time()
        page_cc = (f"max-age={self.max_age}, public" if self.max_age
                   else "max-age=0, must-revalidate")
        by_project: dict[str, list[_Dist]] = {}
        for d in dists.values():
            by_project.setdefault(d.project, []).append(d)

        def doc(title: str, links: list[str]) -> bytes:
            lines = ["<!DOCTYPE html>", "<html>", "  <head>",
                     '    <meta name="pypi:repository-version" content="1.0">',
                     f"    <title>{html.escape(title)}</title>", "  </head>", "  <body>"]
            lines += [f"    {link}<br/>" for link in links]
            lines += ["  </body>", "</html>", ""]
            return "\n".join(lines).encode()

        pages: dict[str, _Page] = {}
        root_links = [f'<a href="/simple/{p}/">{html.escape(p)}</a>' for p in sorted(by_project)]
        pages["/simple/"] = _Page(doc("Simple index", root_links), "text/html", now, page_cc)
        for project, ds in by_project.items():
            links = []
            for d in sorted(ds, key=lambda d: d.filename):
                href = f"/files/{urllib.parse.quote(d.filename)}#sha256={d.sha256}"
                attrs = f'href="{html.escape(href)}"'
                if self.metadata and d.metadata is not None:
                    mh = hashlib.sha256(d.metadata).hexdigest()
                    attrs += (f' data-dist-info-metadata="sha256={mh}"'
                              f' data-core-metadata="sha256={mh}"')
                links.append(f"<a {attrs}>{html.escape(d.filename)}</a>")
            pages[f"/simple/{project}/"] = _Page(doc(f"Links for {project}", links), "text/html",
                                                 now, page_cc)
        return pages

    # ---- called by the handler

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._log.append((method, path, status))

    def _lookup(self, path: str):
        """('page', _Page) | ('file', _Dist) | ('meta', _Dist) | ('redirect', location) | None."""
        with self._lock:
            page = self._pages.get(path)
            if page is not None:
                return "page", page
            if path.startswith("/files/"):
                name = urllib.parse.unquote(path[len("/files/"):])
                if "/" in name:
                    return None
                if name.endswith(".metadata") and self.metadata:
                    d = self._dists.get(name[: -len(".metadata")])
                    if d is not None and d.metadata is not None:
                        return "meta", d
                    return None
                d = self._dists.get(name)
                return ("file", d) if d is not None else None
            if path.startswith("/simple/"):
                rest = path[len("/simple/"):].strip("/")
                if rest and "/" not in rest:
                    target = f"/simple/{normalize(rest)}/"
                    if target != path and target in self._pages:
                        return "redirect", target
            elif path == "/simple":
                return "redirect", "/simple/"
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a client hanging up is not news
        pass


class _Handler(BaseHTTPRequestHandler):
    owner: PackageIndex
    protocol_version = "HTTP/1.1"
    server_version = "rtenv-pyindex/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self):
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format, *args):  # quiet
        pass

    def do_GET(self):
        self._serve(body=True)

    def do_HEAD(self):
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        path = urllib.parse.urlsplit(self.path).path
        method = self.command
        with self.owner._lock:
            down = self.owner._down
        if down == "close":
            self.owner._record(method, path, 0)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if down == "503":
            self._plain(503, "index is down\n", body, method, path)
            return
        found = self.owner._lookup(path)
        if found is None:
            self._plain(404, "not found\n", body, method, path)
            return
        kind, obj = found
        if kind == "redirect":
            self.owner._record(method, path, 301)
            self.send_response(301)
            self.send_header("Location", obj)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "page":
            self._send_cached(method, path, body, obj.body, obj.content_type, obj.etag,
                              obj.last_modified, obj.mtime, obj.cache_control)
            return
        d: _Dist = obj
        mtime = d.mtime_ns // 1_000_000_000
        last_modified = email.utils.formatdate(mtime, usegmt=True)
        immutable = "max-age=365000000, immutable, public"
        if kind == "meta":
            self._send_cached(method, path, body, d.metadata, "text/plain; charset=utf-8",
                              '"' + hashlib.sha256(d.metadata).hexdigest()[:32] + '"',
                              last_modified, mtime, immutable)
            return
        etag = f'"{d.sha256[:32]}"'
        if self._not_modified(etag, mtime):
            self._send_304(method, path, etag, last_modified, immutable)
            return
        try:
            f = open(self.owner.directory / d.filename, "rb")
        except OSError:
            self._plain(404, "not found\n", body, method, path)
            return
        with f:
            ctype = "application/octet-stream"
            if d.filename.endswith((".tar.gz", ".tgz")):
                ctype = "application/x-tar"
            self.owner._record(method, path, 200)
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(d.size))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Cache-Control", immutable)
            self.end_headers()
            if body:
                shutil.copyfileobj(f, self.wfile, 1 << 20)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return "*" in tags or etag in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is not None:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                return False
            return mtime <= since
        return False

    def _send_304(self, method, path, etag, last_modified, cache_control) -> None:
        self.owner._record(method, path, 304)
        self.send_response(304)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Cache-Control", cache_control)
        self.end_headers()

    def _send_cached(self, method, path, body, data, ctype, etag, last_modified, mtime,
                     cache_control) -> None:
        if self._not_modified(etag, mtime):
            self._send_304(method, path, etag, last_modified, cache_control)
            return
        self.owner._record(method, path, 200)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Cache-Control", cache_control)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _plain(self, status: int, text: str, body: bool, method: str, path: str) -> None:
        data = text.encode()
        self.owner._record(method, path, status)
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        if body:
            self.wfile.write(data)
