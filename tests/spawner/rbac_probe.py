"""Run one TychoSpawner start/poll/stop in a process of its own, with the credentials in
$KUBECONFIG (a ServiceAccount's), and print what happened as JSON on the last line.

`rbac_probe.py NAMESPACE [dynamic]`: with `dynamic`, the user has a persistent home (a claim
per user, as the chart's default singleuser.storage.type), which KubeSpawner creates.

A separate process because KubeSpawner loads the kube config once per process.
"""
import asyncio
import json
import sys
from types import SimpleNamespace

from traitlets.config import Config

from tycho_spawner import TychoSpawner


async def main(namespace: str, storage: str = "none") -> dict:
    config = Config()
    config.TychoSpawner.namespace = namespace
    if storage == "dynamic":
        config.TychoSpawner.storage_pvc_ensure = True
        config.TychoSpawner.pvc_name_template = "claim-{username}"
        config.TychoSpawner.storage_capacity = "1Gi"
        config.TychoSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
        config.TychoSpawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan"}}
    config.TychoSpawner.start_timeout = 60
    config.TychoSpawner.builtin_catalog = False
    config.TychoSpawner.catalog = {
        "web": {
            "system": {
                "serve": {"container": "app", "port": 8888},
                "containers": {
                    "app": {
                        "image": "busybox:1.36",
                        "command": ["/bin/sh", "-c", "exec python3 -m http.server 8888"],
                        "ports": {"http": 8888},
                        "readiness": {"tcp": True},
                    }
                },
                "home": {"container": "app", "path": "/srv/home"},
            }
        }
    }
    user = SimpleNamespace(name="rbac-user", id=7, url="/user/rbac-user/", escaped_name="rbac-user")
    spawner = TychoSpawner(config=config, user=user, _mock=True)
    spawner.api_token = "not-a-real-token"
    result = {}
    try:
        TychoSpawner._apply_options(spawner, {"profile": "web"})
        result["url"] = await spawner.start()
        result["poll"] = await spawner.poll()
        await spawner.stop(now=True)
        result["stopped"] = True
        result["claim"] = spawner.pvc_name if storage == "dynamic" else None
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {getattr(err, 'message', '') or err}"
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:]))))
