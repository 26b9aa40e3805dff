"""A conda channel built on the fly on local disk, for the conda tests and benchmarks.

The tests never reach a conda server: they describe the packages they need as `Pkg` values and
write them with `build_channel` into a directory that conda tools read as `file://<root>`:

    root = standard_channel(tmp_path / "channel")
    ... solve ["libb"] against channel_url(root) ...

or, for a channel of their own:

    build_channel(tmp_path / "channel", [
        Pkg("tool", "1.0", files={"bin/tool": "#!/bin/sh\\necho tool\\n"}),
        activation_pkg("withvar", "WITHVAR", "$CONDA_PREFIX/share/withvar"),
    ])

Layout written: `<root>/noarch/` and `<root>/linux-64/` (both always present), each holding the
`<name>-<version>-<build>.tar.bz2` archives of its packages and a `repodata.json` describing them
(sha256, md5, size, depends, ...). An archive holds `info/index.json`, `info/paths.json`
(paths_version 1), `info/files`, `info/link.json` for `noarch: python` packages, and the payload.

Standard library only. Archives are deterministic: the same `Pkg` gives the same bytes (fixed
timestamps, owners and modes).
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Link",
    "Pkg",
    "PYTHON_SITE_PACKAGES",
    "activation_pkg",
    "bench_channel",
    "bench_pkgs",
    "broken_pkg",
    "build_channel",
    "channel_url",
    "noarch_python_pkg",
    "python_pkg",
    "standard_channel",
]

SUBDIRS = ("noarch", "linux-64")

# 2023-01-01T00:00:00Z: archive member mtimes (seconds) and repodata timestamps (milliseconds).
_EPOCH = 1672531200
_TIMESTAMP_MS = _EPOCH * 1000

# The interpreter packed by `python_pkg` and where it looks for installed packages. Debian's
# site.py searches `<prefix>/lib/python3.11/dist-packages`, not `site-packages`, so the record
# carries `python_site_packages_path` and rattler installs `noarch: python` packages there.
_DEBIAN_PYTHON = Path("/usr/bin/python3.11")
_DEBIAN_STDLIB = Path("/usr/lib/python3.11")
PYTHON_SITE_PACKAGES = "lib/python3.11/dist-packages"

# Bumped whenever python_pkg changes what it packs, so stale cached archives are not reused.
_PYTHON_PKG_FORMAT = 1


@dataclass(frozen=True)
class Link:
    """A payload entry that is a symbolic link to `target` (relative, e.g. "python3.11")."""

    target: str


@dataclass
class Pkg:
    """One conda package.

    `files` maps a path relative to the prefix to its content: bytes, str (written as UTF-8), a
    `Path` of a file on disk (its bytes and executable bit are copied) or a `Link`. Entries under
    `bin/`, entries starting with `#!` and executable files on disk get mode 0755, others 0644.
    For `noarch="python"` packages, paths start with `site-packages/` (rattler moves them into
    the interpreter's site-packages) and `entry_points` ("name = module:function") become
    `bin/<name>` scripts at install time.

    `extra` is merged into both `info/index.json` and the repodata record (e.g.
    `python_site_packages_path`). `corrupt` writes an archive cut in half (repodata describes the
    cut file, so its hashes match but extraction fails): see `broken_pkg`. `prebuilt` is an
    archive already built for this package (see `python_pkg`); `files` is then ignored.
    """

    name: str
    version: str
    build: str = "0"
    build_number: int = 0
    subdir: str = "noarch"
    depends: list[str] = field(default_factory=list)
    files: dict[str, bytes | str | Path | Link] = field(default_factory=dict)
    noarch: str | None = None
    entry_points: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    corrupt: bool = False
    prebuilt: Path | None = None

    def __post_init__(self):
        if self.name != self.name.lower():
            # Conda matches names in lower case only: a record named `pkgA` is never found.
            raise ValueError(f"conda package names are lower case: {self.name!r}")
        if self.subdir not in SUBDIRS:
            raise ValueError(f"subdir must be one of {SUBDIRS}, not {self.subdir!r}")
        if self.noarch not in (None, "generic", "python"):
            raise ValueError(f"noarch must be None, 'generic' or 'python', not {self.noarch!r}")
        if self.noarch is not None and self.subdir != "noarch":
            raise ValueError(f"{self.name}: a noarch package belongs in the noarch subdir")

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    def index_json(self) -> dict:
        """The package's `info/index.json`."""
        index = {
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "depends": list(self.depends),
            "subdir": self.subdir,
            "license": "MIT",
            "timestamp": _TIMESTAMP_MS,
        }
        if self.subdir == "linux-64":
            index.update(arch="x86_64", platform="linux")
        else:
            index.update(arch=None, platform=None)
        if self.noarch is not None:
            index["noarch"] = self.noarch
        index.update(self.extra)
        return index


def channel_url(root: Path) -> str:
    """The URL conda tools read the channel at `root` from: `file://<absolute root>`."""
    return Path(root).resolve().as_uri()


def build_channel(root: Path, pkgs: list[Pkg]) -> Path:
    """Write `pkgs` and both subdirs' `repodata.json` under `root` (created if missing; existing
    archives of the same names are overwritten, a subdir's repodata lists only `pkgs`). Returns
    `root`. Raises ValueError if two packages have the same subdir and file name."""
    root = Path(root)
    records: dict[str, dict[str, dict]] = {subdir: {} for subdir in SUBDIRS}
    for subdir in SUBDIRS:
        (root / subdir).mkdir(parents=True, exist_ok=True)
    for pkg in pkgs:
        if pkg.filename in records[pkg.subdir]:
            raise ValueError(f"two packages named {pkg.subdir}/{pkg.filename}")
        dest = root / pkg.subdir / pkg.filename
        if pkg.prebuilt is not None:
            shutil.copyfile(pkg.prebuilt, dest)
            data = dest.read_bytes()
        else:
            data = _archive(pkg)
            if pkg.corrupt:
                data = data[: len(data) // 2]
            dest.write_bytes(data)
        record = pkg.index_json()
        record.update(
            md5=hashlib.md5(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
        records[pkg.subdir][pkg.filename] = record
    for subdir in SUBDIRS:
        repodata = {
            "info": {"subdir": subdir},
            "packages": dict(sorted(records[subdir].items())),
            "packages.conda": {},
            "removed": [],
            "repodata_version": 1,
        }
        (root / subdir / "repodata.json").write_text(json.dumps(repodata, indent=1, sort_keys=True))
    return root


def activation_pkg(name: str, var: str, value: str, version: str = "1.0") -> Pkg:
    """A package whose activation exports `var="value"` (`etc/conda/activate.d/<name>.sh`; the
    value is expanded by the shell, so `$CONDA_PREFIX` works) and whose deactivation unsets it
    (`etc/conda/deactivate.d/<name>.sh`)."""
    return Pkg(name, version, files={
        f"etc/conda/activate.d/{name}.sh": f'export {var}="{value}"\n',
        f"etc/conda/deactivate.d/{name}.sh": f"unset {var}\n",
    })


def noarch_python_pkg(name: str, version: str, module_source: str,
                      depends: list[str] | None = None,
                      entry_points: list[str] | None = None) -> Pkg:
    """A `noarch: python` package holding the module `<name>` (`site-packages/<name>/__init__.py`
    with `module_source`); installed next to an interpreter package it imports with that
    interpreter. `entry_points` ("cmd = module:function") become `bin/<cmd>` at install time."""
    return Pkg(name, version, noarch="python",
               depends=list(depends) if depends is not None else ["python"],
               entry_points=list(entry_points or []),
               files={f"site-packages/{name}/__init__.py": module_source})


def broken_pkg(name: str, version: str = "1.0") -> Pkg:
    """A package that solves but whose install fails: its archive is cut in half, so rattler's
    extraction fails and `rattler.install` raises (InstallerError). A package whose repodata
    sha256 or size does not match its archive would not do: for `file://` channels rattler does
    not check them and installs the archive as it is."""
    return Pkg(name, version, files={f"share/{name}/data": "never installed\n"}, corrupt=True)


def python_pkg(cache_dir: Path) -> Pkg:
    """The `python` interpreter package (linux-64) built from Debian's `/usr/bin/python3.11` and
    `/usr/lib/python3.11` (without `__pycache__`, `EXTERNALLY-MANAGED`, Debian's
    `sitecustomize.py` and the static-library `config-*` folder). The Debian interpreter links
    libpython statically, so it runs from any prefix and finds its standard library there.
    `bin/python` and `bin/python3` are symbolic links to `bin/python3.11`.

    Building takes a few seconds (~12 MB of bz2), so the archive is kept in `cache_dir` under a
    name keyed by the interpreter's version and binary content and reused by later calls (written
    to a temporary file and renamed, so concurrent callers are safe). Raises RuntimeError if
    /usr/bin/python3.11 is missing."""
    if not (_DEBIAN_PYTHON.is_file() and _DEBIAN_STDLIB.is_dir()):
        raise RuntimeError(
            f"{_DEBIAN_PYTHON} (with {_DEBIAN_STDLIB}) is missing; the conda tests pack it as "
            f"their python package: apt-get install python3.11 (scripts/setup.sh installs it)")
    version = subprocess.run(
        [str(_DEBIAN_PYTHON), "-I", "-S", "-c",
         "import platform; print(platform.python_version())"],
        check=True, capture_output=True, text=True).stdout.strip()
    digest = hashlib.sha256(f"format {_PYTHON_PKG_FORMAT} version {version}\n".encode())
    digest.update(_DEBIAN_PYTHON.read_bytes())
    key = digest.hexdigest()[:16]

    files: dict[str, bytes | str | Path | Link] = {
        "bin/python3.11": _DEBIAN_PYTHON,
        "bin/python3": Link("python3.11"),
        "bin/python": Link("python3.11"),
    }
    pkg = Pkg("python", version, build=f"debian_{key}", subdir="linux-64", files=files,
              extra={"python_site_packages_path": PYTHON_SITE_PACKAGES})

    cache_dir = Path(cache_dir)
    cached = cache_dir / pkg.filename
    if not cached.is_file():
        for path in sorted(_DEBIAN_STDLIB.rglob("*")):
            rel = path.relative_to(_DEBIAN_STDLIB)
            if (rel.parts[0].startswith("config-") or "__pycache__" in rel.parts
                    or rel.as_posix() in ("EXTERNALLY-MANAGED", "sitecustomize.py")
                    or not path.is_file()):
                continue
            files[f"lib/python3.11/{rel.as_posix()}"] = path
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".python-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(_archive(pkg))
            os.chmod(tmp, 0o644)
            os.replace(tmp, cached)
        except BaseException:
            os.unlink(tmp)
            raise
    return dataclasses.replace(pkg, files={}, prebuilt=cached)


_LIBB_SCRIPT = """#!/bin/sh
: "${CONDA_PREFIX:?libb: CONDA_PREFIX is not set (activate the environment)}"
printf 'libb uses liba %s\\n' "$(cat "$CONDA_PREFIX/share/liba/VERSION")"
"""

_GREET_SOURCE = '''"""greet {version}: a noarch python package of the test channel."""

__version__ = "{version}"


def hello():
    print("hello from greet {version}")
'''


def standard_channel(root: Path, with_python: bool = False,
                     python_cache: Path | None = None, extra: list[Pkg] = ()) -> Path:
    """Build the channel the conda tests use under `root`, with the packages `extra` beside the
    standard ones, and return `root`:

    - `liba` 1.0 and 2.0: `share/liba/VERSION` holds the version (no newline).
    - `libb` 1.0 (depends on `liba`): `bin/libb` prints "libb uses liba <VERSION>", reading
      `$CONDA_PREFIX/share/liba/VERSION` (fails if CONDA_PREFIX is unset).
    - `actpkg` 1.0: activation exports `ACTPKG_HOME=$CONDA_PREFIX/share/actpkg`.
    - `broken` 1.0: solves, fails to install (see `broken_pkg`).
    - with_python: `python` (see `python_pkg`, cached in `python_cache`, required then) and
      `greet` 1.0 (noarch: python): `import greet; greet.hello()` prints "hello from greet 1.0";
      the entry point `greet` runs the same.
    """
    pkgs = [
        Pkg("liba", "1.0", files={"share/liba/VERSION": "1.0"}),
        Pkg("liba", "2.0", files={"share/liba/VERSION": "2.0"}),
        Pkg("libb", "1.0", depends=["liba"], files={"bin/libb": _LIBB_SCRIPT}),
        activation_pkg("actpkg", "ACTPKG_HOME", "$CONDA_PREFIX/share/actpkg"),
        broken_pkg("broken"),
    ]
    if with_python:
        if python_cache is None:
            raise ValueError("standard_channel(with_python=True) needs python_cache (a directory)")
        pkgs.append(python_pkg(python_cache))
        pkgs.append(noarch_python_pkg("greet", "1.0", _GREET_SOURCE.format(version="1.0"),
                                      entry_points=["greet = greet:hello"]))
    return build_channel(root, pkgs + list(extra))


def bench_pkgs(count: int = 5, size: int = 256 * 1024, files_per_pkg: int = 8) -> list[Pkg]:
    """`count` generic packages `bench1` .. `bench<count>`, each `bench<i>` depending on
    `bench<i+1>` (installing `bench1` installs them all), each with `files_per_pkg` files of
    incompressible, seeded content totalling `size` bytes under `share/bench<i>/`."""
    pkgs = []
    for i in range(1, count + 1):
        name = f"bench{i}"
        files = {}
        chunk = size // files_per_pkg
        for j in range(files_per_pkg):
            files[f"share/{name}/data{j}.bin"] = _seeded_bytes(f"{name}/{j}", chunk)
        depends = [f"bench{i + 1}"] if i < count else []
        pkgs.append(Pkg(name, "1.0", depends=depends, files=files))
    return pkgs


def bench_channel(root: Path, count: int = 5, size: int = 256 * 1024) -> Path:
    """A channel holding `bench_pkgs(count, size)`; returns `root`."""
    return build_channel(root, bench_pkgs(count, size))


def _seeded_bytes(seed: str, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _content(value: bytes | str | Path) -> tuple[bytes, bool]:
    """The bytes of a payload entry and whether its source marks it executable."""
    if isinstance(value, Path):
        return value.read_bytes(), os.access(value, os.X_OK)
    if isinstance(value, str):
        return value.encode(), False
    return bytes(value), False


def _archive(pkg: Pkg) -> bytes:
    """The `.tar.bz2` bytes of `pkg` (deterministic)."""
    members: list[tuple[str, bytes | Link, int]] = []
    paths = []
    for rel in sorted(pkg.files):
        value = pkg.files[rel]
        if rel.startswith("/") or ".." in rel.split("/") or rel.startswith("info/"):
            raise ValueError(f"{pkg.name}: bad payload path {rel!r}")
        if isinstance(value, Link):
            members.append((rel, value, 0o777))
            paths.append({"_path": rel, "path_type": "softlink"})
            continue
        data, executable = _content(value)
        executable = executable or rel.startswith("bin/") or data.startswith(b"#!")
        members.append((rel, data, 0o755 if executable else 0o644))
        paths.append({"_path": rel, "path_type": "hardlink",
                      "sha256": hashlib.sha256(data).hexdigest(), "size_in_bytes": len(data)})

    info = {
        "info/index.json": json.dumps(pkg.index_json(), indent=2, sort_keys=True),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2),
        "info/files": "".join(f"{rel}\n" for rel in sorted(pkg.files)),
    }
    if pkg.noarch == "python":
        info["info/link.json"] = json.dumps({
            "noarch": {"type": "python", "entry_points": list(pkg.entry_points)},
            "package_metadata_version": 1,
        }, indent=2)
    elif pkg.entry_points:
        raise ValueError(f"{pkg.name}: entry points need noarch='python'")

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, text in info.items():
            _add(tar, name, text.encode(), 0o644)
        for name, value, mode in members:
            _add(tar, name, value, mode)
    return bz2.compress(raw.getvalue(), compresslevel=9)


def _add(tar: tarfile.TarFile, name: str, value: bytes | Link, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = _EPOCH
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if isinstance(value, Link):
        info.type = tarfile.SYMTYPE
        info.linkname = value.target
        tar.addfile(info)
    else:
        info.size = len(value)
        tar.addfile(info, io.BytesIO(value))
