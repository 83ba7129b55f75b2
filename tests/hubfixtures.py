"""The hub the cluster tests share: a real JupyterHub (MockHub, with the real
configurable-http-proxy) using TychoSpawner against the test bed's real API server and node agent.

One MockHub per test session (it is a process-wide singleton): `tests/conftest.py` registers
these fixtures once for every directory that uses them (`tests/spawner`, `tests/compat`).

The hub's API listens on the node agent's bridge address, because pods live in their own
network namespaces and cannot reach the host's 127.0.0.1 (the same reason a hub in a cluster
listens on its pod IP).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import time

import pytest


def bridge_address() -> str:
    out = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "tycho0"], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[out.index("inet") + 1].split("/")[0]


@pytest.fixture(scope="session")
def hub_namespace(control_plane, node_agent):
    """One namespace for the hub tests' servers (the RBAC test makes its own)."""
    from kubernetes import client

    api = client.CoreV1Api(control_plane.api_client())
    name = control_plane.create_namespace(f"hub-{os.getpid()}")
    yield name
    api.delete_namespace(name)


@pytest.fixture(scope="session")
def kube_env(control_plane):
    # KubeSpawner loads the kube config once per process, from $KUBECONFIG. kubernetes_asyncio
    # reads $KUBECONFIG when it is first imported, which other tests may have done already
    # (anything importing tycho_spawner), so its default location is set as well.
    from kubernetes_asyncio.config import kube_config

    os.environ["KUBECONFIG"] = str(control_plane.kubeconfig_path)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(control_plane.kubeconfig_path)
    return control_plane


@pytest.fixture(scope="session")
async def hub(kube_env, node_agent, hub_namespace, tmp_path_factory):
    from jupyterhub.tests.mocking import MockHub
    from traitlets.config import Config

    from tycho_spawner import TychoSpawner

    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("hub"))
    address = bridge_address()
    config = Config()
    config.JupyterHub.spawner_class = TychoSpawner
    config.JupyterHub.allow_named_servers = True
    config.JupyterHub.hub_ip = address
    config.TychoSpawner.namespace = hub_namespace
    config.TychoSpawner.start_timeout = 120
    config.TychoSpawner.http_timeout = 60
    config.TychoSpawner.delete_grace_period = 2
    # Persistent homes as the chart and `bin/stage hub up` set them up: one claim per user on
    # the cluster's default StorageClass, shared by the user's servers (KubeSpawner's settings).
    config.TychoSpawner.storage_pvc_ensure = True
    config.TychoSpawner.pvc_name_template = "claim-{username}"
    config.TychoSpawner.storage_capacity = "1Gi"
    config.TychoSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    config.TychoSpawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan"}}
    config.TychoSpawner.catalog = {
        # Test-only entries; the built-in ones stay as they are.
        "broken-image": {
            "display_name": "An image nobody can pull",
            "system": {
                "serve": {"container": "notebook", "port": 8888},
                "containers": {
                    "notebook": {
                        "image": "registry.invalid/nobody/nothing:1",
                        "command": ["jupyterhub-singleuser"],
                        "ports": {"http": 8888},
                    }
                },
            },
        },
        "crashes": {
            "display_name": "Answers, and exits with code 3 when asked for /exit",
            "system": {
                "serve": {"container": "app", "port": 8888},
                "home": False,
                "containers": {
                    "app": {
                        "image": "python:3.11",
                        "command": ["python3", "-c"],
                        "args": [
                            "import http.server, os\n"
                            "class Handler(http.server.BaseHTTPRequestHandler):\n"
                            "    def do_GET(self):\n"
                            "        self.send_response(200); self.end_headers(); self.wfile.write(b'up')\n"
                            "        if self.path.endswith('/exit'):\n"
                            "            os._exit(3)\n"
                            "http.server.HTTPServer(('', 8888), Handler).serve_forever()\n"
                        ],
                        "ports": {"http": 8888},
                        "readiness": {"tcp": True},
                    }
                },
            },
        },
    }
    # Issue 13's site policy: an entry for one group, a GPU entry, one reading a Secret, a
    # typed image (tests/spawner/test_catalog_policy.py).
    config.TychoSpawner.catalog.update({
        "course-only": {"display_name": "Course lab (course-students only)",
                        "access": {"groups": ["course-students"]}, "system": _echo_system()},
        "gpu-echo": {
            "display_name": "GPU app",
            "system": _echo_system(limits={"gpus": 1}, scheduling={"node_selector": {"tycho.test/accelerator": "nvidia-t4"}}),
            "choices": {"gpus": {"options": {"one": {}, "three": {"set": {"containers.app.limits.gpus": 3}}}}},
        },
        "needs-secret": {"display_name": "Reads a Secret",
                         "system": _echo_system(env={"DB_PASSWORD": {"secret": "tycho-test-db", "key": "password"}})},
        "mounts-settings": {"display_name": "Mounts a ConfigMap", "system": _echo_system(
            volumes={"settings": {"config_map": "tycho-test-settings"}}, mounts={"settings": "/etc/site"})},
        "shared-data": {"display_name": "A shared dataset, and a folder of one claim per user", "system": _echo_system(
            volumes={"dataset": {"claim": "tycho-shared-data", "read_only": True},
                     "mine": {"claim": "tycho-shared-data", "sub_path": "people/{username}"}},
            mounts={"dataset": "/data", "mine": "/mine"})},
        "typed-image": {"display_name": "Your own Python image", "system": _echo_system(),
                        "choices": {"image": {"kind": "image", "pattern": r"python:3\.(10|11)", "default": "python:3.11"}}},
    })
    app = MockHub.instance(config=config)
    await app.initialize([])
    await app.start()
    try:
        yield app
    finally:
        for user in list(app.users.values()):
            for name, spawner in list(user.spawners.items()):
                if spawner.active:
                    try:
                        await user.stop(name)
                    except Exception as err:  # keep tearing down the rest
                        print(f"stopping {user.name}/{name}: {err}")
        app.log.handlers = []
        MockHub.clear_instance()
        # JupyterHub 6's MockHub.stop is a coroutine; 5.x's (zero-to-jupyterhub 4.4.0) runs
        # its cleanup in a thread and returns None.
        stopped = app.stop()
        if inspect.isawaitable(stopped):
            await stopped
        from kubespawner import KubeSpawner

        try:
            await KubeSpawner._stop_all_reflectors()
        except asyncio.CancelledError:
            pass  # the watch tasks end by cancellation; awaiting them re-raises it
        os.chdir(cwd)


