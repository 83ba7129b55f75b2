"""The hub's REST API, called with the caller's own token.

The API acts with the caller's token, not a token of its own: the hub itself decides what the
caller may see, start and stop (their own servers; every server for admins and holders of
``admin:servers``), so the service needs no hub scopes and cannot do more than its caller.
A server the caller may not see answers exactly as one that does not exist (404).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Optional
from urllib.parse import quote, urlencode

from ..gc import service_tls
from .errors import ApiError

PAGINATION = "application/jupyterhub-pagination+json"
PAGE = 200


def _short(body: Optional[bytes]) -> str:
    text = (body or b"").decode("utf8", "replace").strip().replace("\n", " ")
    return text[:300] + ("…" if len(text) > 300 else "")


def hub_message(body: Optional[bytes]) -> str:
    """The sentence of a hub error answer (``{"status": N, "message": "..."}``)."""
    try:
        message = json.loads(body or b"").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message) if message else _short(body) or "no reason given"


def server_path(user: str, server: str) -> str:
    """The hub's path of a server (the default server has its own)."""
    base = f"users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server, safe='')}" if server else f"{base}/server"


class Hub:
    """Calls to ``…/hub/api`` with one caller's token; failures become :class:`ApiError`."""

    def __init__(self, api_url: str, token: str):
        from tornado.httpclient import AsyncHTTPClient

        self.api_url = api_url.rstrip("/")
        self._token = token
        self._client = AsyncHTTPClient()
        self._tls = service_tls()

    async def call(self, method: str, path: str, body: Any = None, **query) -> tuple[int, Any]:
        """(status, parsed JSON or None); the hub unreachable is a 503."""
        from tornado.httpclient import HTTPClientError, HTTPRequest

        url = f"{self.api_url}/{path}" + (f"?{urlencode(query)}" if query else "")
        request = HTTPRequest(
            url, method=method,
            headers={"Authorization": f"token {self._token}", "Accept": PAGINATION, "Content-Type": "application/json"},
            body=None if method in ("GET", "HEAD") else json.dumps(body if body is not None else {}),
            allow_nonstandard_methods=True, request_timeout=60, **self._tls,
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, asyncio.TimeoutError) as err:
            raise ApiError(503, f"The hub's API at {self.api_url} cannot be reached: {err}.") from None
        if response.code == 599:
            raise ApiError(503, f"The hub's API at {self.api_url} cannot be reached: {response.error}.")
        try:
            data = json.loads(response.body) if response.body else None
        except ValueError:
            data = None
        if response.code >= 500:
            raise ApiError(502, f"The hub answered {response.code} to {method} /{path.split('?')[0]}: "
                                f"{hub_message(response.body)}")
        if response.code >= 400:
            return response.code, hub_message(response.body)
        return response.code, data

    async def user(self, name: str) -> dict:
        """A user's model with their active servers; 404 if the caller may not see them."""
        status, data = await self.call("GET", f"users/{quote(name, safe='')}")
        if status in (403, 404) or not isinstance(data, dict):
            raise ApiError(404, f"No user {name!r} that you may see.")
        if "servers" not in data:
            raise ApiError(404, f"No servers of {name!r} that you may see.")
        return data

    async def users_with_servers(self) -> Optional[list[dict]]:
        """Every user the caller may see that has an active server, page by page; None when the
        caller may not list users at all (then they see only their own)."""
        users, offset = [], 0
        while True:
            status, page = await self.call("GET", "users", state="active", offset=offset, limit=PAGE)
            if status == 403:
                return None
            if status >= 400:
                raise ApiError(status if status in (403, 404) else 502, f"The hub refused the user list: {page}")
            items = page.get("items") if isinstance(page, dict) else page
            users.extend(u for u in items or [] if isinstance(u, dict) and u.get("servers"))
            following = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not following:
                return users
            offset = following["offset"]

    async def server(self, user: str, server: str) -> dict:
        """One active server's model; 404 if it is not running or not the caller's to see."""
        model = await self.user(user)
        found = (model.get("servers") or {}).get(server)
        if found is None:
            raise ApiError(404, f"No app {server or '(default)'!r} of {user!r} is running, or it is not yours to see.")
        return found
