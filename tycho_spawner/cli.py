"""The ``tycho`` command: look at the catalog and its manifests without a hub or a cluster, and
remove servers' objects no hub record owns.

    tycho catalog [--catalog FILE ...]            list the offered applications and choices
    tycho render PROFILE [--user U] [--server S] [--set CHOICE=OPTION | --set dotted.key=VALUE]
                                                  print the manifests, like `helm template`
    tycho validate FILE [FILE ...]                check catalog files; exit 1 naming the bad key
    tycho images [FILE ...] [--alone] [--gate-image IMAGE] [--json | --helm-values]
                                                  every image the catalog can launch, one a line
                                                  (for pre-pullers and registry mirrors)
    tycho import-profiles VALUES.yaml             convert a z2jh singleuser.profileList (or a
                                                  KubeSpawner profile_list) to catalog entries
    tycho gc [--dry-run] [--namespace NS] [--selector LABELS] [--every SECONDS]
                                                  delete servers' pods and NetworkPolicies the
                                                  hub has no record of (never users' claims)

The client of a hub's Tycho API (the service at /services/tycho/):

    tycho login --hub URL [--token TOKEN]         check a hub token and keep it (~/.config/tycho/token)
    tycho launch PROFILE [--set CHOICE=OPTION ...] [--name NAME]
                                                  launch an app, wait until it is ready, print its URL
    tycho apps                                    your apps: id, state, entry, choices, URL
    tycho logs SERVER [--container C] [--tail N]  an app's last log lines (SERVER: its name, ~ the default)
    tycho stop SERVER                             stop an app and wait until it is gone
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Optional, Sequence

import yaml

from .catalog_files import (
    BUILTIN_CATALOG, YamlProblem, catalog_data, parse_yaml, read_catalog_file, read_yaml_file,
)
from .errors import CatalogError, OptionsError, RenderError
from .import_profiles import ProfileListError, import_profiles
from .profiles import merge, parse_catalog
from .render import Server, render_network_policy, render_pod, template_environment

# The default names of KubeSpawner 7 (pod_name_template "jupyter-{user_server}", safe slugs),
# so that `tycho render` shows the objects the spawner would create with default settings.
POD_NAME_TEMPLATE = "jupyter-{user_server}"
_SLUG_MAX = 48


def server_identity(username: str, servername: str, namespace: str) -> Server:
    """Names and labels KubeSpawner (default templates, 'safe' slugs) gives a user's server."""
    from kubespawner.slugs import is_valid_label, multi_slug, safe_slug

    safe_user = safe_slug(username, max_length=_SLUG_MAX)
    safe_server = safe_slug(servername, max_length=_SLUG_MAX) if servername else ""
    if len(safe_user) + len(safe_server) + 2 > _SLUG_MAX:
        user_server = multi_slug([username, servername], max_length=_SLUG_MAX)
    elif servername:
        user_server = f"{safe_user}--{safe_server}"
    else:
        user_server = safe_user
    labels = {
        "hub.jupyter.org/username": safe_slug(username, is_valid=is_valid_label),
        "app": "jupyterhub",
        "heritage": "jupyterhub",
        "app.kubernetes.io/name": "jupyterhub",
        "app.kubernetes.io/managed-by": "kubespawner",
        "app.kubernetes.io/component": "singleuser-server",
        "component": "singleuser-server",
        "hub.jupyter.org/servername": safe_slug(servername, is_valid=is_valid_label),
    }
    annotations = {"hub.jupyter.org/username": username}
    if servername:
        annotations["hub.jupyter.org/servername"] = servername
    return Server(
        name=POD_NAME_TEMPLATE.format(user_server=user_server),
        namespace=namespace,
        labels=tuple(labels.items()),
        annotations=tuple(annotations.items()),
    )


def _parse_sets(items: Sequence[str]) -> tuple[dict, dict]:
    choices: dict[str, str] = {}
    overrides: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OptionsError(f"--set {item!r}: expected KEY=VALUE")
        if "." in key:
            node = overrides
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            try:
                node[parts[-1]] = parse_yaml(value)
            except YamlProblem as err:
                raise OptionsError(f"--set {key}: the value {err}") from None
        else:
            choices[key] = value
    return choices, overrides


def _load(args) -> dict:
    return catalog_data(not args.no_builtin, args.catalog or [], {})