def _echo_system(limits=None, scheduling=None, env=None, volumes=None, mounts=None) -> dict:
    """A small app answering every GET with the JSON of its DB_PASSWORD variable; ``?write=PATH&text=T``
    writes a file first and ``?read=PATH`` reads one (``error`` says why it could not)."""
    container = {
        "image": "python:3.11",
        "command": ["python3", "-c"],
        "args": [
            "import http.server, json, os, urllib.parse\n"
            "class Handler(http.server.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            "        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))\n"
            "        out = {'DB_PASSWORD': os.environ.get('DB_PASSWORD')}\n"
            "        try:\n"
            "            if q.get('write'):\n"
            "                os.makedirs(os.path.dirname(q['write']), exist_ok=True)\n"
            "                open(q['write'], 'w').write(q.get('text', ''))\n"
            "                out['wrote'] = q['write']\n"
            "            if q.get('read'):\n"
            "                out['read'] = open(q['read']).read()\n"
            "        except OSError as err:\n"
            "            out['error'] = err.strerror\n"
            "        body = json.dumps(out).encode()\n"
            "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
            "http.server.HTTPServer(('', 8888), Handler).serve_forever()\n"
        ],
        "ports": {"http": 8888},
        "readiness": {"tcp": True},
    }
    if limits:
        container["limits"] = limits
    if env:
        container["env"] = env
    if mounts:
        container["mounts"] = mounts
    system = {"serve": {"container": "app", "port": 8888}, "home": False, "containers": {"app": container}}
    if volumes:
        system["volumes"] = volumes
    if scheduling:
        system["scheduling"] = scheduling
    return system


async def wait_for_spawn(app, user, server_name="", timeout=120):
    """Wait until the hub says the server is ready, or raise what the spawn raised."""
    spawner = user.spawners[server_name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spawner._spawn_future is not None and spawner._spawn_future.done():
            spawner._spawn_future.result()  # raises the spawn's error, if any
            return spawner
        if spawner.ready and not spawner.pending:
            return spawner
        await asyncio.sleep(0.05)
    raise TimeoutError(f"spawn of {user.name}/{server_name} still pending after {timeout}s")


def labelled_objects(api_client, namespace, selector):
    """Everything TychoSpawner could have created for one server, found by label."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    return (
        [p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=selector).items]
        + [s.metadata.name for s in core.list_namespaced_service(namespace, label_selector=selector).items]
        + [n.metadata.name for n in net.list_namespaced_network_policy(namespace, label_selector=selector).items]
        + [s.metadata.name for s in core.list_namespaced_secret(namespace, label_selector=selector).items]
    )


def api_json(response):
    return json.loads(response.text) if response.text else None


def browser_login(app, name):
    """A requests session logged in through the hub's login form, as a browser would be."""
    import re

    import requests
    from jupyterhub.tests.utils import public_url

    session = requests.Session()
    login = public_url(app, path="hub/login")
    page = session.get(login, timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = session.post(login, data={"username": name, "password": name, "_xsrf": xsrf}, timeout=30)
    assert r.status_code == 200, r.status_code
    return session

