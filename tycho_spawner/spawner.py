"""TychoSpawner: KubeSpawner with a catalog of applications, a NetworkPolicy, and fast failures.

TychoSpawner runs KubeSpawner's own start, so everything a site configures there keeps working
(the user's claim, internal SSL, per-server Services, ``modify_pod_hook``,
``after_pod_created_hook``, scheduling, ...) and what KubeSpawner's next release adds works too.
It changes that start only through KubeSpawner's seams:

* ``apply_user_options`` / ``load_user_options``: the spawn form and ``user_options`` describe a
  catalog entry; bad options are refused with HTTP 400 before any object exists;
* ``get_pod_manifest``: KubeSpawner's pod, with the entry's containers in place of its one
  container (plus tycho-gate for apps that cannot log users in through the hub), the user's home
  mounted where the app keeps its files;
* ``_make_create_pod_request``: the server's NetworkPolicy is created just before its pod, so
  the pod is never reachable without it;
* ``is_pod_running`` / ``pod_has_uid``: KubeSpawner polls these with growing waits; here they
  wake on the watch event for the pod instead, and end the start within seconds, with
  Kubernetes' own reason, when the pod can never become ready.

No live trait is changed per entry (KubeSpawner's ``kubespawner_override`` leaks settings
between spawns, kubespawner #546): the entry only shapes the objects being created.
"""
from __future__ import annotations

import asyncio
import html
import json
import re
import sys
import time
import weakref
from typing import Any, ClassVar, Optional

import jinja2
from aiohttp import ClientConnectionError, ClientResponse
from kubernetes_asyncio.client.rest import ApiException, RESTResponse
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Bool, Dict, Integer, List, Unicode, default

from . import podstatus
from .catalog_files import load_catalog
from .compat import SpawnException
from .errors import CatalogError, OptionsError, RenderError, SpecError, shown
from .form import render_form
from .model import System, parse_egress_allow, parse_egress_rules, parse_quantity
from .profiles import NOTHING_OFFERED, Catalog, Selection, Who
from .render import (
    DEFAULT_EGRESS_ALLOW,
    EnvSource,
    GateSettings,
    Server,
    public_port,
    render_network_policy,
    render_pod,
    served_port,
    template_environment,
)
from .site_settings import replaced_settings
from .waiting import WakingPodReflector

HUB_ENV_PREFIXES = ("JUPYTERHUB_", "JPY_")
#: The volume KubeSpawner mounts the hub's internal-SSL certificates from.
INTERNAL_CERTS_VOLUME = "jupyterhub-internal-certs"
#: Kubernetes' wording of a refusal: 'User "x" cannot create resource "persistentvolumeclaims" ...'.
_FORBIDDEN_ACTION = re.compile(r'cannot (\w+) resource "([\w.]+)"')
#: How often a start waiting for a user's claim looks at it again (claims change unwatched).
CLAIM_CHECK_SECONDS = 1.0
#: How long a pod may sit on its node with no container started before a start reads its
#: events for a volume that cannot be mounted (then twice as long each time, up to 16 s).
MOUNT_CHECK_SECONDS = 1.0
#: The variables JupyterHub puts the server's API token in, and its key in the server's Secret.
TOKEN_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
TOKEN_KEY = "token"


