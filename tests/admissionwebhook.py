"""A validating admission webhook that refuses chosen requests with a chosen HTTP status, so
that the test bed's real kube-apiserver answers them with that status (429, 503, 504...).

The webhook is served by the test itself: HTTPS on a loopback port (a self-signed certificate
for 127.0.0.1, given to the API server as the configuration's ``caBundle``), answering every
AdmissionReview with ``allowed: false`` and ``status.code``. The API server passes that code
and the message to its client. Checked on the test bed's Kubernetes 1.20.2: 429, 500, 503 and
504 arrive as they are (no Retry-After), a code below 400 as 400, the message as ``admission
webhook "<name>" denied the request: <message>``; the API server calls the webhook twice for
one pod deletion; a new configuration is in effect within 0.1 s, a deleted one gone within
about 0.5 s. Nothing answers in the API server's place: it is its own admission chain that
says "not now".

Scoped to one namespace (a label put on it for this, as 1.20 sets no
``kubernetes.io/metadata.name``) and to the operations and resources given; removed by
``remove()`` (use it in a ``finally``: the configuration is cluster-wide and outlives the test).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import time
import uuid
from base64 import b64encode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

#: The label put on the namespace the webhook applies to (value: the configuration's name).
NAMESPACE_LABEL = "tycho.test/admission-refusal"


def self_signed_for_loopback() -> tuple[bytes, bytes]:
    """A certificate and key (PEM) for https://127.0.0.1, its own CA (the ``caBundle``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tycho-test-admission-webhook")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        # Go verifies the IP against the SAN only (no CN fallback since Go 1.15).
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class RefusingWebhook:
    """Refuses ``operations`` on ``resources`` in ``namespace`` with HTTP ``code`` while installed.

    ``code`` may be changed while it is installed (the next review gets the new one). Every
    review it answered is in ``reviews`` (operation, resource, name, dry run), so that a test can
    wait for the request it expects to have been refused.
    """

    def __init__(self, api_client, namespace: str, operations: list[str], resources: list[str],
                 code: int, message: str = "the test refuses this request for now"):
        self.api_client = api_client
        self.namespace = namespace
        self.operations = operations
        self.resources = resources
        self.code = code
        self.message = message
        self.name = f"refuse-{uuid.uuid4().hex[:8]}.tycho.test"
        self.reviews: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -------------------------------------------------------------- the webhook's HTTPS server

    def _serve(self) -> bytes:
        cert, key = self_signed_for_loopback()
        with tempfile.TemporaryDirectory() as tmp:  # ssl loads a chain from files only
            (Path(tmp) / "cert.pem").write_bytes(cert)
            (Path(tmp) / "key.pem").write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                with hook._lock:
                    hook.reviews.append({
                        "operation": request["operation"], "resource": request["resource"]["resource"],
                        "name": request.get("name"), "dry_run": bool(request.get("dryRun")),
                        "at": time.monotonic(),
                    })
                    code, message = hook.code, hook.message
                body = json.dumps({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": request["uid"], "allowed": False,
                                 "status": {"code": code, "message": message}},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: the reviews are recorded instead
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return cert

    # -------------------------------------------------------------- the API server's side

    def install(self, in_effect: Callable[[], None]) -> "RefusingWebhook":
        """Serve, label the namespace, create the configuration, and return once ``in_effect``
        (a request the webhook applies to, made dry-run so that it changes nothing) is refused
        with ``code``: the API server loads configurations from a watch, not at once."""
        cert = self._serve()
        core = client.CoreV1Api(self.api_client)
        core.patch_namespace(self.namespace, {"metadata": {"labels": {NAMESPACE_LABEL: self.name}}})
        port = self._server.server_address[1]
        client.AdmissionregistrationV1Api(self.api_client).create_validating_webhook_configuration({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": self.name},
            "webhooks": [{
                "name": self.name,
                "clientConfig": {"url": f"https://127.0.0.1:{port}/refuse",
                                 "caBundle": b64encode(cert).decode()},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": self.operations,
                           "resources": self.resources, "scope": "Namespaced"}],
                "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: self.name}},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 5,
            }],
        })
        self._wait(in_effect, refused=True)
        return self

    def remove(self, in_effect: Callable[[], None] | None = None) -> None:
        """Delete the configuration (if ``in_effect`` is given, return once it is allowed again:
        once the API server no longer calls the webhook), then stop serving."""
        try:
            client.AdmissionregistrationV1Api(self.api_client).delete_validating_webhook_configuration(self.name)
        except ApiException as err:
            if err.status != 404:
                raise
        if in_effect is not None:
            self._wait(in_effect, refused=False)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _wait(self, request: Callable[[], None], refused: bool, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                request()
                status = None
            except ApiException as err:
                status = err.status
            if (status == self.code) == refused:
                return
            assert time.monotonic() < deadline, \
                f"webhook {self.name} still {'not ' if refused else ''}in effect (last answer: {status})"
            time.sleep(0.1)

    def refused(self, operation: str, name: str) -> int:
        """How many real (not dry-run) ``operation`` requests on ``name`` it has refused.

        The API server may review one request twice (1.20 reviews a pod's deletion before and
        again inside its graceful-deletion update, milliseconds apart): reviews less than
        0.2 s after the previous one count as the same request.
        """
        with self._lock:
            times = [r["at"] for r in self.reviews
                     if r["operation"] == operation and r["name"] == name and not r["dry_run"]]
        return sum(1 for i, at in enumerate(times) if i == 0 or at - times[i - 1] > 0.2)
