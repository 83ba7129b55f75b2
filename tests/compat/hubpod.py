"""Inside a private mount (and network) namespace: the files of a zero-to-jupyterhub hub pod.

Run by ``tests/compat/z2jh.py`` as
``unshare --mount --net --propagation private -- PYTHON hubpod.py SPEC.json``, with the hub
container's environment. It puts a tmpfs over ``/usr/local/etc`` (seen by this process only;
the host's directory is never written) and bind-mounts, read-only, the hub pod's ConfigMap and
Secret files where the pod's ``volumeMounts`` put them, then either

* ``"action": "config"``: loads z2jh's ``/usr/local/etc/jupyterhub/jupyterhub_config.py`` the
  way ``jupyterhub --config`` does (traitlets' ``PyFileConfigLoader``) and writes the resulting
  ``Config`` as JSON to ``spec["output"]``; or
* ``"action": "exec"``: replaces itself with ``spec["argv"]`` (the hub container's command).

The network namespace has only a loopback interface: nothing the hub's configuration or the
hub itself tries to reach (its proxy at ``proxy-api``, DNS) leaves this process's namespace.

JSON of the config: Kubernetes client models (z2jh's cloud-metadata init container is a
``kubernetes_asyncio`` ``V1Container``) become camelCase Kubernetes JSON, sets become lists,
traitlets' ``LazyConfigValue`` (``c.X.y.append(...)`` on an unset trait) becomes
``{"$lazy": ...}``, and callables (hooks set in ``hub.extraConfig``) become
``{"$callable": "module:qualname"}``: they must be importable (defined in a module, as a hub
image would ship them), which this script checks. Standard library plus what the hub's config
needs only: this file runs in whichever Python runs the tests.
"""
from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys

ETC = "/usr/local/etc"


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def set_up_mounts(mounts: list) -> None:
    """tmpfs over /usr/local/etc, then each (source, target, kind) bind-mounted read-only."""
    if not os.path.isdir(ETC):
        sys.exit(f"hubpod: {ETC} does not exist on this machine (Debian's base-files creates it)")
    _run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", ETC)
    for source, target, kind in mounts:
        if not target.startswith(ETC + "/"):
            sys.exit(f"hubpod: refusing a mount outside {ETC}: {target}")
        if kind == "dir":
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        _run("mount", "--bind", source, target)
        _run("mount", "-o", "remount,bind,ro", target)


def loopback_up() -> None:
    _run("ip", "link", "set", "lo", "up")


def _k8s_json(obj):
    """A Kubernetes client model as the API's camelCase JSON (the client's own serializer)."""
    import asyncio

    module = type(obj).__module__
    if module.startswith("kubernetes_asyncio"):
        from kubernetes_asyncio.client import ApiClient

        async def convert():
            async with ApiClient() as api:
                return api.sanitize_for_serialization(obj)

        return asyncio.run(convert())
    from kubernetes.client import ApiClient as SyncApiClient

    return SyncApiClient().sanitize_for_serialization(obj)


def _callable_ref(value, path: str) -> dict:
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    found = None
    if module and qualname and "<" not in qualname:
        try:
            found = importlib.import_module(module)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError):
            found = None
    if found is not value:
        raise TypeError(
            f"{path}: the callable {value!r} cannot leave the hub's process: define it in an "
            "importable module (a hub image ships hooks as a package) and import it in hub.extraConfig"
        )
    return {"$callable": f"{module}:{qualname}"}


def to_json(value, path: str = "c"):
    from traitlets.config.loader import Config, LazyConfigValue

    if isinstance(value, (Config, dict)):
        return {str(k): to_json(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, LazyConfigValue):
        return {"$lazy": {k: to_json(v, f"{path}.{k}") for k, v in value.to_dict().items()}}
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        items = [to_json(v, f"{path}{{}}") for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(type(value), "openapi_types") and hasattr(type(value), "attribute_map"):
        return _k8s_json(value)
    if callable(value):
        return _callable_ref(value, path)
    raise TypeError(f"{path}: cannot carry {type(value).__name__} {value!r} out of the hub's process")


def load_config(output: str) -> None:
    from traitlets.config.loader import PyFileConfigLoader

    loader = PyFileConfigLoader("jupyterhub_config.py", path=f"{ETC}/jupyterhub")
    config = loader.load_config()
    with open(output, "w") as f:
        json.dump(to_json(config), f)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    set_up_mounts(spec["mounts"])
    loopback_up()
    os.chdir(spec["cwd"])
    if spec["action"] == "config":
        load_config(spec["output"])
    elif spec["action"] == "exec":
        argv = spec["argv"]
        sys.stdout.flush()
        os.execv(argv[0], argv)
    else:
        sys.exit(f"hubpod: unknown action {spec['action']!r}")


if __name__ == "__main__":
    main()
