"""A real `jupyterhub` process running the example `jupyterhub_config.py` (what `bin/stage hub
up` runs), with its real configurable-http-proxy, for the fault tests."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.hubfixtures import bridge_address
from tycho_testbed.cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "jupyterhub_config.py"


class ExampleHub:
    """`jupyterhub -f jupyterhub_config.py` with only what a test needs added: free ports, and
    a service token to drive the REST API and reach the servers through the proxy; a test may
    append Python of its own (``extra_config``)."""

    def __init__(self, workdir: Path, namespace: str, kubeconfig: Path, extra_config: str = ""):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        address = bridge_address()
        hub_api = f"http://{address}:{free_port()}"
        (workdir / "hub_config.py").write_text(
            "c = get_config()  # noqa: F821\n"
            f"load_subconfig({str(EXAMPLE)!r})  # noqa: F821\n"
            f"c.JupyterHub.hub_bind_url = {hub_api!r}\n"
            f"c.JupyterHub.hub_connect_url = {hub_api!r}\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n"
            # Added to the example's services and roles (tycho-gc), not replacing them.
            f"c.JupyterHub.services.append({{'name': 'faults', 'api_token': {self.token!r}}})\n"
            "c.JupyterHub.load_roles.append({'name': 'faults', 'services': ['faults'], 'scopes': "
            "['admin:users', 'admin:servers', 'access:servers', 'read:users']})\n"
            + extra_config
        )
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "TYCHO_NAMESPACE": namespace,
            "TYCHO_HUB_IP": address,
            "TYCHO_DATA_DIR": str(workdir),
            "TYCHO_BIND_URL": self.url,
            # The Tycho API service of this hub (kept across its restarts): a port of its own,
            # so that hubs of other test sessions on this host do not collide.
            "TYCHO_API_PORT": str(free_port()),
        }
        self.log_path = workdir / "jupyterhub.log"
        self.proc: subprocess.Popen | None = None
        self.groups: list[int] = []  # every process group started: a killed hub leaves its proxy

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.workdir / "hub_config.py")],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.groups.append(self.proc.pid)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"jupyterhub exited:\n{self.log_tail()}"
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"jupyterhub did not answer:\n{self.log_tail()}")

    def stop_gracefully(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def tear_down(self) -> None:
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api/{path}", timeout=30,
                                headers={"Authorization": f"token {self.token}"}, **kwargs)

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=30, headers={"Authorization": f"token {self.token}"})
