"""The node agent killed with SIGKILL at random moments while it installs, releases and
evicts packages, and started again: nothing half-built is ever published, no reference a client
was told about is lost, and the restarted agent clears what the dead one left in tmp/."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

from agent_helpers import (
    agent_factory,  # noqa: F401  (fixture)
    assert_same_tree,
    digest_of,
    env_create,
    env_list,
    env_release,
    kill_strays,
    pack_uri,
    package_dirs,
    tree_of,
)
from conftest import wait_for, write_tree

SEED = 20261125
ITERATIONS = 50
PACKAGES = 4
FILES_PER_PACKAGE = 500  # small files: an install takes tens of ms, more under load
# Every install's gc evicts whatever is unused, so packages come and go all the time.
LIMITS = {"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"}


def test_agent_killed_at_random_points_recovers(rtenv, agent_factory, tmp_path):
    rng = random.Random(SEED)
    srcs, uris = [], []
    for k in range(PACKAGES):
        files = {
            f"p{k}/d{i % 16}/f{i}.txt": f"{k}:{i}:" + "z" * rng.randrange(0, 100)
            for i in range(FILES_PER_PACKAGE)
        }
        srcs.append(write_tree(tmp_path / "src", files) / f"p{k}")
        uris.append(pack_uri(rtenv, srcs[-1]))
    trees = [tree_of(s) for s in srcs]
    tree_by_digest = {digest_of(u): t for u, t in zip(uris, trees)}

    def spec(job: str, k: int) -> dict:
        return {"working_dir": uris[k], "env_vars": {"JOB": job}}

    def client(*args) -> subprocess.Popen:
        return subprocess.Popen([rtenv.binary, *args], env=rtenv.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    t_start = time.monotonic()
    agent = agent_factory(env=LIMITS)
    held: dict[str, int] = {}  # jobs holding a reference (create returned, not released since)
    stats = {"creates_returned": 0, "creates_cut": 0, "releases_returned": 0, "strays": 0,
             "unpublished_dirs": 0, "published_checked": 0, "kills_mid_install": 0}
    for it in range(ITERATIONS):
        # The window the kill falls in: new jobs' creates, the previous jobs' releases, a gc.
        jobs = [(f"i{it}j{n}", rng.randrange(PACKAGES)) for n in range(2)]
        running = [("create", job, client("env", "create", "-e", json.dumps(spec(job, k)),
                                          "--job", job, "--json"))
                   for job, k in jobs]
        releasing = sorted(held)
        running += [("release", job, client("env", "release", "--job", job)) for job in releasing]
        if rng.random() < 0.5:
            running.append(("gc", "", client("gc")))
        time.sleep(rng.uniform(0.0, 0.3))
        if os.listdir(rtenv.home / "tmp"):
            stats["kills_mid_install"] += 1
        agent.kill()
        # Started again at once, so that clients that had not connected yet find it (rather
        # than starting agents of their own).
        agent = agent_factory(env=LIMITS)

        created, released = [], []
        for kind, job, p in running:
            p.communicate(timeout=60)
            if p.returncode == 0 and kind == "create":
                created.append(job)
            elif p.returncode == 0 and kind == "release":
                released.append(job)
            elif kind == "create":
                stats["creates_cut"] += 1
        stats["creates_returned"] += len(created)
        stats["releases_returned"] += len(released)
        # A client that found no agent answering started one of its own (it exits at once if
        # ours serves): stop it.
        stats["strays"] += kill_strays(rtenv, keep=agent.pid)
        ctx = f"iteration {it}"

        # (c) The restarted agent removed what the dead one left half done. (Trees the live one
        # evicted since are deleted in the background, outside its lock: they go soon.)
        mine = f"evicted.{agent.pid}."  # src/env/published_dirs.h kEvictedPrefix
        leftovers = [n for n in os.listdir(rtenv.home / "tmp") if not n.startswith(mine)]
        assert leftovers == [], f"{ctx}: tmp/ after restart: {leftovers}"
        wait_for(lambda: not os.listdir(rtenv.home / "tmp"), 10,
                 f"{ctx}: the trees the agent evicted to be deleted")
        # No temp file of an interrupted atomic write is left beside the packages either.
        stray_files = [n for n in os.listdir(rtenv.pkgs) if ".tmp." in n]
        assert stray_files == [], f"{ctx}: temp files in pkgs/: {stray_files}"

        # (a) Every published package (its .state present) is the whole tree, byte for byte.
        unpublished, checked = [], set()
        for d in package_dirs(rtenv):
            if (rtenv.pkgs / f"{d}.state").exists():
                assert_same_tree(rtenv.pkgs / d, tree_by_digest[d])
                stats["published_checked"] += 1
                checked.add(d)
            else:
                unpublished.append(d)
        stats["unpublished_dirs"] += len(unpublished)

        # (b) References of creates that returned (before the kill, or from the new agent) are
        # there; released ones are gone.
        listing = env_list(rtenv)
        listed = {h for e in listing["envs"] for h in e["holders"]}
        for job in created:
            assert f"job:{job}" in listed, f"{ctx}: job {job}'s create returned, its reference is lost"
        for job in released:
            assert f"job:{job}" not in listed, f"{ctx}: job {job} was released, still listed"
        creating = [e["env_id"] for e in listing["envs"] if e["state"] == "creating"]
        assert creating == [], f"{ctx}: envs still 'creating' after a restart: {creating}"

        # Everything can be served again, whole: this iteration's jobs (the retried create of a
        # job counts once), and any package left unpublished by the crash.
        again = [(job, k, client("env", "create", "-e", json.dumps(spec(job, k)), "--job", job,
                                 "--json")) for job, k in jobs]
        for job, k, p in again:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, f"{ctx}: create {job} after the restart: {err}"
            reply = json.loads(out)
            assert reply["resources"] == [uris[k]]
            if reply["installed"] or digest_of(uris[k]) not in checked:
                assert_same_tree(rtenv.pkgs / digest_of(uris[k]), trees[k])
        for d in unpublished:
            k = [digest_of(u) for u in uris].index(d)
            env_create(rtenv, spec("check", k), job="check")
            assert_same_tree(rtenv.pkgs / d, trees[k])
            env_release(rtenv, "check")
        listing = env_list(rtenv)
        for job, k in jobs:
            envs = [e for e in listing["envs"] if f"job:{job}" in e["holders"]]
            assert len(envs) == 1 and envs[0]["holders"] == [f"job:{job}"], (ctx, envs)
            assert envs[0]["state"] == "ready", (ctx, envs)
        for job in releasing:
            env_release(rtenv, job)
        held = {job: k for job, k in jobs}

    took = time.monotonic() - t_start
    print(f"\n{ITERATIONS} kills in {took:.1f} s: {stats}")
    assert not os.listdir(rtenv.home / "tmp")


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_restart_clears_what_a_crash_left(rtenv, agent_factory, tmp_path):
    """The states a crash can leave, made by hand: the restarted agent removes half-built trees
    and interrupted writes of dead processes (not those of live ones), fails the envs that were
    being created, and does not trust a package whose .state is missing."""
    import sqlite3

    src = write_tree(tmp_path / "src", {f"d/f{i}.txt": f"file {i}\n" for i in range(50)})
    uri = pack_uri(rtenv, src)
    digest = digest_of(uri)
    spec = {"working_dir": uri}
    agent = agent_factory()
    env_create(rtenv, spec, job="before")
    agent.kill()

    dead, live = _dead_pid(), os.getpid()
    tmp = rtenv.home / "tmp"
    half = tmp / f"pkg-{digest[:12]}.{dead}.3.0badf00d"
    write_tree(half, {"d/f0.txt": "file 0\n", "d/f1.txt": "fi"})
    write_tree(tmp / f"evict-{digest[:12]}.{dead}.4.0badf00d", {"x": "y"})
    dead_write = rtenv.pkgs / f".{digest}.state.tmp.{dead}.5.0badf00d"
    live_write = rtenv.pkgs / f".{digest}.state.tmp.{live}.6.0badf00d"
    dead_write.write_bytes(b"partial")
    live_write.write_bytes(b"in progress")
    # Killed between publishing the tree and recording its .state: not to be trusted (here it
    # was changed, too).
    (rtenv.pkgs / f"{digest}.state").unlink()
    (rtenv.pkgs / digest / "d" / "f7.txt").write_text("changed\n")
    # An env whose setup the crash interrupted.
    db = sqlite3.connect(rtenv.home / "agent.db")
    with db:
        db.execute("UPDATE envs SET state = 'creating'")
    db.close()

    agent = agent_factory()
    assert os.listdir(tmp) == [], "half-built trees of a dead process must be swept"
    assert not dead_write.exists(), "an interrupted .state write of a dead process must be swept"
    assert live_write.exists(), "a live process's write in progress must be left alone"
    live_write.unlink()
    listing = env_list(rtenv)
    assert [e["state"] for e in listing["envs"]] == ["failed"]
    assert "interrupted" in listing["envs"][0]["error"]
    assert listing["envs"][0]["holders"] == ["job:before"], "references survive a crash"

    reply = env_create(rtenv, spec, job="after")
    assert reply["installed"] is True, "a package without its .state must be built again"
    assert_same_tree(rtenv.pkgs / digest, src)
    assert (rtenv.pkgs / f"{digest}.state").exists()
    listing = env_list(rtenv)
    assert [e["state"] for e in listing["envs"]] == ["ready"]
    assert sorted(listing["envs"][0]["holders"]) == ["job:after", "job:before"]