class TychoSpawner(KubeSpawner):
    """Launch an application from the Tycho catalog as a pod (with its Service and NetworkPolicy)."""

    catalog = Dict(
        config=True,
        help="""
        Catalog entries, merged over the built-in catalog and `catalog_files` (later wins).

        A keyed map: `{"scipy": {"display_name": "SciPy for Biology"}}` changes one field of one
        entry, `{"nginx": {"disabled": True}}` removes an entry, a new key adds an application.
        Every field is in the documentation's catalog reference (docs/reference/catalog.md,
        built by `bin/stage docs`). Checked when the hub starts: an error names the exact key.
        """,
    )

    catalog_files = List(
        Unicode(),
        config=True,
        help="""
        YAML files merged, in order, over the built-in catalog (before `catalog`).

        Each file holds a map of profiles, optionally under a top-level `catalog:` key, so the
        same file can be a helm values file. The files are followed while the hub runs: a
        change is used within a second by the form, the REST API and new starts; an invalid
        new version is logged (naming the key) and the last good catalog stays. An invalid
        catalog when the hub starts stops it.
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

    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="""
        Where the site's `volume_mounts` put the user's home (zero-to-jupyterhub's
        `singleuser.storage.homeMountPath`).

        The mount at this path, and those below it, are moved to where each catalog entry's
        app keeps the user's files (`home` in the entry: RStudio's /home/rstudio, a web
        server's root...), so one persistent home follows the user from app to app. Entries
        without a `home` keep it at this path in their serving container; `home: false` gives
        an app none.
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

    network_policy_egress_allow = Dict(
        default_value=dict(DEFAULT_EGRESS_ALLOW),
        config=True,
        help="""
        Where a user's server may connect to, besides its hub's API (always allowed): the keys
        and meanings of zero-to-jupyterhub's `singleuser.networkPolicy.egressAllowRules`, each
        true or false; keys left out keep their default.

        - `nonPrivateIPs` (true): any address but the private ranges (10.0.0.0/8, 172.16.0.0/12,
          192.168.0.0/16) and the cloud metadata server: the internet, not the Kubernetes API,
          other users' pods or the cluster's services;
        - `privateIPs` (false): the private ranges (all of the above);
        - `cloudMetadataServer` (false): 169.254.169.254, which hands out the node's cloud
          credentials;
        - `dnsPortsKubeSystemNamespace`, `dnsPortsPrivateIPs`, `dnsPortsCloudMetadataServer`
          (true): port 53 (DNS) of pods in kube-system, of the private ranges, of the metadata
          server (GKE's DNS).

        A catalog entry's `system.network.egress_allow` replaces keys of this one for its
        servers; policies add up, so another NetworkPolicy selecting the pods can allow more.
        """,
    )

    network_policy_egress = List(
        Dict(),
        config=True,
        help="""
        More egress rules for every server's NetworkPolicy, as Kubernetes writes them
        (`{"to": [...], "ports": [...]}`; zero-to-jupyterhub's `singleuser.networkPolicy.egress`):
        a database on the cluster's network, a proxy of the site... A catalog entry's
        `system.network.egress` rules are added to these for its servers.
        """,
    )

    network_policy_hub_selector = Dict(
        default_value={"component": "hub"},
        config=True,
        help="""
        Labels of the hub's pods, which every server may connect to on the port the hub's
        API listens on (a server needs the hub's API to log users in and report activity).

        The default matches the hub pod of this project's chart and of zero-to-jupyterhub. A
        hub outside the cluster is reached at the address in its `hub_connect_url` when that
        is an IP address.
        """,
    )

    hub_token_secret = Bool(
        True,
        config=True,
        help="""
        Give the server its hub API token from a Secret the pod owns (`secretKeyRef`), not as a
        plain value in the pod.

        A plain environment value can be read by anyone allowed to read pods in the namespace
        (kubespawner #398); a Secret needs the right to read secrets, which the hub itself
        never has (it creates, patches and deletes them only). The Secret is created just
        before the pod, made owned by the pod once the pod exists (so Kubernetes removes it
        with the pod), and deleted at stop. False: KubeSpawner's plain value.
        """,
    )

    fatal_waiting_reasons = List(
        Unicode(),
        default_value=list(podstatus.DEFAULT_FATAL_REASONS),
        config=True,
        help="""
        Container waiting reasons that end a start at once, with Kubernetes' message shown to
        the user, instead of waiting for `start_timeout`.

        `CreateContainerConfigError` (a Secret or ConfigMap an environment variable names does
        not exist) also covers a volume from a Secret or ConfigMap that does not exist: the
        kubelet reports that only in FailedMount events, read when a pod has been on its node
        for a second with no container started.
        """,
    )

    admins_launch_everything = Bool(
        True,
        config=True,
        help="""
        Whether the hub's admins may launch every catalog entry, option and choice, whatever
        its `access` says.

        An entry's `access: {groups: [...], users: [...]}` limits who sees and launches it
        (an option's and a choice's likewise); set this to False to hold admins to the same
        lists (an admin still administers other users' servers through the hub).
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

    @default("options_form")
    def _options_form_default(self):
        return TychoSpawner._options_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return TychoSpawner._options_from_form

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return TychoSpawner._apply_options

    user_options = AnyTrait(
        help="""
        The options of this server's start, as the form or the REST API sent them; once
        checked against the catalog, the canonical ``{"profile": ..., "choices": {...}}``.

        Any value is taken here (Spawner's own trait is a Dict) because JupyterHub 5.5 assigns
        a start's JSON body before any check: a body that is not an object (``[]``) was an
        HTTP 500 with a traceback, and is now refused with 400 by ``apply_user_options`` like
        every other bad option.
        """,
    )

    @default("user_options")
    def _user_options_default(self):
        return {}

    # ------------------------------------------------------------------ catalog and options

    @property
    def tycho_catalog(self) -> Catalog:
        return load_catalog(self.builtin_catalog, self.catalog_files, self.catalog, log=self.log)

    @property
    def user_catalog(self) -> Catalog:
        """The catalog as this server's user may launch from it (their groups and admin flag
        now: a group an authenticator manages changes at their next login)."""
        return self.tycho_catalog.visible_to(self._who(), admins_see_all=self.admins_launch_everything)

    def _who(self) -> Who:
        user = getattr(self, "user", None)
        if user is None:
            return Who(name="")
        groups = frozenset(group.name for group in (getattr(user, "groups", None) or []))
        return Who(name=user.name, groups=groups, admin=bool(getattr(user, "admin", False)))

    @classmethod
    def check_config(cls, config, log=None) -> Catalog:
        """Parse the catalog a config describes, or stop the process naming the bad key; log
        the site settings that catalog entries replace.

        Runs when the hub loads this class after reading its configuration (zero-to-jupyterhub's
        `hub.config.JupyterHub.spawner_class`), and when `jupyterhub_config.py` calls it at its
        end: a broken catalog stops the hub at start rather than at a user's first spawn.
        """
        probe = cls.__new__(cls)  # read traits through traitlets without a user or a cluster
        from traitlets.config import Configurable

        Configurable.__init__(probe, config=config)
        try:
            catalog = probe.tycho_catalog
        except CatalogError as err:
            print(f"tycho_spawner: the catalog is invalid: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        try:
            probe._site_egress()
        except SpecError as err:
            print(f"tycho_spawner: a setting is invalid: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        logger = log or probe.log
        reported = _REPORTED.setdefault(logger, set())
        for note in replaced_settings(config):
            if note not in reported:
                reported.add(note)
                logger.warning(note)
        return catalog

    @staticmethod
    def _options_form(spawner: "TychoSpawner") -> str:
        previous = spawner.orm_spawner.user_options if getattr(spawner, "orm_spawner", None) else None
        catalog = spawner.user_catalog
        if not catalog.profiles:
            return f'<p class="tycho-nothing" role="alert">{html.escape(NOTHING_OFFERED[0].upper() + NOTHING_OFFERED[1:])}.</p>'
        return render_form(catalog, previous)

    @staticmethod
    def _options_from_form(formdata: dict, spawner: "TychoSpawner") -> dict:
        # The hub's own XSRF field arrives with the form's; it is not an option.
        fields = {k: v for k, v in formdata.items() if k != "_xsrf"}
        try:
            return spawner.user_catalog.options_from_form(fields)
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
            return self.user_catalog.select(user_options)
        except OptionsError as err:
            self.log.warning("%s: refused options %s: %s", self._log_name, shown(user_options), err)
            raise web.HTTPError(400, str(err)) from None

    _selection: Optional[Selection] = None

    # ------------------------------------------------------------------ the pod

    @property
    def _template_env(self) -> jinja2.Environment:
        return template_environment(self.template_dir)

    @property
    def _gate_settings(self) -> GateSettings:
        return GateSettings(image=self.gate_image, port=self.gate_port, keep_prefix=self.gate_keep_prefix)

    def _system_for_start(self) -> System:
        selection = self._selection or self._select(self.user_options)
        self._selection = selection
        return selection.system()

    def _server_context(self, system: System, base_pod: dict) -> Server:
        """Where and for whom the System is rendered, read off KubeSpawner's pod.

        The environment is the one KubeSpawner prepared for its container (hub variables, the
        site's `environment` with `valueFrom` entries, `MEM_LIMIT`...), split by who may see
        it: the hub's part goes to the authenticating container only.
        """
        base_container = (base_pod["spec"].get("containers") or [{}])[0]
        env: dict[str, Any] = {}
        for var in base_container.get("env") or []:
            if "valueFrom" in var:
                env[var["name"]] = EnvSource(json.dumps(var["valueFrom"], sort_keys=True))
            else:
                env[var["name"]] = var.get("value", "")
        served = system.served
        for name, quantity, as_number in (
            ("MEM_LIMIT", served.limits.memory, int),
            ("MEM_GUARANTEE", served.requests.memory, int),
            ("CPU_LIMIT", served.limits.cpu, float),
            ("CPU_GUARANTEE", served.requests.cpu, float),
        ):
            if quantity:
                env[name] = str(as_number(parse_quantity(quantity, "")))
        env["JUPYTER_IMAGE"] = env["JUPYTER_IMAGE_SPEC"] = served.image
        if self.hub_token_secret:
            token_ref = EnvSource(json.dumps({"secretKeyRef": {"name": self._token_secret_name, "key": TOKEN_KEY}}))
            for name in TOKEN_ENV:
                if name in env:
                    env[name] = token_ref
        metadata = base_pod.get("metadata") or {}
        return Server(
            name=metadata.get("name") or self.pod_name,
            namespace=self.namespace,
            labels=tuple((k, str(v)) for k, v in (metadata.get("labels") or {}).items()),
            annotations=tuple((k, str(v)) for k, v in (metadata.get("annotations") or {}).items()),
            hub_env=tuple((k, v) for k, v in env.items() if k.startswith(HUB_ENV_PREFIXES)),
            app_env=tuple((k, v) for k, v in env.items() if not k.startswith(HUB_ENV_PREFIXES)),
            ingress_from=tuple(tuple(sorted((str(k), str(v)) for k, v in peer.items()))
                               for peer in self.network_policy_ingress_from),
            gate=self._gate_settings,
            home_mount_path=self.home_mount_path,
            auth_volumes=(INTERNAL_CERTS_VOLUME,) if self.internal_ssl else (),
            env_order=tuple(env),
            user_slug=self._expand_user_properties("{username}"),
            **self._egress_context(),
        )

    def _site_egress(self) -> dict:
        """The site's egress settings, checked (a SpecError names the bad setting's key)."""
        allow = {**dict(DEFAULT_EGRESS_ALLOW),
                 **dict(parse_egress_allow(self.network_policy_egress_allow, "TychoSpawner.network_policy_egress_allow"))}
        selector = self.network_policy_hub_selector
        if not selector:
            # An empty selector is every pod of the namespace: other users' servers included.
            raise SpecError("TychoSpawner.network_policy_hub_selector", "name at least one label of the hub's pods")
        for key, value in selector.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise SpecError(f"TychoSpawner.network_policy_hub_selector.{key}", "labels and values must be strings")
        return {
            "egress_allow": tuple(allow.items()),
            "egress": parse_egress_rules(self.network_policy_egress, "TychoSpawner.network_policy_egress"),
            "hub_selector": tuple(sorted(selector.items())),
        }

    def _egress_context(self) -> dict:
        """The Server fields of the egress half of the server's NetworkPolicy."""
        try:
            context = self._site_egress()
        except SpecError as err:
            self.log.error("%s: invalid setting %s", self._log_name, err)
            raise SpawnException(f"The hub's NetworkPolicy settings are invalid: {err}", reason="render") from None
        hub = getattr(self, "hub", None)
        # The port the hub binds is the one its pod receives on, whatever Service port is in front.
        context["hub_port"] = getattr(hub, "port", None) or 8081
        return context

    async def get_pod_manifest(self):
        """KubeSpawner's pod (every site setting applied), with the catalog entry in it.

        Returns a ``V1Pod`` like KubeSpawner's, so a site's ``modify_pod_hook`` sees the pod it
        expects and can change the real one.
        """
        system = self._system or self._system_for_start()
        base = await super().get_pod_manifest()
        client = self.api.api_client
        base_pod = client.sanitize_for_serialization(base)
        server = self._server_context(system, base_pod)
        try:
            pod = render_pod(system, server, self._template_env, base_pod)
        except RenderError as err:
            raise self._render_failure(system, err) from None
        self._tycho_server = server
        return client.deserialize(_JSONResponse(pod), "V1Pod")

    # ------------------------------------------------------------------ KubeSpawner's start

    async def _start_watching_pods(self, replace=False):
        """The process-wide pod cache of TychoSpawners in this namespace (its own key, see
        ``_get_reflector_key``), started here rather than by KubeSpawner's ``_start_reflector``:
        that one hands a cache whose first list failed (the API server down at that moment) to
        every later start, empty for good, and logs two tracebacks; this one replaces it."""
        key = self._get_reflector_key("pods")
        current = self.__class__.reflectors.get(key)
        if current is not None and not replace:
            if not current.first_load_future.done():
                # Whatever its outcome: a failed first list is replaced below.
                await asyncio.wait([current.first_load_future])
            if not current.failed:
                return current
        reflector = WakingPodReflector(
            parent=self, namespace=self.namespace, labels={"component": self.component_label},
            omit_namespace=self.enable_user_namespaces, on_failure=self._on_pod_watch_failure,
        )
        self.__class__.reflectors[key] = reflector
        try:
            # Shielded: the start that lists first may be cancelled (a stop clicked during it);
            # the cache it was filling is every other server's too, and its cleanup's.
            await asyncio.shield(reflector.start())
        except ApiException as err:
            raise self._api_failure("watch pods", err) from None
        if current is not None:
            await current.stop()
        return reflector

    def _on_pod_watch_failure(self) -> None:
        # KubeSpawner's policy: a cluster-wide cache (user namespaces) that cannot watch any
        # more halts the hub (its restart lists afresh); a namespace's cache is replaced by the
        # next start that finds it failed.
        if self.enable_user_namespaces:
            self.log.critical("the cluster-wide pod watch failed for good; halting the hub")
            sys.exit(1)

    def _get_reflector_key(self, kind: str):
        # TychoSpawner's pod cache wakes its readers (WakingPodReflector); a KubeSpawner in the
        # same process (a site choosing the class per user) must neither get it nor hand it a
        # plain one.
        kind_key, *rest = super()._get_reflector_key(kind)
        return (f"tycho-{kind_key}", *rest)

    async def _start_watching_events(self, replace=False):
        # Progress reads the events of this one pod; KubeSpawner's namespace-wide event cache
        # grows without bound (kubespawner #913). `events_enabled` still decides whether
        # progress shows Kubernetes' events.
        return None

    _system: Optional[System] = None
    _tycho_server: Optional[Server] = None
    _start_deadline: Optional[float] = None
    _policy_created = False
    _token_secret_created = False
    #: The uid of the pod this start created (None: not created yet, or a start adopted at a
    #: hub restart, which waits for whatever pod has the name).
    _created_uid: Optional[str] = None

    async def load_user_options(self):
        """The first step of KubeSpawner's start: the catalog entry replaces `profile_list`.

        The options were checked when they arrived (`apply_user_options`: HTTP 400 before any
        object exists); here the entry becomes the System this start creates.
        """
        system = self._system_for_start()
        try:
            # The hub's env (JUPYTERHUB_SERVICE_URL) and the URL returned use the pod's public port.
            self.port = public_port(system, self._gate_settings)
        except RenderError as err:
            raise self._render_failure(system, err) from None
        self._system = system
        self._policy_created = self._token_secret_created = False
        self._created_uid = None
        self._start_deadline = time.monotonic() + self.start_timeout
        self.log.info(
            "%s: starting %s (choices %s) as pod %s, port %s",
            self._log_name, system.name, dict(self._selection.choices), self._pod_key, self.port,
        )

    async def _start(self):
        started = time.perf_counter()
        self._start_failed = False
        # This start replaces whatever an earlier failed start left; removing it now could
        # delete the pod this start is about to create.
        await self._cancel_removal_later()
        cleanup = self._cleanups.get(self._pod_key)
        if cleanup is not None and not cleanup.done():
            # A start cancelled just before (a stop clicked during it) is still removing its
            # objects, by name: they are this start's names too. Its deletes going on while
            # this start creates removed this start's Secret (then "refused to patch secrets: 404").
            self.log.info("%s: waiting for the previous start's cleanup", self._log_name)
            await asyncio.wait([cleanup])
        try:
            url = await super()._start()
        except BaseException as err:
            # Whatever went wrong, leave nothing behind: the user's next try starts clean.
            self._start_failed = True
            if isinstance(err, SpawnException) and err.reason == BUSY_REASON:
                self.log.error("%s: %s", self._log_name, err.detail)
            self.log.info("%s: start failed (%s), removing its objects", self._log_name, type(err).__name__)
            key, cleanups = self._pod_key, self._cleanups
            cleanup = cleanups[key] = asyncio.ensure_future(self._clean_up_failed_start())
            cleanup.add_done_callback(lambda done: cleanups.pop(key) if cleanups.get(key) is done else None)
            # Shielded: a cancelled start (its task cancelled again) still cleans up, in the background.
            await asyncio.shield(cleanup)
            raise self._start_failure(err) from None
        finally:
            self._start_deadline = None
        self.log.info(
            "%s: pod %s ready in %.0f ms", self._log_name, self._pod_key, (time.perf_counter() - started) * 1000
        )
        return url

    #: Failed starts' cleanups under way, by pod (see _start).
    _cleanups: ClassVar[dict[str, asyncio.Future]] = {}

    async def _clean_up_failed_start(self) -> None:
        """Remove a failed start's objects; never raises (logs, or hands the removal to later)."""
        try:
            await self._remove_objects(grace_seconds=0)
        except Exception as cleanup_err:
            away = _api_away(cleanup_err)
            if away is not None:
                self._remove_later(away)
            elif isinstance(cleanup_err, SpawnException):
                self.log.error("%s: cleanup after a failed start failed: %s", self._log_name, cleanup_err.log_message)
            else:
                self.log.exception("%s: cleanup after a failed start failed", self._log_name)

    def _start_failure(self, err: BaseException) -> BaseException:
        """What a failed start tells the user: Kubernetes' refusal in words, not a traceback."""
        if isinstance(err, UNREACHABLE_ERRORS):
            self.log.error("%s: the cluster's API is not reachable: %s", self._log_name, err)
            return SpawnException(UNREACHABLE_MESSAGE, reason="kubernetes-unreachable", status_code=503)
        if isinstance(err, ApiException):
            refused = _FORBIDDEN_ACTION.search(_api_message(err)) if err.status == 403 else None
            action = f"{refused.group(1)} {refused.group(2)}" if refused else "start the server"
            return self._api_failure(action, err)
        if isinstance(err, (asyncio.TimeoutError, TimeoutError)) and not isinstance(err, SpawnException):
            message = f"Your server could not be created in time: {err}"
            self.log.error("%s: %s", self._log_name, message)
            return SpawnException(message, reason="timeout", status_code=500)
        return err

    async def _make_create_pod_request(self, pod, request_timeout):
        """Create the NetworkPolicy and the token's Secret, then the pod (KubeSpawner retries
        this until it returns True).

        KubeSpawner's own version logs the whole pod, hub token included, on any refusal; here
        Kubernetes' refusal becomes a message for the user (quota, invalid pod, permissions).
        """
        companions = []
        if self.network_policy_enabled and not self._policy_created:
            companions.append(self._create_network_policy())
        if self.hub_token_secret and not self._token_secret_created:
            companions.append(self._create_token_secret(pod.metadata.labels))
        if companions:
            await self._create_companions(companions)
        name = pod.metadata.name
        try:
            created = await asyncio.wait_for(
                _unread(self.api.create_namespaced_pod, self.namespace, pod), request_timeout
            )
        except asyncio.TimeoutError:
            return False
        except ApiException as err:
            if err.status == 409:
                # A pod of the same name from an earlier run: remove it (and its objects), then retry.
                self.log.warning("%s: pod %s already exists, deleting it first", self._log_name, name)
                await self._remove_objects(grace_seconds=0)
                return False
            if err.status == 403 and "exceeded quota" in str(err.body):
                raise SpawnException(
                    f"Your namespace's resource quota does not allow this server: {_api_message(err)}",
                    reason="quota",
                ) from None
            if err.status == 422:
                raise SpawnException(f"Kubernetes rejected the pod: {_api_message(err)}", reason="invalid") from None
            raise self._api_failure("create pods", err) from None
        self._created_uid = json.loads(created)["metadata"]["uid"] if created else None
        if self.hub_token_secret and self._created_uid:
            await self._own_token_secret(name, self._created_uid)
        return True

    async def _create_companions(self, creates: list) -> None:
        """Create the pod's NetworkPolicy and token Secret side by side (neither needs the
        other; the pod needs both), within k8s_api_request_retry_timeout.

        Bounded: a hung API server (no answer, no refusal) held the start until start_timeout.
        Not by each request's k8s_api_request_timeout, as the pod's create is: in a burst a
        loaded API server answers after it, and a retry is a 409, a delete and a create more.
        If one fails, the other is cancelled and awaited, so that nothing is created after the
        failed start's cleanup.
        """
        tasks = [asyncio.ensure_future(create) for create in creates]
        try:
            done, pending = await asyncio.wait(tasks, timeout=self.k8s_api_request_retry_timeout,
                                               return_when=asyncio.FIRST_EXCEPTION)
            failed = [task for task in done if task.exception() is not None]
            if failed:
                raise failed[0].exception()
            if pending:
                raise _busy(f"the cluster's API did not create the server's NetworkPolicy and Secret "
                            f"within {self.k8s_api_request_retry_timeout} s")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for task in tasks:  # consumed: asyncio would log the ones no one read
                if not task.cancelled():
                    task.exception()

    @property
    def _token_secret_name(self) -> str:
        return f"{self.pod_name}-hub-token"

    async def _create_token_secret(self, labels: Optional[dict]) -> None:
        """The Secret the pod reads its hub token from (see `hub_token_secret`)."""
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self._token_secret_name, "namespace": self.namespace, "labels": dict(labels or {})},
            "type": "Opaque",
            "stringData": {TOKEN_KEY: self.api_token},
        }
        try:
            await _unread(self.api.create_namespaced_secret, self.namespace, manifest)
        except ApiException as err:
            if err.status != 409:
                raise self._api_failure("create secrets", err) from None
            # Left over from a server whose pod was removed without it: replace it.
            await self._delete_token_secret()
            await _unread(self.api.create_namespaced_secret, self.namespace, manifest)
        self._token_secret_created = True

    async def _own_token_secret(self, pod_name: str, pod_uid: str) -> None:
        """Make the pod the Secret's owner: Kubernetes then deletes the Secret with the pod, even
        when something else than this spawner deletes the pod."""
        owner = {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}
        patch = [{"op": "add", "path": "/metadata/ownerReferences", "value": [owner]}]
        try:
            await _unread(self.api.patch_namespaced_secret, self._token_secret_name, self.namespace, patch)
        except ApiException as err:
            raise self._api_failure("patch secrets", err) from None

    async def _delete_token_secret(self) -> None:
        try:
            await _unread(self.api.delete_namespaced_secret, self._token_secret_name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise self._api_failure("delete secrets", err) from None

    @property
    def _networking_api(self):
        # On the same connection pool as KubeSpawner's client: a second pool doubled the
        # hub's connections to the API server in a burst.
        return shared_client("NetworkingV1Api", self.api.api_client)

    async def _create_network_policy(self) -> None:
        server = self._tycho_server
        system = self._system
        manifest = render_network_policy(system, server, self._template_env)
        net = self._networking_api
        try:
            await _unread(net.create_namespaced_network_policy, self.namespace, manifest)
        except ApiException as err:
            if err.status != 409:
                raise self._api_failure("create networkpolicies", err) from None
            # Left over from a server whose hub did not stop it: replace it.
            await _unread(net.delete_namespaced_network_policy, manifest["metadata"]["name"], self.namespace)
            await _unread(net.create_namespaced_network_policy, self.namespace, manifest)
        self._policy_created = True

    def pod_has_uid(self, pod):
        """KubeSpawner waits on this before its after-pod steps; inside a start it wakes on the watch."""
        if self._start_deadline is None:
            return super().pod_has_uid(pod)
        return self._wait_for(lambda: super(TychoSpawner, self).pod_has_uid(self._starting_pod()))

    def is_pod_running(self, pod):
        """Whether the pod is ready; inside a start, an awaitable that waits for it.

        KubeSpawner's start polls this with growing random waits. Returning an awaitable that
        resolves on the watch event turns that polling into waking (its retry loop awaits what
        it is given), and a pod that can never become ready ends the start at once with
        Kubernetes' reason instead of after `start_timeout`.
        """
        if self._start_deadline is None:
            return podstatus.assess(pod, self.fatal_waiting_reasons, self.unschedulable_is_fatal).state == podstatus.READY
        return self._wait_until_ready()

    async def _wait_for(self, check) -> bool:
        while not check():
            remaining = (self._start_deadline or time.monotonic()) - time.monotonic()
            if remaining <= 0:
                return False
            await self._changed(remaining)
        return True

    async def _wait_until_ready(self) -> bool:
        last = None
        mounts_check_at, mounts_pause = None, MOUNT_CHECK_SECONDS
        while True:
            verdict = podstatus.assess(self._starting_pod(), self.fatal_waiting_reasons, self.unschedulable_is_fatal)
            recheck = None
            if verdict.reason == podstatus.UNBOUND_CLAIM:
                verdict = await self._claims_verdict(verdict)
                recheck = CLAIM_CHECK_SECONDS
            elif (verdict.reason == podstatus.CONTAINERS_NOT_STARTED and podstatus.mounts_objects(self._starting_pod())
                  and "CreateContainerConfigError" in self.fatal_waiting_reasons):
                # Still no container after a moment: read the pod's events for a volume that
                # cannot be mounted, 1, 2, 4... 16 s apart (an image pull takes this path too).
                # Only for pods with such volumes: listing events is costly for the API server
                # (a scan of the namespace's), which a burst of plain servers must not pay.
                now = time.monotonic()
                if mounts_check_at is None:
                    mounts_check_at = now + mounts_pause
                elif now >= mounts_check_at:
                    verdict = await self._mounts_verdict(verdict)
                    mounts_pause = min(2 * mounts_pause, 16)
                    mounts_check_at = now + mounts_pause
                recheck = max(0.01, mounts_check_at - now)
            if verdict.state == podstatus.READY:
                return True
            if verdict.state == podstatus.FAILED:
                self.log.warning("%s: pod %s cannot start: %s%s", self._log_name, self._pod_key, verdict.message,
                                 f" (Kubernetes: {verdict.detail})" if verdict.detail else "")
                raise SpawnException(
                    f"Your server could not start: {verdict.message}",
                    reason=verdict.reason or "pod-failed",
                    status_code=500,
                )
            if verdict.message != last:
                self.log.debug("%s: %s", self._log_name, verdict.message)
                last = verdict.message
            remaining = self._start_deadline - time.monotonic()
            if remaining <= 0:
                raise SpawnException(
                    f"Your server did not start within {self.start_timeout} seconds (last state: {verdict.message}).",
                    reason="timeout",
                    status_code=500,
                )
            await self._changed(min(remaining, recheck) if recheck else remaining)

    async def _mounts_verdict(self, waiting: podstatus.Verdict) -> podstatus.Verdict:
        """The kubelet does not start the containers: say why if a volume's ConfigMap or Secret
        does not exist (its FailedMount events; the pod itself only says ContainerCreating)."""
        uid = _uid(self._starting_pod())
        try:
            events = await self.api.list_namespaced_event(self.namespace, field_selector=f"involvedObject.uid={uid}")
        except ApiException as err:
            self.log.debug("%s: cannot read the events of pod %s: %s", self._log_name, self._pod_key, err.reason)
            return waiting
        return podstatus.mount_verdict(e.to_dict() for e in events.items) or waiting

    async def _claims_verdict(self, waiting: podstatus.Verdict) -> podstatus.Verdict:
        """The scheduler waits for the pod's claims: say whether they are coming, and if not why."""
        pod = self._starting_pod() or {}
        names = [v["persistentVolumeClaim"]["claimName"] for v in (pod.get("spec") or {}).get("volumes") or []
                 if v.get("persistentVolumeClaim")]
        for name in names:
            try:
                claim = await self.api.read_namespaced_persistent_volume_claim(name, self.namespace)
            except ApiException as err:
                if err.status == 404:
                    return podstatus.Verdict(
                        podstatus.FAILED, f"the storage claim {name!r} does not exist", "ClaimNotFound"
                    )
                raise self._api_failure("read persistentvolumeclaims", err) from None
            if (claim.status and claim.status.phase) == "Bound":
                continue
            try:
                events = await self.api.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.uid={claim.metadata.uid}"
                )
            except ApiException as err:
                self.log.debug("%s: cannot read the events of claim %s: %s", self._log_name, name, err.reason)
                continue
            return podstatus.claim_verdict(name, [e.to_dict() for e in events.items])
        return waiting

    # ------------------------------------------------------------------ stop and state

    @property
    def _pod_key(self) -> str:
        return f"{self.namespace}/{self.pod_name}"

    def _current_pod(self) -> Optional[dict]:
        reflector = self.pod_reflector
        return reflector.pods.get(self._pod_key) if reflector else None

    def _starting_pod(self) -> Optional[dict]:
        """The pod this start created, as the cache has it. A pod of the same name from before
        (a leftover this start deleted, whose deletion the cache has not seen yet) must not pass
        for it: its address would become the server's."""
        pod = self._current_pod()
        if self._created_uid is not None and _uid(pod) != self._created_uid:
            return None
        return pod

    async def _changed(self, timeout: Optional[float]) -> bool:
        return await self.pod_reflector.changed(self._pod_key, timeout)

    def _render_failure(self, system: System, err: RenderError) -> SpawnException:
        self.log.error("%s: cannot render %s: %s", self._log_name, system.name, err)
        return SpawnException(f"The application {system.name!r} is misconfigured: {err}", reason="render")

    def _api_failure(self, action: str, err: ApiException) -> SpawnException:
        if err.status == 403:
            message = (
                f"The hub is not allowed to {action} in namespace {self.namespace!r}. "
                "Grant the hub's service account the Role from the tycho_spawner chart "
                "(tycho_spawner/rbac.py: pods, events, networkpolicies, and persistentvolumeclaims "
                "when users have a persistent home)."
            )
            self.log.error("%s: %s Kubernetes said: %s", self._log_name, message, _api_message(err))
            return SpawnException(message, reason="forbidden", status_code=500)
        if err.status in BUSY_STATUSES:
            # The API server's own timeout (504), overload (429) or a gateway in front of it
            # (503): nothing was refused, a later try may work. Logged by whoever gives up (a
            # failed start, once) or tries again (a stop, one warning): not once per try.
            return _busy(f"the cluster's API did not {action} in time: {err.status} {_api_message(err)}")
        message = f"Kubernetes refused to {action}: {err.status} {_api_message(err)}"
        self.log.error("%s: %s", self._log_name, message)
        return SpawnException(message, reason="kubernetes", status_code=500)

    async def _remove_objects(self, grace_seconds: int) -> None:
        """Delete the pod and its NetworkPolicy, and wait until the pod is gone.

        The user's claim stays: it holds their files (`delete_pvc` removes it with the user).
        """
        await self._start_watching_pods()
        self._policy_created = self._token_secret_created = False
        deleted = {_uid(self._current_pod())}
        await self._delete_pod(grace_seconds)
        if self.network_policy_enabled:
            try:
                await _unread(self._networking_api.delete_namespaced_network_policy, self.pod_name, self.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise self._api_failure("delete networkpolicies", err) from None
        if self.hub_token_secret:
            # Owned by the pod, but not if the hub stopped between creating both.
            await self._delete_token_secret()
        deadline = time.monotonic() + max(self.start_timeout, grace_seconds + 30)
        while (pod := self._current_pod()) is not None:
            if _uid(pod) not in deleted and not pod["metadata"].get("deletionTimestamp"):
                # Created after the delete above: a start cancelled (a stop clicked during it)
                # while its create request was on its way. Waiting for it would wait forever.
                self.log.info("%s: pod %s was created after its deletion (a start interrupted), deleting it",
                              self._log_name, self._pod_key)
                deleted.add(_uid(pod))
                await self._delete_pod(grace_seconds)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"pod {self._pod_key} was not removed in time")
            await self._changed(remaining)

    async def _delete_pod(self, grace_seconds: int) -> None:
        try:
            await _unread(
                self.api.delete_namespaced_pod, self.pod_name, self.namespace, grace_period_seconds=grace_seconds
            )
        except ApiException as err:
            if err.status != 404:
                raise self._api_failure("delete pods", err) from None

    #: Whether the last start failed: JupyterHub then stops the server at once, and the user is
    #: waiting for that to answer them (see stop).
    _start_failed = False
    #: Failed starts' objects being removed once the cluster's API answers (see _remove_later),
    #: by pod: JupyterHub discards a failed spawner, and the next start is another's.
    _removals_later: ClassVar[dict[str, asyncio.Future]] = {}

    async def stop(self, now: bool = False) -> None:
        grace = 0 if now else self.delete_grace_period
        if self._start_failed and self._pod_key in self._removals_later:
            return  # the failed start's objects are being removed once the API answers
        self.log.info("%s: stopping pod %s (grace %ss)", self._log_name, self._pod_key, grace)
        if self._start_failed:
            # The start's own cleanup has run; its user waits for this to be told why it failed.
            try:
                await asyncio.wait_for(self._remove_objects(grace_seconds=grace), max(self.start_timeout, grace + 30))
            except (SpawnException, *UNREACHABLE_ERRORS) as err:
                away = _api_away(err)
                if away is None:
                    raise
                self._remove_later(away)
            except (asyncio.TimeoutError, TimeoutError) as err:
                self.log.error("%s: pod %s not deleted in time (%s); this server's next start replaces it, "
                               "tycho gc removes it otherwise", self._log_name, self._pod_key, err)
            return
        # JupyterHub forgets the server when this returns, raising or not: an API server away
        # for a restart must not leave the pod running with nobody to stop it. Tried again
        # until it answers, for as long as a start may take (the server shows "pending stop").
        await self._remove_when_reachable(grace)

    def _remove_later(self, err: str) -> None:
        """A failed start's cleanup met an absent API server: the user is answered now, and its
        objects (a pod whose create the API server took just before it went away, a
        NetworkPolicy, a token Secret) are removed once it answers again, not left running."""
        self.log.warning("%s: the failed start's objects are not removed yet: %s; removing them once the "
                         "cluster's API answers", self._log_name, err)
        key, removals = self._pod_key, self._removals_later
        removal = removals[key] = asyncio.ensure_future(self._remove_when_reachable(0, error=err))
        removal.add_done_callback(lambda done: removals.pop(key) if removals.get(key) is done else None)

    async def _cancel_removal_later(self) -> None:
        removal = self._removals_later.pop(self._pod_key, None)
        if removal is not None and not removal.done():
            self.log.info("%s: this start replaces what a failed start left", self._log_name)
            removal.cancel()
            await asyncio.wait([removal])  # its requests are done before this start's begin

    async def _remove_when_reachable(self, grace: int, error: Optional[str] = None) -> None:
        """Remove the server's objects, trying again (0.5-5 s apart, one warning) while the
        cluster's API is not reachable, does not answer or answers "not now" (429, 503, 504),
        for as long as a start may take."""
        limit = max(self.start_timeout, grace + 30)
        deadline, pause, warned = time.monotonic() + limit, 0.5, error is not None
        while True:
            try:
                # Bounded: a hung API server (no answer, no refusal) would hold this for good.
                await asyncio.wait_for(self._remove_objects(grace_seconds=grace), deadline - time.monotonic())
                break
            except (SpawnException, *UNREACHABLE_ERRORS) as err:  # first: aiohttp's timeouts are both
                error = _api_away(err)
                if error is None:  # a refusal (403...): trying again changes nothing
                    raise
                if not warned:
                    self.log.warning("%s: pod %s not deleted yet: %s; trying again for up to %s s",
                                     self._log_name, self._pod_key, error, limit)
                    warned = True
            except (asyncio.TimeoutError, TimeoutError) as err:  # this limit, or _remove_objects' own
                error = str(err) or "the cluster's API did not answer"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.log.error("%s: pod %s not deleted within %s s (%s); this server's next start replaces "
                               "it, tycho gc removes it otherwise", self._log_name, self._pod_key, limit, error)
                return
            await asyncio.sleep(min(pause, remaining))
            pause = min(2 * pause, 5)
        if error is not None:
            self.log.info("%s: pod %s deleted once the cluster's API answered", self._log_name, self._pod_key)

    async def poll(self) -> Optional[int]:
        try:
            await self._start_watching_pods()
        except UNREACHABLE_ERRORS as err:
            # Unknown is not stopped: a server is not given up because the API server is away.
            self.log.warning("%s: cannot poll, the cluster's API is not reachable (%s); taking the "
                             "server as running", self._log_name, err)
            return None
        pod = self._current_pod()
        code = podstatus.exit_status(pod)
        if code is None and self._check_pending and pod is not None and not self._start_recorded:
            code = await self._finish_interrupted_start()
        if code is not None and pod is not None and self.delete_stopped_pods:
            self.log.info("%s: pod %s stopped with exit code %s, removing it", self._log_name, self._pod_key, code)
            await self.stop(now=True)
        return code

    async def _finish_interrupted_start(self) -> Optional[int]:
        """At hub start, a pod with no recorded state is what a start cut short left (the hub
        was killed mid-spawn; JupyterHub records a spawner's state once its start returns): let
        that start finish, as it would have. ``None`` once the pod is ready (JupyterHub then
        asks `get_url` where it runs); an exit code, after one log line
        with Kubernetes' reason, if it can never be ready: JupyterHub then stops the server and
        the user may start again at once, instead of a "pending check" until `http_timeout`.
        """
        pod = self._current_pod()
        created = podstatus.age_seconds(pod)
        deadline = time.monotonic() + max(0.0, self.start_timeout - created)
        while True:
            verdict = podstatus.assess(self._current_pod(), self.fatal_waiting_reasons, self.unschedulable_is_fatal)
            if verdict.state == podstatus.READY:
                self.log.info("%s: pod %s, started before the hub restarted, is ready", self._log_name, self._pod_key)
                return None
            remaining = deadline - time.monotonic()
            if verdict.state in (podstatus.FAILED, podstatus.MISSING) or remaining <= 0:
                why = verdict.message if remaining > 0 else f"not ready within {self.start_timeout} seconds ({verdict.message})"
                self.log.warning("%s: pod %s, started before the hub restarted, cannot start: %s%s; removing it",
                                 self._log_name, self._pod_key, why,
                                 f" (Kubernetes: {verdict.detail})" if verdict.detail else "")
                return 1
            await self._changed(remaining)

    async def get_url(self):
        """Where the server's pod answers, read off the pod.

        JupyterHub asks this at its start for every server it finds running: one whose start was
        cut short by a killed hub has only the placeholder address recorded before the spawn
        (a random port), and probing that for `http_timeout` ends with its pod deleted.
        """
        pod = self._current_pod() if self.pod_reflector else None
        port = served_port(pod)
        if pod is None or port is None or not (pod.get("status") or {}).get("podIP"):
            return await super().get_url()
        self.port = port
        return self._get_pod_url(pod)

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
                except (ApiException, *UNREACHABLE_ERRORS) as err:
                    self.log.debug("%s: cannot read events: %s", self._log_name, getattr(err, "reason", err))
                    items = []
                for event in items if self.events_enabled else ():
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

    #: Whether the hub holds this server's state from a start that returned (see poll).
    _start_recorded = False

    def load_state(self, state):
        super().load_state(state)
        saved = state.get("tycho") if state else None
        self._start_recorded = bool(saved)
        if saved:
            try:
                self._selection = self.tycho_catalog.select(saved)
            except OptionsError:
                # The profile left the catalog since: the running pod is still found by name.
                self._selection = None

    def clear_state(self):
        super().clear_state()
        self._selection = None
        self._start_recorded = False


