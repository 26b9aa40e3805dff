#!/usr/bin/env python3
"""The package index of the cluster tests: pyindex.PackageIndex serving --dir on --host.

Prints the index URL (`http://HOST:PORT/simple/`) as its first stdout line, then serves until
SIGTERM. Every request is appended to --log as "METHOD PATH STATUS". The directory is rescanned
on each page request, so wheels copied into it are served at once.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from pyindex import PackageIndex  # noqa: E402


class LoggedIndex(PackageIndex):
    def __init__(self, log: Path, *args, **kwargs):
        self._log_file = open(log, "a", buffering=1)
        self._log_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _record(self, method: str, path: str, status: int) -> None:
        super()._record(method, path, status)
        with self._log_lock:
            self._log_file.write(f"{method} {path} {status}\n")

    def _lookup(self, path: str):
        if path.startswith("/simple"):
            self.refresh()
        return super()._lookup(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--log", required=True, type=Path)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    index = LoggedIndex(args.log, args.dir, host=args.host)
    print(index.url, flush=True)
    stop.wait()
    index.stop()


if __name__ == "__main__":
    main()
