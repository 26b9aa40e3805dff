#!/usr/bin/env python3
"""Writes docs/cli.md, the command-line reference, from the binary's own help: every command's
`rtenv help ...` text, in the order the binary lists them. With --check, exits 1 (saying how to
update it) when docs/cli.md is not what the binary says.

    python3 scripts/cli_reference.py [--bin build/src/cli/rtenv] [--check]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "cli.md"

HEADER = """# Command-line reference

Every command's `--help`, as the binary prints it (`rtenv help COMMAND...` prints the same).
This page is generated: `python3 scripts/cli_reference.py` writes it from the built binary, and
the test suite fails when it differs from what the binary says. Exit statuses, the runtime_env
and the settings are explained in [runtime_env.md](runtime_env.md) and [config.md](config.md).
"""


def help_text(binary: str, words: list[str]) -> str:
    p = subprocess.run([binary, *words, "--help"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "COLUMNS": "100"})
    if p.returncode != 0:
        sys.exit(f"{binary} {' '.join(words)} --help failed ({p.returncode}): {p.stderr}")
    return p.stdout.rstrip() + "\n"


def subcommands(text: str) -> list[str]:
    """The names listed under "Subcommands:" in a help text."""
    names, inside = [], False
    for line in text.splitlines():
        if line.strip() == "Subcommands:":
            inside = True
            continue
        if inside:
            if not line.startswith("  "):
                break
            if line.startswith("  ") and not line.startswith("   "):
                names.append(line.split()[0])
    return names


def render(binary: str) -> str:
    parts = [HEADER]

    def visit(words: list[str]) -> None:
        text = help_text(binary, words)
        title = "rtenv " + " ".join(words) if words else "rtenv"
        level = "#" * min(2 + len(words), 4)
        parts.append(f"\n{level} `{title}`\n\n```text\n{text}```\n")
        for name in subcommands(text):
            visit(words + [name])

    visit([])
    return "".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.environ.get("RTENV_BIN",
                                                    str(REPO / "build" / "src" / "cli" / "rtenv")))
    ap.add_argument("--check", action="store_true",
                    help="compare docs/cli.md with the binary's help instead of writing it")
    args = ap.parse_args()
    text = render(args.bin)
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(REPO)} is not what `{args.bin} --help` says: run "
                  "python3 scripts/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
