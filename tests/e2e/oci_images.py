"""Hermetic container images for the image tests: root filesystems built from the static busybox,
written as OCI layers (tar, gzip or zstd), OCI image layouts and OCI archives, and pushed to a
local `docker-registry` with the Registry HTTP API v2. Nothing here comes from the network."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib.request

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "cat", "ls", "true", "false", "echo", "env", "pwd", "sleep", "id", "test",
                   "kill", "touch", "rm", "mkdir", "stat", "wc", "head")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None and not Path(t).exists()]
    if missing:
        raise AssertionError(f"missing tools for the image tests: {', '.join(missing)} "
                             "(scripts/setup.sh installs them)")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One tar entry of a layer: a file (data), a directory, a symlink or a hard link."""
    name: str
    data: bytes | None = None
    mode: int = 0o644
    kind: str = "file"  # file | dir | symlink | hardlink | fifo
    target: str = ""


def file(name, data, mode=0o644):
    return Entry(name, data if isinstance(data, bytes) else data.encode(), mode)


def directory(name, mode=0o755):
    return Entry(name, None, mode, "dir")


def symlink(name, target):
    return Entry(name, None, 0o777, "symlink", target)


def whiteout(path: str) -> Entry:
    parent, _, base = path.rpartition("/")
    return file(f"{parent + '/' if parent else ''}.wh.{base}", b"")


def opaque(dir_path: str) -> Entry:
    return file(f"{dir_path}/.wh..wh..opq", b"")


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mode = e.mode
            info.mtime = 0
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = e.target
                tar.addfile(info)
            elif e.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = e.target
                tar.addfile(info)
            elif e.kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return buf.getvalue()


def compress(tar: bytes, how: str) -> tuple[bytes, str]:
    if how == "gzip":
        return gzip.compress(tar, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    if how == "zstd":
        out = subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True, check=True).stdout
        return out, "application/vnd.oci.image.layer.v1.tar+zstd"
    return tar, "application/vnd.oci.image.layer.v1.tar"


def busybox_base(os_name: str = "Busybox Test OS") -> list[Entry]:
    """The entries of a minimal root: busybox, its applets as symlinks, /etc/os-release."""
    entries = [directory("bin"), directory("etc"), directory("tmp", 0o1777), directory("root", 0o700),
               file("bin/busybox", BUSYBOX.read_bytes(), 0o755)]
    entries += [symlink(f"bin/{a}", "busybox") for a in BUSYBOX_APPLETS]
    entries.append(file("etc/os-release", f'NAME="{os_name}"\nID=busyboxtest\n'))
    return entries


@dataclass
class Image:
    """An image: its blobs by digest, the manifest's bytes and digest."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifest: bytes = b""
    manifest_digest: str = ""
    layer_digests: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def make_image(layers: list[list[Entry] | bytes], *, compression: str = "gzip", env=None,
               entrypoint=None, cmd=None, workdir=None) -> Image:
    """An image of `layers` (each a list of entries, or a layer blob given as is)."""
    img = Image()
    descs, diff_ids = [], []
    for layer in layers:
        if isinstance(layer, bytes):
            blob, media = layer, "application/vnd.oci.image.layer.v1.tar+gzip"
            diff_ids.append(sha256(gzip.decompress(blob)))
        else:
            tar = layer_tar(layer)
            diff_ids.append(sha256(tar))
            blob, media = compress(tar, compression)
        d = sha256(blob)
        img.blobs[d] = blob
        img.layer_digests.append(d)
        descs.append({"mediaType": media, "digest": d, "size": len(blob)})
    config_body = {"Env": env or ["PATH=/bin"]}
    if entrypoint is not None:
        config_body["Entrypoint"] = entrypoint
    if cmd is not None:
        config_body["Cmd"] = cmd
    if workdir is not None:
        config_body["WorkingDir"] = workdir
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    img.config = {"architecture": arch, "os": "linux", "config": config_body,
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config = json.dumps(img.config).encode()
    img.blobs[sha256(config)] = config
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha256(config), "size": len(config)},
                "layers": descs}
    img.manifest = json.dumps(manifest).encode()
    img.manifest_digest = sha256(img.manifest)
    img.blobs[img.manifest_digest] = img.manifest
    return img


def write_layout(path: Path, images: dict[str, Image]) -> Path:
    """An OCI image layout at `path` holding `images` by tag."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = []
    for tag, img in images.items():
        for d, data in img.blobs.items():
            (blobs / d.split(":")[1]).write_bytes(data)
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "digest": img.manifest_digest, "size": len(img.manifest),
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    return path


