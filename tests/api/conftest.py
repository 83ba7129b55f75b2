"""The Tycho API's tests: the example `jupyterhub_config.py` (what `bin/stage hub up` runs) in a
real `jupyterhub` process with its real proxy, running `tycho-api` as the managed service it
declares, launching servers on the test bed.

Only what the tests need is added (tests/faults/examplehub.py): free ports, a catalog file with a
small app that starts in seconds (catalog.yaml), an admin service token to make users and their
tokens, and the hub answering a launch at once (the tornado setting ``slow_spawn_timeout`` 0) so that the
monitor stream sees a start from its beginning.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import requests

from tests.faults.examplehub import ExampleHub
from tycho_testbed.cluster import free_port

HERE = Path(__file__).parent


class ApiHub(ExampleHub):
    @property
    def api_url(self) -> str:
        return f"{self.url}/services/tycho"

    def user_token(self, name: str, groups: tuple = ()) -> str:
        r = self.api("POST", f"users/{name}")
        assert r.status_code in (201, 409), r.text
        for group in groups:
            assert self.api("POST", f"groups/{group}").status_code in (201, 409)
            assert self.api("POST", f"groups/{group}/users", json={"users": [name]}).status_code == 200
        r = self.api("POST", f"users/{name}/tokens", json={"note": "api tests"})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def servers(self, name: str) -> dict:
        r = self.api("GET", f"users/{name}")
        assert r.status_code == 200, r.text
        return r.json()["servers"]

    def wait_service(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.api_url}/openapi.json", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"the tycho service did not answer through the proxy:\n{self.log_tail()}")


@pytest.fixture(scope="session")
def api_namespace(control_plane, node_agent):
    from kubernetes import client

    name = control_plane.create_namespace(f"api-{os.getpid()}")
    yield name
    api = client.CoreV1Api(control_plane.api_client())
    api.delete_collection_namespaced_pod(name)
    api.delete_namespace(name)


@pytest.fixture(scope="session")
def api_hub(tmp_path_factory, control_plane, node_agent, api_namespace):
    workdir = tmp_path_factory.mktemp("apihub")
    hub = ApiHub(
        workdir, api_namespace, control_plane.kubeconfig_path,
        extra_config=(
            "c.JupyterHub.tornado_settings = {'slow_spawn_timeout': 0}\n"
            "c.JupyterHub.load_roles.append({'name': 'api-tests', 'services': ['faults'], "
            "'scopes': ['tokens', 'groups', 'admin:groups']})\n"
        ),
    )
    hub.env.update({
        "TYCHO_API_PORT": str(free_port()),
        "TYCHO_HUB_PORT": str(free_port()),
        "TYCHO_STORAGE": "none",
        "TYCHO_CATALOG_FILES": str(HERE / "catalog.yaml"),
        "TYCHO_HUB_NAME": f"api-{os.getpid()}",
    })
    try:
        hub.start()
        hub.wait_service()
        yield hub
    finally:
        for user in ("alice", "bob", "admin", "carol"):
            for name in list(hub.servers(user)) if hub.api("GET", f"users/{user}").status_code == 200 else []:
                path = f"users/{user}/servers/{name}" if name else f"users/{user}/server"
                hub.api("DELETE", path)
        hub.tear_down()


@pytest.fixture(scope="session")
def tokens(api_hub) -> dict:
    return {
        "alice": api_hub.user_token("alice"),
        "bob": api_hub.user_token("bob"),
        "admin": api_hub.user_token("admin"),
        "carol": api_hub.user_token("carol", groups=("staff",)),
    }


class Caller:
    """requests against the API as one user (their hub token)."""

    def __init__(self, hub: ApiHub, token: str):
        self.hub = hub
        self.headers = {"Authorization": f"token {token}"}

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.hub.api_url}{path}", headers=self.headers, timeout=120, **kwargs)


@pytest.fixture(scope="session")
def as_user(api_hub, tokens):
    return {name: Caller(api_hub, token) for name, token in tokens.items()}
