"""Where tycho-api listens: in a cluster its url names the hub pod's Service (which no process
can bind), so the chart gives it a bind URL of its own (hubconfig.tycho_api_service bind_url)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import requests

from tycho_spawner.api.hubconfig import tycho_api_service
from tycho_testbed.cluster import free_port


class Config(dict):
    """Enough of a traitlets config for tycho_api_service: empty TychoSpawner/KubeSpawner sections."""

    def __getattr__(self, name):
        return self.setdefault(name, {})


def test_the_service_listens_at_its_bind_url_not_at_its_services_address():
    port = free_port()
    entry = tycho_api_service(Config(), url=f"http://tycho-hub.invalid:{port}", bind_url=f"http://127.0.0.1:{port}")
    assert entry["url"] == f"http://tycho-hub.invalid:{port}"
    env = {**os.environ, **entry["environment"], "JUPYTERHUB_SERVICE_NAME": "tycho",
           "JUPYTERHUB_SERVICE_URL": entry["url"], "JUPYTERHUB_SERVICE_PREFIX": "/services/tycho/",
           "JUPYTERHUB_API_TOKEN": "unused", "JUPYTERHUB_CLIENT_ID": "service-tycho"}
    proc = subprocess.Popen([sys.executable, "-m", "tycho_spawner.api"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                r = requests.get(f"http://127.0.0.1:{port}/services/tycho/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["openapi"] == "3.1.0"
    finally:
        proc.terminate()
        proc.wait(10)
