"""The node agent serves the kubelet's containerLogs endpoint: `kubectl logs` (the API server's
pods/log) works on the test bed, with tailLines, limitBytes and follow; what the agent's log
files cannot give (timestamps, the previous run) is refused, never made up."""
from __future__ import annotations

import socket
import ssl
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from .test_kubelet_logs import _pod, _wait

pytestmark = pytest.mark.cluster


def _logs(core, namespace, name, **query) -> str:
    """The text the API server answers (the client's own decoding shows bytes as their repr)."""
    return core.read_namespaced_pod_log(name, namespace, _preload_content=False, **query).data.decode()


@pytest.fixture
def core(control_plane, node_agent):
    return client.CoreV1Api(control_plane.api_client())


def test_the_api_server_reads_a_containers_logs_from_the_node(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("printer", "for i in $(seq 1 20); do echo line $i; done; echo err >&2"))
    _wait(core, kube_namespace, "printer", lambda p: p.status.phase == "Succeeded")
    everything = _logs(core, kube_namespace, "printer", container="main")
    assert everything.splitlines() == [f"line {i}" for i in range(1, 21)] + ["err"]
    assert _logs(core, kube_namespace, "printer", tail_lines=3).splitlines() == ["line 19", "line 20", "err"]
    assert _logs(core, kube_namespace, "printer", limit_bytes=10) == "line 1\nlin"
    # What the agent's files cannot say is refused in a sentence, not answered wrongly.
    with pytest.raises(ApiException) as err:
        _logs(core, kube_namespace, "printer", timestamps=True)
    assert "timestamps is not supported" in str(err.value.body)
    with pytest.raises(ApiException) as err:
        _logs(core, kube_namespace, "printer", container="nope")
    assert err.value.status in (400, 404)


def test_follow_streams_new_lines_until_the_container_stops(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("ticker", "for i in 1 2 3 4 5; do echo tick $i; sleep 1; done"))
    _wait(core, kube_namespace, "ticker", lambda p: p.status.phase == "Running")
    started = time.monotonic()
    response = core.read_namespaced_pod_log("ticker", kube_namespace, follow=True, _preload_content=False)
    lines = [line.decode() for line in response.stream()]
    text = "".join(lines)
    assert text.splitlines() == [f"tick {i}" for i in range(1, 6)]
    assert time.monotonic() - started > 2  # it waited for the lines written after the request


def test_the_endpoint_is_the_one_the_node_reports_on_its_internal_ip(core, kube_namespace):
    node = core.read_node("tycho-node-1")
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    address = {a.type: a.address for a in node.status.addresses}["InternalIP"]
    assert port > 0
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=address) as tls:
        tls.sendall(f"GET /containerLogs/{kube_namespace}/missing/main HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = tls.recv(4096).decode()
    assert head.startswith("HTTP/1.1 404"), head
    # Nothing but TLS on loopback's other addresses or elsewhere: only the node's address listens.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
