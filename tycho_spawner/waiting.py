"""A pod cache that wakes its readers when a pod changes, instead of being polled.

KubeSpawner's reflector keeps an up-to-date dict of pods from a watch, but its spawner polls
that dict in a retry loop with random waits, so ``start()`` returns ~90 ms after the pod is in
fact ready. This reflector is the same watch (same list/watch/reconnect logic, inherited); it
only notifies the tasks waiting on a pod the moment the watch delivers a change for it.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from typing import Optional

from aiohttp import ClientError
from kubernetes_asyncio.client.rest import ApiException
from kubespawner.spawner import PodReflector
from traitlets import default

#: What a list or watch meets while the API server is away or restarting: a connection refused
#: or cut, no answer in time, an answer it cannot use yet (410 Gone, 5xx while it starts).
EXPECTED_WATCH_ERRORS = (ClientError, OSError, asyncio.TimeoutError, ApiException)


class _OneLineErrors(logging.LoggerAdapter):
    """The base class logs every failed list or watch with a traceback (``log.exception``), a
    dozen per API server restart; those expected errors are one line each, the error at its end."""

    def exception(self, msg, *args, exc_info=True, **kwargs):
        err = sys.exc_info()[1]
        if not isinstance(err, EXPECTED_WATCH_ERRORS):
            return super().exception(msg, *args, exc_info=exc_info, **kwargs)
        if isinstance(err, ApiException):
            why = f"{err.status} {err.reason}"
        else:
            why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        self.error("%s (%s)", msg % args if args else msg, why.replace("\n", " "), **kwargs)


class _NotifyingDict(dict):
    """The reflector's resources dict, calling back on every write the watch makes."""

    def __init__(self, data, on_change):
        super().__init__(data)
        self._on_change = on_change

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self._on_change(key)

    def pop(self, key, *default):
        value = super().pop(key, *default)
        self._on_change(key)
        return value


class WakingPodReflector(PodReflector):
    """PodReflector whose readers can ``await changed(key)`` instead of polling."""

    @default("log")
    def _one_line_errors_log(self):
        return _OneLineErrors(self.parent.log if self.parent is not None else logging.getLogger(__name__), {})

    def __init__(self, *args, **kwargs):
        self._waiters: dict[Optional[str], set[asyncio.Future]] = {}
        self._resources = _NotifyingDict({}, self._notify)
        super().__init__(*args, **kwargs)

    # The base class assigns a fresh plain dict on every (re)list; wrap it so that
    # writes keep notifying, and wake everyone since any pod may have changed.
    @property
    def resources(self):
        return self._resources

    @resources.setter
    def resources(self, value):
        self._resources = _NotifyingDict(value, self._notify)
        self._notify(None)

    def _notify(self, key: Optional[str]) -> None:
        keys = list(self._waiters) if key is None else [key]
        for k in keys:
            for future in self._waiters.pop(k, ()):
                if not future.done():
                    future.set_result(None)

    async def changed(self, key: str, timeout: Optional[float]) -> bool:
        """Wait until the pod ``namespace/name`` changes (True) or ``timeout`` passes (False).

        Callers read the pod, decide, and only then call this: nothing can change in between
        because the watch runs on the same event loop.
        """
        future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    self._waiters.pop(key, None)

    async def start(self) -> None:
        """List, then watch, as the base class does, without logging a failed first list.

        The spawner that starts this cache says why it failed, in one line, and replaces it on
        its next start (see ``TychoSpawner._start_watching_pods``): an API server that was
        down for a minute must not leave the hub with an empty cache and two tracebacks.
        """
        try:
            await self._list_and_update()
        except Exception as err:
            if not self.first_load_future.done():
                self.first_load_future.set_exception(err)
                self.first_load_future.exception()  # seen: no "exception never retrieved"
            raise
        self.watch_task = asyncio.create_task(self._watch_and_update())

    @property
    def failed(self) -> bool:
        """Whether this cache is of no more use: its first list failed (it never filled), or
        its watch gave up retrying (it no longer follows the cluster)."""
        future = self.first_load_future
        if future.done() and (future.cancelled() or future.exception() is not None):
            return True
        return self.watch_task is not None and self.watch_task.done() and not self._stopping

