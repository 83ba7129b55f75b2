"""Issue 13's site policy through a real hub, its proxy and the test bed, as users meet it.

- Access: a group made through the hub's REST API opens an entry to its members only; others
  neither see it on the form (Chromium) nor can start it over the API (refused exactly as an
  entry that does not exist, 400, nothing created).
- Scheduling: the GPU entry lands on the test bed's GPU node (`gpu_node`: two nvidia.com/gpu,
  tainted), the others never do; asking more GPUs than any node has fails within seconds with
  the scheduler's reason in words.
- Secrets: a start whose Secret is missing fails within seconds naming it; once the Secret
  exists the app reads its value (which never passed the hub). The same for a volume from a
  ConfigMap, which a kubelet reports only in FailedMount events.
- A typed image outside the admin's pattern is a 400 before anything exists.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest
import requests
from jupyterhub.tests.utils import api_request, public_host, public_url
from kubernetes import client
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.browser import chromium, log_in

from .conftest import wait_for_spawn
from .test_lifecycle import _objects, _start, _stop, _wait_gone

pytestmark = pytest.mark.cluster

GROUP = "course-students"


async def _new_user(hub, name):
    r = await api_request(hub, "users", name, method="post")
    assert r.status_code == 201, r.text
    return hub.users[name]


async def _halt(hub, user, server=""):
    spawner = user.spawners[server]
    await _stop(hub, user.name, server)
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)


def _cards_seen_by(url: str, name: str) -> list[str]:
    """Log in with Chromium and list the entries the spawn form shows."""
    browser = chromium()
    try:
        wait = log_in(browser, url, name)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".tycho-card")))
        return [c.get_attribute("data-profile") for c in browser.find_elements(By.CSS_SELECTOR, ".tycho-card")]
    finally:
        browser.quit()


async def test_an_entry_for_a_group_is_offered_and_started_for_its_members_only(hub, control_plane):
    member, other = await _new_user(hub, "ada-course"), await _new_user(hub, "bo-course")
    r = await api_request(hub, "groups", GROUP, method="post")
    assert r.status_code == 201, r.text
    r = await api_request(hub, "groups", GROUP, "users", method="post", data=json.dumps({"users": [member.name]}))
    assert r.status_code == 200, r.text

    spawn_page = public_url(hub, path="hub/spawn")
    seen_by_member = await asyncio.to_thread(_cards_seen_by, spawn_page, member.name)
    seen_by_other = await asyncio.to_thread(_cards_seen_by, spawn_page, other.name)
    assert "course-only" in seen_by_member and "base" in seen_by_member, seen_by_member
    assert "course-only" not in seen_by_other and "base" in seen_by_other, seen_by_other

    # The API: the forbidden entry and an entry that does not exist get the same answer.
    refused = await _start(hub, other.name, "", {"profile": "course-only"})
    unknown = await _start(hub, other.name, "", {"profile": "no-such-entry"})
    assert refused.status_code == unknown.status_code == 400
    assert refused.json()["message"] == unknown.json()["message"].replace("no-such-entry", "course-only")
    assert "course-only" not in unknown.json()["message"]
    assert _objects(control_plane, hub, other.spawners[""]) == []

    r = await _start(hub, member.name, "", {"profile": "course-only"})
    assert r.status_code in (201, 202), r.text
    spawner = await wait_for_spawn(hub, member, "")
    answer = await asyncio.to_thread(requests.get, public_host(hub) + spawner.server.base_url, timeout=30)
    assert answer.status_code == 200
    # Leaving the group closes the entry for the next start.
    r = await api_request(hub, "groups", GROUP, "users", method="delete", data=json.dumps({"users": [member.name]}))
    assert r.status_code == 200, r.text
    await _halt(hub, member)
    again = await _start(hub, member.name, "", {"profile": "course-only"})
    assert again.status_code == 400, again.text


async def _failure(hub, user, response) -> str:
    """What the user is told of a failed start: in the POST's answer when it failed before the
    hub's slow-spawn timeout, else in the spawn's outcome."""
    if response.status_code == 500:
        return response.json()["message"]
    assert response.status_code in (201, 202), response.text
    with pytest.raises(Exception) as failure:
        await wait_for_spawn(hub, user, "")
    return str(failure.value)


def _node_of(control_plane, spawner) -> str:
    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
    return pod.spec.node_name


async def test_the_gpu_entry_lands_on_the_gpu_node_and_others_do_not(hub, control_plane, gpu_node):
    user = await _new_user(hub, "gpu-user")
    r = await _start(hub, user.name, "", {"profile": "gpu-echo"})
    assert r.status_code in (201, 202), r.text
    spawner = await wait_for_spawn(hub, user, "")
    assert _node_of(control_plane, spawner) == "tycho-node-gpu"
    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    await _halt(hub, user)

    r = await _start(hub, user.name, "plain", {"profile": "crashes"})
    assert r.status_code in (201, 202), r.text
    plain = await wait_for_spawn(hub, user, "plain")
    assert _node_of(control_plane, plain) == "tycho-node-1"
    await _halt(hub, user, "plain")


async def test_more_gpus_than_any_node_has_fails_at_once_saying_why(hub, control_plane, gpu_node):
    user = await _new_user(hub, "gpu-greedy")
    spawner = user.spawners[""]
    began = time.monotonic()
    r = await _start(hub, user.name, "", {"profile": "gpu-echo", "choices": {"gpus": "three"}})
    message = await _failure(hub, user, r)
    elapsed = time.monotonic() - began
    assert "nvidia.com/gpu" in message and "no node" in message.lower(), message
    assert elapsed < 30, elapsed  # start_timeout is 120 s: the scheduler's answer ended it
    assert await _wait_gone(control_plane, hub, spawner) == []


async def test_a_missing_secret_fails_naming_it_and_once_made_the_app_reads_it(hub, control_plane, hub_namespace):
    user = await _new_user(hub, "secret-user")
    spawner = user.spawners[""]
    began = time.monotonic()
    r = await _start(hub, user.name, "", {"profile": "needs-secret"})
    message = await _failure(hub, user, r)
    assert "tycho-test-db" in message, message
    assert time.monotonic() - began < 30
    assert await _wait_gone(control_plane, hub, spawner) == []

    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_secret(hub_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name="tycho-test-db"), string_data={"password": "s3cret-of-the-db"}))
    try:
        r = await _start(hub, user.name, "", {"profile": "needs-secret"})
        assert r.status_code in (201, 202), r.text
        spawner = await wait_for_spawn(hub, user, "")
        answer = await asyncio.to_thread(requests.get, public_host(hub) + spawner.server.base_url, timeout=30)
        assert answer.json() == {"DB_PASSWORD": "s3cret-of-the-db"}
        pod = core.read_namespaced_pod(spawner.pod_name, spawner.namespace)
        assert "s3cret-of-the-db" not in json.dumps(client.ApiClient().sanitize_for_serialization(pod))
        await _halt(hub, user)
    finally:
        core.delete_namespaced_secret("tycho-test-db", hub_namespace)


async def test_a_volume_from_a_missing_config_map_fails_naming_it_and_once_made_the_app_reads_it(
        hub, control_plane, hub_namespace):
    user = await _new_user(hub, "settings-user")
    spawner = user.spawners[""]
    began = time.monotonic()
    r = await _start(hub, user.name, "", {"profile": "mounts-settings"})
    message = await _failure(hub, user, r)
    elapsed = time.monotonic() - began
    # The kubelet only says so in FailedMount events (the pod waits in ContainerCreating).
    assert "ConfigMap 'tycho-test-settings' of volume 'settings' does not exist" in message, message
    assert elapsed < 15, elapsed  # start_timeout is 120 s
    assert await _wait_gone(control_plane, hub, spawner) == []

    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_config_map(hub_namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="tycho-test-settings"), data={"motd": "welcome to the course"}))
    try:
        r = await _start(hub, user.name, "", {"profile": "mounts-settings"})
        assert r.status_code in (201, 202), r.text
        spawner = await wait_for_spawn(hub, user, "")
        url = public_host(hub) + spawner.server.base_url + "?read=/etc/site/motd"
        answer = await asyncio.to_thread(requests.get, url, timeout=30)
        assert "welcome to the course" in answer.text, answer.text
        await _halt(hub, user)
    finally:
        core.delete_namespaced_config_map("tycho-test-settings", hub_namespace)


async def test_a_typed_image_outside_the_pattern_is_refused_before_anything_exists(hub, control_plane):
    user = await _new_user(hub, "image-typer")
    for image in ("python:3.12", "python:3.11 --privileged", "evil.example/python:3.11"):
        r = await _start(hub, user.name, "", {"profile": "typed-image", "choices": {"image": image}})
        assert r.status_code == 400, (image, r.text)
        assert "is not offered for image" in r.json()["message"]
    assert _objects(control_plane, hub, user.spawners[""]) == []
    r = await _start(hub, user.name, "", {"profile": "typed-image", "choices": {"image": "python:3.11"}})
    assert r.status_code in (201, 202), r.text
    spawner = await wait_for_spawn(hub, user, "")
    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
    assert pod.spec.containers[0].image == "python:3.11"
    await _halt(hub, user)


async def test_a_shared_claim_is_read_only_and_each_user_has_a_folder_of_another(hub, control_plane, hub_namespace):
    """`volumes: {dataset: {claim, read_only}, mine: {claim, sub_path: people/{username}}}`:
    a user writes in their folder, everyone reads it through the read-only dataset, nobody
    writes there, and one user's folder is not another's."""
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_persistent_volume_claim(hub_namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="tycho-shared-data"),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                                resources=client.V1ResourceRequirements(requests={"storage": "1Gi"}))))
    ann, ben = await _new_user(hub, "data-ann"), await _new_user(hub, "data-ben")
    try:
        servers = {}
        for user in (ann, ben):
            r = await _start(hub, user.name, "", {"profile": "shared-data"})
            assert r.status_code in (201, 202), r.text
            servers[user.name] = await wait_for_spawn(hub, user, "")

        async def ask(user, **query):
            url = public_host(hub) + servers[user.name].server.base_url
            answer = await asyncio.to_thread(requests.get, url, params=query, timeout=30)
            return answer.json()

        wrote = await ask(ann, write="/mine/notes.txt", text="ann's notes")
        assert wrote.get("error") is None, wrote
        assert (await ask(ann, read="/data/people/data-ann/notes.txt"))["read"] == "ann's notes"
        assert (await ask(ben, read="/data/people/data-ann/notes.txt"))["read"] == "ann's notes"
        assert (await ask(ben, read="/mine/notes.txt"))["error"] == "No such file or directory"
        assert (await ask(ben, write="/data/people/data-ann/notes.txt", text="ben was here"))["error"] == \
            "Read-only file system"
        assert (await ask(ann, read="/mine/notes.txt"))["read"] == "ann's notes"
        pod = core.read_namespaced_pod(servers[ann.name].pod_name, hub_namespace)
        mounts = {m.name: m for m in pod.spec.containers[0].volume_mounts}
        assert (mounts["dataset"].read_only, mounts["mine"].sub_path) == (True, "people/data-ann")
    finally:
        for user in (ann, ben):
            if user.spawners[""].active:
                await _halt(hub, user)
        core.delete_namespaced_persistent_volume_claim("tycho-shared-data", hub_namespace)
