"""``JupyterHub.internal_ssl`` with z2jh's configuration: the Secret (the server's certificates)
and the Service KubeSpawner makes exist for TychoSpawner's server, and its pod is KubeSpawner's
but for what the catalog entry owns.

At the spawner level, not through the hub: ``internal_ssl`` is hub-wide (the hub, its proxy
and every server speak HTTPS with certificates of the hub's CAs), and the session's hub does
not run with it. And with it KubeSpawner returns ``https://<pod>.<namespace>.svc.cluster.local``,
which the hub would then have to resolve and reach: the test bed has no cluster DNS and no
kube-proxy. So this test does what ``User.spawn`` does for such a server (the certificates from
the hub's CAs: ``create_certs`` / ``move_certs``; a token; the server record), then
``spawner.start()``, which runs up to the pod being ready.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from .cases import BASE, _ensure_orm_spawner, _raw, _wait, read_objects
from .podcompare import differences, not_owned
from .z2jh import load_hub_config

pytestmark = pytest.mark.cluster

#: JupyterHub's own trust layout for internal SSL (JupyterHub.init_internal_ssl).
TRUST = {
    "hub-ca": ["hub-ca", "notebooks-ca", "proxy-api-ca", "proxy-client-ca", "services-ca"],
    "proxy-api-ca": ["hub-ca", "services-ca", "notebooks-ca"],
    "proxy-client-ca": ["hub-ca", "notebooks-ca"],
    "notebooks-ca": ["hub-ca", "proxy-client-ca"],
    "services-ca": ["hub-ca", "proxy-api-ca"],
}


async def _start_with_internal_ssl(hub, user, spawner_class, config, options, certs, bundles, api_client):
    from jupyterhub import orm
    from jupyterhub.objects import Server
    from jupyterhub.utils import url_path_join
    from kubernetes import client

    _ensure_orm_spawner(user, "")
    user.spawners.pop("", None)
    spawner = user._new_spawner("", spawner_class=spawner_class, config=config, internal_ssl=True,
                                internal_trust_bundles=bundles, internal_certs_location=str(certs))
    user.spawners[""] = spawner
    orm_server = orm.Server(base_url=url_path_join(user.base_url, "/"))
    hub.db.add(orm_server)
    hub.db.commit()
    spawner.server = Server(orm_server=orm_server)
    spawner.api_token = user.new_api_token(note="compat internal_ssl")
    spawner.user_options = options
    if hasattr(spawner, "_run_apply_user_options"):
        await spawner._run_apply_user_options(options)
    spawner.cert_paths = await spawner.move_certs(await spawner.create_certs())
    started = {"spawner": spawner_class.__name__}
    try:
        started["url"] = await asyncio.wait_for(spawner.start(), 180)
        core = client.CoreV1Api(api_client)
        started["pod"] = await asyncio.to_thread(_raw, core.read_namespaced_pod, spawner.pod_name, spawner.namespace)
        started["objects"], _ = await asyncio.to_thread(read_objects, api_client, spawner.namespace, started["pod"])
        started["secret_name"] = spawner.secret_name
    finally:
        await spawner.stop(now=True)
        spawner.server = None
        hub.db.delete(orm_server)
        hub.db.commit()
    return started


async def test_internal_ssl_secret_and_service_exist(hub, control_plane, node_agent, user_scheduler, tmp_path):
    from certipy import Certipy
    from jupyterhub.tests.utils import add_user
    from kubernetes import client
    from kubespawner import KubeSpawner

    from tycho_spawner import TychoSpawner

    api_client = control_plane.api_client()
    core = client.CoreV1Api(api_client)
    namespace = control_plane.create_namespace(f"z2-ssl-{int(time.time() * 1000) % 10**8}")
    try:
        _wait(lambda: core.read_namespaced_service_account("default", namespace).secrets, "the default token")
        _, config, _ = await load_hub_config({}, namespace, tmp_path / "hub")
        certs = tmp_path / "internal-ssl"
        bundles = Certipy(store_dir=str(certs)).trust_from_graph(TRUST)
        add_user(hub.db, hub, name="z2-ssl")
        user = hub.users["z2-ssl"]
        tycho = await _start_with_internal_ssl(hub, user, TychoSpawner, config, BASE, certs, bundles, api_client)
        kube = await _start_with_internal_ssl(hub, user, KubeSpawner, config, {}, certs, bundles, api_client)
    finally:
        core.delete_namespace(namespace)

    pod_name = tycho["pod"]["metadata"]["name"]
    assert tycho["url"].startswith(f"https://{pod_name}.{namespace}.svc"), tycho["url"]
    assert kube["url"] == tycho["url"]
    expected = {("Secret", tycho["secret_name"]), ("Service", pod_name)}
    assert expected <= set(kube["objects"]), sorted(kube["objects"])
    assert set(kube["objects"]) <= set(tycho["objects"]), (sorted(kube["objects"]), sorted(tycho["objects"]))
    secret = tycho["objects"][("Secret", tycho["secret_name"])]
    assert {"ssl.key", "ssl.crt", "notebooks-ca_trust.crt"} <= set(secret["data"])
    # The certificates reach the server that answers the hub (here the Jupyter server itself).
    container = tycho["pod"]["spec"]["containers"][0]
    env = {v["name"]: v.get("value") for v in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["JUPYTERHUB_SSL_KEYFILE"].startswith(mounts["jupyterhub-internal-certs"])
    unexpected = not_owned(differences(kube["pod"], tycho["pod"]))
    assert not unexpected, "\n".join(str(d) for d in unexpected)
