"""Where a started server may connect to, through a real JupyterHub, on the test bed's enforcing
network (the node agent's NetworkPolicy filters, see testbed/README.md).

By default a server reaches DNS, its hub's API and the internet, not the cloud metadata server,
the Kubernetes API or other pods; a catalog entry that allows the private ranges reaches them.
The hub still reaches its servers and they still use the hub's API: a Jupyter server starts and
answers its owner's token through the proxy.

Outside addresses are stand-ins on this machine only: the "world" pod of
tests/testbed/test_network_policy.py holds the metadata address, the kubernetes Service's
address and an internet address (a documentation range), and each server pod gets routes to
them over the pods' bridge. Probes run in the server pod's own network namespace.
"""
from __future__ import annotations

import asyncio
import json

import pytest
import requests
from jupyterhub.tests.utils import add_user, api_request, auth_header, public_host
from kubernetes import client

from tests.testbed.test_network_policy import _route_to_world, core, probe, world  # noqa: F401 (fixtures)

from .conftest import wait_for_spawn

pytestmark = pytest.mark.cluster

#: A test-only app whose entry opens the private ranges: it answers HTTP on its port.
LAN_ENTRY = {
    "display_name": "A web server allowed onto the cluster's network",
    "system": {
        "serve": {"container": "app", "port": 8888},
        "home": False,
        "network": {"egress_allow": {"privateIPs": True}},
        "containers": {
            "app": {
                "image": "python:3.11",
                "command": ["python3", "-c"],
                "args": [
                    "import http.server\n"
                    "class Up(http.server.BaseHTTPRequestHandler):\n"
                    "    def do_GET(self):\n"
                    "        self.send_response(200); self.end_headers(); self.wfile.write(b'up')\n"
                    "http.server.HTTPServer(('', 8888), Up).serve_forever()\n"
                ],
                "ports": {"http": 8888},
                "readiness": {"tcp": True},
            }
        },
    },
}


async def _start(app, name, options, catalog=None):
    add_user(app.db, app, name=name)
    user = app.users[name]
    if catalog is not None:
        # This spawner only: the hub's other servers keep the session's catalog.
        user.spawners[""].catalog = catalog
    r = await api_request(app, "users", name, "server", method="post", data=json.dumps(options))
    assert r.status_code in (201, 202), r.text
    return user


async def test_servers_reach_the_internet_and_the_hub_not_metadata_the_api_or_other_pods(
        hub, control_plane, world):
    jupyter_user = await _start(hub, "egress-jupyter", {"profile": "base"})
    lan_user = await _start(hub, "egress-lan", {"profile": "lan"}, catalog={"lan": LAN_ENTRY})
    jupyter = await wait_for_spawn(hub, jupyter_user)
    lan = await wait_for_spawn(hub, lan_user)
    try:
        core_api = client.CoreV1Api(control_plane.api_client())
        a = core_api.read_namespaced_pod(jupyter.pod_name, jupyter.namespace)
        b = core_api.read_namespaced_pod(lan.pod_name, lan.namespace)
        for pod in (a, b):
            _route_to_world(pod, world)
        outside = {name: f"{world[name]}:8080" for name in ("internet", "metadata", "api", "pod")}
        a_server, b_server = f"{a.status.pod_ip}:8888", f"{b.status.pod_ip}:8888"

        # The default: the internet only. The metadata server, the Kubernetes API's Service
        # address, a pod on the cluster's network and another user's server are out of reach.
        got = await asyncio.to_thread(probe, a, *outside.values(), b_server)
        assert got == {outside["internet"]: "open", outside["metadata"]: "dropped", outside["api"]: "dropped",
                       outside["pod"]: "dropped", b_server: "dropped"}
        # DNS ports stay open on private addresses and the metadata server (nothing listens
        # there: refused, not dropped).
        dns = (f"{world['pod']}:53", f"{world['metadata']}:53")
        assert await asyncio.to_thread(probe, a, *dns) == {dns[0]: "refused", dns[1]: "refused"}

        # The entry that allows the private ranges reaches the pod and the API's address, still
        # not the metadata server, and not the other server (its own policy admits the hub and
        # proxy only).
        got = await asyncio.to_thread(probe, b, *outside.values(), a_server)
        assert got == {outside["internet"]: "open", outside["metadata"]: "dropped", outside["api"]: "open",
                       outside["pod"]: "open", a_server: "dropped"}

        # The hub reaches both servers through its proxy, and the Jupyter server checks its
        # owner's token with the hub's API.
        for spawner, user, headers in ((jupyter, jupyter_user, auth_header(hub.db, jupyter_user.name)),
                                       (lan, lan_user, {})):
            url = public_host(hub) + spawner.server.base_url + ("api/status" if spawner is jupyter else "")
            answer = await asyncio.to_thread(requests.get, url, headers=headers, timeout=30)
            assert answer.status_code == 200, (user.name, answer.status_code, answer.text[:200])

        # The hub runs outside the cluster here (on the node's address): its address, as the
        # servers are told it, is allowed on the hub's port.
        policy = client.NetworkingV1Api(control_plane.api_client()).read_namespaced_network_policy(
            jupyter.pod_name, jupyter.namespace).to_dict()
        hub_rules = [r for r in policy["spec"]["egress"]
                     if any((p.get("ip_block") or {}).get("cidr") == f"{hub.hub.ip}/32" for p in r["to"] or [])]
        assert [[p["port"] for p in r["ports"]] for r in hub_rules] == [[hub.hub.port]]
    finally:
        for user in (jupyter_user, lan_user):
            await api_request(hub, "users", user.name, "server", method="delete")
