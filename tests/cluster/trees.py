"""Directory trees for the cluster tests and benchmark, and a digest of what a job sees."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

from netns import PY

# Prints one SHA-256 over the tree under the current directory: every path (sorted), its kind,
# its executable bit and its content. Run inside a job (cwd = the working_dir copy) and on the
# source directory, it says whether the job saw exactly the files packed.
TREE_DIGEST = r"""
import hashlib, os, stat
h = hashlib.sha256()
for dirpath, dirnames, filenames in os.walk("."):
    dirnames.sort()
    for name in sorted(filenames):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            h.update(f"L {p} {os.readlink(p)}\n".encode())
            continue
        with open(p, "rb") as f:
            content = hashlib.sha256(f.read()).hexdigest()
        h.update(f"F {p} {bool(st.st_mode & 0o100)} {content}\n".encode())
print(h.hexdigest())
"""


def tree_digest(path: Path) -> str:
    """TREE_DIGEST of `path`, computed here."""
    p = subprocess.run([PY, "-c", TREE_DIGEST], cwd=path, capture_output=True, text=True,
                       check=True)
    return p.stdout.strip()


def random_tree(root: Path, files: int, total_bytes: int, seed: str) -> int:
    """Writes `files` files of random (incompressible) bytes, `total_bytes` in all, in a few
    directories, and main.py; returns the byte count. The same seed gives the same tree, and
    trees of different seeds share no file."""
    rng = random.Random(seed)
    size = total_bytes // files
    for i in range(files):
        p = root / f"d{i % 7}" / f"sub{i % 3}" / f"f{i:04d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
    main = f"# {seed}\nprint('hello from the working_dir')\n".encode()
    (root / "main.py").write_bytes(main)
    age(root)
    return size * files + len(main)


def source_tree(root: Path, files: int, total_bytes: int, seed: int) -> int:
    """A project-like tree: mostly source-like text (compressible), a few binary files.
    Returns its size in bytes."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 8)).hex() for _ in range(400)]
    words += ["def", "return", "import", "class", "self", "for", "in", "if", "else", "None"]
    dirs = ["."]
    for i in range(max(1, files // 15)):
        parent = rng.choice(dirs)
        if parent.count("/") < 5:
            dirs.append(f"{parent}/{rng.choice(['src', 'lib', 'data', 'models', 'utils'])}{i}")
    n_binary = max(1, files // 50)
    binary_share = 0.4
    text_size = int(total_bytes * (1 - binary_share) / (files - n_binary))
    bin_size = int(total_bytes * binary_share / n_binary)
    written = 0
    for i in range(files):
        d = root / rng.choice(dirs)
        d.mkdir(parents=True, exist_ok=True)
        if i < n_binary:
            data = rng.randbytes(bin_size)
            (d / f"blob{i}.bin").write_bytes(data)
        else:
            out, n = [], 0
            while n < text_size:
                line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + "\n"
                out.append(line)
                n += len(line)
            data = "".join(out).encode()[:text_size]
            (d / f"mod{i}.py").write_bytes(data)
        written += len(data)
    age(root)
    return written


def age(root: Path, seconds_ago: float = 100.0) -> None:
    """Sets every mtime well in the past, so a pack's file index trusts them."""
    t = time.time() - seconds_ago
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (t, t), follow_symlinks=False)
