"""The kubelet's ``containerLogs`` endpoint, served by the node agent: what makes
``kubectl logs`` (the API server's ``pods/log``) work on the test bed.

The API server reads a container's logs from the kubelet of its pod's node, at
``https://<node address>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>``.
This serves that path over HTTPS (a self-signed certificate made at start: the API server does
not verify kubelets' certificates unless told a CA) on the node's InternalIP, the test bed's own
bridge address, and answers only the host itself (the API server connects from the bridge's
address or loopback), never a pod on the bridge.

What it serves is the container's output file the agent writes (stdout and stderr together, every
run of the container appended to one file). So, of the kubelet's query:

- ``tailLines`` and ``limitBytes`` work;
- ``follow=true`` streams the file as it grows, until the container stops or the pod goes;
- ``timestamps=true`` and ``previous=true`` are refused with a 400 naming them (the file has no
  per-line times, and no separate file of the previous run), as are ``sinceSeconds`` and
  ``sinceTime``: never an answer that looks right and is not.
"""
from __future__ import annotations

import http.server
import ipaddress
import logging
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("tycho_testbed.kubelet_logs")

#: How often a followed log is looked at for new output.
FOLLOW_INTERVAL = 0.2
#: Read in pieces of this size (a tail reads backwards in them).
CHUNK = 64 * 1024
UNSUPPORTED = {
    "timestamps": "the test bed's container log files carry no per-line times",
    "previous": "the test bed keeps every run of a container in one log file",
    "sinceSeconds": "the test bed's container log files carry no per-line times",
    "sinceTime": "the test bed's container log files carry no per-line times",
}


class LogSource:
    """Where one container's output is, and whether more can come."""

    def __init__(self, path: Path, running: Callable[[], bool]):
        self.path = path
        self.running = running


def tail_offset(path: Path, lines: int) -> int:
    """The byte offset where the last ``lines`` lines of the file begin (a last line without its
    newline counts as a line, as the kubelet counts it)."""
    size = path.stat().st_size
    if lines <= 0 or size == 0:
        return size
    with open(path, "rb") as f:
        pos = size
        f.seek(size - 1)
        wanted = lines + 1 if f.read(1) == b"\n" else lines  # the final newline ends the last line
        found = 0
        while pos > 0:
            step = min(CHUNK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            for i in range(len(block) - 1, -1, -1):
                if block[i] == 0x0A:
                    found += 1
                    if found == wanted:
                        return pos + i + 1
        return 0


def self_signed_certificate(directory: Path, address: str) -> tuple[Path, Path]:
    """A key and certificate for ``address`` (made once per state directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if not (cert.exists() and key.exists()):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "3650", "-subj", "/CN=tycho-testbed-kubelet",
                        "-addext", f"subjectAltName=IP:{address}"], check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


class KubeletLogServer:
    """HTTPS on ``address`` (port chosen by the system unless given); ``find(namespace, pod,
    container)`` says where a container's log is (None: no such pod or container on this node);
    only peers in ``allowed`` are answered."""

    def __init__(self, address: str, state_dir: Path, find: Callable[[str, str, str], Optional[LogSource]],
                 allowed: tuple[str, ...], stopping: threading.Event, port: int = 0):
        self.find = find
        self.allowed = {ipaddress.ip_address(a) for a in allowed}
        self.stopping = stopping
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = http.server.ThreadingHTTPServer((address, port), Handler)
        self.httpd.daemon_threads = True
        cert, key = self_signed_certificate(state_dir / "kubelet-pki", address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="kubelet-logs")

    def start(self) -> "KubeletLogServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: KubeletLogServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _plain(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        peer = ipaddress.ip_address(self.client_address[0])
        if peer not in self.owner.allowed and not peer.is_loopback:
            self._plain(403, f"Forbidden: the test bed's kubelet answers only the host, not {peer}")
            return
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._plain(404, f"404 page not found: {url.path} (the test bed's kubelet serves only "
                             "/containerLogs/<namespace>/<pod>/<container>)")
            return
        _, namespace, pod, container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        for name, why in UNSUPPORTED.items():
            if name in query and query[name] not in ("", "false", "0"):
                self._plain(400, f"{name} is not supported here: {why}")
                return
        try:
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
        except ValueError:
            self._plain(400, "tailLines and limitBytes must be whole numbers")
            return
        follow = query.get("follow", "false") in ("true", "1")
        source = self.owner.find(namespace, pod, container)
        if source is None or not source.path.exists():
            self._plain(404, f"pod {namespace}/{pod} has no container {container!r} with logs on this node")
            return
        self._stream(source, tail, limit, follow)

    def _stream(self, source: LogSource, tail: Optional[int], limit: Optional[int], follow: bool) -> None:
        offset = tail_offset(source.path, tail) if tail is not None else 0
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        left = limit
        try:
            with open(source.path, "rb") as f:
                f.seek(offset)
                while True:
                    block = f.read(CHUNK if left is None else min(CHUNK, left))
                    if block:
                        self._chunk(block)
                        if left is not None:
                            left -= len(block)
                            if left <= 0:
                                break
                        continue
                    if not follow or self.owner.stopping.is_set() or not source.running():
                        # One more look: output written just before the container stopped.
                        rest = f.read() if follow else b""
                        if rest:
                            self._chunk(rest if left is None else rest[:left])
                        break
                    time.sleep(FOLLOW_INTERVAL)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
