"""Collecting stores, through the real binary: `rtenv gc` collects the node's own store (blobs no
node copy, env, lock or record needs, and not touched within --store-keep), `rtenv store gc
--older-than` a shared directory store or an S3 bucket (blobs no record names and no one wrote or
used within the window), `rtenv store serve --gc-every` the blob server's own. Time passing is
simulated by setting blobs' mtimes into the past, as a store that has been in use for days would
have them; S3 objects cannot be aged, so there a use marks a blob every few seconds
(s3_touch_interval_seconds) and the windows are seconds of real time."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import Rtenv, assert_ok
from test_blob_server import BlobServer
from test_s3_store import BUCKET, s3  # noqa: F401  (s3 is a fixture)

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
    assert too_short.returncode == 2 and "at least 20m" in too_short.stderr
    bad = rtenv("store", "gc", "--older-than", "a week", "--store", str(tmp_path / "s"))
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    server = rtenv("store", "gc", "--older-than", "7d", "--store", "http://127.0.0.1:9/x")
    assert server.returncode == 2 and "store serve --gc-every" in server.stderr, server.stderr


class AgeLock:
    """Time passing (aging every blob) never falls between a pack and the run of what it packed:
    a day between the two is a real reason for the run to find its package collected."""

    def __init__(self):
        self._cond = threading.Condition()
        self._pairs = 0
        self._aging = 0  # threads aging the store now (several may)

    def pair(self):
        lock = self

        class Pair:
            def __enter__(self):
                with lock._cond:
                    lock._cond.wait_for(lambda: lock._aging == 0)
                    lock._pairs += 1

            def __exit__(self, *exc):
                with lock._cond:
                    lock._pairs -= 1
                    lock._cond.notify_all()
        return Pair()

    def age(self, store: Path):
        with self._cond:
            self._aging += 1
            self._cond.wait_for(lambda: self._pairs == 0)
        try:
            age(store, DAY)
        finally:
            with self._cond:
                self._aging -= 1
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


class StressStore:
    """One shared store of the stress test: how packs and runs name it, how it is collected, how
    time passes for it, and what it holds in the end."""

    def __init__(self, kind: str, rtenv_bin: str, tmp_path: Path, s3=None):
        self.kind = kind
        self.env: dict[str, str] = {}
        self.server = None
        self.dir = tmp_path / "shared-store"
        if kind == "dir":
            self.url = str(self.dir)
            self.gc_args = ["--older-than", "30m", "--store", self.url]
        elif kind == "server":
            env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
            env["RTENV_HOME"] = str(tmp_path / "server-home")
            # It collects on its own every second, and the test collects its directory too.
            self.server = BlobServer(rtenv_bin, self.dir, None, env).start(
                0, "--gc-every", "1s", "--gc-older-than", "30m")
            self.url = self.server.url
            self.gc_args = ["--older-than", "30m", "--store", str(self.dir)]
        else:
            # S3 objects cannot be aged: real time passes, a use marks a blob every 3 s and a
            # collection keeps the last 6 s, much longer than a pack and its run take.
            self.s3 = s3
            self.url = f"s3://{BUCKET}/stress"
            self.env = dict(s3["env"], RTENV_S3_TOUCH_INTERVAL="3")
            self.gc_args = ["--older-than", "6s", "--store", self.url]

    def age(self, clock: AgeLock):
        if self.kind != "s3":
            clock.age(self.dir)

    def stop(self):
        if self.server is not None:
            code, err = self.server.stop()
            assert code == 0, err

    def assert_every_manifest_whole(self):
        if self.kind != "s3":
            assert_every_manifest_whole(self.dir)
            return
        client = self.s3["client"]
        have = s3_objects(self.s3, "stress")
        for d in have:
            body = client.get_object(Bucket=BUCKET, Key=f"stress/{d[:2]}/{d}")["Body"].read()
            if body[:1] == b"\x01":
                body = subprocess.run(["zstd", "-dc"], input=body[1:], capture_output=True,
                                      check=True).stdout
            else:
                body = body[1:]
            if not body.startswith(b"rtenv-manifest 1\n"):
                continue
            for line in body.decode().splitlines()[1:]:
                kind, rest = line.split(" ", 1)
                if kind in ("d", "f", "x"):
                    assert rest.split(" ")[0] in have, f"manifest {d} names a blob S3 lacks"


@pytest.fixture(params=["dir", "server", "s3"])
def stress_store(request, rtenv_bin, tmp_path):
    s3_env = request.getfixturevalue("s3") if request.param == "s3" else None
    store = StressStore(request.param, rtenv_bin, tmp_path, s3_env)
    yield store
    store.stop()


def test_a_thousand_packs_runs_and_collections_leave_no_broken_package(rtenv, tmp_path,
                                                                       stress_store):
    """Packs, runs (on other nodes' homes) and collections of one shared store (a directory,
    rtenv's blob server, S3), at once, while time passes (every blob aged by a day now and then;
    real seconds on S3): each package a pack printed runs with the content it was packed with,
    and no manifest in the store ever names a blob the store lacks."""
    store = stress_store
    rtenv.env.update(store.env)
    s = ["--store", store.url]
    trees = [tree(tmp_path / f"t{i}", {"common.txt": "same in every tree " * 50,
                                        f"own{i}.txt": f"tree {i}", "d/x.txt": "0"})
             for i in range(3)]
    tree_locks = [threading.Lock() for _ in trees]
    clock = AgeLock()
    failures: list[str] = []
    ops = {"pack": 0, "run": 0, "gc": 0, "age": 0, "edit": 0, "collected": 0}
    ops_lock = threading.Lock()

    def count(op, n=1):
        with ops_lock:
            ops[op] += n

    def worker(seed: int, n: int):
        r = random.Random(seed)
        node = {"RTENV_HOME": str(tmp_path / f"node{seed}"), "RTENV_STORE": store.url,
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
                p = rtenv("store", "gc", "--json", *store.gc_args, timeout=60)
                count("gc")
                if p.returncode != 0:
                    failures.append(f"store gc: {p.stderr}")
                else:
                    count("collected", len(json.loads(p.stdout)["collected"]))
            elif roll < 0.88:
                store.age(clock)
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
    assert ops["collected"] > 0, ops  # old versions of the trees were collected meanwhile
    store.assert_every_manifest_whole()


def tool_caches(report: dict) -> dict:
    return {t["name"]: t for t in report["tool_caches"]}


def test_gc_prunes_the_installers_caches_and_counts_them(rtenv):
    from conftest import PY
    from pyindex import find_uv
    garbage = {"uv": rtenv.home / "uv-cache" / "archive-v0" / "unreferenced" / "payload",
               "pip": rtenv.home / "pip-cache" / "http-v2" / "a" / "payload",
               "conda": rtenv.home / "conda" / "pkgs" / "demo-1.0-0" / "payload"}
    for path in garbage.values():
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(100_000))
    env = {"RTENV_UV": find_uv(PY)}
    dry = rtenv("gc", "--dry-run", "--json", env=env, timeout=60)
    assert_ok(dry)
    report = json.loads(dry.stdout)
    for name, t in tool_caches(report).items():
        assert not t["pruned"] and t["bytes_before"] >= 100_000, t
        assert garbage[name].exists()
    assert report["cache_bytes_after"] >= 300_000, report  # counted in the cache's size

    done = rtenv("gc", "--json", env=env, timeout=60)
    assert_ok(done)
    report = json.loads(done.stdout)
    for name, t in tool_caches(report).items():
        assert t["pruned"] and t["bytes_after"] < 10_000, t
        assert not garbage[name].exists()
    assert report["cache_bytes_after"] < 100_000, report
    human = rtenv("gc", "--dry-run", env=env, timeout=60)
    assert_ok(human)
    assert "pip cache" not in human.stdout  # empty now: not mentioned


def test_a_cache_over_its_limit_prunes_the_installers_caches_first(rtenv, tmp_path):
    payload = rtenv.home / "pip-cache" / "http-v2" / "payload"
    payload.parent.mkdir(parents=True)
    payload.write_bytes(os.urandom(3 << 20))
    env = {"RTENV_CACHE_LIMIT": "2M", "RTENV_CACHE_LOW": "1M"}
    t = tree(tmp_path / "t", {"a.txt": "small"})
    # The agent installs the package, then collects: the cache is over its limit.
    run = rtenv.run({"working_dir": str(t)}, "cat", "a.txt", env=env, timeout=60)
    assert_ok(run)
    deadline = time.monotonic() + 20
    while payload.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not payload.exists()
    # The package itself stays: the pruned cache brought the node under its limit.
    again = rtenv("gc", "--dry-run", "--json", env=env, timeout=60)
    assert_ok(again)
    assert json.loads(again.stdout)["evicted"] == []


def test_a_package_a_node_uses_is_kept_until_the_nodes_report_is_older_than_the_window(
        rtenv, rtenv_bin, tmp_path):
    """A job that runs for longer than the window: no pack or fetch touches its package, but its
    node's agent reports it in use (records/nodes/...), so a collection keeps it; a report older
    than the window is a node gone, and no longer keeps anything."""
    shared = tmp_path / "shared-store"
    packed = rtenv.pack(tree(tmp_path / "t", {"job.txt": "long job"}), "--store", str(shared))
    node_home = tmp_path / "node-home"
    node = Rtenv(rtenv_bin, node_home, tmp_path / "node-fake-home")
    node.env.update(RTENV_STORE=str(shared))
    job = node.popen({"working_dir": packed["uri"]}, "sh", "-c", "cat job.txt; echo; sleep 60")
    try:
        assert job.stdout.readline() == "long job\n"
        reports = shared / "records" / "nodes"
        deadline = time.monotonic() + 20
        while not (reports.is_dir() and any(reports.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.1)
        [report_file] = list(reports.iterdir())
        report = json.loads(report_file.read_text())
        assert report["home"] == str(node_home) and packed["uri"] in report["in_use"], report
        ours = package_blobs(shared, root_of(packed["uri"]))

        age(shared)  # days pass; the job still runs
        gc = rtenv("store", "gc", "--older-than", "1h", "--json", "--store", str(shared))
        assert_ok(gc)
        assert json.loads(gc.stdout)["collected"] == []
        assert ours <= set(blobs(shared))

        # The node went away without a word: its last report grows old.
        report["written_ms"] -= 2 * DAY * 1000
        report_file.write_text(json.dumps(report))
        gc = rtenv("store", "gc", "--older-than", "1h", "--json", "--store", str(shared))
        assert_ok(gc)
        assert {c["digest"] for c in json.loads(gc.stdout)["collected"]} == ours
    finally:
        job.kill()
        job.wait()
        from conftest import stop_agent
        stop_agent(node_home)


# ---- S3 (moto on 127.0.0.1)

S3_TOUCH = 2  # seconds: how stale an object gets before a use marks it again


def s3_objects(s3, prefix: str) -> set[str]:
    """The blob digests under s3://BUCKET/<prefix>/."""
    out = set()
    pages = s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                  Prefix=prefix + "/")
    for page in pages:
        for o in page.get("Contents", []):
            name = o["Key"][len(prefix) + 1:]
            if len(name) == 67 and name[2] == "/":
                out.add(name[3:])
    return out


