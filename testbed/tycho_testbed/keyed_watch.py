"""ConfigMaps and Secrets that pods on this node mount, watched so that their volumes follow them.

A kubelet updates the files of a running pod's configMap and secret volumes (not those mounted
with ``subPath``) when the object changes: at its next periodic sync of the pod (``syncFrequency``,
a minute by default) once its watch or cache has the new version. The node agent does the same
with one watch of ConfigMaps and one of Secrets for the whole cluster (cheaper than reading each
pod's objects every few seconds: nothing is sent until an object changes), and tells each pod
that mounts a changed object; the pod's worker then projects it again (see
:meth:`tycho_testbed.volumes.PodVolumes.resync`), within about a second.

Objects are not cached here: a worker reads the object it was told about (one GET per change)
and compares what it would write with what its volume holds, so a notice too many costs one
read and nothing else. After a relist (the API server was away, a watch expired) every
subscriber is told, since changes may have been missed.
"""
from __future__ import annotations

import threading
from typing import Callable

from .informer import list_and_watch

#: (kind, namespace, name): kind is "ConfigMap" or "Secret", as in PodVolumes.
Key = tuple[str, str, str]


class KeyedWatch:
    """Who mounts which ConfigMap or Secret on this node, and a watch of both kinds telling them."""

    def __init__(self, api_client, call: Callable):
        self.api = api_client
        self.call = call
        self.lock = threading.Lock()
        #: key -> {pod uid: callback}
        self._subscribers: dict[Key, dict[str, Callable[[], None]]] = {}
        self.stopping = threading.Event()

    def start(self, stopping: threading.Event) -> None:
        """Start both watches (in threads of their own); returns at once: a pod's first set-up
        reads its objects itself, the watches only carry later changes."""
        from kubernetes import client

        self.stopping = stopping
        core = client.CoreV1Api(self.api)
        for kind, lister in (("ConfigMap", core.list_config_map_for_all_namespaces),
                             ("Secret", core.list_secret_for_all_namespaces)):
            threading.Thread(target=self._watch, args=(kind, lister), daemon=True,
                             name=f"watch-{kind.lower()}s").start()

    def subscribe(self, uid: str, keys: set[Key], callback: Callable[[], None]) -> None:
        """Call ``callback`` (from a watch thread; it must only set a flag) whenever one of
        ``keys`` may have changed. Subscribe before the first read of the objects, so that a
        change between that read and the subscription is not missed."""
        with self.lock:
            for key in keys:
                self._subscribers.setdefault(key, {})[uid] = callback

    def unsubscribe(self, uid: str) -> None:
        with self.lock:
            for key in [k for k, subs in self._subscribers.items() if uid in subs]:
                del self._subscribers[key][uid]
                if not self._subscribers[key]:
                    del self._subscribers[key]

    def subscribed(self) -> int:
        """How many (object, pod) pairs are watched for (for tests and logs)."""
        with self.lock:
            return sum(len(subs) for subs in self._subscribers.values())

    def _notify(self, callbacks: list[Callable[[], None]]) -> None:
        for callback in callbacks:
            callback()

    def _watch(self, kind: str, lister) -> None:
        def listed(items: list, rv: str) -> None:
            with self.lock:
                callbacks = [cb for subs in self._subscribers.values() for cb in subs.values()]
            self._notify(callbacks)

        def seen(event_type: str, obj: dict) -> None:
            meta = obj["metadata"]
            with self.lock:
                callbacks = list(self._subscribers.get((kind, meta["namespace"], meta["name"]), {}).values())
            self._notify(callbacks)

        list_and_watch(f"{kind}s", lister, self.call, self.stopping, listed, seen, threading.Event())
