"""image_uri and container: the command runs inside the image's root filesystem. Every image is
built by the test (busybox-static as the root, oci_images.py) and served from an OCI layout, an
OCI archive or a docker-registry on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import assert_ok, assert_setup_failed, wait_for
from oci_images import (Registry, busybox_base, directory, file, make_image, opaque, require_tools,
                        symlink, whiteout, write_archive, write_layout, Entry, layer_tar, compress,
                        TokenServer)

HOST_OS_RELEASE = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""


@pytest.fixture(autouse=True)
def tools():
    require_tools("/bin/busybox", "zstd", "docker-registry")


@pytest.fixture
def registry(tmp_path):
    r = Registry(tmp_path / "registry")
    yield r
    r.stop()


def layout_ref(path: Path, tag: str) -> str:
    return f"oci:{path}:{tag}"


def pinned_env(rtenv, spec: dict, env=None) -> dict:
    p = rtenv("env", "create", "--no-install", "--json", "-e", json.dumps(spec), env=env)
    assert_ok(p)
    return json.loads(p.stdout)["runtime_env"]


def insecure(registry: Registry) -> dict:
    return {"RTENV_INSECURE_REGISTRIES": registry.host}


# ---- a local OCI layout ---------------------------------------------------------------------

def test_the_command_sees_the_images_files_not_the_hosts(rtenv, tmp_path):
    img = make_image([busybox_base("Image Test OS"), [file("etc/motd", "layer two\n")]],
                     env=["PATH=/bin", "FROM_IMAGE=yes", "OVERRIDDEN=image"], workdir="/etc")
    layout = write_layout(tmp_path / "layout", {"v1": img})
    spec = {"image_uri": layout_ref(layout, "v1"), "env_vars": {"OVERRIDDEN": "user"}}
    p = rtenv.run(spec, "sh", "-c",
                  "cat /etc/os-release; cat /etc/motd; pwd; echo $FROM_IMAGE $OVERRIDDEN; "
                  "test -e /usr/bin/python3 && echo host-python; exit 7")
    assert_ok(p, 7)
    assert 'NAME="Image Test OS"' in p.stdout
    assert HOST_OS_RELEASE.splitlines()[0] not in p.stdout
    assert "layer two" in p.stdout
    assert "/etc\n" in p.stdout  # the image's WorkingDir
    assert "yes user" in p.stdout  # the image's Env, env_vars over it
    assert "host-python" not in p.stdout


def test_the_env_is_pinned_to_the_manifest_digest(rtenv, tmp_path):
    img = make_image([busybox_base()])
    layout = write_layout(tmp_path / "layout", {"v1": img})
    env = pinned_env(rtenv, {"image_uri": layout_ref(layout, "v1")})
    assert env["image_uri"] == f"oci:{layout}@{img.manifest_digest}"


def test_layers_are_in_the_store_by_digest_and_unpacked_once(rtenv, tmp_path):
    base = busybox_base()
    one = make_image([base, [file("etc/which", "one\n")]])
    two = make_image([base, [file("etc/which", "two\n")]])
    layout = write_layout(tmp_path / "layout", {"one": one, "two": two})
    for tag in ("one", "two"):
        p = rtenv.run({"image_uri": layout_ref(layout, tag)}, "cat", "/etc/which")
        assert_ok(p)
        assert p.stdout == f"{tag}\n"
    store = rtenv.home / "store"
    stored = {p.name for p in store.rglob("*") if p.is_file()}
    for d in one.layer_digests + two.layer_digests:
        assert any(d.split(":")[1] in name for name in stored), d
    layers = rtenv.home / "images" / "layers"
    # The shared base is unpacked once: three layers for two images.
    assert len([d for d in layers.iterdir() if d.is_dir()]) == 3
    # And the two roots share its files (hard links, nothing copied).
    roots = [d / "rootfs" / "bin" / "busybox" for d in (rtenv.home / "images" / "roots").iterdir()
             if d.is_dir()]
    assert len(roots) == 2 and roots[0].stat().st_ino == roots[1].stat().st_ino
    assert roots[0].stat().st_nlink >= 3


def test_zstd_and_uncompressed_layers(rtenv, tmp_path):
    for how in ("zstd", "none"):
        img = make_image([busybox_base(f"{how} OS")], compression=how)
        layout = write_layout(tmp_path / how, {"v1": img})
        p = rtenv.run({"image_uri": layout_ref(layout, "v1")}, "cat", "/etc/os-release")
        assert_ok(p)
        assert f'NAME="{how} OS"' in p.stdout


def test_whiteouts_delete_lower_files_and_opaque_dirs_hide_them(rtenv, tmp_path):
    lower = busybox_base() + [directory("data"), file("data/keep", "k"), file("data/gone", "g"),
                              directory("opq"), file("opq/old", "o"), file("etc/removed", "r")]
    upper = [whiteout("data/gone"), whiteout("etc/removed"), directory("opq"), opaque("opq"),
             file("opq/new", "n")]
    layout = write_layout(tmp_path / "layout", {"v1": make_image([lower, upper])})
    p = rtenv.run({"image_uri": layout_ref(layout, "v1")}, "sh", "-c",
                  "ls -a /data /opq; test -e /etc/removed && echo still-there; true")
    assert_ok(p)
    listing = p.stdout.split()
    assert "keep" in listing and "new" in listing
    assert "gone" not in listing and "old" not in listing and "still-there" not in listing
    assert not any(n.startswith(".wh.") for n in listing)


@pytest.mark.parametrize("hostile", [
    [file("../escaped", "x")],
    [file("/abs-escaped", "x")],
    [symlink("link", "/"), file("link/escaped", "x")],
    [Entry("hard", kind="hardlink", target="../../escaped")],
])
def test_a_hostile_layer_writes_nothing_outside(rtenv, tmp_path, hostile):
    blob, _ = compress(layer_tar(hostile), "gzip")
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base(), blob])})
    p = rtenv.run({"image_uri": layout_ref(layout, "v1")}, "true")
    assert_setup_failed(p, "refusing")
    assert not (tmp_path / "escaped").exists()
    assert not Path("/abs-escaped").exists() and not Path("/escaped").exists()
    assert not list(rtenv.home.rglob("escaped"))


def test_an_images_symlinks_never_lead_mounts_to_the_host(rtenv, tmp_path):
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    base = [e for e in busybox_base() if not e.name.startswith("etc")]
    layout = write_layout(tmp_path / "layout",
                          {"v1": make_image([base + [symlink("etc", str(host_dir))]])})
    p = rtenv.run({"image_uri": layout_ref(layout, "v1")}, "sh", "-c", "echo ran")
    assert_ok(p)
    assert p.stdout == "ran\n"
    assert not any(host_dir.iterdir()), list(host_dir.iterdir())


def test_a_tampered_layer_is_refused_naming_its_digest(rtenv, tmp_path):
    img = make_image([busybox_base()])
    layout = write_layout(tmp_path / "layout", {"v1": img})
    digest = img.layer_digests[0]
    blob = layout / "blobs" / "sha256" / digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    p = rtenv.run({"image_uri": layout_ref(layout, "v1")}, "true")
    assert_setup_failed(p, digest)


def test_an_unknown_tag_names_the_tags_the_layout_has(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()])})
    p = rtenv.run({"image_uri": layout_ref(layout, "v2")}, "true")
    assert_setup_failed(p, "no tag 'v2'", "v1")


def test_exit_status_signals_and_stdio_are_the_commands(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()])})
    spec = {"image_uri": layout_ref(layout, "v1")}
    assert_ok(rtenv.run(spec, "true"))  # installed before the signal test
    p = rtenv("run", "-e", json.dumps(spec), "--", "sh", "-c", "cat; echo err >&2; exit 3",
              input="from stdin\n")
    assert p.returncode == 3 and p.stdout == "from stdin\n" and p.stderr.endswith("err\n")
    for sig, code in ((signal.SIGTERM, 9), (signal.SIGINT, 10)):
        proc = rtenv.popen(spec, "sh", "-c",
                           f"trap 'echo got; exit {code}' {sig.name[3:]}; echo ready; "
                           "while true; do sleep 0.05; done")
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == code, err
        assert out == "got\n"


def test_the_images_entrypoint_and_cmd(rtenv, tmp_path):
    img = make_image([busybox_base(), [file("etc/motd", "motd\n")]],
                     entrypoint=["/bin/echo", "entry:"], cmd=["default"])
    layout = write_layout(tmp_path / "layout", {"v1": img})
    spec = {"image_uri": layout_ref(layout, "v1")}
    p = rtenv("run", "-e", json.dumps(spec))
    assert_ok(p)
    assert p.stdout == "entry: default\n"
    p = rtenv.run(spec, "given")
    assert_ok(p)
    assert p.stdout == "entry: given\n"


def test_the_image_is_never_changed_by_the_command(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()])})
    spec = {"image_uri": layout_ref(layout, "v1")}
    p = rtenv.run(spec, "sh", "-c", "echo changed > /etc/os-release && rm /bin/busybox; echo $?")
    assert_ok(p)
    p = rtenv.run(spec, "cat", "/etc/os-release")
    assert_ok(p)
    assert "changed" not in p.stdout


def test_an_oci_archive(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base("Archive OS")])})
    archive = write_archive(layout, tmp_path / "image.tar")
    p = rtenv.run({"image_uri": f"oci-archive:{archive}:v1"}, "cat", "/etc/os-release")
    assert_ok(p)
    assert 'NAME="Archive OS"' in p.stdout


def test_working_dir_and_py_modules_are_bound_at_the_same_paths(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()], workdir="/etc")})
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("job data\n")
    (project / "skip.log").write_text("excluded\n")
    lib = tmp_path / "mylib"
    lib.mkdir()
    (lib / "__init__.py").write_text("")
    spec = {"image_uri": layout_ref(layout, "v1"), "working_dir": str(project),
            "py_modules": [str(lib)], "excludes": ["*.log"]}
    p = rtenv.run(spec, "sh", "-c",
                  'pwd; cat data.txt; test -e skip.log && echo not-excluded; '
                  'cat /etc/os-release; for d in $(echo $PYTHONPATH | tr : " "); do ls $d; done; '
                  'echo written > new.txt')
    assert_ok(p)
    lines = p.stdout.splitlines()
    cwd = lines[0]
    assert cwd.startswith(str(rtenv.home / "pkgs")), p.stdout  # the node copy, not the image's
    assert "job data" in lines and "not-excluded" not in lines
    assert 'NAME="Busybox Test OS"' in p.stdout  # still inside the image
    assert "mylib" in lines  # the py_module's parent is on PYTHONPATH, bound inside
    # A write to the working_dir lands in the node copy (which rtenv restores after the run).
    assert not (project / "new.txt").exists()


def test_pip_with_an_image_is_refused(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()])})
    p = rtenv.run({"image_uri": layout_ref(layout, "v1"), "pip": ["requests"]}, "true")
    assert p.returncode == 2
    assert ("image_uri may only be combined with config, env_vars, working_dir, py_modules and "
            "excludes, not pip") in p.stderr


def test_container_run_options_map_env_and_workdir_and_refuse_the_rest(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()])})
    image = layout_ref(layout, "v1")
    spec = {"container": {"image": image, "run_options": ["-e", "A=1", "--workdir=/bin"]}}
    p = rtenv.run(spec, "sh", "-c", "echo $A; pwd")
    assert_ok(p)
    assert p.stdout == "1\n/bin\n"
    p = rtenv.run({"container": {"image": image, "run_options": ["--privileged"]}}, "true")
    assert_setup_failed(p, "'--privileged' is not supported")


def test_eviction_never_removes_an_image_in_use(rtenv, tmp_path):
    layout = write_layout(tmp_path / "layout", {"v1": make_image([busybox_base()])})
    spec = {"image_uri": layout_ref(layout, "v1")}
    proc = rtenv.popen(spec, "sh", "-c", "echo ready; exec sleep 60")
    assert proc.stdout.readline() == "ready\n"
    roots = rtenv.home / "images" / "roots"
    p = rtenv("gc", env={"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"})
    assert_ok(p)
    assert [d for d in roots.iterdir() if d.is_dir()], "an image in use was evicted"
    proc.terminate()  # reaches the command, which held the image too
    proc.wait(10)

    def unheld():
        listing = json.loads(rtenv("env", "list", "--json").stdout)
        return all(not e["holders"] for e in listing["envs"])
    wait_for(unheld, 10, "the agent to drop the reference of the exited run")
    assert_ok(rtenv("gc", env={"RTENV_CACHE_LIMIT": "1", "RTENV_CACHE_LOW": "0"}))
    assert not [d for d in roots.iterdir() if d.is_dir()]
    assert not [d for d in (rtenv.home / "images" / "layers").iterdir() if d.is_dir()]
    # And it comes back when asked for again.
    assert_ok(rtenv.run(spec, "true"))


# ---- a registry -----------------------------------------------------------------------------

def test_a_registry_image_runs_and_is_pulled_once(rtenv, registry):
    img = make_image([busybox_base("Registry OS"), [file("etc/motd", "top\n")]])
    registry.push("test/app", "v1", img)
    spec = {"image_uri": f"{registry.host}/test/app:v1"}
    for _ in range(2):
        p = rtenv.run(spec, "cat", "/etc/os-release", env=insecure(registry))
        assert_ok(p)
        assert 'NAME="Registry OS"' in p.stdout
    for d in img.layer_digests:
        assert len(registry.requests("GET", f"/blobs/{d}")) == 1


def test_plain_http_only_for_insecure_registries(rtenv, registry):
    registry.push("test/app", "v1", make_image([busybox_base()]))
    p = rtenv.run({"image_uri": f"{registry.host}/test/app:v1"}, "true")
    assert p.returncode == 3, p.stderr
    assert registry.host in p.stderr


def test_a_second_image_fetches_only_its_own_layer(rtenv, registry):
    base = busybox_base()
    first = make_image([base, [file("etc/which", "one\n")]])
    second = make_image([base, [file("etc/which", "two\n")]])
    registry.push("test/one", "v1", first)
    registry.push("test/two", "v1", second)
    assert_ok(rtenv.run({"image_uri": f"{registry.host}/test/one:v1"}, "true", env=insecure(registry)))
    p = rtenv.run({"image_uri": f"{registry.host}/test/two:v1"}, "cat", "/etc/which",
                  env=insecure(registry))
    assert_ok(p)
    assert p.stdout == "two\n"
    base_digest = first.layer_digests[0]
    assert second.layer_digests[0] == base_digest
    assert len(registry.requests("GET", f"/blobs/{base_digest}")) == 1
    assert len(registry.requests("GET", f"test/two/blobs/{second.layer_digests[1]}")) == 1


def test_two_homes_sharing_a_store_pull_each_layer_once(rtenv, registry, tmp_path):
    img = make_image([busybox_base(), [file("etc/motd", "m\n")]])
    registry.push("test/app", "v1", img)
    shared = tmp_path / "shared-store"
    spec = {"image_uri": f"{registry.host}/test/app:v1"}
    for home in ("node-a", "node-b"):
        env = {**insecure(registry), "RTENV_HOME": str(tmp_path / home), "RTENV_STORE": str(shared)}
        p = rtenv.run(spec, "cat", "/etc/motd", env=env)
        assert_ok(p)
        assert p.stdout == "m\n"
    for d in img.layer_digests:
        assert len(registry.requests("GET", f"/blobs/{d}")) == 1
    for home in ("node-a", "node-b"):
        subprocess.run([rtenv.binary, "agent", "stop"], env={**rtenv.env, "RTENV_HOME": str(tmp_path / home)},
                       capture_output=True, timeout=30)


def test_a_tag_moved_after_submission_does_not_change_what_runs(rtenv, registry):
    old = make_image([busybox_base(), [file("etc/which", "old\n")]])
    new = make_image([busybox_base(), [file("etc/which", "new\n")]])
    registry.push("test/app", "v1", old)
    spec = pinned_env(rtenv, {"image_uri": f"{registry.host}/test/app:v1"}, env=insecure(registry))
    assert spec["image_uri"] == f"{registry.host}/test/app@{old.manifest_digest}"
    registry.push("test/app", "v1", new)
    p = rtenv.run(spec, "cat", "/etc/which", env=insecure(registry))
    assert_ok(p)
    assert p.stdout == "old\n"
    p = rtenv.run({"image_uri": f"{registry.host}/test/app:v1"}, "cat", "/etc/which",
                  env=insecure(registry))
    assert_ok(p)
    assert p.stdout == "new\n"


def test_a_tampered_registry_blob_is_refused(rtenv, registry):
    img = make_image([busybox_base()])
    registry.push("test/app", "v1", img)
    digest = img.layer_digests[0]
    data = registry.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / \
        digest.split(":")[1][:2] / digest.split(":")[1] / "data"
    raw = bytearray(data.read_bytes())
    raw[200] ^= 0xFF
    data.write_bytes(bytes(raw))
    p = rtenv.run({"image_uri": f"{registry.host}/test/app:v1"}, "true", env=insecure(registry))
    assert_setup_failed(p, digest)


def test_a_token_registry_works_with_credentials_and_fails_clearly_without(rtenv, tmp_path):
    tokens = TokenServer(tmp_path / "tokens", "alice", "s3cret")
    registry = Registry(tmp_path / "registry", token=tokens.config())
    try:
        img = make_image([busybox_base("Token OS")])
        push = {"Authorization": "Bearer " + tokens.token("repository:private/app:pull,push")}
        registry.push("private/app", "v1", img, headers=push)
        spec = {"image_uri": f"{registry.host}/private/app:v1"}
        p = rtenv.run(spec, "true", env=insecure(registry))
        assert_setup_failed(p, spec["image_uri"], "registry_auth_file")
        auth = tmp_path / "auth.json"
        encoded = base64.b64encode(b"alice:s3cret").decode()
        auth.write_text(json.dumps({"auths": {registry.host: {"auth": encoded}}}))
        p = rtenv.run(spec, "cat", "/etc/os-release",
                      env={**insecure(registry), "REGISTRY_AUTH_FILE": str(auth)})
        assert_ok(p)
        assert 'NAME="Token OS"' in p.stdout
        assert any("scope=repository%3Aprivate/app%3Apull" in r or
                   "scope=repository:private/app:pull" in r for r in tokens.requests), tokens.requests
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps({"auths": {registry.host: {
            "auth": base64.b64encode(b"alice:nope").decode()}}}))
        p = rtenv.run({"image_uri": f"{registry.host}/private/app:v1"}, "true",
                      env={**insecure(registry), "REGISTRY_AUTH_FILE": str(wrong)})
        assert_setup_failed(p, "refused the credentials")
    finally:
        registry.stop()
        tokens.stop()


# ---- collecting a store that holds images -------------------------------------------------------

def test_a_store_collection_keeps_the_layers_of_an_image_it_keeps(rtenv, tmp_path):
    """An image's manifest names its config and layers by digest: a collection that keeps the
    manifest (a node reported it in use, or it was asked for within the window) keeps them too,
    and another node still runs the image from the store alone."""
    img = make_image([busybox_base(), [file("etc/motd", "kept\n")]])
    layout = write_layout(tmp_path / "layout", {"v1": img})
    shared = tmp_path / "shared-store"
    env = {"RTENV_STORE": str(shared)}
    pinned = pinned_env(rtenv, {"image_uri": layout_ref(layout, "v1")}, env=env)
    manifest = img.manifest_digest.split(":")[1]
    blob_files = {p.name: p for p in shared.rglob("*") if p.is_file() and len(p.name) == 64}
    for d in img.layer_digests:
        assert d.split(":")[1] in blob_files, d
    # Days pass; then the manifest alone is used again (a record naming it, as a node's report or
    # a pinned env does).
    then = time.time() - 86400
    for p in blob_files.values():
        os.utime(p, (then, then))
    records = shared / "records" / "urls"
    records.mkdir(parents=True)
    (records / "pinned").write_text(json.dumps({"uri": f"image://sha256/{manifest}"}))
    gc = rtenv("store", "gc", "--older-than", "1h", "--json", "--store", str(shared))
    assert_ok(gc)
    assert json.loads(gc.stdout)["collected"] == [], gc.stdout
    # The layout is gone: another node runs the pinned image from the store alone.
    subprocess.run(["rm", "-rf", str(layout)], check=True)
    other = {"RTENV_HOME": str(tmp_path / "other-home"), "RTENV_STORE": str(shared)}
    p = rtenv.run(pinned, "cat", "/etc/motd", env=other)
    assert_ok(p)
    assert p.stdout == "kept\n"
    subprocess.run([rtenv.binary, "agent", "stop"], env={**rtenv.env, **other},
                   capture_output=True, timeout=30)
