"""`tycho gc`: remove servers' pods and NetworkPolicies that no hub record owns.

The edge of the reconciliation (`tycho_spawner.orphans` decides): Kubernetes through
kubernetes_asyncio, configured as KubeSpawner configures it (in-cluster, else the kube
context), and the hub's REST API with a token holding ``list:users`` and ``read:servers``.

The order is what makes it safe against servers starting meanwhile: the objects are listed
first, the hub is asked second. A pod listed before the hub answered belongs to a server the
hub already has pending (JupyterHub records a server before its spawner creates anything), so
only a server the hub does not have, or stopped meanwhile, is judged an orphan. Each orphan
pod's user is then asked for again on its own (a user list read page by page can miss a user
when another is deleted in between), and deletions carry the listed object's uid as a
precondition: a server started meanwhile under the same name keeps its new pod and policy.
A pod goes first and its NetworkPolicy only once the pod is gone, so a terminating server is
never reachable without its policy. Users' claims are never listed, so never deleted.

As a hub-managed service (``--every``), it runs once as soon as it starts (the hub starts its
services once its API listens, after its own check of the servers it has recorded) and then
every so many seconds; it exits when the hub that started it is gone.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import quote, urlencode

from .orphans import NETWORK_POLICY, POD, HubServer, ServerObject, Verdicts, find_orphans, mixed_hubs

#: Only TychoSpawner's server objects carry it (render.SERVER_LABEL): gc never looks at others.
SERVER_LABEL = "tycho-spawner/server"
#: What the hub's token must hold, unfiltered (a filtered one would hide servers, which would
#: then look like orphans).
NEEDED_SCOPES = ("list:users", "read:servers")
PAGINATION = "application/jupyterhub-pagination+json"
PAGE = 200
#: How long to wait for deleted pods to be gone before deleting their policies.
POD_GONE_TIMEOUT = 120.0
#: A failed round (hub or cluster away) is tried again after this long (or --every if shorter).
RETRY_SECONDS = 10.0



class GcError(Exception):
    """A reason gc cannot do its work, in one sentence."""


@dataclass(frozen=True)
class GcSettings:
    namespace: str
    hub_api_url: str
    token: str = field(repr=False)
    selector: str = ""
    min_age: float = 60.0
    dry_run: bool = False
    every: Optional[float] = None

    @property
    def label_selector(self) -> str:
        return ",".join(part for part in (SERVER_LABEL, self.selector) if part)


def label_value(name: str) -> str:
    """The label value KubeSpawner writes for a user or server name."""
    from kubespawner.slugs import is_valid_label, safe_slug

    return safe_slug(name, is_valid=is_valid_label)


# ---------------------------------------------------------------------------------- the hub


def service_tls() -> dict:
    """tornado request options for calling the hub from a hub-managed service: a hub with
    internal SSL gives its services these files (JupyterHub's service environment)."""
    return {
        key: os.environ[var]
        for key, var in (("client_key", "JUPYTERHUB_SSL_KEYFILE"), ("client_cert", "JUPYTERHUB_SSL_CERTFILE"),
                         ("ca_certs", "JUPYTERHUB_SSL_CLIENT_CA"))
        if os.environ.get(var)
    }


class Hub:
    """The few REST API calls gc makes, each failure turned into a GcError sentence."""

    def __init__(self, api_url: str, token: str):
        from tornado.httpclient import AsyncHTTPClient

        self.api_url = api_url.rstrip("/")
        self._token = token
        self._client = AsyncHTTPClient()
        self._tls = service_tls()

    async def get(self, path: str, **query) -> tuple[int, object]:
        from tornado.httpclient import HTTPClientError, HTTPRequest

        url = f"{self.api_url}/{path}" + (f"?{urlencode(query)}" if query else "")
        request = HTTPRequest(
            url, headers={"Authorization": f"token {self._token}", "Accept": PAGINATION},
            request_timeout=30, **self._tls,
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, asyncio.TimeoutError) as err:
            raise GcError(f"cannot reach the hub's API at {self.api_url}: {err}") from None
        if response.code == 599:  # tornado's own code for a failed connection or a timeout
            raise GcError(f"cannot reach the hub's API at {self.api_url}: {response.error}")
        if response.code in (401, 403):
            raise GcError(
                f"the hub refused the token ({response.code} on /{path.split('?')[0]}): "
                f"JUPYTERHUB_API_TOKEN must be a token of this hub with the scopes {', '.join(NEEDED_SCOPES)}"
            )
        if response.code == 404:
            return 404, None
        if response.code != 200:
            raise GcError(f"the hub answered {response.code} to GET /{path}: {_short(response.body)}")
        try:
            return 200, json.loads(response.body)
        except ValueError:
            raise GcError(f"the hub's answer to GET /{path} is not JSON: {_short(response.body)}") from None

    async def check_scopes(self) -> None:
        """The token must see every user and every server, or servers would look orphaned."""
        _, model = await self.get("user")
        held = set(model.get("scopes") or ()) if isinstance(model, dict) else set()
        missing = [scope for scope in NEEDED_SCOPES if scope not in held]
        if missing:
            raise GcError(
                f"the hub's token lacks the scope{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"(for every user: a filtered scope would hide servers); it has: {', '.join(sorted(held)) or 'none'}"
            )

    async def active_servers(self) -> set[HubServer]:
        """Every server the hub has active (running, or with an event pending), page by page."""
        servers: set[HubServer] = set()
        offset = 0
        while True:
            _, page = await self.get("users", state="active", offset=offset, limit=PAGE)
            items = page.get("items") if isinstance(page, dict) else page
            if not isinstance(items, list):
                raise GcError("the hub's user list is not a list: is --hub-api-url the hub's API (…/hub/api)?")
            for user in items:
                servers |= self._servers_of(user)
            following = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not following:
                return servers
            offset = following["offset"]

    async def active_servers_of(self, name: str) -> set[HubServer]:
        """One user's active servers, asked for on their own (none if the hub has no such user)."""
        status, user = await self.get(f"users/{quote(name, safe='')}")
        return set() if status == 404 else self._servers_of(user)

    @staticmethod
    def _servers_of(user: dict) -> set[HubServer]:
        if "servers" not in user:
            # Without read:servers the hub omits the key: every server would look orphaned.
            raise GcError("the hub's user model has no servers: the token lacks the read:servers scope")
        return {HubServer(user["name"], name) for name in user["servers"]}


def _short(body: Optional[bytes]) -> str:
    text = (body or b"").decode("utf8", "replace").strip().replace("\n", " ")
    return text[:200] + ("…" if len(text) > 200 else "")


# ------------------------------------------------------------------------------ Kubernetes


def _unreachable_errors() -> tuple:
    import aiohttp

    return (aiohttp.ClientError, OSError, asyncio.TimeoutError)


async def _kube_client():
    """An ApiClient configured as KubeSpawner's: in-cluster, else the kube context."""
    from kubernetes_asyncio import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            await config.load_kube_config()
        except (config.ConfigException, OSError) as err:
            raise GcError(
                f"no Kubernetes configuration: not in a pod, and no usable kube config (KUBECONFIG or "
                f"~/.kube/config): {err}"
            ) from None
    return client.ApiClient()


class Cluster:
    """Listing and deleting server objects in one namespace, failures as GcError sentences."""

    def __init__(self, api_client, namespace: str):
        from kubernetes_asyncio import client

        self.namespace = namespace
        self.core = client.CoreV1Api(api_client)
        self.net = client.NetworkingV1Api(api_client)
        self.host = api_client.configuration.host

    async def _call(self, action: str, method, *args, allowed: tuple = (), **kwargs):
        """The API call, or the ApiException of an ``allowed`` status; anything else a GcError."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return await method(*args, **kwargs)
        except ApiException as err:
            if err.status in allowed:
                return err
            if err.status in (401, 403):
                raise GcError(
                    f"Kubernetes does not allow {action} in namespace {self.namespace!r} ({err.status} "
                    f"{err.reason}): the hub's Role (tycho_spawner/rbac.py) grants what gc needs"
                ) from None
            raise GcError(f"Kubernetes refused {action}: {err.status} {_api_reason(err)}") from None
        except _unreachable_errors() as err:
            raise GcError(f"cannot reach the cluster's API at {self.host}: {err or type(err).__name__}") from None

    async def server_objects(self, selector: str) -> list[ServerObject]:
        pods = await self._call("listing pods", self.core.list_namespaced_pod, self.namespace,
                                label_selector=selector)
        policies = await self._call("listing networkpolicies", self.net.list_namespaced_network_policy,
                                    self.namespace, label_selector=selector)
        return [_server_object(POD, p) for p in pods.items] + [_server_object(NETWORK_POLICY, p) for p in policies.items]

    async def delete(self, kind: str, name: str, uid: str) -> str:
        """Delete the object if it is still the one listed; what happened, for the log."""
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        if kind == POD:
            method, resource = self.core.delete_namespaced_pod, "pods"
        else:
            method, resource = self.net.delete_namespaced_network_policy, "networkpolicies"
        result = await self._call(f"deleting {resource}", method, name, self.namespace, body=body, allowed=(404, 409))
        if isinstance(result, ApiException):
            # 404: gone already; 409: the uid precondition failed, a new object of that name
            # exists since the listing (a server started meanwhile): not ours to judge now.
            return "gone" if result.status == 404 else "replaced"
        return "deleted"

    async def wait_gone(self, pods: dict[str, str], timeout: float) -> set[str]:
        """Wait until these pods (name -> uid) are gone; the names still there at the timeout."""
        deadline = time.monotonic() + timeout
        left = dict(pods)
        while left:
            listed = await self._call("listing pods", self.core.list_namespaced_pod, self.namespace,
                                      label_selector=SERVER_LABEL)
            present = {(p.metadata.name, p.metadata.uid) for p in listed.items}
            left = {name: uid for name, uid in left.items() if (name, uid) in present}
            if not left or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)
        return set(left)


def _server_object(kind: str, obj) -> ServerObject:
    meta = obj.metadata
    return ServerObject(
        kind=kind,
        name=meta.name,
        uid=meta.uid,
        created=meta.creation_timestamp,
        labels=tuple(sorted((meta.labels or {}).items())),
        annotations=tuple(sorted((meta.annotations or {}).items())),
    )


def _api_reason(err) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


# ----------------------------------------------------------------------------------- a round


async def reconcile(settings: GcSettings, cluster: Cluster, hub: Hub, say: Callable[[str], None]) -> Verdicts:
    """One round: list, ask, decide, delete (or, with dry_run, say what would be deleted)."""
    await hub.check_scopes()
    objects = await cluster.server_objects(settings.label_selector)  # first: see the module's docstring
    mixed = mixed_hubs(objects, settings.selector)
    if mixed:
        raise GcError(f"nothing deleted: {mixed}")
    active = await hub.active_servers()
    verdicts = find_orphans(objects, active, now=datetime.now(timezone.utc), min_age=settings.min_age,
                            label_value=label_value)
    # Confirm each orphan pod's user on its own (see the module's docstring).
    confirmed: dict[str, set[HubServer]] = {}
    orphans = []
    for orphan in verdicts.orphans:
        if orphan.kind == POD:
            if orphan.user not in confirmed:
                confirmed[orphan.user] = await hub.active_servers_of(orphan.user)
            if HubServer(orphan.user, orphan.server) in confirmed[orphan.user]:
                continue
        orphans.append(orphan)
    kept_pods = {o.name for o in verdicts.orphans if o.kind == POD} - {o.name for o in orphans if o.kind == POD}
    orphans = [o for o in orphans if not (o.kind == NETWORK_POLICY and o.name in kept_pods)]

    for spared in verdicts.spared:
        say(f"leaving {spared.describe()}")
    verb = "would delete" if settings.dry_run else "deleting"
    deleted_pods: dict[str, str] = {}
    for orphan in (o for o in orphans if o.kind == POD):
        say(f"{verb} {orphan.describe()}")
        if not settings.dry_run:
            outcome = await cluster.delete(POD, orphan.name, orphan.uid)
            if outcome == "deleted":
                deleted_pods[orphan.name] = orphan.uid
            elif outcome == "replaced":
                say(f"pod {orphan.name} was replaced by a new pod since it was listed: left alone")
    still_there = await cluster.wait_gone(deleted_pods, POD_GONE_TIMEOUT) if deleted_pods else set()
    for orphan in (o for o in orphans if o.kind == NETWORK_POLICY):
        if orphan.name in still_there:
            say(f"leaving networkpolicy {orphan.name} for the next run: its pod is still terminating")
            continue
        say(f"{verb} {orphan.describe()}")
        if not settings.dry_run:
            if await cluster.delete(NETWORK_POLICY, orphan.name, orphan.uid) == "replaced":
                say(f"networkpolicy {orphan.name} was replaced by a new one since it was listed: left alone")
    pods = sum(1 for o in objects if o.kind == POD)
    say(
        f"{len(orphans)} orphan{'s' if len(orphans) != 1 else ''} "
        f"{'found' if settings.dry_run else 'removed'} among {pods} pod{'s' if pods != 1 else ''} and "
        f"{len(objects) - pods} NetworkPolic{'ies' if len(objects) - pods != 1 else 'y'} in namespace "
        f"{settings.namespace!r} ({len(verdicts.spared)} left for now); users' claims are never touched"
    )
    return Verdicts(orphans=tuple(orphans), spared=verdicts.spared)


async def run_once(settings: GcSettings, hub: Hub, say: Callable[[str], None]) -> Verdicts:
    """One round with a fresh Kubernetes client (its configuration read again each time)."""
    async with await _kube_client() as api_client:
        return await reconcile(settings, Cluster(api_client, settings.namespace), hub, say)


async def run(settings: GcSettings, say: Callable[[str], None], error: Callable[[str], None]) -> int:
    """One round (exit status 0, or 1 with a sentence), or with --every rounds until the hub
    that started it is gone. A service never exits on a failed round: the hub would start it
    again at once, in a loop."""
    hub = Hub(settings.hub_api_url, settings.token)
    if settings.every is None:
        try:
            await run_once(settings, hub, say)
        except GcError as err:
            error(str(err))
            return 1
        return 0
    parent = os.getppid()
    while True:
        try:
            await run_once(settings, hub, say)
            wait = settings.every
        except GcError as err:
            wait = min(settings.every, RETRY_SECONDS)
            error(f"{err}; trying again in {wait:g} s")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if os.getppid() != parent:
                say("the hub that started this service is gone: exiting")
                return 0
            await asyncio.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