def write_archive(layout: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w") as tar:
        for p in sorted(layout.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    return archive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """`docker-registry serve` on 127.0.0.1 (optionally with htpasswd auth, or token auth at
    `token_realm`), its access log kept so tests can count requests."""

    def __init__(self, root: Path, *, htpasswd: Path | None = None, token: dict | None = None):
        require_tools("docker-registry")
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        auth = ""
        if htpasswd:
            auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
        if token:
            auth = ("auth:\n  token:\n"
                    f"    realm: {token['realm']}\n    service: {token['service']}\n"
                    f"    issuer: {token['issuer']}\n    rootcertbundle: {token['certs']}\n")
        (root / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n" + auth)
        self.log_path = root / "registry.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"docker-registry did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def requests(self, method: str = "GET", path_part: str = "") -> list[str]:
        """The access log lines of `method` requests whose line holds `path_part`."""
        self.log.flush()
        out = []
        for line in self.log_path.read_text().splitlines():
            if f'"{method} /v2/' in line and path_part in line:
                out.append(line)
        return out

    def push(self, repo: str, tag: str, img: Image, headers: dict | None = None) -> None:
        """Pushes `img` as repo:tag (monolithic uploads; the manifest last)."""
        base = f"http://{self.host}/v2/{repo}"
        headers = headers or {}
        for d, data in img.blobs.items():
            if d == img.manifest_digest:
                continue
            req = urllib.request.Request(f"{base}/blobs/uploads/", method="POST", headers=headers)
            with urllib.request.urlopen(req) as r:
                loc = r.headers["Location"]
            if loc.startswith("/"):
                loc = f"http://{self.host}{loc}"
            sep = "&" if "?" in loc else "?"
            req = urllib.request.Request(f"{loc}{sep}digest={d}", data=data, method="PUT",
                                         headers={**headers, "Content-Type": "application/octet-stream"})
            urllib.request.urlopen(req).close()
        req = urllib.request.Request(
            f"{base}/manifests/{tag}", data=img.manifest, method="PUT",
            headers={**headers, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        urllib.request.urlopen(req).close()


class TokenServer:
    """A registry token service on 127.0.0.1 (the Docker token protocol): GET /token with Basic
    credentials `user`:`password` answers {"token": JWT} granting the scope asked, signed RS256
    by a key whose self-signed certificate the registry trusts (`certs`); anything else 401.
    Needs `cryptography` (which moto, in scripts/setup.sh, depends on)."""

    def __init__(self, root: Path, user: str, password: str):
        import base64
        import datetime
        import http.server
        import threading
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID

        self._b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtenv test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        root.mkdir(parents=True, exist_ok=True)
        self.certs = root / "token-certs.pem"
        self.certs.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._key, self._padding, self._hashes = key, padding, hashes
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.issuer, self.service = "rtenv-test-issuer", "rtenv-test-registry"
        self.requests: list[str] = []
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlparse
                server.requests.append(self.path)
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                scope = parse_qs(urlparse(self.path).query).get("scope", [""])[0]
                body = json.dumps({"token": server.token(scope)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, scope: str) -> str:
        """A JWT granting `scope` ("repository:<name>:<actions>")."""
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self._x5c]}
        claims = {"iss": self.issuer, "sub": "tester", "aud": self.service, "iat": now - 10,
                  "nbf": now - 10, "exp": now + 600, "jti": os.urandom(8).hex(), "access": access}
        signing = (self._b64(json.dumps(header).encode()) + "." +
                   self._b64(json.dumps(claims).encode()))
        sig = self._key.sign(signing.encode(), self._padding.PKCS1v15(), self._hashes.SHA256())
        return signing + "." + self._b64(sig)

    def config(self) -> dict:
        return {"realm": self.realm, "service": self.service, "issuer": self.issuer,
                "certs": self.certs}

    def stop(self) -> None:
        self.httpd.shutdown()
