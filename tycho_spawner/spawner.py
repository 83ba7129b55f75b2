"""TychoSpawner: KubeSpawner with a catalog of applications, their own objects, and fast failures.

Built on KubeSpawner so a site keeps its scheduling, storage, security and naming settings and
KubeSpawner's watch-based pod cache. What Tycho changes, and why:

* the spawn form and ``user_options`` describe a catalog profile; bad options are refused with
  HTTP 400 before any object exists (KubeSpawner only fails the spawn);
* the pod holds the profile's containers (plus tycho-gate for apps that cannot log users in
  through the hub), and a Service and NetworkPolicy are created with it, owned by the pod;
* ``start()`` wakes on the watch event for its pod rather than polling its cache, and gives up
  within seconds, with Kubernetes' own reason, when the pod can never become ready;
* no live trait is changed per profile (KubeSpawner's ``kubespawner_override`` leaks settings
  between spawns, kubespawner #546): the profile only shapes the objects being created.
"""
from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, Optional

import jinja2
from jupyterhub.spawner import SpawnException
from jupyterhub.utils import maybe_future
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from tornado import web
from traitlets import Bool, Dict, Integer, List, Unicode, default

from . import podstatus
from .catalog_files import load_catalog
from .errors import CatalogError, OptionsError, RenderError
from .form import render_form
from .model import System, parse_quantity
from .profiles import Catalog, Selection
from .render import (
    GateSettings,
    Owner,
    Server,
    render_network_policy,
    render_pod,
    public_port,
    render_service,
    template_environment,
)
from .waiting import WakingPodReflector

HUB_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_")