def test_store_gc_of_an_s3_store_keeps_what_is_named_used_and_below(rtenv, rtenv_bin, s3,
                                                                     tmp_path):
    store = f"s3://{BUCKET}/gc"
    rtenv.env.update(s3["env"], RTENV_S3_TOUCH_INTERVAL=str(S3_TOUCH))
    s = ["--store", store]
    # The same trees packed into a directory too: the same digests, readable here.
    mirror = tmp_path / "mirror"
    trees = {name: tree(tmp_path / name, files) for name, files in {
        "named": {"n.txt": "named", "d/m.txt": "below"},
        "used": {"u.txt": "used", "d/v.txt": "deep"},
        "fetched": {"f.txt": "fetched", "g.txt": "g" * 3000},
        "lost": {"l.txt": "nobody needs this", "d/l2.txt": "nor this"}}.items()}
    packed = {name: rtenv.pack(t, *s) for name, t in trees.items()}
    for t in trees.values():
        rtenv.pack(t, "--store", str(mirror))
    s3["client"].put_object(Bucket=BUCKET, Key="gc/records/urls/abc",
                            Body=json.dumps({"uri": packed["named"]["uri"],
                                             "url": "https://x/y.zip"}).encode())
    time.sleep(2 * S3_TOUCH + 1)  # everything is older than the window now
    # Packed again: its root is found present and marked used; all below stays with it.
    assert rtenv.pack(trees["used"], *s)["uri"] == packed["used"]["uri"]
    # Fetched by another node: what it read is marked used.
    other = Rtenv(rtenv_bin, tmp_path / "other-home", tmp_path / "other-fake-home")
    other.env.update(rtenv.env, RTENV_HOME=str(tmp_path / "other-home"), RTENV_NO_AGENT="1",
                     RTENV_STORE=store)
    run = other.run({"working_dir": packed["fetched"]["uri"]}, "cat", "f.txt")
    assert_ok(run)

    lost = package_blobs(mirror, root_of(packed["lost"]["uri"]))
    everything = s3_objects(s3, "gc")
    window = f"{2 * S3_TOUCH}s"
    dry = rtenv("store", "gc", "--older-than", window, "--dry-run", "--json", *s, timeout=60)
    assert_ok(dry)
    assert {c["digest"] for c in json.loads(dry.stdout)["collected"]} == lost
    assert s3_objects(s3, "gc") == everything

    done = rtenv("store", "gc", "--older-than", window, *s, timeout=60)
    assert_ok(done)
    assert done.stdout.startswith(f"collected {len(lost)} blobs"), done.stdout
    assert s3_objects(s3, "gc") == everything - lost
    for name in ("named", "used", "fetched"):
        assert package_blobs(mirror, root_of(packed[name]["uri"])) <= s3_objects(s3, "gc")

    # A window shorter than twice the touch interval could take what a pack relies on.
    short = rtenv("store", "gc", "--older-than", "3s", *s)
    assert short.returncode == 2 and "at least 4s" in short.stderr, short.stderr


