"""Collecting directory stores, through the real binary: `rtenv gc` collects the node's own store
(blobs no node copy, env, lock or record needs, and not touched within --store-keep), `rtenv
store gc --older-than` a shared directory store (blobs no record names and no one wrote or used
within the window). Time passing is simulated by setting blobs' mtimes into the past, as a store
that has been in use for days would have them."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import assert_ok

DAY = 86400


def blobs(store: Path) -> dict[str, Path]:
    """{hex digest: path} of every blob in a directory store."""
    out = {}
    if not store.is_dir():
        return out
    for sub in store.iterdir():
        if sub.is_dir() and len(sub.name) == 2:
            for b in sub.iterdir():
                if len(b.name) == 64:
                    out[b.name] = b
    return out


def age(store: Path, seconds: float = DAY) -> None:
    """Makes every blob look last touched `seconds` ago."""
    then = time.time() - seconds
    for p in blobs(store).values():
        try:
            os.utime(p, (then, then))
        except FileNotFoundError:
            pass  # collected meanwhile


def package_blobs(store: Path, root: str) -> set[str]:
    """Every blob of the package whose root manifest is `root` (the manifests and the files)."""
    out, todo = set(), [root]
    while todo:
        d = todo.pop()
        out.add(d)
        text = (store / d[:2] / d).read_text()
        assert text.startswith("rtenv-manifest 1\n"), d
        for line in text.splitlines()[1:]:
            kind, rest = line.split(" ", 1)
            if kind == "d":
                todo.append(rest.split(" ")[0])
            elif kind in ("f", "x"):
                out.add(rest.split(" ")[0])
    return out


def root_of(uri: str) -> str:
    assert uri.startswith("rtenv://sha256/"), uri
    return uri.rsplit("/", 1)[1]


def tree(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def test_gc_collects_what_nothing_on_the_node_needs_and_keeps_the_rest(rtenv, tmp_path):
    store = rtenv.home / "store"
    t = tree(tmp_path / "t", {"a.txt": "shared " * 100, "sub/b.txt": "version 1"})
    run = rtenv.run({"working_dir": str(t)}, "cat", "sub/b.txt", timeout=60)
    assert_ok(run)
    uri1 = rtenv.pack(t)["uri"]
    (t / "sub" / "b.txt").write_text("version 2")
    uri2 = rtenv.pack(t)["uri"]  # packed, never run: no node copy, no env
    kept = package_blobs(store, root_of(uri1))
    only2 = package_blobs(store, root_of(uri2)) - kept
    assert len(only2) == 3  # the new b.txt, and the manifests of sub/ and of the root

    # Just written: kept, however unreferenced.
    fresh = json.loads(assert_ok_out(rtenv("gc", "--json", timeout=60)))
    assert fresh["store"]["collected"] == []

    age(store)
    dry = json.loads(assert_ok_out(rtenv("gc", "--dry-run", "--json", timeout=60)))
    assert {c["digest"] for c in dry["store"]["collected"]} == only2
    assert set(blobs(store)) >= only2  # a dry run removes nothing
    done = rtenv("gc", timeout=60)
    assert_ok(done)
    assert "store: collected 3 blobs" in done.stdout, done.stdout
    assert set(blobs(store)) == kept

    # The package whose blobs went is packed again whole (the store lacks them), and runs.
    assert rtenv.pack(t)["uri"] == uri2
    assert set(blobs(store)) == kept | only2
    again = rtenv.run({"working_dir": str(t)}, "cat", "sub/b.txt", timeout=60)
    assert_ok(again)
    assert again.stdout == "version 2"


def assert_ok_out(p) -> str:
    assert_ok(p)
    return p.stdout


def test_gc_never_collects_a_shared_store(rtenv, tmp_path):
    shared = tmp_path / "shared-store"
    t = tree(tmp_path / "t", {"a.txt": "a"})
    p = rtenv("pack", t, "--store", str(shared))
    assert_ok(p)
    age(shared)
    gc = rtenv("gc", "--json", env={"RTENV_STORE": str(shared)}, timeout=60)
    assert_ok(gc)
    assert "store" not in json.loads(gc.stdout)
    assert len(blobs(shared)) == 2


def test_store_gc_keeps_what_records_name_what_was_used_and_all_below(rtenv, tmp_path):
    shared = tmp_path / "shared-store"
    s = ["--store", str(shared)]
    named = rtenv.pack(tree(tmp_path / "named", {"n.txt": "named", "d/m.txt": "below"}), *s)
    used = rtenv.pack(tree(tmp_path / "used", {"u.txt": "used", "d/v.txt": "deep"}), *s)
    fetched = rtenv.pack(tree(tmp_path / "fetched", {"f.txt": "fetched"}), *s)
    lost = rtenv.pack(tree(tmp_path / "lost", {"l.txt": "nobody needs this"}), *s)
    records = shared / "records" / "urls"
    records.mkdir(parents=True)
    (records / "abc").write_text(json.dumps({"uri": named["uri"], "url": "https://x/y.zip"}))
    age(shared)
    # Packed again: the store has its root manifest, so only that is asked for (and marked used);
    # everything below it must stay with it.
    assert rtenv.pack(tmp_path / "used", *s)["uri"] == used["uri"]
    # Fetched by a node: every blob it read is marked used.
    other = tmp_path / "other-home"
    run = rtenv.run({"working_dir": fetched["uri"]}, "cat", "f.txt",
                    env={"RTENV_HOME": str(other), "RTENV_STORE": str(shared)}, timeout=60)
    assert_ok(run)

    everything = set(blobs(shared))
    dry = rtenv("store", "gc", "--older-than", "1h", "--dry-run", "--json", *s)
    assert_ok(dry)
    report = json.loads(dry.stdout)
    assert {c["digest"] for c in report["collected"]} == package_blobs(shared, root_of(lost["uri"]))
    assert set(blobs(shared)) == everything

    done = rtenv("store", "gc", "--older-than", "1h", *s)
    assert_ok(done)
    assert done.stdout.startswith("collected 2 blobs"), done.stdout
    for p in (named, used, fetched):
        assert package_blobs(shared, root_of(p["uri"])) <= set(blobs(shared))
    assert not package_blobs_present(shared, root_of(lost["uri"]))


def package_blobs_present(store: Path, root: str) -> bool:
    return (store / root[:2] / root).exists()


def test_store_gc_refuses_what_it_cannot_do_safely(rtenv, tmp_path):
    too_short = rtenv("store", "gc", "--older-than", "5m", "--store", str(tmp_path / "s"))
    assert too_short.returncode == 2 and "at least 20 min" in too_short.stderr
    bad = rtenv("store", "gc", "--older-than", "a week", "--store", str(tmp_path / "s"))
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    s3 = rtenv("store", "gc", "--older-than", "7d", "--store", "s3://bucket/prefix")
    assert s3.returncode == 2 and "not supported yet" in s3.stderr


class AgeLock:
    """Time passing (aging every blob) never falls between a pack and the run of what it packed:
    a day between the two is a real reason for the run to find its package collected."""

    def __init__(self):
        self._cond = threading.Condition()
        self._pairs = 0
        self._aging = False

    def pair(self):
        lock = self

        class Pair:
            def __enter__(self):
                with lock._cond:
                    lock._cond.wait_for(lambda: not lock._aging)
                    lock._pairs += 1

            def __exit__(self, *exc):
                with lock._cond:
                    lock._pairs -= 1
                    lock._cond.notify_all()
        return Pair()

    def age(self, store: Path):
        with self._cond:
            self._aging = True
            self._cond.wait_for(lambda: self._pairs == 0)
        try:
            age(store, DAY)
        finally:
            with self._cond:
                self._aging = False
                self._cond.notify_all()


def assert_every_manifest_whole(store: Path):
    have = set(blobs(store))
    for d, path in blobs(store).items():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if not text.startswith("rtenv-manifest 1\n"):
            continue
        for line in text.splitlines()[1:]:
            kind, rest = line.split(" ", 1)
            if kind in ("d", "f", "x"):
                assert rest.split(" ")[0] in have, f"manifest {d} names a blob the store lacks"


def test_a_thousand_packs_runs_and_collections_leave_no_broken_package(rtenv, tmp_path):
    """Packs, runs (on other nodes' homes) and collections of one shared directory store, at
    once, while time passes (every blob aged by a day now and then): each package a pack
    printed runs with the content it was packed with, and no manifest in the store ever names a
    blob the store lacks."""
    shared = tmp_path / "shared-store"
    s = ["--store", str(shared)]
    trees = [tree(tmp_path / f"t{i}", {"common.txt": "same in every tree " * 50,
                                        f"own{i}.txt": f"tree {i}", "d/x.txt": "0"})
             for i in range(3)]
    tree_locks = [threading.Lock() for _ in trees]
    clock = AgeLock()
    failures: list[str] = []
    ops = {"pack": 0, "run": 0, "gc": 0, "age": 0, "edit": 0}
    ops_lock = threading.Lock()

    def count(op):
        with ops_lock:
            ops[op] += 1

    def worker(seed: int, n: int):
        r = random.Random(seed)
        node = {"RTENV_HOME": str(tmp_path / f"node{seed}"), "RTENV_STORE": str(shared),
                "RTENV_NO_AGENT": "1"}
        for _ in range(n):
            if failures:
                return
            roll = r.random()
            if roll < 0.55:
                i = r.randrange(len(trees))
                with clock.pair():
                    with tree_locks[i]:  # the tree does not change while it is packed
                        files = {p.relative_to(trees[i]).as_posix(): p.read_text()
                                 for p in trees[i].rglob("*") if p.is_file()}
                        p = rtenv("pack", "-q", trees[i], *s, timeout=60)
                    count("pack")
                    if p.returncode != 0:
                        failures.append(f"pack: {p.stderr}")
                        continue
                    uri = p.stdout.strip()
                    name = r.choice(sorted(files))
                    run = rtenv("run", "-e", json.dumps({"working_dir": uri}), "--", "cat", name,
                                env=node, timeout=60)
                    count("run")
                    if run.returncode != 0 or run.stdout != files[name]:
                        failures.append(f"run {uri} {name}: exit {run.returncode}: {run.stderr}")
            elif roll < 0.80:
                p = rtenv("store", "gc", "-q", "--older-than", "30m", *s, timeout=60)
                count("gc")
                if p.returncode != 0:
                    failures.append(f"store gc: {p.stderr}")
            elif roll < 0.88:
                clock.age(shared)
                count("age")
            else:
                i = r.randrange(len(trees))
                with tree_locks[i]:
                    (trees[i] / "d" / "x.txt").write_text(str(r.randrange(1000)))
                count("edit")

    threads = [threading.Thread(target=worker, args=(seed, 200)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert sum(ops.values()) >= 1000, ops
    assert ops["gc"] > 100 and ops["pack"] > 300 and ops["age"] > 20, ops
    assert_every_manifest_whole(shared)


def test_gc_prunes_the_uv_cache_with_uv(rtenv):
    from conftest import PY
    from pyindex import find_uv
    garbage = rtenv.home / "uv-cache" / "archive-v0" / "unreferenced"
    garbage.mkdir(parents=True)
    (garbage / "payload").write_bytes(os.urandom(100_000))
    env = {"RTENV_UV": find_uv(PY)}
    dry = rtenv("gc", "--dry-run", "--json", env=env, timeout=60)
    assert_ok(dry)
    assert json.loads(dry.stdout)["uv_cache"] == {"pruned": False, "bytes_before": 100_000,
                                                  "bytes_after": 100_000}
    assert garbage.exists()
    done = rtenv("gc", "--json", env=env, timeout=60)
    assert_ok(done)
    report = json.loads(done.stdout)["uv_cache"]
    assert report["pruned"] and report["bytes_before"] == 100_000 and report["bytes_after"] < 1000
    assert not garbage.exists()