class TychoSpawner(KubeSpawner):
    """Launch an application from the Tycho catalog as a pod (with its Service and NetworkPolicy)."""

    catalog = Dict(
        config=True,
        help="""
        Catalog entries, merged over the built-in catalog and `catalog_files` (later wins).

        A keyed map: `{"scipy": {"display_name": "SciPy for Biology"}}` changes one field of one
        entry, `{"nginx": {"disabled": True}}` removes an entry, a new key adds an application.
        See the README's catalog section for every field. Checked when the hub starts: an error
        names the exact key.
        """,
    )

    catalog_files = List(
        Unicode(),
        config=True,
        help="""
        YAML files merged, in order, over the built-in catalog (before `catalog`).

        Each file holds a map of profiles, optionally under a top-level `catalog:` key, so the
        same file can be a helm values file. Files are read once, when the hub starts.
        """,
    )

    builtin_catalog = Bool(
        True,
        config=True,
        help="""
        Start from the built-in catalog (Jupyter docker stacks, RStudio, nginx).

        Set to False to offer only what `catalog_files` and `catalog` define.
        """,
    )

    template_dir = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""
        Directory of Jinja2 templates that replace the packaged ones of the same name
        (`pod.yaml.j2`, `service.yaml.j2`, `networkpolicy.yaml.j2`).

        Values reach templates as JSON literals whatever they contain; see the packaged
        templates (`tycho render` prints their output) before writing your own.
        """,
    )

    gate_image = Unicode(
        "ghcr.io/tycho-spawner/tycho-gate:0.1.0",
        config=True,
        help="""
        Image of tycho-gate, the authenticating proxy put in front of apps whose profile
        says `auth: gate` (RStudio, nginx, any web app that cannot log users in via the hub).
        """,
    )

    gate_port = Integer(
        8888,
        config=True,
        help="""Port tycho-gate listens on in the pod (the port the hub's proxy connects to).""",
    )

    gate_keep_prefix = Bool(
        False,
        config=True,
        help="""
        Pass `/user/<name>/...` through to gated apps unchanged (for apps configured with their
        root path). By default the gate strips the prefix and the app lives at `/`.
        """,
    )

    network_policy_enabled = Bool(
        True,
        config=True,
        help="""
        Create a NetworkPolicy per server admitting only the hub and proxy pods, on the one
        served port. Disable only if the cluster's network plugin cannot enforce policies and
        you do not want the objects.
        """,
    )

    network_policy_ingress_from = List(
        Dict(),
        default_value=[{"component": "hub"}, {"component": "proxy"}],
        config=True,
        help="""
        Pod label selectors (same namespace) allowed to connect to a user's server.

        The default matches the hub and proxy pods of this project's chart and of
        zero-to-jupyterhub.
        """,
    )

    fatal_waiting_reasons = List(
        Unicode(),
        default_value=list(podstatus.DEFAULT_FATAL_REASONS),
        config=True,
        help="""
        Container waiting reasons that end a start at once, with Kubernetes' message shown to
        the user, instead of waiting for `start_timeout`.
        """,
    )

    unschedulable_is_fatal = Bool(
        True,
        config=True,
        help="""
        Fail the start as soon as the scheduler says no node fits the pod.

        Set to False on clusters with an autoscaler, where an Unschedulable pod gets a new node
        after a while.
        """,
    )

    @default("events_enabled")
    def _events_enabled_default(self):
        # Progress reads the events of this one pod; KubeSpawner's namespace-wide event cache
        # grows without bound (kubespawner #913) and is not needed.
        return False

    @default("options_form")
    def _options_form_default(self):
        return TychoSpawner._options_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return TychoSpawner._options_from_form

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return TychoSpawner._apply_options

    # ------------------------------------------------------------------ catalog and options

    @property
    def tycho_catalog(self) -> Catalog:
        return load_catalog(self.builtin_catalog, self.catalog_files, self.catalog)

    @classmethod
    def check_config(cls, config) -> Catalog:
        """Parse the catalog a config describes, or stop the process naming the bad key.

        Call it at the end of `jupyterhub_config.py` so that a broken catalog stops the hub at
        start rather than at a user's first spawn.
        """
        probe = cls.__new__(cls)  # read traits through traitlets without a user or a cluster
        from traitlets.config import Configurable

        Configurable.__init__(probe, config=config)
        try:
            catalog = probe.tycho_catalog
        except CatalogError as err:
            print(f"tycho_spawner: the catalog is invalid: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        return catalog

    @staticmethod
    def _options_form(spawner: "TychoSpawner") -> str:
        previous = spawner.orm_spawner.user_options if getattr(spawner, "orm_spawner", None) else None
        return render_form(spawner.tycho_catalog, previous)

    @staticmethod
    def _options_from_form(formdata: dict, spawner: "TychoSpawner") -> dict:
        # The hub's own XSRF field arrives with the form's; it is not an option.
        fields = {k: v for k, v in formdata.items() if k != "_xsrf"}
        try:
            return spawner.tycho_catalog.options_from_form(fields)
        except OptionsError as err:
            raise web.HTTPError(400, str(err)) from None

    @staticmethod
    def _apply_options(spawner: "TychoSpawner", user_options: Any) -> None:
        selection = spawner._select(user_options)
        canonical = selection.as_user_options()
        spawner.user_options = canonical
        if getattr(spawner, "orm_spawner", None) is not None:
            spawner.orm_spawner.user_options = canonical
        spawner._selection = selection

    def _select(self, user_options: Any) -> Selection:
        try:
            return self.tycho_catalog.select(user_options)
        except OptionsError as err:
            self.log.warning("%s: refused options %r: %s", self._log_name, user_options, err)
            raise web.HTTPError(400, str(err)) from None

    _selection: Optional[Selection] = None

    # ------------------------------------------------------------------ objects

    @property
    def _template_env(self) -> jinja2.Environment:
        return template_environment(self.template_dir)

    @property
    def _gate_settings(self) -> GateSettings:
        return GateSettings(image=self.gate_image, port=self.gate_port, keep_prefix=self.gate_keep_prefix)

    def _server_context(self, system: System) -> Server:
        env = self.get_env()
        served = system.served
        if served.limits.memory:
            env["MEM_LIMIT"] = str(int(parse_quantity(served.limits.memory, "")))
        if served.limits.cpu:
            env["CPU_LIMIT"] = str(float(parse_quantity(served.limits.cpu, "")))
        env["JUPYTER_IMAGE"] = env["JUPYTER_IMAGE_SPEC"] = served.image
        hub_env = tuple((k, str(v)) for k, v in env.items() if k.startswith(HUB_ENV_PREFIXES))
        site_env = tuple((k, str(v)) for k, v in env.items() if not k.startswith(HUB_ENV_PREFIXES))
        labels = self._build_pod_labels(self._expand_all(self.extra_labels))
        annotations = self._build_common_annotations(self._expand_all(self.extra_annotations))
        return Server(
            name=self.pod_name,
            namespace=self.namespace,
            labels=tuple((k, str(v)) for k, v in labels.items()),
            annotations=tuple((k, str(v)) for k, v in annotations.items()),
            hub_env=hub_env,
            app_env=site_env,
            ingress_from=tuple(tuple(sorted((str(k), str(v)) for k, v in peer.items()))
                               for peer in self.network_policy_ingress_from),
            gate=self._gate_settings,
        )

    async def tycho_pod_manifest(self, system: System, server: Optional[Server] = None) -> dict:
        """KubeSpawner's pod (site settings, hooks applied) with the System's containers in it."""
        base = await self.get_pod_manifest()
        if self.modify_pod_hook:
            base = await maybe_future(self.modify_pod_hook(self, base))
        base_dict = self.api.api_client.sanitize_for_serialization(base)
        return render_pod(system, server or self._server_context(system), self._template_env, base_dict)

    # ------------------------------------------------------------------ lifecycle

    async def _start_watching_pods(self, replace=False):
        return await self._start_reflector(
            kind="pods",
            reflector_class=WakingPodReflector,
            labels={"component": self.component_label},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    @property
    def _pod_key(self) -> str:
        return f"{self.namespace}/{self.pod_name}"

    def _current_pod(self) -> Optional[dict]:
        reflector = self.pod_reflector
        return reflector.pods.get(self._pod_key) if reflector else None

    async def _changed(self, timeout: Optional[float]) -> bool:
        return await self.pod_reflector.changed(self._pod_key, timeout)

    async def _start(self):
        started = time.perf_counter()
        selection = self._selection or self._select(self.user_options)
        self._selection = selection
        system = selection.system()
        try:
            # The hub's env (JUPYTERHUB_SERVICE_URL) and the URL returned use the pod's public port.
            self.port = public_port(system, self._gate_settings)
        except RenderError as err:
            raise self._render_failure(system, err) from None
        if self.enable_user_namespaces:
            await self._ensure_namespace()
        try:
            await self._start_watching_pods()
        except ApiException as err:
            raise self._api_failure("watch pods", err) from None

        server = self._server_context(system)
        try:
            manifest = await self.tycho_pod_manifest(system, server)
        except RenderError as err:
            raise self._render_failure(system, err) from None
        containers = [c["name"] for c in manifest["spec"]["containers"]]
        self.log.info(
            "%s: starting %s (choices %s) as pod %s: containers %s, port %s",
            self._log_name, system.name, dict(selection.choices), self._pod_key, ", ".join(containers), self.port,
        )
        try:
            pod = await self._create_pod(manifest)
            await self._create_companions(system, server, pod)
            await self._wait_until_ready()
        except BaseException as err:
            # Whatever went wrong, leave nothing behind: the user's next try starts clean.
            self.log.info("%s: start failed (%s), removing its objects", self._log_name, type(err).__name__)
            try:
                await asyncio.shield(self._remove_objects(grace_seconds=0))
            except Exception:
                self.log.exception("%s: cleanup after a failed start failed", self._log_name)
            raise

        pod = self._current_pod()
        self.pod_id = pod["metadata"]["uid"]
        self.log.info(
            "%s: pod %s ready in %.0f ms", self._log_name, self._pod_key, (time.perf_counter() - started) * 1000
        )
        return self._get_pod_url(pod)

    def _render_failure(self, system: System, err: RenderError) -> SpawnException:
        self.log.error("%s: cannot render %s: %s", self._log_name, system.name, err)
        return SpawnException(f"The application {system.name!r} is misconfigured: {err}", reason="render")

    def _api_failure(self, action: str, err: ApiException) -> SpawnException:
        if err.status == 403:
            message = (
                f"The hub is not allowed to {action} in namespace {self.namespace!r}. "
                "Grant the hub's service account the Role from the tycho_spawner chart "
                "(pods, services, networkpolicies, events)."
            )
            self.log.error("%s: %s Kubernetes said: %s", self._log_name, message, err.body)
            return SpawnException(message, reason="forbidden", status_code=500)
        message = f"Kubernetes refused to {action}: {err.status} {err.reason}"
        self.log.error("%s: %s: %s", self._log_name, message, err.body)
        return SpawnException(message, reason="kubernetes", log_message=f"{message}: {err.body}", status_code=500)

    async def _create_pod(self, manifest: dict) -> Any:
        for attempt in range(3):
            try:
                return await self.api.create_namespaced_pod(self.namespace, manifest)
            except ApiException as err:
                if err.status == 409 and attempt < 2:
                    # A pod of the same name from an earlier run: remove it, then try again.
                    self.log.warning("%s: pod %s already exists, deleting it first", self._log_name, self._pod_key)
                    await self._remove_objects(grace_seconds=0)
                    continue
                if err.status == 403 and "exceeded quota" in str(err.body):
                    raise SpawnException(
                        f"Your namespace's resource quota does not allow this server: {_api_message(err)}",
                        reason="quota",
                    ) from None
                if err.status == 422:
                    raise SpawnException(
                        f"Kubernetes rejected the pod: {_api_message(err)}", reason="invalid"
                    ) from None
                raise self._api_failure("create pods", err) from None
        raise AssertionError("unreachable")

    async def _create_companions(self, system: System, server: Server, pod: Any) -> None:
        owner = Owner(name=pod.metadata.name, uid=pod.metadata.uid)
        env = self._template_env
        objects = [("service", render_service(system, server, env, owner))]
        if self.network_policy_enabled:
            objects.append(("network policy", render_network_policy(system, server, env, owner)))
        for kind, manifest in objects:
            create, delete = self._companion_api(kind)
            try:
                await create(self.namespace, manifest)
            except ApiException as err:
                if err.status != 409:
                    raise self._api_failure(f"create {kind.replace(' ', '')}s", err) from None
                # Left over from an earlier pod that the garbage collector has not removed yet.
                await delete(manifest["metadata"]["name"], self.namespace)
                await create(self.namespace, manifest)

    def _companion_api(self, kind: str):
        if kind == "service":
            return self.api.create_namespaced_service, self.api.delete_namespaced_service
        net = shared_client("NetworkingV1Api")
        return net.create_namespaced_network_policy, net.delete_namespaced_network_policy

    async def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = None
        while True:
            verdict = podstatus.assess(
                self._current_pod(), self.fatal_waiting_reasons, self.unschedulable_is_fatal
            )
            if verdict.state == podstatus.READY:
                return
            if verdict.state == podstatus.FAILED:
                self.log.warning("%s: pod %s cannot start: %s", self._log_name, self._pod_key, verdict.message)
                raise SpawnException(
                    f"Your server could not start: {verdict.message}",
                    reason=verdict.reason or "pod-failed",
                    status_code=500,
                )
            if verdict.message != last:
                self.log.debug("%s: %s", self._log_name, verdict.message)
                last = verdict.message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SpawnException(
                    f"Your server did not start within {self.start_timeout} seconds (last state: {verdict.message}).",
                    reason="timeout",
                    status_code=500,
                )
            await self._changed(remaining)

    async def _remove_objects(self, grace_seconds: int) -> None:
        """Delete the pod, its Service and NetworkPolicy, and wait until the pod is gone."""
        try:
            await self.api.delete_namespaced_pod(
                self.pod_name, self.namespace, grace_period_seconds=grace_seconds
            )
        except ApiException as err:
            if err.status != 404:
                raise self._api_failure("delete pods", err) from None
        kinds = ("service", "network policy") if self.network_policy_enabled else ("service",)
        for kind in kinds:
            _, delete = self._companion_api(kind)
            try:
                await delete(self.pod_name, self.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise self._api_failure(f"delete {kind.replace(' ', '')}s", err) from None
        deadline = time.monotonic() + max(self.start_timeout, grace_seconds + 30)
        while self._current_pod() is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"pod {self._pod_key} was not removed in time")
            await self._changed(remaining)

    async def stop(self, now: bool = False) -> None:
        await self._start_watching_pods()
        grace = 0 if now else self.delete_grace_period
        self.log.info("%s: stopping pod %s (grace %ss)", self._log_name, self._pod_key, grace)
        await self._remove_objects(grace_seconds=grace)

    async def poll(self) -> Optional[int]:
        await self._start_watching_pods()
        pod = self._current_pod()
        code = podstatus.exit_status(pod)
        if code is not None and pod is not None and self.delete_stopped_pods:
            self.log.info("%s: pod %s stopped with exit code %s, removing it", self._log_name, self._pod_key, code)
            await self.stop(now=True)
        return code

    async def progress(self):
        """Human progress messages from this pod's events and status, until the start ends."""
        events_api = self.api
        seen: set[str] = set()
        last_status = None
        step = 0
        while True:
            start_future = self._start_future
            done = start_future is not None and start_future.done()
            pod = self._current_pod() if self.pod_reflector else None
            if pod is not None and pod.get("metadata", {}).get("uid"):
                uid = pod["metadata"]["uid"]
                try:
                    events = await events_api.list_namespaced_event(
                        self.namespace, field_selector=f"involvedObject.uid={uid}"
                    )
                    items = sorted(
                        events.items,
                        key=lambda e: (e.last_timestamp or e.event_time or e.metadata.creation_timestamp or 0, e.metadata.name),
                    )
                except ApiException as err:
                    self.log.debug("%s: cannot read events: %s", self._log_name, err.reason)
                    items = []
                for event in items:
                    if event.metadata.uid in seen:
                        continue
                    seen.add(event.metadata.uid)
                    step += 1
                    yield {"progress": min(90, 10 + 10 * step), "message": _event_message(event, pod)}
                verdict = podstatus.assess(pod, self.fatal_waiting_reasons, self.unschedulable_is_fatal)
                if verdict.message != last_status and verdict.state == podstatus.PENDING:
                    last_status = verdict.message
                    yield {"progress": min(90, 10 + 10 * step), "message": verdict.message.capitalize()}
            if done:
                return
            if self.pod_reflector is not None:
                await self._changed(1.0)
            else:
                await asyncio.sleep(0.2)

    # ------------------------------------------------------------------ state

    def get_state(self):
        state = super().get_state()
        if self._selection is not None:
            state["tycho"] = self._selection.as_user_options()
        return state

    def load_state(self, state):
        super().load_state(state)
        saved = state.get("tycho") if state else None
        if saved:
            try:
                self._selection = self.tycho_catalog.select(saved)
            except OptionsError:
                # The profile left the catalog since: the running pod is still found by name.
                self._selection = None

    def clear_state(self):
        super().clear_state()
        self._selection = None


def _event_message(event: Any, pod: dict) -> str:
    reason = event.reason or ""
    message = event.message or ""
    field_path = (event.involved_object.field_path or "") if event.involved_object else ""
    container = field_path[field_path.find("{") + 1 : -1] if "{" in field_path else ""
    if reason == "Scheduled":
        return f"Scheduled on node {pod.get('spec', {}).get('nodeName') or ''}".strip()
    if reason in ("Created", "Started") and container:
        return f"{reason} container {container}"
    if event.type == "Warning":
        return f"{reason}: {message}"
    return message or reason


def _api_message(err: ApiException) -> str:
    import json

    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError):
        return str(err.reason)

