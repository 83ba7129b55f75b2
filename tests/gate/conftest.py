"""A real JupyterHub with its real proxy (configurable-http-proxy) and tycho-gate servers.

The hub runs as a subprocess on loopback; the apps behind the gates are real tornado servers
(``upstream_app``) in threads of the test process, so tests can see exactly what reached them.
"""
from __future__ import annotations

import html.parser
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tycho_testbed.cluster import free_port

from .upstream_app import UpstreamApp

HERE = Path(__file__).parent
PASSWORD = "correct horse"
ACTIVITY_INTERVAL = 1


class FormParser(html.parser.HTMLParser):
    """The first form of a page: its action and fields (for the hub's login and consent)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: Optional[str] = None
        self.fields: List[tuple] = []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action") or ""
            self._in_form = True
        elif tag == "input" and self._in_form and attrs.get("name"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.fields.append((attrs["name"], attrs.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def submit_first_form(
    session: requests.Session, response: requests.Response, allow_redirects: bool = True, **overrides
) -> requests.Response:
    parser = FormParser()
    parser.feed(response.text)
    assert parser.action is not None, f"no form on {response.url}"
    fields = [(k, v) for k, v in parser.fields if k not in overrides] + list(overrides.items())
    return session.post(urljoin(response.url, parser.action), data=fields, allow_redirects=allow_redirects)


class Hub:
    def __init__(self, workdir: Path, app: UpstreamApp):
        self.workdir = workdir
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service_token = secrets.token_hex(16)
        self.log_path = workdir / "hub.log"
        self.routes: Dict[str, List[str]] = {"": ["--upstream", app.url]}
        settings = {
            "port": self.port,
            "hub_port": free_port(),
            "proxy_api_port": free_port(),
            "password": PASSWORD,
            "service_token": self.service_token,
            "gate": shutil.which("tycho-gate"),
            "activity_interval": ACTIVITY_INTERVAL,
        }
        assert settings["gate"], "tycho-gate is not installed (pip install -e .)"
        shutil.copy(HERE / "hub_config.py", workdir / "hub_config.py")
        (workdir / "settings.json").write_text(json.dumps(settings))
        self.write_routes()
        self.proc: Optional[subprocess.Popen] = None

    def write_routes(self) -> None:
        (self.workdir / "routes.json").write_text(json.dumps(self.routes))

    def start(self) -> None:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.workdir / "hub_config.py")],
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"jupyterhub exited:\n{self.log_text()[-3000:]}"
            try:
                if requests.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"jupyterhub did not start:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    # --- the hub's REST API, as the test service ---
    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.service_token}"}
        return requests.request(method, f"{self.url}/hub/api/{path}", headers=headers, timeout=30, **kwargs)

    def ensure_user(self, name: str) -> None:
        r = self.api("POST", f"users/{name}")
        assert r.status_code in (201, 409), r.text

    def user_token(self, name: str) -> str:
        self.ensure_user(name)
        r = self.api("POST", f"users/{name}/tokens", json={"note": "gate test"})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def server_model(self, user: str, server: str = "") -> Optional[dict]:
        r = self.api("GET", f"users/{user}")
        assert r.status_code == 200, r.text
        return r.json()["servers"].get(server)

    def start_server(self, user: str, server: str = "", wait: bool = True, timeout: float = 60) -> None:
        self.ensure_user(user)
        path = f"users/{user}/servers/{server}" if server else f"users/{user}/server"
        r = self.api("POST", path)
        assert r.status_code in (201, 202, 400), r.text
        if r.status_code == 400 and "already running" not in r.text:
            raise AssertionError(r.text)
        if wait:
            self.wait_ready(user, server, timeout)

    def wait_ready(self, user: str, server: str = "", timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.server_model(user, server)
            if model and model["ready"]:
                return model
            time.sleep(0.1)
        raise AssertionError(f"{user}/{server} not ready:\n{self.log_text()[-3000:]}")

    def stop_server(self, user: str, server: str = "") -> None:
        path = f"users/{user}/servers/{server}" if server else f"users/{user}/server"
        r = self.api("DELETE", path)
        assert r.status_code in (202, 204), r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.server_model(user, server):
            time.sleep(0.1)

    def gate_pid(self, user: str, server: str = "") -> int:
        r = self.api("GET", f"users/{user}", params={"include_stopped_servers": "1"})
        return int(r.json()["servers"][server]["state"]["pid"])

    # --- a browser-like session ---
    def login(self, name: str) -> requests.Session:
        self.ensure_user(name)
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login")
        # Not following the redirect: it would start the user's own default server.
        r = submit_first_form(session, page, allow_redirects=False, username=name, password=PASSWORD)
        assert r.status_code == 302 and session.cookies.get("jupyterhub-session-id"), r.text[:500]
        return session


@pytest.fixture(scope="session")
def upstream_app() -> UpstreamApp:
    return UpstreamApp()


@pytest.fixture(scope="session")
def hub(tmp_path_factory, upstream_app) -> Hub:
    hub = Hub(tmp_path_factory.mktemp("hub"), upstream_app)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="session")
def alice_server(hub) -> str:
    """alice's default server: a gate in front of the shared upstream app."""
    hub.start_server("alice")
    return f"{hub.url}/user/alice/"


def same_origin(hub: Hub) -> Dict[str, str]:
    return {"Origin": hub.url}


def path_of(url: str) -> str:
    return urlsplit(url).path
