"""`srun`/`sbatch`/`salloc --runtime-env=...` on a real Slurm with two nodes (conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slurmcluster import NODES

# What a task reports: its node, cwd, a file of the working_dir, a variable, and the package it
# imports (version and where it was imported from).
REPORT = (
    "import json, os, slurmpkg; "
    "print('REPORT ' + json.dumps({'node': os.environ['SLURMD_NODENAME'], 'cwd': os.getcwd(), "
    "'data': open('data.txt').read(), 'var': os.environ.get('GREETING'), "
    "'version': slurmpkg.__version__, 'module': slurmpkg.__file__, "
    "'wd': os.environ.get('RTENV_WORKING_DIR')}))"
)


@pytest.fixture(autouse=True)
def no_holders_left(slurm):
    """Each test starts and ends with no step holding an env on any node: every step's
    references are given back when it ends (or at its job's end)."""
    wait_no_slurm_holders(slurm, timeout=60)
    yield
    wait_no_slurm_holders(slurm, timeout=60)


def reports(text: str) -> list[dict]:
    return [json.loads(line[len("REPORT "):]) for line in text.splitlines()
            if line.startswith("REPORT ")]


def project(tmp_path: Path, data: str = "the job's data") -> Path:
    d = tmp_path / "project"
    d.mkdir(exist_ok=True)
    (d / "data.txt").write_text(data)
    return d


def spec(index, version: str, wd: Path | None = None, **extra) -> dict:
    s = {"pip": [f"--index-url {index.url}", f"slurmpkg=={version}"],
         "env_vars": {"GREETING": "hello from rtenv"}}
    if wd is not None:
        s["working_dir"] = str(wd)
    s.update(extra)
    return s


def next_job_id(slurm) -> int:
    r = slurm.run(["sbatch", "--parsable", "-N1", "-o", "/dev/null", "--wrap", "true"])
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip().split(";")[0])


