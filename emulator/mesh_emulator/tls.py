"""An https endpoint on 127.0.0.1 with a certificate authority of its own, for what the http
emulator cannot show: how clients verify TLS (tests, benchmarks/client_costs.py).

`LoopbackTls` answers STS AssumeRole (credentials that never expire) and any other query-API
call (STS, EC2: `Action=...`) with GetCallerIdentity's response, and JSON APIs (Route 53
Resolver, RAM, Route 53 Profiles) with `{}`, so that a call takes botocore's whole https path
(signing, urllib3, the handshake, parsing) and finds nothing. `ca_bundle` verifies its
certificate (issued for the IP address 127.0.0.1); `other_bundle` is another CA's, which must
not. One connection per call (HTTP/1.0): every call makes a new TLS connection.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACCOUNT = "123456789012"  # the account GetCallerIdentity answers
_IDENTITY = (
    '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    f"<GetCallerIdentityResult><Arn>arn:aws:iam::{ACCOUNT}:user/tls</Arn>"
    f"<UserId>AIDATLS</UserId><Account>{ACCOUNT}</Account></GetCallerIdentityResult>"
    "<ResponseMetadata><RequestId>tls</RequestId></ResponseMetadata>"
    "</GetCallerIdentityResponse>"
).encode()


def _certificate(subject: str, key: Any, issuer: Any = None, ca: bool = False) -> x509.Certificate:
    """A certificate for `subject`, self-signed unless `issuer` is (its certificate, its key)."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        built = built.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    return built.sign(signer, hashes.SHA256())


_ASSUMED = (
    '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
    "<Credentials><AccessKeyId>ASIATLS</AccessKeyId><SecretAccessKey>tls</SecretAccessKey>"
    "<SessionToken>tls</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
    f"<AssumedRoleUser><AssumedRoleId>AROATLS:tls</AssumedRoleId><Arn>arn:aws:sts::{ACCOUNT}:"
    "assumed-role/tls/tls</Arn></AssumedRoleUser></AssumeRoleResult>"
    "<ResponseMetadata><RequestId>tls</RequestId></ResponseMetadata></AssumeRoleResponse>"
).encode()


class _Identity(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if b"Action=AssumeRole" in body:
            self._answer("text/xml", _ASSUMED)
        elif b"Action=" in body:
            self._answer("text/xml", _IDENTITY)
        else:
            self._answer("application/json", b"{}")

    def do_GET(self) -> None:
        self._answer("application/json", b"{}")

    def _answer(self, content_type: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class LoopbackTls:
    """`with LoopbackTls() as tls:` an https STS at `tls.endpoint_url`."""

    def __init__(self) -> None:
        self._files = tempfile.TemporaryDirectory(prefix="resolver-mesh-tls-")
        folder = Path(self._files.name)
        ca_key, other_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
        ca = _certificate("resolver-mesh loopback CA", ca_key, ca=True)
        other = _certificate("another CA", other_key, ca=True)
        served = _certificate("127.0.0.1", key, issuer=(ca, ca_key))
        pem = serialization.Encoding.PEM
        self.ca_bundle, self.other_bundle = folder / "ca.pem", folder / "other.pem"
        self.ca_bundle.write_bytes(ca.public_bytes(pem))
        self.other_bundle.write_bytes(other.public_bytes(pem))
        (folder / "server.pem").write_bytes(served.public_bytes(pem))
        (folder / "server.key").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(folder / "server.pem", folder / "server.key")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Identity)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.endpoint_url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackTls:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._files.cleanup()