def _uid(pod: Optional[dict]) -> Optional[str]:
    return ((pod or {}).get("metadata") or {}).get("uid")


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


async def _unread(method: Any, *args: Any, **kwargs: Any) -> Optional[bytes]:
    """Call a create, patch or delete without building model objects from its answer (their
    timestamps' parsing was a fifth of a start's CPU): the raw JSON body is returned, for the
    one field a caller may need. A refusal still raises ApiException, as the client does when
    it reads the answer itself."""
    response = await method(*args, _preload_content=False, **kwargs)
    if not isinstance(response, ClientResponse):  # a client that preloads anyway
        return None
    try:
        body = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=RESTResponse(response, body))
    return body


class _JSONResponse:
    """What the Kubernetes client's ``deserialize`` reads: a response body."""

    def __init__(self, obj: Any):
        self.data = json.dumps(obj)


#: What each logger was told already: the hub and its config file may both run the check.
_REPORTED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _check_at_hub_start() -> None:
    """When JupyterHub loads this class by name (zero-to-jupyterhub's `spawner_class` string),
    check the catalog and log the replaced settings as the hub starts.

    The class is imported while JupyterHub applies its configuration, before it has merged the
    rest into `app.config`: the check runs on the hub's event loop right after. A
    `jupyterhub_config.py` that imports this module itself calls `TychoSpawner.check_config(c)`
    at its end (each note is logged once either way).
    """
    hub_app = sys.modules.get("jupyterhub.app")  # only a hub has it loaded; importing it costs 40 MiB
    JupyterHub = getattr(hub_app, "JupyterHub", None)
    if JupyterHub is None or not JupyterHub.initialized():
        return

    def check() -> None:
        app = JupyterHub.instance()
        configured = app.config.get("JupyterHub", {}).get("spawner_class")
        name = configured if isinstance(configured, str) else getattr(configured, "__name__", "")
        if isinstance(name, str) and name.rsplit(".", 1)[-1] == "TychoSpawner":
            TychoSpawner.check_config(app.config, log=app.log)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        check()
    else:
        # SystemExit from a callback leaves the loop, so a broken catalog still stops the hub.
        loop.call_soon(check)


