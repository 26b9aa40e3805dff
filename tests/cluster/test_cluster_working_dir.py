"""A working_dir packed on the client runs on every node with the same files, and crosses the
network once: the client uploads it once, each node downloads it once (byte counts of their
links)."""

from __future__ import annotations

from netns import PY
from trees import TREE_DIGEST, random_tree, tree_digest

# What may cross a link on top of the payload: HTTP requests and answers, S3 signatures, TCP
# acknowledgements, ARP (per blob ~1-2 KB).
OVERHEAD = 0.15
SLACK = 96 * 1024
QUIET = 8 * 1024  # an idle link in the cluster carries less than this (ARP of other machines)


def _delta(before, after):
    return after[0] - before[0], after[1] - before[1]


def test_a_working_dir_runs_on_every_node_and_crosses_the_network_once(machines, tmp_path,
                                                                       store_kind):
    project = tmp_path / "project"
    size = random_tree(project, files=60, total_bytes=6 << 20, seed=f"wd:{tmp_path}")
    expected = tree_digest(project)
    client = machines.client

    before = client.machine.link_bytes()
    packed = client.pack(project)
    _, sent = _delta(before, client.machine.link_bytes())
    assert packed["blobs_uploaded"] == packed["blobs"], packed
    assert size <= sent <= size * (1 + OVERHEAD) + SLACK, (
        f"the client sent {sent} bytes for a {size}-byte working_dir ({store_kind})")

    # Unchanged: nothing to upload, a few bytes of questions.
    before = client.machine.link_bytes()
    again = client.pack(project)
    _, sent_again = _delta(before, client.machine.link_bytes())
    assert again["uri"] == packed["uri"]
    assert again["blobs_uploaded"] == 0 and again["files_hashed"] == 0, again
    assert sent_again < 32 * 1024, f"re-packing an unchanged dir sent {sent_again} bytes"

    spec = {"working_dir": packed["uri"]}
    for node in machines.nodes:
        before = node.machine.link_bytes()
        p = node.run(spec, PY, "-c", TREE_DIGEST)
        received, _ = _delta(before, node.machine.link_bytes())
        assert p.returncode == 0, f"{node.name}: exit {p.returncode}\n{p.stderr}"
        assert p.stdout.strip() == expected, f"{node.name} saw other files than were packed"
        assert size <= received <= size * (1 + OVERHEAD) + SLACK, (
            f"{node.name} received {received} bytes for a {size}-byte working_dir")

        # Again on the same node: the copy is there, nothing is fetched.
        before = node.machine.link_bytes()
        p = node.run(spec, PY, "main.py")
        received, sent = _delta(before, node.machine.link_bytes())
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "hello from the working_dir"
        assert received + sent < QUIET, (
            f"a second run on {node.name} moved {received} + {sent} bytes")
