"""The node agent, end to end: a real `rtenv agent` on its real socket, driven through the CLI
(`rtenv env create/release/list`, `rtenv gc`, `rtenv run`). Every test has its own $RTENV_HOME
and stops every agent it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent_helpers import (
    BlockedBlob,
    agent,  # noqa: F401  (fixture)
    agent_factory,  # noqa: F401  (fixture)
    assert_same_tree,
    children_of,
    digest_of,
    env_create,
    env_list,
    env_release,
    pack_uri,
    package_dirs,
    resource,
)
from conftest import assert_ok, proc_state, wait_for, wait_gone, write_tree


def small_tree(root, name: str, n: int = 5, size: int = 100):
    return write_tree(root, {f"{name}/f{i}.txt": f"{name}:{i}:" + "x" * size for i in range(n)}) / name


def kill_run(run: subprocess.Popen):
    """SIGKILL to an `rtenv run` and its command (which holds the leases too)."""
    kids = children_of(run.pid)
    run.kill()
    run.wait(5)
    for pid in kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid)


def holders(listing: dict) -> list[str]:
    return [h for e in listing["envs"] for h in e["holders"]]


# ---- 1. envs that share a working_dir share one resource -------------------------------------


def test_two_envs_sharing_a_working_dir_share_one_resource(rtenv, agent, tmp_path):
    src = write_tree(tmp_path / "wd", {"main.py": "print('hi')\n", "data/table.csv": "a,b\n1,2\n"})
    uri = pack_uri(rtenv, src)
    assert package_dirs(rtenv) == [], "pack must not materialize anything"

    a = env_create(rtenv, {"working_dir": uri, "env_vars": {"WHO": "a"}}, job="A")
    b = env_create(rtenv, {"working_dir": uri, "env_vars": {"WHO": "b"}}, job="B")
    assert a["env_id"] != b["env_id"], "different env_vars make different envs"
    assert a["installed"] is True
    assert b["installed"] is False, "the second env found its working_dir on the node"
    assert a["resources"] == b["resources"] == [uri]

    assert package_dirs(rtenv) == [digest_of(uri)], "one directory under pkgs/ for both envs"
    assert_same_tree(rtenv.pkgs / digest_of(uri), src)

    listing = env_list(rtenv)
    assert [r["uri"] for r in listing["resources"]] == [uri]
    r = resource(listing, uri)
    assert r["env_references"] == 2, r
    assert r["process_leases"] == 0, r
    assert r["size_bytes"] > 0, r
    by_id = {e["env_id"]: e for e in listing["envs"]}
    assert by_id[a["env_id"]]["holders"] == ["job:A"]
    assert by_id[b["env_id"]]["holders"] == ["job:B"]
    assert by_id[a["env_id"]]["resources"] == by_id[b["env_id"]]["resources"] == [uri]
    assert by_id[a["env_id"]]["state"] == by_id[b["env_id"]]["state"] == "ready"

    assert env_release(rtenv, "A") == 1
    assert resource(env_list(rtenv), uri)["env_references"] == 1
    assert env_release(rtenv, "B") == 1
    assert env_release(rtenv, "B") == 0, "a job's references are given back once"
    assert resource(env_list(rtenv), uri)["env_references"] == 0
    # No cache limit reached: the unused package stays for the next job.
    assert package_dirs(rtenv) == [digest_of(uri)]


# ---- 2. a killed `rtenv run` gives its reference back --------------------------------------


def _start_run_through_agent(rtenv, tmp_path, uri):
    """`rtenv run -- sleep 30` on a package not on the node yet: it asks the agent (holder
    pid:<pid>:<start>), then leases the package. Returns (process, holder, sleep pid)."""
    assert digest_of(uri) not in package_dirs(rtenv)
    proc = rtenv.popen({"working_dir": uri}, "sleep", "30", cwd=tmp_path)
    prefix = f"pid:{proc.pid}:"

    def ready():
        if proc.poll() is not None:
            pytest.fail(f"rtenv run exited early ({proc.returncode}): {proc.stderr.read()}")
        listing = env_list(rtenv)
        mine = [h for h in holders(listing) if h.startswith(prefix)]
        r = resource(listing, uri)
        kids = children_of(proc.pid)
        if mine and r and r["process_leases"] == 1 and kids:
            return mine[0], kids[0]
        return None

    holder, sleep_pid = wait_for(ready, 15, "the run's holder, its lease and its command")
    return proc, holder, sleep_pid


def _time_until_released(rtenv, holder: str, limit: float) -> float:
    t0 = time.monotonic()
    while holder in holders(env_list(rtenv)):
        if time.monotonic() - t0 > limit:
            return float("inf")
        time.sleep(0.02)
    return time.monotonic() - t0


def test_killed_run_releases_its_reference_within_2s(rtenv, agent, tmp_path):
    uri = pack_uri(rtenv, small_tree(tmp_path, "wd"))
    proc, holder, sleep_pid = _start_run_through_agent(rtenv, tmp_path, uri)
    try:
        env_id = next(e["env_id"] for e in env_list(rtenv)["envs"] if holder in e["holders"])
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        os.kill(sleep_pid, signal.SIGKILL)
        proc.wait(5)  # its parent reaps it, as a raylet or a shell would
        while holder in holders(env_list(rtenv)):
            assert time.monotonic() - t0 < 10, "the killed run's holder was never released"
            time.sleep(0.02)
        released = time.monotonic() - t0
        print(f"\nkilled rtenv run: holder {holder} released {released * 1000:.0f} ms after SIGKILL")
        assert released <= 2.0, f"took {released:.2f} s"
        listing = env_list(rtenv)
        r = resource(listing, uri)
        assert r["env_references"] == 0, r
        assert r["process_leases"] == 0, f"the flock lease outlived the killed run: {r}"
        env = next(e for e in listing["envs"] if e["env_id"] == env_id)
        assert env["holders"] == []
    finally:
        for pid in (proc.pid, sleep_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(5)


def test_killed_run_not_yet_reaped_by_its_parent_is_released(rtenv, agent, tmp_path):
    """A process killed but not yet waited for is a zombie: /proc/<pid>/stat is still there with
    the same start time. It is dead all the same, and must not pin its envs until its parent
    gets round to waiting (a parent may never do so)."""
    uri = pack_uri(rtenv, small_tree(tmp_path, "wd"))
    proc, holder, sleep_pid = _start_run_through_agent(rtenv, tmp_path, uri)
    try:
        os.kill(sleep_pid, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        wait_for(lambda: proc_state(proc.pid) == "Z", 5, "the killed run to be a zombie")
        released = _time_until_released(rtenv, holder, 3.0)
        print(f"\nkilled, unreaped rtenv run: released after {released * 1000:.0f} ms")
        assert released <= 2.0, (
            f"holder {holder} of a killed (zombie) process was not released within 3 s"
        )
    finally:
        for pid in (proc.pid, sleep_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(5)


def test_finished_run_gives_back_reference_and_lease(rtenv, agent, tmp_path):
    uri = pack_uri(rtenv, small_tree(tmp_path, "wd"))
    p = rtenv.run({"working_dir": uri}, "cat", "f0.txt", cwd=tmp_path, flags=["-v"])
    assert_ok(p)
    assert p.stdout == "wd:0:" + "x" * 100
    assert "installed by the agent" in p.stderr, p.stderr
    listing = env_list(rtenv)
    assert holders(listing) == []
    r = resource(listing, uri)
    assert r["env_references"] == 0 and r["process_leases"] == 0, r
    # Now on the node: the next run does not ask the agent at all.
    p = rtenv.run({"working_dir": uri}, "cat", "f1.txt", cwd=tmp_path, flags=["-v"])
    assert_ok(p)
    assert "everything was on this machine already" in p.stderr, p.stderr


def test_command_of_a_killed_run_keeps_its_working_dir(rtenv, agent_factory, tmp_path):
    """SIGKILL to `rtenv run` leaves its command running (orphaned) inside the package: the
    package is still in use and must not be evicted."""
    agent_factory(env={"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"})
    uri = pack_uri(rtenv, small_tree(tmp_path, "wd"))
    proc, holder, sleep_pid = _start_run_through_agent(rtenv, tmp_path, uri)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        wait_for(lambda: holder not in holders(env_list(rtenv)), 5, "the run's holder to go")
        assert proc_state(sleep_pid) not in (None, "Z"), "the command should still run"
        gc = rtenv("gc")
        assert_ok(gc)
        assert uri not in gc.stdout, f"evicted the working_dir of a running command: {gc.stdout}"
        assert digest_of(uri) in package_dirs(rtenv)
    finally:
        try:
            os.kill(sleep_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- 3. one install for many concurrent requests, across processes ---------------------------


def test_50_concurrent_env_creates_install_once(rtenv, agent, tmp_path):
    files = {f"app/d{i % 10}/f{i}.py": f"# {i}\n" + "y" * (i % 300) for i in range(500)}
    src = write_tree(tmp_path, files) / "app"
    uri = pack_uri(rtenv, src)
    spec = json.dumps({"working_dir": uri, "env_vars": {"MODE": "many"}})
    n = 50
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [rtenv.binary, "env", "create", "-e", spec, "--job", f"j{i}", "--json"],
            env=rtenv.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    elapsed = time.monotonic() - t0
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"exit {p.returncode}: {err}"
    replies = [json.loads(out) for out, _ in outs]
    print(f"\n{n} concurrent env creates: {elapsed * 1000:.0f} ms in all")
    assert len({r["env_id"] for r in replies}) == 1
    assert sum(r["installed"] for r in replies) == 1, [r["installed"] for r in replies]
    assert {tuple(r["resources"]) for r in replies} == {(uri,)}
    assert package_dirs(rtenv) == [digest_of(uri)]
    assert_same_tree(rtenv.pkgs / digest_of(uri), src)
    listing = env_list(rtenv)
    assert len(listing["envs"]) == 1
    assert sorted(listing["envs"][0]["holders"]) == sorted(f"job:j{i}" for i in range(n))
    assert listing["envs"][0]["state"] == "ready"
    assert resource(listing, uri)["env_references"] == 1
    assert not os.listdir(rtenv.home / "tmp")


# ---- 4. GC: only unused resources, least recently used first ---------------------------------


def test_gc_evicts_only_unused_resources_lru_first(rtenv, agent_factory, tmp_path):
    # Five packages of one 100,000-byte file each: about 104 KiB on disk apiece. With a limit of
    # 450K and a low mark of 350K, five (~520K) are over the limit and three (~312K) are under
    # the low mark: gc must evict exactly the two least recently used of those it may evict.
    agent = agent_factory(env={"RTENV_CACHE_LIMIT": "450K", "RTENV_CACHE_LOW": "350K"})
    srcs, uris = [], []
    for i in range(5):
        src = write_tree(tmp_path / f"p{i}", {"blob.bin": os.urandom(100_000)})
        srcs.append(src)
        uris.append(pack_uri(rtenv, src))
    specs = [{"working_dir": u} for u in uris]
    for i in range(5):
        env_create(rtenv, specs[i], job=f"j{i}")
    listing = env_list(rtenv)
    assert listing["high_watermark_bytes"] == 450 * 1024
    assert listing["low_watermark_bytes"] == 350 * 1024
    sizes = [resource(listing, u)["size_bytes"] for u in uris]
    assert all(90_000 < s < 116_000 for s in sizes), f"unexpected package sizes {sizes}"
    assert len(package_dirs(rtenv)) == 5, "held packages were evicted while being created"

    # p3: unreferenced but leased by a running process, and the least recently used of all.
    run = rtenv.popen(specs[3], "sleep", "30", cwd=tmp_path)
    try:
        wait_for(lambda: resource(env_list(rtenv), uris[3])["process_leases"] == 1, 10,
                 "the run's lease on p3")
        assert env_release(rtenv, "j3") == 1
        # Then p1, p4, p0 are used in this order (another job's create and release, then their
        # own job's release: an env is in use until its holder lets go); p2 stays held by j2.
        for i in (1, 4, 0):
            time.sleep(0.05)
            env_create(rtenv, specs[i], job=f"touch{i}")
            assert env_release(rtenv, f"touch{i}") == 1
            assert env_release(rtenv, f"j{i}") == 1

        dry = rtenv("gc", "--dry-run")
        assert_ok(dry)
        assert [l.split()[-1] for l in dry.stdout.splitlines() if l.startswith("would evict")] == [
            uris[1], uris[4]], dry.stdout
        assert "; cache after: " in dry.stdout, dry.stdout
        # The same as JSON: each with its size, and the cache as it would be after.
        before = env_list(rtenv)["cache_bytes"]
        dry = rtenv("gc", "--dry-run", "--json")
        assert_ok(dry)
        report = json.loads(dry.stdout)
        assert report["dry_run"] is True
        assert [(e["uri"], e["bytes"]) for e in report["evicted"]] == [
            (uris[1], sizes[1]), (uris[4], sizes[4])], report
        assert report["bytes_freed"] == sizes[1] + sizes[4]
        assert report["cache_bytes_after"] == before - report["bytes_freed"], (before, report)
        assert len(package_dirs(rtenv)) == 5, "a dry run evicted something"

        gc = rtenv("gc")
        assert_ok(gc)
        evicted = [l.split()[-1] for l in gc.stdout.splitlines() if l.startswith("evicted")]
        assert evicted == [uris[1], uris[4]], gc.stdout
        assert package_dirs(rtenv) == sorted(digest_of(uris[i]) for i in (0, 2, 3))
        for i in (0, 2, 3):
            assert_same_tree(rtenv.pkgs / digest_of(uris[i]), srcs[i])
        listing = env_list(rtenv)
        assert sorted(r["uri"] for r in listing["resources"]) == sorted(uris[i] for i in (0, 2, 3))
        assert listing["cache_bytes"] <= 350 * 1024
        assert run.poll() is None, "the leased package's user died"
    finally:
        kill_run(run)

    # Once its lease is gone, p3 may go too; p2 is still held by j2 and stays.
    gc = rtenv("gc")
    assert_ok(gc)
    # 3 packages (~312K) are under the 450K limit: nothing to do.
    assert "evicted" not in gc.stdout, gc.stdout
    assert env_release(rtenv, "j2") == 1
    agent.stop()
    tight = agent_factory(env={"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"})
    gc = rtenv("gc")
    assert_ok(gc)
    evicted = [l.split()[-1] for l in gc.stdout.splitlines() if l.startswith("evicted")]
    # Least recently used first: p3 (released before p1, p4 and p0 were used), p0, then p2
    # (released last).
    assert evicted == [uris[3], uris[0], uris[2]], gc.stdout
    assert package_dirs(rtenv) == []
    tight.stop()


def test_gc_after_install_keeps_the_new_env_and_the_cache_bounded(rtenv, agent_factory, tmp_path):
    """Each install runs gc: with room for about two packages, creating envs one after the other
    (each released when the next is created) keeps at most the held one and what fits."""
    agent_factory(env={"RTENV_CACHE_LIMIT": "250K", "RTENV_CACHE_LOW": "150K"})
    uris = []
    for i in range(5):
        uris.append(pack_uri(rtenv, write_tree(tmp_path / f"p{i}", {"b.bin": os.urandom(100_000)})))
    for i, u in enumerate(uris):
        env_create(rtenv, {"working_dir": u}, job=f"j{i}")
        if i:
            env_release(rtenv, f"j{i - 1}")
        dirs = package_dirs(rtenv)
        assert digest_of(u) in dirs
        assert len(dirs) <= 3, dirs
    listing = env_list(rtenv)
    assert [r["uri"] for r in listing["resources"] if r["env_references"]] == [uris[4]]


# ---- found while testing ---------------------------------------------------------------------


def test_env_create_does_not_wait_for_runs_that_lease_the_package(rtenv, agent, tmp_path):
    """A package in use by a running job is ready: a new env that uses it (other env_vars) must
    not wait until that job ends."""
    uri = pack_uri(rtenv, small_tree(tmp_path, "wd"))
    env_create(rtenv, {"working_dir": uri}, job="warm")
    env_release(rtenv, "warm")
    run = rtenv.popen({"working_dir": uri}, "sleep", "4", cwd=tmp_path)
    try:
        wait_for(lambda: resource(env_list(rtenv), uri)["process_leases"] == 1, 10, "the lease")
        t0 = time.monotonic()
        p = rtenv("env", "create", "-e", json.dumps({"working_dir": uri, "env_vars": {"X": "1"}}),
                  "--job", "second", "--json", timeout=30)
        took = time.monotonic() - t0
        assert_ok(p)
        print(f"\nenv create on a leased package took {took * 1000:.0f} ms")
        assert took < 2.0, f"env create waited {took:.1f} s for the run leasing the package to end"
    finally:
        kill_run(run)


def test_listing_sizes_a_resource_that_was_already_on_the_node(rtenv, agent, tmp_path):
    """A package materialized without the agent (RTENV_NO_AGENT=1) and then used through it is
    counted with its real size in listings (cache_bytes)."""
    src = write_tree(tmp_path / "wd", {"b.bin": os.urandom(50_000)})
    uri = pack_uri(rtenv, src)
    assert_ok(rtenv.run({"working_dir": uri}, "true", cwd=tmp_path, env={"RTENV_NO_AGENT": "1"}))
    assert package_dirs(rtenv) == [digest_of(uri)]
    reply = env_create(rtenv, {"working_dir": uri}, job="j")
    assert reply["installed"] is False
    listing = env_list(rtenv)
    r = resource(listing, uri)
    assert r["size_bytes"] >= 50_000, f"resource listed with size {r['size_bytes']}"
    assert listing["cache_bytes"] >= 50_000


def test_a_second_agent_leaves_the_running_one_alone(rtenv, agent, tmp_path):
    """A second `rtenv agent` for the same home (two clients starting one at once) must exit
    without touching the state of the agent that serves: in particular it must not mark the envs
    that agent is installing as failed ("setup was interrupted")."""
    held_up = b"read me slowly\n"
    src = write_tree(tmp_path / "wd", {"a.txt": "a\n", "held_up.txt": held_up})
    uri = pack_uri(rtenv, src)
    blob = BlockedBlob(rtenv, held_up)  # the install waits for it until we release it
    create = subprocess.Popen(
        [rtenv.binary, "env", "create", "-e", json.dumps({"working_dir": uri}), "--job", "slow"],
        env=rtenv.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: [e["state"] for e in env_list(rtenv)["envs"]] == ["creating"], 20,
                 "the env to be creating")
        second = subprocess.run([rtenv.binary, "agent"], env=rtenv.env, capture_output=True,
                                text=True, timeout=30)
        assert second.returncode == 0, second.stderr
        assert "already serving" in second.stderr, second.stderr
        assert agent.proc.poll() is None, "the serving agent died"
        listing = env_list(rtenv)
        assert [e["state"] for e in listing["envs"]] == ["creating"], (
            f"a second agent that started and exited changed the serving agent's env: {listing['envs']}")
        blob.release()
        out, err = create.communicate(timeout=60)
    finally:
        if create.poll() is None:
            create.kill()
            create.wait(5)
    assert create.returncode == 0, err
    assert [e["state"] for e in env_list(rtenv)["envs"]] == ["ready"]
    assert_same_tree(rtenv.pkgs / digest_of(uri), src)


def test_gc_counts_packages_materialized_without_the_agent(rtenv, agent_factory, tmp_path):
    """A run without the agent (RTENV_NO_AGENT=1) materializes its package itself while the agent
    runs: the agent's gc must still count it and evict it when it is unused."""
    agent_factory(env={"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"})
    uri = pack_uri(rtenv, write_tree(tmp_path / "wd", {"b.bin": os.urandom(20_000)}))
    assert_ok(rtenv.run({"working_dir": uri}, "true", cwd=tmp_path, env={"RTENV_NO_AGENT": "1"}))
    assert package_dirs(rtenv) == [digest_of(uri)]
    gc = rtenv("gc")
    assert_ok(gc)
    assert [l.split()[-1] for l in gc.stdout.splitlines() if l.startswith("evicted")] == [uri], gc.stdout
    assert package_dirs(rtenv) == []