#: What a user is told when the hub cannot talk to Kubernetes at all (a 503: it is temporary).
UNREACHABLE_MESSAGE = "The cluster's API is not reachable; try again in a minute."

#: What a user is told when the API server answers that it could not do the request in time
#: (its own timeout, overload, a gateway in front of it): a 503, as it is temporary too.
BUSY_MESSAGE = "The cluster's API did not answer in time; try again in a minute."

#: The SpawnException reason of that answer: a start gives up on it, a stop or a failed
#: start's cleanup tries again later (see _busy).
BUSY_REASON = "kubernetes-busy"

#: Answers of the API server that say "not now" rather than "no".
BUSY_STATUSES = frozenset({429, 503, 504})

#: What the API server not being reachable at all raises (refused, reset, closed), rather than
#: an answer: aiohttp's connection errors are no ApiException.
UNREACHABLE_ERRORS = (ClientConnectionError, ConnectionError)


def _api_away(err: BaseException) -> Optional[str]:
    """Why the cluster's API is away for now (not reachable, or it answered "not now"), in
    words for the log; None for anything else. Removals try again on it; other errors are a
    refusal that trying again would not change."""
    if isinstance(err, UNREACHABLE_ERRORS):
        return f"the cluster's API is not reachable ({err})"
    if isinstance(err, SpawnException) and err.reason == BUSY_REASON:
        return err.detail
    return None


def _busy(detail: str) -> SpawnException:
    """The cluster's API did not answer in time: the user reads BUSY_MESSAGE (HTTP 503), the
    log gets ``detail`` (the exception's ``detail``).

    JupyterHub 6's progress events show an exception's ``jupyterhub_message`` if it has one,
    else ``str()`` of it, which for its SpawnException is the log message.
    """
    err = SpawnException(BUSY_MESSAGE, reason=BUSY_REASON, status_code=503)
    err.jupyterhub_message = BUSY_MESSAGE
    # Not the log_message: JupyterHub 5 answers a start's POST with that.
    err.detail = detail
    return err


def _api_message(err: ApiException) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError):
        return str(err.reason)


_check_at_hub_start()
