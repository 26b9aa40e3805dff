"""Making jars in tests with the machine's JDK (scripts/setup.sh installs openjdk-17-jdk-headless)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def java_tool(name: str) -> str:
    """The path of a JDK program (javac, jar, java); fails the test if the JDK is missing."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: scripts/setup.sh installs openjdk-17-jdk-headless",
                    pytrace=False)
    return path


def make_jar(root: Path, jar: Path, package: str, cls: str, body: str) -> Path:
    """Compiles one public class `cls` (in `package`, or the default package if empty) whose
    body is `body` into `jar`, working under `root`."""
    src = root / "src" / (package or "_default") / f"{cls}.java"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text((f"package {package};\n" if package else "") +
                   f"public class {cls} {{ {body} }}\n")
    out = root / "classes" / f"{package}.{cls}"
    subprocess.run([java_tool("javac"), "-d", str(out), str(src)], check=True)
    jar.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([java_tool("jar"), "cf", str(jar), "-C", str(out), "."], check=True)
    return jar
