"""A throwaway PKI for the TLS tests (openssl, EC keys, valid two days)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)  # noqa: S603 - fixed binary


def make_pki(folder: Path, server_names: str = "DNS:localhost") -> None:
    """ca (trusted), rogue-ca (not), server (``server_names``, the
    subjectAltName: DNS:localhost only by default), client. The client
    certificate also serves Redis's and Sentinel's outgoing connections
    (replication, monitoring) where clients must present one."""
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", *EC_KEY, "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                "-days", "2", "-subj", f"/CN=redisops {ca}", cwd=folder)  # fmt: skip
    for name, ext in (
        ("server", f"subjectAltName={server_names}\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (folder / f"{name}.ext").write_text(ext + "\n")
        openssl("req", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=folder)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt",
                "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.crt",
                "-days", "2", "-extfile", f"{name}.ext", cwd=folder)  # fmt: skip


def server_tls_lines(pki: Path, port: int) -> list[str]:
    """redis.conf / sentinel.conf lines: TLS only on ``port``, client
    certificates required, TLS (with the client certificate) on the outgoing
    connections too: replication, and a Sentinel's to Redis and its peers."""
    return [
        "port 0",
        f"tls-port {port}",
        f"tls-cert-file {pki / 'server.crt'}",
        f"tls-key-file {pki / 'server.key'}",
        f"tls-ca-cert-file {pki / 'ca.crt'}",
        f"tls-client-cert-file {pki / 'client.crt'}",
        f"tls-client-key-file {pki / 'client.key'}",
        "tls-auth-clients yes",
        "tls-replication yes",
    ]


def client_tls_kwargs(pki: Path) -> dict[str, Any]:
    """redis-py arguments of a verified TLS client with the client certificate."""
    return {
        "ssl": True,
        "ssl_ca_certs": str(pki / "ca.crt"),
        "ssl_certfile": str(pki / "client.crt"),
        "ssl_keyfile": str(pki / "client.key"),
    }