def cmd_catalog(args) -> int:
    catalog = parse_catalog(_load(args))
    for profile in catalog.profiles:
        mark = " (default)" if profile.default else ""
        print(f"{profile.key}{mark}: {profile.display_name} - {profile.description}")
        for choice in profile.choices:
            options = ", ".join(
                f"{o.key}{'*' if o.key == choice.default else ''}" for o in choice.options
            )
            print(f"    {choice.key}: {options}")
    return 0


def cmd_render(args) -> int:
    choices, overrides = _parse_sets(args.set or [])
    data = _load(args)
    if overrides:
        data = merge(data, {args.profile: overrides})
    catalog = parse_catalog(data)
    selection = catalog.select({"profile": args.profile, "choices": choices})
    server = server_identity(args.user, args.server, args.namespace)
    env = template_environment(args.templates)
    system = selection.system()
    base = site_pod(server, args.user, args.storage)
    objects = [render_pod(system, server, env, base), render_network_policy(system, server, env)]
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True))
    return 0


def site_pod(server, username: str, storage: str) -> Optional[dict]:
    """The part of KubeSpawner's pod a site's home storage makes, as this project's chart and
    zero-to-jupyterhub set it up (``dynamic``: a claim per user; ``static``: one claim, a folder
    per user), so `tycho render` shows where each app gets the user's files."""
    if storage == "none":
        return None
    from kubespawner.slugs import safe_slug

    if storage == "dynamic":
        volume = {"name": "home", "persistentVolumeClaim": {"claimName": f"claim-{safe_slug(username)}"}}
        mount = {"name": "home", "mountPath": server.home_mount_path}
    else:
        volume = {"name": "home", "persistentVolumeClaim": {"claimName": "home"}}
        mount = {"name": "home", "mountPath": server.home_mount_path, "subPath": username}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": server.name, "namespace": server.namespace},
        "spec": {"restartPolicy": "OnFailure", "volumes": [volume],
                 "containers": [{"name": "notebook", "volumeMounts": [mount]}]},
    }


def cmd_validate(args) -> int:
    status = 0
    for path in args.files:
        try:
            base = {} if args.alone else catalog_data(True, [], {})
            catalog = parse_catalog(merge(base, read_catalog_file(path)))
        except CatalogError as err:
            detail = err.message if err.path == str(path) else str(err)
            print(f"{path}: invalid: {detail}", file=sys.stderr)
            status = 1
        else:
            print(f"{path}: ok ({len(catalog.profiles)} applications)")
    return status


def default_gate_image() -> str:
    """The gate image a hub uses unless configured: TychoSpawner.gate_image's default, read
    from the class so that it cannot drift from what the spawner launches."""
    from .spawner import TychoSpawner

    return TychoSpawner.class_traits()["gate_image"].default_value


def _typed_images_notice(catalog) -> None:
    """On stderr: the entries whose image a user may type. Their defaults are listed; what a
    user types is not known beforehand, so no pre-puller can pull it (a first start of it pulls)."""
    from .catalog_images import typed_images

    typed = typed_images(catalog)
    if typed:
        print("tycho images: a user may type the image of these entries (only their defaults are listed; "
              "a pre-puller cannot pull the images users type):", file=sys.stderr)
        for entry in typed:
            print(f"  {entry.describe()}", file=sys.stderr)


def cmd_images(args) -> int:
    from .catalog_images import catalog_images

    # The catalog a hub with these catalog_files loads: the built-in one (unless --alone), then
    # each file in order. Problems are reported as `tycho validate` reports them.
    data: dict = {} if args.alone else catalog_data(True, [], {})
    for path in args.files:
        try:
            data = merge(data, read_catalog_file(path))
        except CatalogError as err:
            print(f"{path}: invalid: {err.message}", file=sys.stderr)
            return 1
    try:
        catalog = parse_catalog(data)
    except CatalogError as err:
        print(f"{', '.join(args.files) or 'catalog'}: invalid: {err}", file=sys.stderr)
        return 1
    if args.helm_values:
        # The chart pulls its own singleuser.gate.image: listing one here would be a second
        # place to keep it right.
        images = catalog_images(catalog, None)
        document = {"prePuller": {"images": [i.image for i in images]}}
        sources = (["the built-in catalog"] if not args.alone else []) + list(args.files)
        sys.stdout.write(f"# `tycho images --helm-values`, the catalog images of: {', '.join(sources)}. "
                         "The chart adds singleuser.gate.image.\n")
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
        _typed_images_notice(catalog)
        return 0
    gate = args.gate_image if args.gate_image is not None else default_gate_image()
    images = catalog_images(catalog, gate or None)
    if args.json:
        print(json.dumps([i.as_dict() for i in images], indent=2))
    else:
        for image in images:
            print(image.image)
    _typed_images_notice(catalog)
    return 0