def test_a_new_home_and_the_agents_database_are_their_owners_alone(rtenv, tmp_path):
    import stat as st_mod
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text("a")
    assert not rtenv.home.exists()
    assert_ok(rtenv.run({"working_dir": str(proj)}, "true", cwd=tmp_path))
    assert st_mod.S_IMODE(rtenv.home.stat().st_mode) == 0o700
    db = rtenv.home / "agent.db"
    assert db.exists()
    assert st_mod.S_IMODE(db.stat().st_mode) == 0o600


def test_an_agent_listening_on_port_0_says_which_port_it_bound(rtenv, agent_factory, tmp_path):
    import re
    import socket
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    agent = agent_factory(args=["--listen", "127.0.0.1:0", "--token-file", str(token)])
    # The line comes once the server runs, just after its socket starts accepting.
    line = r"listening on 127\.0\.0\.1:(\d+) "
    wait_for(lambda: re.search(line, agent.log_text()), 10, "the agent to say which port")
    m = re.search(line, agent.log_text())
    assert m, agent.log_text()
    port = int(m.group(1))
    assert port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the port printed is the one it listens on


# ---- engine holders and TaskProlog lines (docs/slurm.md) -------------------------------------


def test_print_exports_holds_the_env_for_an_engine_holder(rtenv, agent, tmp_path):
    proj = small_tree(tmp_path, "proj")
    spec = json.dumps({"working_dir": str(proj), "env_vars": {"GREETING": "a b=c"}})
    r = rtenv("env", "create", "--holder", "slurm:5.0", "--print-exports", "-e", spec,
              env={"DROPPED_BY_NOTHING": "1"})
    assert_ok(r)
    lines = r.stdout.splitlines()
    assert "export GREETING=a b=c" in lines, lines
    # Only what the env changes: nothing about variables it leaves alone.
    assert not [line for line in lines if "DROPPED_BY_NOTHING" in line], lines
    wd = [line.split("=", 1)[1] for line in lines if line.startswith("export RTENV_WORKING_DIR=")]
    assert len(wd) == 1 and (Path(wd[0]) / "f0.txt").read_text().startswith("proj:0:"), lines
    assert all(line.startswith(("export ", "unset ")) for line in lines), lines
    # Applied by a shell as a TaskProlog's lines would be, they give the env.
    assert holders(env_list(rtenv)) == ["slurm:5.0"]


