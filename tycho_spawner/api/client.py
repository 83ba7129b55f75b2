"""The Tycho API's client, for the ``tycho`` command (login, launch, apps, logs, stop).

Standard library only (urllib): the command runs on a person's laptop against any hub, so it
must not need the hub's packages. A token is kept in ``$XDG_CONFIG_HOME/tycho/token`` (by
default ``~/.config/tycho/token``), readable by its owner only, with the hub's URL beside it
in ``hub``; ``TYCHO_TOKEN`` and ``TYCHO_HUB`` override both, for scripts and CI.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional
from urllib.parse import quote, urlencode, urlsplit

#: Where the hub routes the service (hubconfig.tycho_api_service's default name).
SERVICE_PATH = "/services/tycho"
REQUEST_TIMEOUT = 60.0


class ClientError(Exception):
    """A failure to say to the person in one line (the API's own sentence when it gave one);
    ``status``: the HTTP status when the API answered."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


def config_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/tycho``, else ``~/.config/tycho``."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "tycho"


def normalise_hub(url: str) -> str:
    """The hub's public URL without a trailing slash; only http(s) URLs are accepted."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"--hub {url!r}: give the hub's address, e.g. https://hub.example.org")
    if url.endswith("/hub"):
        url = url[: -len("/hub")]
    return url


@dataclass(frozen=True)
class Login:
    """A hub and a token to call it with."""

    hub: str
    token: str


def save_login(login: Login, environ: Mapping[str, str] = os.environ) -> Path:
    """Keep the login: the token file is created with mode 600 (never readable by others, not
    even for a moment), the hub's URL beside it."""
    directory = config_dir(environ)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "token"
    tmp = directory / ".token.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(login.token + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    (directory / "hub").write_text(login.hub + "\n")
    return path


def load_login(environ: Mapping[str, str] = os.environ) -> Login:
    """The kept login, ``TYCHO_HUB``/``TYCHO_TOKEN`` overriding it."""
    directory = config_dir(environ)
    hub = environ.get("TYCHO_HUB") or _read(directory / "hub")
    token = environ.get("TYCHO_TOKEN") or _read(directory / "token")
    if not hub or not token:
        raise ClientError("not logged in: run `tycho login --hub URL` (or set TYCHO_HUB and TYCHO_TOKEN)")
    return Login(normalise_hub(hub), token)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _message(body: bytes, status: int, reason: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if data.get("message"):  # the hub's own error shape
            return str(data["message"])
    return f"{status} {reason}"


class Client:
    """Calls to one hub's Tycho API with one token."""

    def __init__(self, login: Login, opener: Optional[Callable] = None):
        self.login = login
        self._open = opener or urllib.request.urlopen

    def request(self, method: str, url: str, body: Any = None, query: Optional[dict] = None) -> tuple[int, bytes, str]:
        if query:
            url = f"{url}?{urlencode({k: v for k, v in query.items() if v is not None})}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"token {self.login.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._open(req, timeout=REQUEST_TIMEOUT) as r:
                return r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            body = err.read()
            if err.code == 401:
                raise ClientError(f"the hub at {self.login.hub} does not accept the token: "
                                  "run `tycho login --hub URL` again", 401) from None
            raise ClientError(_message(body, err.code, err.reason), err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ClientError(f"{self.login.hub} cannot be reached: {reason}") from None

    def api(self, method: str, path: str, body: Any = None, **query) -> Any:
        status, data, kind = self.request(method, f"{self.login.hub}{SERVICE_PATH}{path}", body, query)
        if kind.startswith("application/json"):
            return json.loads(data)
        return data.decode("utf-8", "replace")

    def whoami(self) -> dict:
        """The token's owner at the hub (checks the token) and that the service answers."""
        try:
            status, data, _ = self.request("GET", f"{self.login.hub}/hub/api/user")
        except ClientError as err:
            if err.status == 403:  # the hub's answer to a token it does not know
                raise ClientError(f"the hub at {self.login.hub} does not accept the token: make one on its "
                                  "token page (/hub/token)", 403) from None
            raise
        try:
            user = json.loads(data)
        except ValueError:
            raise ClientError(f"{self.login.hub} is not a JupyterHub (its /hub/api/user is not JSON)") from None
        try:
            self.request("GET", f"{self.login.hub}{SERVICE_PATH}/catalog")
        except ClientError as err:
            raise ClientError(f"the hub accepts the token, but its Tycho API ({SERVICE_PATH}/) does not: {err}") from None
        return user

    # ------------------------------------------------------------------------------ the API

    def launch(self, profile: str, choices: dict, name: str = "") -> dict:
        body: dict = {"profile": profile, "choices": choices}
        if name:
            body["name"] = name
        return self.api("POST", "/apps", body)

    def app(self, server: str) -> dict:
        return self.api("GET", f"/apps/{quote(server, safe='~')}")

    def apps(self) -> list:
        return self.api("GET", "/apps")["apps"]

    def logs(self, server: str, container: Optional[str], tail: int) -> str:
        return self.api("GET", f"/apps/{quote(server, safe='~')}/logs", container=container, tail=tail)

    def stop(self, server: str) -> dict:
        return self.api("DELETE", f"/apps/{quote(server, safe='~')}")

    def wait(self, server: str, until: Callable[[Optional[dict]], bool], timeout: float,
             interval: float = 1.0) -> Optional[dict]:
        """Poll the app until ``until(app)`` (``None``: it is gone); a ClientError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                app: Optional[dict] = self.app(server)
            except ClientError as err:
                if err.status != 404:
                    raise
                app = None
            if until(app):
                return app
            if time.monotonic() > deadline:
                state = app["state"] if app else "gone"
                raise ClientError(f"{server}: still {state} after {timeout:.0f} s"
                                  + (f" ({app['message']})" if app and app.get("message") else ""))
            time.sleep(interval)