def read_yaml(path: str):
    """The YAML document in ``path``, or a ProfileListError saying in one line why not."""
    try:
        return read_yaml_file(path)
    except YamlProblem as err:
        raise ProfileListError("", str(err)) from None


def cmd_import_profiles(args) -> int:
    builtin = read_catalog_file(BUILTIN_CATALOG)
    try:
        result = import_profiles(
            read_yaml(args.file), base_system=builtin["base"]["system"], builtin_keys=tuple(builtin)
        )
    except ProfileListError as err:
        print(f"tycho: {args.file}: {err}", file=sys.stderr)
        return 1
    for notice in result.notices:
        print(notice, file=sys.stderr)
    if not result.entries:
        print(f"tycho: {args.file}: no profile could be imported", file=sys.stderr)
        return 1
    document = result.document()
    # What `tycho validate` checks (the file merged over the built-in catalog) and what a hub
    # with builtin_catalog = False reads (the file alone).
    parse_catalog(merge(builtin, document["catalog"]))
    parse_catalog(document["catalog"])
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return 0


#: Where a pod finds its own namespace (KubeSpawner's default namespace comes from it too).
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace() -> str:
    """KubeSpawner's default: the namespace of the pod this runs in, else "default"."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def cmd_gc(args) -> int:
    from .gc import GcError, GcSettings, run

    url = args.hub_api_url or os.environ.get("JUPYTERHUB_API_URL")
    token = os.environ.get("JUPYTERHUB_API_TOKEN")
    problem = None
    if not url:
        problem = "no hub API URL: give --hub-api-url (e.g. http://127.0.0.1:8081/hub/api) or set JUPYTERHUB_API_URL"
    elif not token:
        problem = ("no hub token: set JUPYTERHUB_API_TOKEN to a token of the hub with the scopes list:users and "
                   "read:servers (a hub-managed service gets its own)")
    if problem:
        print(f"tycho: {problem}", file=sys.stderr)
        return 1
    settings = GcSettings(
        namespace=args.namespace or default_namespace(), hub_api_url=url, token=token, selector=args.selector,
        min_age=args.min_age, dry_run=args.dry_run, every=args.every,
    )
    if args.every is None:
        def say(line):
            print(line, flush=True)

        def error(line):
            print(f"tycho: {line}", file=sys.stderr, flush=True)
    else:
        # A service's lines go to the hub's log: timestamped as JupyterHub's own.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s.%(msecs)03d tycho-gc] %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        logger = logging.getLogger("tycho.gc")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        say, error = logger.info, logger.error
    try:
        return asyncio.run(run(settings, say, error))
    except GcError as err:
        error(str(err))
        return 1
    except KeyboardInterrupt:  # the hub stops its services with SIGINT
        return 0


def _seconds(minimum: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not value >= minimum or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum:g} seconds")
        return value
    return parse


# ------------------------------------------------------------------------- the API client


def cmd_login(args) -> int:
    import getpass

    from .api.client import Client, Login, normalise_hub, save_login

    hub = normalise_hub(args.hub)
    token = args.token or os.environ.get("TYCHO_TOKEN")
    if not token:
        if not sys.stdin.isatty():
            token = sys.stdin.readline().strip()
        else:
            print(f"A token from {hub}/hub/token", file=sys.stderr)
            token = getpass.getpass("Token: ").strip()
    if not token:
        print("tycho: no token given", file=sys.stderr)
        return 1
    user = Client(Login(hub, token)).whoami()
    path = save_login(Login(hub, token))
    print(f"Logged in to {hub} as {user.get('name')}; the token is kept in {path}")
    return 0


def _client():
    from .api.client import Client, load_login

    return Client(load_login())


def cmd_launch(args) -> int:
    choices, overrides = _parse_sets(args.set or [])
    if overrides:
        raise OptionsError(f"--set {next(iter(overrides))}...: a launch takes CHOICE=OPTION only "
                           "(the hub's catalog decides the rest)")
    client = _client()
    app = client.launch(args.profile, choices, args.name)
    server = app["id"]
    print(f"Launching {args.profile} as {server}...", file=sys.stderr, flush=True)
    if args.no_wait:
        print(f"{client.login.hub}{app['url']}")
        return 0
    app = client.wait(server, lambda a: a is None or a["state"] in ("ready", "stopped"), args.timeout)
    if app is None or app["state"] != "ready":
        why = (app or {}).get("message") or "the hub's log says why"
        print(f"tycho: {server} did not start: {why}", file=sys.stderr)
        return 1
    print(f"{client.login.hub}{app['url']}")
    return 0


def cmd_apps(args) -> int:
    apps = _client().apps()
    if args.json:
        print(json.dumps(apps, indent=2))
        return 0
    rows = [("ID", "STATE", "PROFILE", "CHOICES", "URL")] + [
        (a["id"], a["state"], a.get("profile") or "-",
         ",".join(f"{k}={v}" for k, v in sorted((a.get("choices") or {}).items())) or "-", a.get("url") or "-")
        for a in apps
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def cmd_logs(args) -> int:
    text = _client().logs(args.server, args.container, args.tail)
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    return 0


def cmd_stop(args) -> int:
    client = _client()
    client.stop(args.server)
    if not args.no_wait:
        client.wait(args.server, lambda a: a is None, args.timeout)
    print(f"Stopped {args.server}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tycho", description="Inspect the tycho_spawner catalog and its manifests.")
    sub = parser.add_subparsers(dest="command", required=True)

    def catalog_args(p):
        p.add_argument("--catalog", action="append", metavar="FILE",
                       help="YAML catalog file merged over the built-in catalog (repeatable)")
        p.add_argument("--no-builtin", action="store_true", help="do not start from the built-in catalog")

    p = sub.add_parser("catalog", help="list the applications of the catalog")
    catalog_args(p)
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("render", help="print the Kubernetes objects of one server as YAML")
    p.add_argument("profile", help="catalog key of the application")
    catalog_args(p)
    p.add_argument("--user", default="jovyan", help="user name (default: jovyan)")
    p.add_argument("--server", default="", help="named server (default: the user's default server)")
    p.add_argument("--namespace", default="default", help="namespace (default: default)")
    p.add_argument("--templates", metavar="DIR", help="directory of templates overriding the packaged ones")
    p.add_argument("--storage", choices=("dynamic", "static", "none"), default="dynamic",
                   help="the site's home storage, as the chart's singleuser.storage.type (default: dynamic, "
                        "a claim per user): shows where each app gets the user's files")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="CHOICE=OPTION picks an option; a dotted key (system.containers.x.image=...) "
                        "overrides the profile's catalog entry (repeatable)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("validate", help="check catalog files (merged over the built-in catalog)")
    p.add_argument("files", nargs="+", metavar="FILE", help="catalog files, merged in order over the built-in catalog")
    p.add_argument("--alone", action="store_true", help="check each file on its own, without the built-in catalog")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "images",
        help="print every image the catalog can launch, one a line (for pre-pullers and registry mirrors)",
        description="Print every image a user can launch from the catalog: each entry's containers with its "
                    "default choices, with each option alone and with combinations of options, and tycho-gate's "
                    "image when an entry is gated. The catalog is the built-in one with the FILEs merged over it "
                    "in order (a chart values file works: its 'catalog' key), as a hub with these catalog files "
                    "loads it; a broken catalog is reported as `tycho validate` reports it (exit 1).",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="catalog files merged in order over the built-in catalog")
    p.add_argument("--alone", action="store_true", help="without the built-in catalog (builtin_catalog = False)")
    p.add_argument("--gate-image", metavar="IMAGE",
                   help="tycho-gate's image, as the hub's TychoSpawner.gate_image (default: its default); "
                        "'' leaves it out")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print a JSON list: each image with where it comes from (entry, container, options; "
                          "user_typed: {pattern} when a user may type that container's image instead)")
    out.add_argument("--helm-values", action="store_true",
                     help="print a values file for the chart's pre-puller (prePuller.images; the chart adds "
                          "singleuser.gate.image itself)")
    p.set_defaults(func=cmd_images)

    p = sub.add_parser(
        "import-profiles",
        help="print catalog entries for a zero-to-jupyterhub singleuser.profileList (or a KubeSpawner "
             "profile_list); what cannot be carried over is listed on stderr",
    )
    p.add_argument("file", metavar="VALUES.yaml",
                   help="a z2jh values file, a YAML list of profiles, or a mapping with a profile_list key")
    p.set_defaults(func=cmd_import_profiles)

    p = sub.add_parser(
        "gc",
        help="delete the pods and NetworkPolicies of servers the hub has no record of (its database lost or "
             "restored from an old backup); users' claims are never touched",
        description="Delete the pods and NetworkPolicies of servers the hub has no record of, one line each. "
                    "Only objects TychoSpawner made (label tycho-spawner/server) matching --selector are "
                    "considered; users' claims never. The hub is reached at JUPYTERHUB_API_URL with "
                    "JUPYTERHUB_API_TOKEN (scopes list:users and read:servers), Kubernetes as the spawner "
                    "reaches it (in-cluster, else the kube context).",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted, delete nothing")
    p.add_argument("--namespace", help="namespace of the hub's servers (default: the pod's own namespace, "
                                       "else default)")
    p.add_argument("--selector", default="", metavar="LABELS",
                   help="label selector naming this hub's servers, e.g. app.kubernetes.io/instance=tycho: "
                        "required when other hubs' servers share the namespace (gc refuses when it sees them)")
    p.add_argument("--hub-api-url", metavar="URL", help="the hub's API (default: $JUPYTERHUB_API_URL)")
    p.add_argument("--min-age", type=_seconds(0), default=60.0, metavar="SECONDS",
                   help="leave objects younger than this for a later run (default: 60)")
    p.add_argument("--every", type=_seconds(1), metavar="SECONDS",
                   help="run as a hub-managed service: at once, then every SECONDS, until the hub stops")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("login", help="check a hub token and keep it for the other API commands",
                       description="Check a token at the hub (and that its Tycho API answers) and keep it in "
                                   "$XDG_CONFIG_HOME/tycho/token (default ~/.config/tycho/token, mode 600), the "
                                   "hub's URL beside it. TYCHO_HUB and TYCHO_TOKEN override the kept login.")
    p.add_argument("--hub", required=True, metavar="URL", help="the hub's address, e.g. https://hub.example.org")
    p.add_argument("--token", metavar="TOKEN",
                   help="a token from the hub's token page (default: $TYCHO_TOKEN, else asked for, or one line "
                        "on stdin)")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("launch", help="launch an app through the hub's Tycho API, wait until it is ready and "
                                      "print its URL")
    p.add_argument("profile", metavar="PROFILE", help="catalog key of the application (see the hub's /catalog)")
    p.add_argument("--set", action="append", metavar="CHOICE=OPTION", help="pick an option (repeatable)")
    p.add_argument("--name", default="", help="a named server (default: your default server)")
    p.add_argument("--timeout", type=_seconds(1), default=600.0, metavar="SECONDS",
                   help="how long to wait for it to be ready (default: 600)")
    p.add_argument("--no-wait", action="store_true", help="print the URL at once, without waiting")
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("apps", help="list your apps at the hub: id, state, entry, choices, URL")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.set_defaults(func=cmd_apps)

    p = sub.add_parser("logs", help="print an app's last log lines")
    p.add_argument("server", metavar="SERVER", help="the app's id: its server name, or ~ for the default server")
    p.add_argument("--container", help="which container (default: the one serving the app)")
    p.add_argument("--tail", type=_positive_int, default=100, metavar="N", help="how many lines (default: 100)")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help="stop an app and wait until it is gone")
    p.add_argument("server", metavar="SERVER", help="the app's id: its server name, or ~ for the default server")
    p.add_argument("--timeout", type=_seconds(1), default=300.0, metavar="SECONDS",
                   help="how long to wait for it to stop (default: 300)")
    p.add_argument("--no-wait", action="store_true", help="return once the hub has been asked")
    p.set_defaults(func=cmd_stop)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CatalogError, OptionsError, RenderError) as err:
        print(f"tycho: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # the API client's failures, said in one line
        from .api.client import ClientError

        if not isinstance(err, ClientError):
            raise
        print(f"tycho: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