def test_release_by_holder_prefix_gives_back_every_step_of_a_job(rtenv, agent, tmp_path):
    a, b = small_tree(tmp_path, "a"), small_tree(tmp_path, "b")
    for holder, tree in (("slurm:7.0", a), ("slurm:7.batch", b), ("slurm:70.0", a)):
        assert_ok(rtenv("env", "create", "--holder", holder, "-e",
                        json.dumps({"working_dir": str(tree)})))
    assert sorted(holders(env_list(rtenv))) == ["slurm:7.0", "slurm:7.batch", "slurm:70.0"]
    r = rtenv("env", "release", "--holder", "slurm:7.*")
    assert_ok(r)
    assert "released 2 references of slurm:7.*" in r.stdout, r.stdout
    assert holders(env_list(rtenv)) == ["slurm:70.0"]
    r = rtenv("env", "release", "--holder", "slurm:70.0")
    assert_ok(r)
    assert holders(env_list(rtenv)) == []


@pytest.mark.parametrize("args, needle", [
    (["env", "create", "--holder", "a b", "-e", "{}"], "--holder"),
    (["env", "create", "--holder", "slurm:1.*", "-e", "{}"], "--holder"),
    (["env", "create", "--holder", "h", "--job", "j", "-e", "{}"], "excludes"),
    (["env", "create", "--print-exports", "--json", "-e", "{}"], "excludes"),
    (["env", "create", "--print-exports", "--no-install", "-e", "{}"], "excludes"),
    (["env", "release"], "--job"),
    (["env", "release", "--job", "j", "--holder", "h"], "excludes"),
])
def test_holder_options_are_checked(rtenv, args, needle):
    r = rtenv(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert needle in r.stderr, r.stderr


def test_print_exports_refuses_a_value_a_line_cannot_carry(rtenv, agent, tmp_path):
    r = rtenv("env", "create", "--holder", "slurm:9.0", "--print-exports", "-e",
              json.dumps({"env_vars": {"MULTI": "one\ntwo"}}))
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "MULTI" in r.stderr and "line break" in r.stderr, r.stderr
    assert r.stdout == ""
    # The reference it took for nothing was given back.
    assert holders(env_list(rtenv)) == []


def test_a_home_that_belongs_to_another_user_is_refused(rtenv):
    if os.geteuid() != 0:
        pytest.skip("needs root to run rtenv as another user")
    import pwd
    import shutil
    import tempfile
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    probe = subprocess.run(["runuser", "-u", "nobody", "--", rtenv.binary, "--version"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"the rtenv binary cannot run as nobody here: {probe.stderr.strip()}")
    # A directory every user may write to (as /var/tmp on a node), where another user (root here)
    # made nobody's home first.
    shared = Path(tempfile.mkdtemp(prefix="rtenv-shared-", dir="/tmp"))
    try:
        shared.chmod(0o1777)
        squatted = shared / "rtenv-nobody"
        squatted.mkdir()
        squatted.chmod(0o777)
        r = subprocess.run(
            ["runuser", "-u", "nobody", "--", rtenv.binary, "env", "list"],
            env={**rtenv.env, "RTENV_HOME": str(squatted), "HOME": str(shared)},
            capture_output=True, text=True, timeout=30)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        assert "belongs to another user" in r.stderr, r.stderr
        assert f"uid {nobody.pw_uid}" in r.stderr, r.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# ---- env list's fields column and --wide, env show -------------------------------------------


def test_env_list_says_what_each_env_holds_and_wide_shows_ids_whole(rtenv, agent, tmp_path):
    proj = small_tree(tmp_path, "proj")
    made = env_create(rtenv, {"working_dir": str(proj), "env_vars": {"TOKEN": "s3cret"}},
                      job="listing")
    p = rtenv("env", "list")
    assert_ok(p)
    row = [line for line in p.stdout.splitlines() if line.startswith(made["env_id"][:12])]
    assert len(row) == 1 and row[0].split()[-1] == "env_vars,working_dir", p.stdout
    assert made["env_id"] not in p.stdout  # ids cut to 12 characters
    assert "s3cret" not in p.stdout
    p = rtenv("env", "list", "--wide")
    assert_ok(p)
    assert made["env_id"] in p.stdout, p.stdout
    assert made["resources"][0] in p.stdout, p.stdout  # URIs whole
    listing = env_list(rtenv)
    env = [e for e in listing["envs"] if e["env_id"] == made["env_id"]][0]
    assert env["fields"] == ["env_vars", "working_dir"]
    assert env["runtime_env"]["env_vars"]["TOKEN"] != "s3cret"
    assert all(r["path"] for r in listing["resources"]), listing["resources"]


def test_env_show_prints_one_env_whole(rtenv, agent, tmp_path):
    proj = small_tree(tmp_path, "proj")
    made = env_create(rtenv, {"working_dir": str(proj), "env_vars": {"TOKEN": "s3cret"}},
                      job="showing")
    p = rtenv("env", "show", made["env_id"][:10])
    assert_ok(p)
    out = p.stdout
    assert f"env:        {made['env_id']}" in out, out
    assert "state:      ready" in out and "fields:     env_vars, working_dir" in out, out
    assert "job:showing" in out, out
    assert "s3cret" not in out and '"TOKEN"' in out, out
    uri = made["resources"][0]
    assert uri in out and "(package, " in out, out
    j = json.loads(rtenv("env", "show", made["env_id"], "--json").stdout)
    assert j["env_id"] == made["env_id"] and j["holders"] == ["job:showing"]
    res = j["resources"][0]
    assert res["uri"] == uri and res["kind"] == "package" and res["size_bytes"] > 0
    assert (Path(res["path"]) / "f0.txt").read_text().startswith("proj:0:"), res
    assert str(Path(res["path"])) in out
    assert j["log"].endswith("logs/job-showing.log") and Path(j["log"]).exists(), j["log"]
    assert made["env_id"][:12] in Path(j["log"]).read_text()
    assert [t["phase"].split()[0] for t in j["timings"]] == ["materialize"], j["timings"]


def test_env_show_names_what_is_wrong_with_the_id(rtenv, agent, tmp_path):
    # 17 envs: two of them share their first hex digit, so that digit names more than one.
    for i in range(17):
        env_create(rtenv, {"env_vars": {"N": str(i)}}, job=f"j{i}")
    ids = [e["env_id"] for e in env_list(rtenv)["envs"]]
    first = sorted(i[0] for i in ids)
    shared = next(c for c, d in zip(first, first[1:]) if c == d)
    p = rtenv("env", "show", shared)
    assert p.returncode == 2 and "envs start with" in p.stderr, p.stderr
    p = rtenv("env", "show", "zz")
    assert p.returncode == 2 and "no env zz on this node" in p.stderr, p.stderr
    p = rtenv("env", "show")
    assert p.returncode == 2 and "ID" in p.stderr, p.stderr


@pytest.mark.parametrize("flag,value,says", [
    ("--job", "7\nforged log line", "job_id contains a control character"),
    ("--job", "j" * 2000, "job_id is 2000 bytes long; at most 1024 are accepted"),
])
def test_the_agent_refuses_holders_and_jobs_it_could_not_log_or_store_as_given(
        rtenv, tmp_path, flag, value, says):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "f").write_text("x")
    p = rtenv("env", "create", flag, value, "-e", json.dumps({"working_dir": str(wd)}), timeout=60)
    assert p.returncode == 3, p.stderr
    assert says in p.stderr
    listed = rtenv("env", "list", "--json")
    assert_ok(listed)
    assert json.loads(listed.stdout)["envs"] == []  # nothing was recorded for it
    assert_ok(rtenv("env", "release", "--holder", "ok"))
