"""A private registry for tests: Debian's `docker-registry` (distribution 2.8) as a child process,
listening on one address the caller picks (never 0.0.0.0), storage in a folder the caller owns.

With `tls=True` it serves HTTPS with a self-signed certificate for its IP address, and the CA is put
in `/etc/docker/certs.d/<host:port>/ca.crt`, where every Docker engine on this machine looks for it
(no daemon restart, no insecure-registries setting); `stop()` removes that folder again. A
registry on 127.0.0.0/8 needs no TLS: Docker trusts those addresses over plain HTTP.
"""
from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

BINARY = "/usr/bin/docker-registry"
CERTS_D = Path("/etc/docker/certs.d")


class LocalRegistry:
    def __init__(self, host: str, port: int, root: Path, *, tls: bool = False):
        self.host, self.port, self.root, self.tls = host, port, Path(root), tls
        self.address = f"{host}:{port}"
        self.proc: subprocess.Popen | None = None
        self._certs_dir: Path | None = None

    def start(self, timeout: float = 15.0) -> "LocalRegistry":
        if not Path(BINARY).exists():
            raise RuntimeError(f"{BINARY} is missing: `apt-get install docker-registry` "
                               "(scripts/setup.sh installs it)")
        if self._answers():
            raise RuntimeError(f"something already answers on {self.address}: stop it first")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        tls = ""
        if self.tls:
            cert, key = self._make_certificate()
            tls = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        config = self.root / "config.yml"
        config.write_text("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
                          f"http:\n  addr: {self.address}\n{tls}")
        log = open(self.root / "registry.log", "ab")
        self.proc = subprocess.Popen([BINARY, "serve", str(config)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "registry.log").read_text(errors="replace")[-800:]
                self.stop()
                raise RuntimeError(f"the registry on {self.address} did not start: {tail}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        import ssl

        scheme = "https" if self.tls else "http"
        context = ssl._create_unverified_context() if self.tls else None
        try:
            with urllib.request.urlopen(f"{scheme}://{self.address}/v2/", timeout=1, context=context):
                return True
        except OSError:
            return False

    def tags(self, repository: str) -> list[str]:
        """The tags the registry holds for `repository` ([] when none)."""
        import json
        import ssl

        scheme = "https" if self.tls else "http"
        context = ssl._create_unverified_context() if self.tls else None
        try:
            with urllib.request.urlopen(f"{scheme}://{self.address}/v2/{repository}/tags/list", timeout=5,
                                        context=context) as resp:
                return json.loads(resp.read()).get("tags") or []
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise

    def _make_certificate(self) -> tuple[Path, Path]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"cronium test registry {self.host}")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(self.host))]), False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .sign(key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path, key_path = self.root / "registry.crt", self.root / "registry.key"
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        self._certs_dir = CERTS_D / self.address
        self._made_certs_d = not CERTS_D.exists()
        self._certs_dir.mkdir(parents=True, exist_ok=False)
        (self._certs_dir / "ca.crt").write_bytes(cert_pem)
        return cert_path, key_path

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._certs_dir is not None:
            shutil.rmtree(self._certs_dir, ignore_errors=True)
            self._certs_dir = None
            if self._made_certs_d:
                shutil.rmtree(CERTS_D, ignore_errors=True)

    def __enter__(self) -> "LocalRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
