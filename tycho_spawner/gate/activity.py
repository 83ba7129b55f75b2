"""Reporting real activity to the hub, so the idle culler stops servers nobody uses.

The hub only knows a server is busy from what the server reports. The gate records the time
of the last request it let through (and of every websocket message) and, every interval,
posts that time, never "now", and only when it moved since the last post. A server nobody
touches therefore looks idle to the hub, as it should. The default server has the empty name,
which is a valid key in the hub's activity API, so it is reported like any named server.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Optional

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

log = logging.getLogger("tycho_gate.activity")


def isoformat(ts: float) -> str:
    """The hub's timestamp format (ISO 8601 with a Z)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class ActivityReporter:
    """Remembers the last real request and posts it to ``JUPYTERHUB_ACTIVITY_URL``."""

    def __init__(self, url: str, api_token: str, server_name: str, interval: float):
        self.url = url
        self.api_token = api_token
        self.server_name = server_name
        self.interval = interval
        self.last_activity: Optional[float] = None
        self.last_reported: Optional[float] = None

    def touch(self) -> None:
        self.last_activity = time.time()

    def body(self, ts: float) -> bytes:
        stamp = isoformat(ts)
        return json.dumps(
            {"servers": {self.server_name: {"last_activity": stamp}}, "last_activity": stamp}
        ).encode()

    async def report(self) -> bool:
        """Post the last activity if it changed; True when the hub took a new value."""
        ts = self.last_activity
        if not self.url or ts is None or ts == self.last_reported:
            return False
        request = HTTPRequest(
            self.url,
            method="POST",
            headers={"Authorization": f"token {self.api_token}", "Content-Type": "application/json"},
            body=self.body(ts),
            request_timeout=30,
        )
        try:
            await AsyncHTTPClient().fetch(request)
        except HTTPClientError as err:
            # The hub answered with an error (it logs the cause); try again next interval.
            log.warning("activity report to the hub failed: HTTP %s", err.code)
            return False
        except OSError as err:
            log.warning("activity report to the hub failed: %s", err)
            return False
        self.last_reported = ts
        log.debug("reported activity %s", isoformat(ts))
        return True
