"""The agent's Prometheus metrics (docs/metrics.md), end to end: a real `rtenv agent
--metrics-listen 127.0.0.1:0`, driven through the CLI, scraped over HTTP and parsed as the text
format; and a metrics port that outlives whatever is sent to it."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request

from agent_helpers import (
    agent_factory,  # noqa: F401  (fixture)
    env_create,
    env_list,
    env_release,
    pack_uri,
)
from conftest import assert_clean_error, assert_ok, wait_for, write_tree

BOUND = re.compile(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse(text: str) -> tuple[dict, dict]:
    """The exposition as ({(name, frozenset of (label, value)): value}, {family: type}), checking
    the format on the way: every sample belongs to a family with HELP and TYPE lines before it."""
    samples, types, helps = {}, {}, set()
    assert text.endswith("\n"), "the exposition ends with a newline"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name in helps, f"TYPE before HELP: {line}"
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels_text, value = m.groups()
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"sample {name} has no TYPE line before it"
        labels = []
        rest = labels_text or ""
        while rest:
            lm = LABEL.match(rest)
            assert lm, f"bad labels in {line!r}"
            labels.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
        key = (name, frozenset(labels))
        assert key not in samples, f"duplicate series {line!r}"
        samples[key] = float(value)
    return samples, types


class Scraper:
    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.port = port

    def text(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return r.read().decode()

    def __call__(self) -> "Metrics":
        samples, types = parse(self.text())
        return Metrics(samples, types)


class Metrics:
    def __init__(self, samples: dict, types: dict):
        self.samples, self.types = samples, types

    def get(self, name: str, **labels) -> float:
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no series {name}{labels}; have: " + ", ".join(
            f"{n}{dict(l)}" for n, l in self.samples if n.startswith(name))
        return self.samples[key]


def start_with_metrics(agent_factory, env=None):
    agent = agent_factory(env=env, args=["--metrics-listen", "127.0.0.1:0"])
    wait_for(lambda: BOUND.search(agent.log_text()), 10, "the agent to say where metrics are")
    port = int(BOUND.search(agent.log_text()).group(1))
    assert port > 0
    return agent, Scraper(port)


def small_tree(root, name: str):
    return write_tree(root, {f"{name}/f{i}.txt": f"{name}:{i}:" + "x" * 2000 for i in range(5)}) / name


def test_metrics_follow_creates_runs_failures_and_eviction(rtenv, agent_factory, tmp_path):
    rtenv.home.mkdir(parents=True, exist_ok=True)
    # The clients read the same file: the agent's configuration is theirs.
    (rtenv.home / "config.json").write_text(
        json.dumps({"cache_limit": "1K", "kind_limits": {"package": "1M"}}))
    agent, scrape = start_with_metrics(agent_factory)

    m = scrape()
    assert m.types["rtenv_envs_created_total"] == "counter"
    assert m.types["rtenv_install_duration_seconds"] == "histogram"
    assert m.types["rtenv_cache_bytes"] == "gauge"
    for kind in ("package", "python", "conda", "image"):  # every kind of the node, from the start
        assert m.get("rtenv_envs_created_total", kind=kind) == 0
        assert m.get("rtenv_cache_bytes", kind=kind) == 0
    assert m.get("rtenv_cache_hits_total") == 0
    assert m.get("rtenv_cache_misses_total") == 0
    assert m.get("rtenv_cache_limit_bytes") == 1024
    assert m.get("rtenv_cache_low_bytes") <= 1024
    assert m.get("rtenv_cache_kind_limit_bytes", kind="package") == 1 << 20
    assert m.get("rtenv_references") == 0

    # A create that installs: a miss, an env created, a package measured and referenced.
    spec_a = {"working_dir": pack_uri(rtenv, small_tree(tmp_path, "a"))}
    env_create(rtenv, spec_a, job="j1")
    m = scrape()
    assert m.get("rtenv_cache_misses_total") == 1
    assert m.get("rtenv_cache_hits_total") == 0
    assert m.get("rtenv_envs_created_total", kind="package") == 1
    assert m.get("rtenv_install_duration_seconds_count", kind="package", outcome="installed") == 1
    assert m.get("rtenv_install_duration_seconds_bucket", kind="package", outcome="installed",
                 le="+Inf") == 1
    assert m.get("rtenv_setup_duration_seconds_count", phase="total") == 1
    assert m.get("rtenv_setup_duration_seconds_count", phase="queue") == 1
    assert m.get("rtenv_resources", kind="package") == 1
    size_a = m.get("rtenv_cache_bytes", kind="package")
    assert size_a >= 5 * 2000
    assert m.get("rtenv_references") == 1
    assert m.get("rtenv_holders") == 1
    assert m.get("rtenv_envs", state="ready") == 1

    # The same env for another job: everything is there, a hit; a second reference.
    env_create(rtenv, spec_a, job="j2")
    m = scrape()
    assert m.get("rtenv_cache_hits_total") == 1
    assert m.get("rtenv_cache_misses_total") == 1
    assert m.get("rtenv_envs_created_total", kind="package") == 1
    assert m.get("rtenv_install_duration_seconds_count", kind="package", outcome="cached") == 1
    assert m.get("rtenv_references") == 2

    # A run of another env goes through the agent (a miss); while its command runs, it holds a
    # reference and a lease on the package.
    spec_b = {"working_dir": pack_uri(rtenv, small_tree(tmp_path, "b"))}
    run = rtenv.popen(spec_b, "sleep", "30", cwd=tmp_path)
    try:
        wait_for(lambda: scrape().get("rtenv_process_leases", kind="package") >= 1, 10,
                 "the run's lease in the metrics")
        m = scrape()
        assert m.get("rtenv_cache_misses_total") == 2
        assert m.get("rtenv_envs_created_total", kind="package") == 2
        assert m.get("rtenv_references") == 3
        assert m.get("rtenv_resources", kind="package") == 2
    finally:
        run.terminate()  # forwarded to the command; the run then gives back what it held
        run.wait(10)
    m = scrape()
    assert m.get("rtenv_references") == 2
    assert m.get("rtenv_process_leases", kind="package") == 0

    # A failing create (a package the store does not have), then the same again within
    # failure_ttl_seconds: served from the failure cache.
    missing = {"working_dir": "rtenv://sha256/" + "0" * 64}
    p = rtenv("env", "create", "-e", json.dumps(missing), "--job", "j3")
    assert p.returncode != 0, p.stdout
    assert_clean_error(p.stderr)
    m = scrape()
    assert m.get("rtenv_env_failures_total", kind="package") == 1
    assert m.get("rtenv_install_duration_seconds_count", kind="package", outcome="failed") == 1
    assert m.get("rtenv_cache_misses_total") == 3
    assert m.get("rtenv_failure_cache_hits_total") == 0
    p = rtenv("env", "create", "-e", json.dumps(missing), "--job", "j3")
    assert p.returncode != 0, p.stdout
    m = scrape()
    assert m.get("rtenv_failure_cache_hits_total") == 1
    assert m.get("rtenv_env_failures_total", kind="package") == 1  # not set up again
    assert m.get("rtenv_envs", state="failed") == 1

    # Released and over the 1K limit: gc evicts both packages, and the record of the one that
    # failed (0 bytes), as its report lists them.
    assert m.get("rtenv_resources", kind="package") == 3
    bytes_before = m.get("rtenv_cache_bytes", kind="package")
    assert env_release(rtenv, "j1") == 1
    assert env_release(rtenv, "j2") == 1
    gc = rtenv("gc")
    assert_ok(gc)
    assert len([l for l in gc.stdout.splitlines() if l.startswith("evicted ")]) == 3, gc.stdout
    m = scrape()
    assert m.get("rtenv_evictions_total", kind="package") == 3
    assert m.get("rtenv_evicted_bytes_total", kind="package") == bytes_before
    assert bytes_before >= 2 * size_a
    assert m.get("rtenv_resources", kind="package") == 0
    assert m.get("rtenv_cache_bytes", kind="package") == 0
    assert m.get("rtenv_references") == 0
    assert env_list(rtenv)["resources"] == []

    assert agent.proc.poll() is None, agent.log_text()


def raw(port: int, data: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
        except OSError:
            return b""  # refused before all of it went: fine
        if not read:
            return b""
        s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
        return out


def test_the_metrics_port_outlives_bad_requests(rtenv, agent_factory, tmp_path):
    agent, scrape = start_with_metrics(agent_factory)
    port = scrape.port

    assert raw(port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    assert raw(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").startswith(
        b"HTTP/1.1 405")
    head = raw(port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n"), head
    for junk in (
        b"\x00\xff\x16\x03\x01garbage\r\n\r\n",                 # not HTTP at all (a TLS hello)
        b"GET /metrics HTTP/9.9\r\n\r\n",                        # an unknown version
        b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 100_000 + b"\r\n\r\n",  # a head too large
        b"GET /%zz HTTP/1.1\r\n\r\n",                            # a broken escape
        b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"\r\n" * 1000,
    ):
        answer = raw(port, junk)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4") or answer.startswith(
            b"HTTP/1.1 5"), (junk[:40], answer[:200])
    # Connections that send half a head and go away, or nothing at all.
    for _ in range(20):
        raw(port, b"GET /metr", read=False)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    assert agent.proc.poll() is None, agent.log_text()
    m = scrape()
    assert m.get("rtenv_cache_hits_total") == 0
    assert_ok(rtenv("env", "list"))  # the agent itself still serves


def test_metrics_listen_is_checked_and_comes_from_the_configuration(rtenv, tmp_path):
    rtenv.home.mkdir(parents=True, exist_ok=True)
    p = rtenv("agent", "--metrics-listen", "nonsense", timeout=20)
    assert p.returncode == 2, p.stderr
    assert "metrics_listen (from --metrics-listen)" in p.stderr, p.stderr
    assert "HOST:PORT" in p.stderr, p.stderr

    p = rtenv("config", "show", "--json", env={"RTENV_METRICS_LISTEN": "127.0.0.1:9464"})
    assert_ok(p)
    shown = json.loads(p.stdout)["metrics_listen"]
    assert shown == {"value": "127.0.0.1:9464", "origin": "RTENV_METRICS_LISTEN"}

    # A port that is taken stops the agent with the address in its reason.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = rtenv("agent", env={"RTENV_METRICS_LISTEN": f"127.0.0.1:{port}"}, timeout=20)
        assert p.returncode == 3, p.stderr
        assert f"127.0.0.1:{port}" in p.stderr, p.stderr
        assert_clean_error(p.stderr)


def test_scrapes_do_not_keep_an_idle_agent_alive(rtenv, agent_factory):
    agent = agent_factory(args=["--metrics-listen", "127.0.0.1:0", "--idle-exit", "1"])
    wait_for(lambda: BOUND.search(agent.log_text()), 10, "the agent to say where metrics are")
    scrape = Scraper(int(BOUND.search(agent.log_text()).group(1)))
    deadline = time.monotonic() + 15
    while agent.proc.poll() is None:
        assert time.monotonic() < deadline, "scraped every 50 ms, the agent never went idle"
        try:
            scrape.text()
        except (urllib.error.URLError, ConnectionError):
            pass  # it is stopping
        time.sleep(0.05)
    assert agent.proc.returncode == 0, agent.log_text()