def wait_no_slurm_holders(slurm, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(h.startswith("slurm:") for n in NODES for h in slurm.holders(n)):
        assert time.monotonic() < deadline, {n: slurm.holders(n) for n in NODES}
        time.sleep(0.2)


def job_named(slurm, name: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = slurm.run(["squeue", "-h", "-n", name, "-o", "%i"]).stdout.split()
        if ids:
            return ids[0]
        time.sleep(0.1)
    raise AssertionError(f"no job named {name} after {timeout} s")


def holders_of(slurm, job: str) -> dict[str, list[str]]:
    return {n: [h for h in slurm.holders(n) if h.startswith(f"slurm:{job}.")] for n in NODES}


def wait_step_held(slurm, name: str, srun) -> str:
    """Waits until the job `name` started by `srun` holds its env for step 0 on both nodes (and
    nothing else); returns its id."""
    job = job_named(slurm, name)
    deadline = time.monotonic() + 120
    while (held := holders_of(slurm, job)) != {n: [f"slurm:{job}.0"] for n in NODES}:
        assert srun.poll() is None, srun.communicate()
        assert time.monotonic() < deadline, f"holders after 120 s: {held}"
        time.sleep(0.1)
    return job


def check_reports(found: list[dict], version: str, nodes=NODES) -> None:
    assert sorted(r["node"] for r in found) == sorted(nodes), found
    for r in found:
        assert r["data"] == "the job's data"
        assert r["var"] == "hello from rtenv"
        assert r["version"] == version
        assert r["cwd"] == r["wd"], r
        # Each node runs in its own copy and venv, made on that node (its own home).
        home = str(Path(r["cwd"]).resolve())
        assert f"/nodes/{r['node']}/" in home, r
        assert f"/nodes/{r['node']}/" in r["module"], r


def test_srun_two_nodes_get_the_same_env(slurm, index, tmp_path):
    wd = project(tmp_path)
    installs = slurm.venv_installs()
    # slurmpkg 1.1 is in no other test's env: both nodes need its venv at once.
    r = slurm.run(["srun", "-N2", f"--runtime-env={json.dumps(spec(index, '1.1', wd))}",
                   "python3", "-c", REPORT], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    check_reports(reports(r.stdout), "1.1")
    # Built once for the cluster (the shared store): one node installed it, the other fetched it.
    assert slurm.venv_installs() - installs == 1
    # The step's references were given back on both nodes when it ended.
    wait_no_slurm_holders(slurm)


def test_runtime_env_from_a_yaml_file(slurm, index, tmp_path):
    wd = project(tmp_path)
    f = tmp_path / "env.yaml"
    f.write_text(f"working_dir: {wd}\npip:\n  - --index-url {index.url}\n  - slurmpkg==2.0\n"
                 "env_vars:\n  GREETING: hello from rtenv\n")
    r = slurm.run(["srun", "-N2", f"--runtime-env={f}", "python3", "-c", REPORT], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    check_reports(reports(r.stdout), "2.0")


def test_a_bad_spec_is_refused_at_submission(slurm, tmp_path):
    before = next_job_id(slurm)
    bad = json.dumps({"env_vars": {"N": 3}})
    for cmd in (["srun", "-N2", f"--runtime-env={bad}", "true"],
                ["sbatch", "-N2", f"--runtime-env={bad}", "--wrap", "true"],
                ["salloc", "-N1", f"--runtime-env={bad}", "true"]):
        r = slurm.run(cmd, cwd=tmp_path)
        assert r.returncode != 0, (cmd, r.stdout)
        # rtenv's own message, naming the field, then the plugin's.
        assert "runtime_env.env_vars.N" in r.stderr, r.stderr
        assert "nothing was submitted" in r.stderr, r.stderr
    r = slurm.run(["srun", "-N1", "--runtime-env=/no/such/env.yaml", "true"], cwd=tmp_path)
    assert r.returncode != 0 and "/no/such/env.yaml" in r.stderr, r.stderr
    # No job was queued: the next one gets the id after the probe's.
    assert next_job_id(slurm) == before + 1


def test_conflicting_versions_run_at_the_same_time(slurm, index, tmp_path):
    wd = project(tmp_path)
    jobs, outs = {}, {}
    for v in ("1.0", "2.0"):
        # Each job's tasks wait until the other job's tasks have started: they overlap in time.
        mine, other = tmp_path / f"started-{v}", tmp_path / f"started-{'2.0' if v == '1.0' else '1.0'}"
        script, task = tmp_path / f"job-{v}.sh", tmp_path / f"task-{v}.sh"
        (tmp_path / "report.py").write_text(REPORT)
        task.write_text(
            "#!/bin/bash\n"
            f"touch {mine}-$SLURMD_NODENAME\n"
            f"for i in $(seq 600); do ls {other}-* >/dev/null 2>&1 && break; sleep 0.1; done\n"
            f"ls {other}-* >/dev/null 2>&1 || exit 9\n"
            f"python3 {tmp_path}/report.py\n")
        script.write_text(f"#!/bin/bash\nsrun -N2 bash {task}\n")
        outs[v] = tmp_path / f"out-{v}.txt"
        r = slurm.run(["sbatch", "--parsable", "-N2", "-n2", "--ntasks-per-node=1",
                       f"--runtime-env={json.dumps(spec(index, v, wd))}", "-o", outs[v],
                       script], cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        jobs[v] = r.stdout.strip()
    for v, job in jobs.items():
        slurm.wait_job_state(job, {"GONE", "COMPLETED"}, timeout=240)
    for v in jobs:
        text = outs[v].read_text()
        check_reports(reports(text), v)


def test_scancel_releases_the_holders_on_both_nodes(slurm, index, tmp_path):
    wd = project(tmp_path)
    p = slurm.popen(["srun", "-N2", "--job-name=to-cancel",
                     f"--runtime-env={json.dumps(spec(index, '1.0', wd))}",
                     "bash", "-c", "echo started; sleep 300"], cwd=tmp_path)
    try:
        job = wait_step_held(slurm, "to-cancel", p)
        r = slurm.run(["scancel", job])
        assert r.returncode == 0, r.stderr
        wait_no_slurm_holders(slurm)
    finally:
        if p.poll() is None:
            p.kill()
        p.communicate()


def test_sbatch_script_and_inner_srun_get_the_env(slurm, index, tmp_path):
    wd = project(tmp_path)
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\npython3 -c \"{REPORT}\"\nsrun -N2 python3 -c \"{REPORT}\"\n")
    out = tmp_path / "out.txt"
    r = slurm.run(["sbatch", "--wait", "-N2", f"--runtime-env={json.dumps(spec(index, '2.0', wd))}",
                   "-o", out, script], cwd=tmp_path)
    assert r.returncode == 0, (r.stderr, out.read_text() if out.exists() else "")
    found = reports(out.read_text())
    assert len(found) == 3, found  # the batch step on one node, then the inner step on both
    check_reports(found[:1], "2.0", nodes=[found[0]["node"]])
    check_reports(found[1:], "2.0")


def test_salloc_then_srun_gets_the_env(slurm, index, tmp_path):
    wd = project(tmp_path)
    r = slurm.run(["salloc", "-N2", f"--runtime-env={json.dumps(spec(index, '1.0', wd))}",
                   "srun", "-N2", "python3", "-c", REPORT], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    check_reports(reports(r.stdout), "1.0")


def test_a_failing_install_fails_the_task_with_rtenvs_message(slurm, index, tmp_path):
    # slurmpkg 3.0 is in no other test's env, so no node has it. It is locked on the submitting
    # side while the index is up (sbatch --hold), and the nodes install it while it is down.
    s = spec(index, "3.0")
    out = tmp_path / "out.txt"
    r = slurm.run(["sbatch", "--parsable", "--hold", "-N2", f"--runtime-env={json.dumps(s)}",
                   "-o", out, "--wrap", "srun -N2 python3 -c 'print(1)'"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    index.set_down(True)
    try:
        assert slurm.run(["scontrol", "release", job]).returncode == 0
        slurm.wait_job_state(job, {"GONE"}, timeout=120)
    finally:
        index.set_down(False)
    text = out.read_text()
    # The batch step's task failed before the script ran, with rtenv's reason in the job's output.
    assert "rtenv: setting up the runtime_env on node" in text, text
    assert "setup failed" in text and "slurmpkg" in text, text
    assert "print(1)" not in text and "\n1\n" not in f"\n{text}", text
    # And in slurmd's log, naming the step.
    log = "".join(slurm.cluster.slurmd_log(n) for n in NODES)
    assert f"setting up the runtime_env for slurm:{job}.batch" in log, log[-2000:]


def test_task_prolog_and_epilog_without_the_plugin(slurm, index, tmp_path):
    wd = project(tmp_path)
    # The user resolves the env into the cluster store themselves.
    r = slurm.run([slurm.binary, "env", "create", "--no-install", "-e",
                   json.dumps(spec(index, "2.0", wd))], cwd=tmp_path,
                  env={"RTENV_STORE": str(slurm.store)})
    assert r.returncode == 0, r.stderr
    gate = slurm.root / "fallback-epilog"
    gate.touch()
    # No --runtime-env: the TaskProlog sets the env up from RTENV_TASK_ENV, and the job script
    # changes into the working_dir copy itself.
    p = slurm.popen(["srun", "-N2", "--job-name=fallback", "bash", "-c",
                     f'cd "$RTENV_WORKING_DIR" && python3 -c "{REPORT}" && sleep 2'],
                    env={"RTENV_TASK_ENV": r.stdout.strip()}, cwd=tmp_path)
    try:
        job = wait_step_held(slurm, "fallback", p)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    check_reports(reports(out), "2.0")
    # The Epilog gave the references back at job end.
    try:
        wait_no_slurm_holders(slurm)
    finally:
        gate.unlink()


def test_the_job_epilog_releases_what_a_killed_step_left(slurm, index, tmp_path):
    """A step whose slurmstepd dies (SIGKILL) never runs its exit hook; the job's epilog gives
    its references back."""
    wd = project(tmp_path)
    r = slurm.run(["sbatch", "--parsable", "-N2", f"--runtime-env={json.dumps(spec(index, '1.0', wd))}",
                   "-o", tmp_path / "out.txt", "--wrap", "srun -N2 sleep 300"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip()
    try:
        deadline = time.monotonic() + 120
        # The inner step on both nodes (the batch step holds on the first node too).
        while True:
            held = holders_of(slurm, job)
            if all(f"slurm:{job}.0" in hs for hs in held.values()):
                break
            assert time.monotonic() < deadline, f"holders after 120 s: {held}"
            time.sleep(0.2)
        kill_step_and_cancel(slurm, job)
    finally:
        slurm.run(["scancel", job])
    wait_no_slurm_holders(slurm, timeout=60)


def kill_step_and_cancel(slurm, job: str) -> None:
    """SIGKILL to the step's slurmstepd on both nodes (and to its orphaned tasks), then scancel."""
    stepds = slurm.cluster.stepd_pids(f"{job}.0")
    assert len(stepds) == 2, stepds
    tasks = [t for pid in stepds for t in slurm.cluster.descendants(pid)]
    for pid in stepds + tasks:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert slurm.run(["scancel", job]).returncode == 0


def test_export_none_uses_the_inline_env_as_given(slurm, index, tmp_path):
    # --export=NONE drops the resolved env from the job's environment: the nodes resolve the
    # option's value themselves, which works for an env without local paths.
    s = spec(index, "2.0")
    r = slurm.run(["srun", "-N2", "--export=NONE", f"--runtime-env={json.dumps(s)}",
                   "python3", "-c", "import os, slurmpkg; "
                   "print('V', os.environ['SLURMD_NODENAME'], slurmpkg.__version__, "
                   "os.environ['GREETING'])"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = sorted(line for line in r.stdout.splitlines() if line.startswith("V "))
    assert lines == ["V n1 2.0 hello from rtenv", "V n2 2.0 hello from rtenv"], r.stdout


def test_a_job_runs_and_releases_as_its_own_user(slurm):
    """A job of an unprivileged user: its node homes are that user's alone, and the exit hooks
    (which Slurm runs as root) give its references back as that user."""
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    # What the user submits from (readable by them), their own submitting home, and a store that
    # every user may write (as a shared filesystem store set up for several users is).
    proj = slurm.root / "nobody-project"
    proj.mkdir()
    (proj / "data.txt").write_text("nobody's data")
    proj.chmod(0o755)
    home = slurm.root / "nobody-submit"
    home.mkdir()
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    subprocess.run(["chmod", "-R", "a+rwX", str(slurm.store)], check=True)
    s = json.dumps({"working_dir": str(proj), "env_vars": {"WHO": "set by rtenv"}})
    env = {"HOME": str(home), "RTENV_HOME": str(home)}

    def as_nobody(node: str, *args: str) -> subprocess.CompletedProcess:
        e = dict(slurm.env, RTENV_HOME=str(slurm.root / "nodes" / node / "nobody"),
                 RTENV_STORE=str(slurm.store), HOME=str(home))
        return subprocess.run(["runuser", "-u", "nobody", "--", slurm.binary, *args], env=e,
                              capture_output=True, text=True, timeout=90)

    srun = slurm.popen(["runuser", "-u", "nobody", "--", "srun", "-N2", "--job-name=as-nobody",
                        f"--runtime-env={s}", "bash", "-c",
                        'echo "RUN|$(id -un)|$SLURMD_NODENAME|$WHO|$(cat data.txt)|$PWD"; '
                        "sleep 4"], env=env, cwd=slurm.root)
    try:
        job = job_named(slurm, "as-nobody")
        deadline = time.monotonic() + 60
        while not all(f"slurm:{job}.0" in [h for e in json.loads(as_nobody(n, "env", "list",
                                                                          "--json").stdout)["envs"]
                                           for h in e["holders"]] for n in NODES):
            assert time.monotonic() < deadline and srun.poll() is None, srun.stderr
            time.sleep(0.2)
        # With nobody's agents stopped, the release at step end (run from a hook Slurm runs as
        # root) must start them again: as nobody, or the test sees a root-owned agent.
        for n in NODES:
            assert as_nobody(n, "agent", "stop").returncode == 0
        out, err = srun.communicate(timeout=120)
    finally:
        if srun.poll() is None:
            srun.kill()
    assert srun.returncode == 0, err
    runs = sorted(line.split("|")[1:] for line in out.splitlines() if line.startswith("RUN|"))
    assert [x[:4] for x in runs] == [["nobody", n, "set by rtenv", "nobody's data"]
                                     for n in NODES], out
    deadline = time.monotonic() + 30
    for _, node, _, _, cwd in runs:
        node_home = slurm.root / "nodes" / node / "nobody"
        assert cwd.startswith(str(node_home / "pkgs")), cwd
        st = node_home.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (nobody.pw_uid, 0o700)
        while f"slurm:{job}.0 on {node}: released 1 reference" not in slurm.cluster.slurmd_log(node):
            assert time.monotonic() < deadline, slurm.cluster.slurmd_log(node)[-2000:]
            time.sleep(0.2)
        status = json.loads(as_nobody(node, "agent", "status", "--json").stdout)
        assert status["running"], status
        uid = [line.split()[1] for line in Path(f"/proc/{status['pid']}/status").read_text()
               .splitlines() if line.startswith("Uid:")]
        assert uid == [str(nobody.pw_uid)], (node, uid)
        assert (node_home / "agent.sock").stat().st_uid == nobody.pw_uid
        held = [h for e in json.loads(as_nobody(node, "env", "list", "--json").stdout)["envs"]
                for h in e["holders"]]
        assert held == [], (node, held)
