"""List, then watch, one kind of object for the whole cluster, as a kubelet's informers do.

The node agent keeps several caches this way (NetworkPolicy enforcement's policies, pods,
namespaces, Services and Endpoints; the Services and Endpoints of Service variables and DNS):
one loop, so that they all relist and retry alike when the API server goes away or a watch
expires (`410 Gone`).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("tycho_testbed.informer")


def list_and_watch(kind: str, lister: Callable, call: Callable, stopping: threading.Event,
                   on_list: Callable[[list, str], None], on_event: Callable[[str, dict], None],
                   synced: threading.Event) -> None:
    """Until ``stopping`` is set: list (``on_list(items, resourceVersion)``, then ``synced`` is
    set), and watch from there (``on_event(type, object)``, objects as the API sends them). An
    API error or a broken watch means a new list one second later, logged in one line; a watch
    that simply ends (its 60 s) is resumed from the last resourceVersion seen.

    ``call`` runs the list request (the agent's rate-limited client call).
    """
    from kubernetes import watch
    from kubernetes.client.rest import ApiException

    rv = None
    while not stopping.is_set():
        try:
            if rv is None:
                listing = json.loads(call(lister, _preload_content=False).data)
                rv = listing["metadata"]["resourceVersion"]
                on_list(listing["items"], rv)
                synced.set()
            w = watch.Watch()
            for event in w.stream(lister, resource_version=rv, timeout_seconds=60, _request_timeout=90):
                if stopping.is_set():
                    w.stop()
                    return
                obj = event["raw_object"]
                rv = obj["metadata"]["resourceVersion"]
                on_event(event["type"], obj)
        except ApiException as err:
            if stopping.is_set():
                return
            log.warning("watching %s: %s, relisting", kind, err.reason)
            rv = None
            time.sleep(1.0)
        except Exception as err:
            if stopping.is_set():
                return
            log.warning("watching %s failed: %s, relisting", kind, err)
            rv = None
            time.sleep(1.0)