def test_a_collected_s3_blob_is_uploaded_again_by_the_next_pack(rtenv, s3, tmp_path):
    store = f"s3://{BUCKET}/gc-again"
    rtenv.env.update(s3["env"], RTENV_S3_TOUCH_INTERVAL=str(S3_TOUCH))
    t = tree(tmp_path / "t", {"a.txt": "a" * 100})
    first = rtenv.pack(t, "--store", store)
    time.sleep(2 * S3_TOUCH + 1)
    gc = rtenv("store", "gc", "--older-than", f"{2 * S3_TOUCH}s", "--store", store, timeout=60)
    assert_ok(gc)
    assert s3_objects(s3, "gc-again") == set()
    again = rtenv.pack(t, "--store", store)
    assert again["uri"] == first["uri"] and again["blobs_uploaded"] == again["blobs"]
    run = rtenv.run({"working_dir": again["uri"]}, "cat", "a.txt",
                    env={"RTENV_STORE": store, "RTENV_NO_AGENT": "1"})
    assert_ok(run)
    assert run.stdout == "a" * 100


# ---- rtenv's blob server


def test_the_blob_server_collects_its_own_store_every_interval(rtenv, rtenv_bin, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTENV_")}
    env["RTENV_HOME"] = str(tmp_path / "server-home")
    served = tmp_path / "served"
    server = BlobServer(rtenv_bin, served, None, env).start(
        0, "--gc-every", "1s", "--gc-older-than", "1h")
    try:
        s = ["--store", server.url]
        kept = rtenv.pack(tree(tmp_path / "kept", {"k.txt": "kept", "d/k2.txt": "below"}), *s)
        lost = rtenv.pack(tree(tmp_path / "lost", {"l.txt": "lost", "d/l2.txt": "lost below"}), *s)
        age(served)  # a day passes
        # Packed again: the server marks what the query finds present.
        assert rtenv.pack(tmp_path / "kept", *s)["uri"] == kept["uri"]
        lost_blobs = package_blobs(served, root_of(lost["uri"]))
        kept_blobs = package_blobs(served, root_of(kept["uri"]))
        deadline = time.monotonic() + 20
        while lost_blobs & set(blobs(served)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not lost_blobs & set(blobs(served))
        assert kept_blobs <= set(blobs(served))
        run = rtenv.run({"working_dir": kept["uri"]}, "cat", "d/k2.txt",
                        env={"RTENV_STORE": server.url, "RTENV_NO_AGENT": "1"})
        assert_ok(run)
        assert run.stdout == "below"
    finally:
        code, err = server.stop()
    assert code == 0, err
    assert "collecting every 1s what was not used in 1h" in err, err
    assert f"collected {len(lost_blobs)} blobs" in err, err


def test_store_serve_refuses_a_collection_window_it_cannot_keep(rtenv, tmp_path):
    p = rtenv("store", "serve", "--root", str(tmp_path / "s"), "--listen", "127.0.0.1:0",
              "--gc-every", "6h", "--gc-older-than", "5m")
    assert p.returncode == 2 and "at least 20m" in p.stderr, p.stderr
    p = rtenv("store", "serve", "--root", str(tmp_path / "s"), "--listen", "127.0.0.1:0",
              "--gc-every", "often")
    assert p.returncode == 2 and "not a duration" in p.stderr, p.stderr
