"""The chart, running: its hub and proxy as pods on the test bed, used from a browser.

`helm install` (helm-python-sdk) of `helm/tycho-spawner` with `helm/testbed-values.yaml`, as
`bin/stage chart up` does, into the test bed's real API server (RBAC on), with real kube-proxy
(Services, the NodePort) and cluster DNS (Service names): the hub finds its proxy through the
proxy's Service, Kubernetes through its ServiceAccount, and serves users. The tests run in file
order on one release: install, use, upgrade, uninstall.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from kubernetes import client
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from tycho_testbed import service_network

from ..browser import chromium

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "helm"))
from testbed import Testbed  # noqa: E402  (helm/testbed.py: what bin/stage chart runs)

Testbed.__test__ = False  # a class named Test..., not a test

pytestmark = pytest.mark.cluster

TOKEN = secrets.token_hex(16)
#: On top of helm/testbed-values.yaml: a NodePort Kubernetes picks (a test bed of a developer
#: may hold 30080), and an API token for the tests' own calls to the hub.
VALUES = {
    "proxy": {"service": {"nodePort": None}},
    "hub": {"extraConfig": (
        f"c.JupyterHub.services.append({{'name': 'chart-test', 'api_token': {TOKEN!r}}})\n"
        "c.JupyterHub.load_roles.append({'name': 'chart-test', 'services': ['chart-test'],\n"
        "    'scopes': ['admin:users', 'admin:servers', 'read:hub', 'access:services!service=tycho']})\n"
    )},
}
#: How long a server may take to start here (an image "pulled" from the image table).
START_SECONDS = 120


@pytest.fixture(scope="module")
def bed(control_plane, node_agent):
    assert control_plane.status()["kube-proxy"]["running"], (
        "this test bed has no kube-proxy: the host's Service network belongs to the test bed in "
        f"{service_network.holder()} (one kube-proxy per host: another test bed is running)")
    bed = Testbed(control_plane.kubeconfig_path, namespace=f"chart-run-{os.getpid()}", release="tycho")
    started = time.monotonic()
    bed.up(VALUES)
    bed.wait_for_rollout(300)
    print(f"\nchart installed and rolled out in {time.monotonic() - started:.1f} s")
    yield bed
    bed.down(purge=True)
    client.CoreV1Api(control_plane.api_client()).delete_namespace(bed.namespace)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _api(bed: Testbed, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{bed.public_url()}/hub/api/{path}", timeout=30,
                            headers={"Authorization": f"token {TOKEN}"}, **kwargs)


def _pods(control_plane, bed: Testbed, selector: str) -> list:
    return client.CoreV1Api(control_plane.api_client()).list_namespaced_pod(bed.namespace, label_selector=selector).items


def _servers(bed: Testbed, user: str) -> dict:
    return _api(bed, "GET", f"users/{user}").json()["servers"]


def _start_in_browser(browser, url: str, profile: str) -> None:
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    wait.until(EC.element_to_be_clickable((By.ID, f"tycho_p_{profile}"))).click()
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()


def test_the_hub_and_proxy_roll_out_and_the_hub_reaches_its_proxy_through_its_service(control_plane, bed):
    (hub,) = _pods(control_plane, bed, "component=hub,app.kubernetes.io/instance=tycho")
    (proxy,) = _pods(control_plane, bed, "component=proxy,app.kubernetes.io/instance=tycho")
    assert hub.status.container_statuses[0].ready and proxy.status.container_statuses[0].ready
    # JupyterHub exits at start when its proxy's API does not answer: no restart, and the
    # routes the proxy holds are the hub's own (added through the tycho-proxy-api Service).
    assert hub.status.container_statuses[0].restart_count == 0
    secret = client.CoreV1Api(control_plane.api_client()).read_namespaced_secret("tycho-secret", bed.namespace).data
    proxy_token = base64.b64decode(secret["proxy.token"]).decode()
    # The hub adds its routes once its managed services (the Tycho API) answer, after its
    # health check (the readiness probe) already does.
    deadline = time.monotonic() + 60
    while True:
        routes = requests.get(f"http://{proxy.status.pod_ip}:8001/api/routes", timeout=10,
                              headers={"Authorization": f"token {proxy_token}"}).json()
        if routes.get("/", {}).get("hub") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert routes["/"]["hub"] is True and routes["/"]["target"] == "http://tycho-hub:8081", routes
    # This machine reaches the public NodePort; the proxy sends it to the hub's Service.
    assert requests.get(f"{bed.public_url()}/hub/health", timeout=10).status_code == 200
    assert requests.get(f"{bed.public_url('10.213.0.1')}/hub/login", timeout=10).status_code == 200


def test_a_browser_logs_in_and_starts_nginx_and_a_jupyter_stack_with_no_token(bed, browser):
    url = bed.public_url()
    browser.get(f"{url}/hub/login")
    wait = WebDriverWait(browser, 30)
    wait.until(EC.presence_of_element_located((By.NAME, "username"))).send_keys("alice")
    browser.find_element(By.NAME, "password").send_keys("anything")
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait.until(lambda b: urlsplit(b.current_url).path.startswith(("/hub/home", "/hub/spawn", "/hub/spawn-pending")))

    started = time.monotonic()
    _start_in_browser(browser, f"{url}/hub/spawn", "nginx")
    WebDriverWait(browser, START_SECONDS).until(
        lambda b: urlsplit(b.current_url).path == "/user/alice/" and "Nothing published yet" in b.page_source)
    print(f"\nnginx: from the form to the app in {time.monotonic() - started:.1f} s")
    assert "token" not in browser.current_url

    started = time.monotonic()
    _start_in_browser(browser, f"{url}/hub/spawn/alice/lab", "base")
    WebDriverWait(browser, START_SECONDS).until(
        lambda b: urlsplit(b.current_url).path.startswith("/user/alice/lab/lab") and "JupyterLab" in b.title)
    print(f"JupyterLab: from the form to the app in {time.monotonic() - started:.1f} s")
    assert "token" not in browser.current_url
    # The server's API answers the page's own requests as JupyterLab makes them (the hub's
    # OAuth cookie, and the _xsrf cookie's value in a header, which JupyterHub requires of
    # cookie-authenticated API requests).
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='));"
        "fetch('/user/alice/lab/api/status', {headers: {'X-XSRFToken': xsrf ? decodeURIComponent(xsrf.slice(6)) : ''}})"
        ".then(r => done(r.status), e => done(String(e)));")
    assert status == 200
    assert set(_servers(bed, "alice")) == {"", "lab"}


def test_the_tycho_api_runs_in_the_hub_pod_behind_the_proxy_and_is_in_the_services_menu(bed, browser):
    """The chart runs the Tycho API as a hub service: the proxy reaches it through the hub's
    Service (port tycho-api, admitted by the hub's NetworkPolicy) and a token's caller is served."""
    url = bed.public_url()
    headers = {"Authorization": f"token {TOKEN}"}
    r = requests.get(f"{url}/services/tycho/openapi.json", headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["openapi"] == "3.1.0"
    r = requests.get(f"{url}/services/tycho/catalog", headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert {"nginx", "base"} <= {e["key"] for e in r.json()["entries"]}
    # alice, logged in above, finds it in the hub's Services menu.
    browser.get(f"{url}/hub/home")
    assert browser.find_elements(By.XPATH, "//a[contains(@href, '/services/tycho/')]"), browser.page_source[-3000:]


def test_the_hub_spawns_as_its_service_account_with_only_the_charts_role(control_plane, bed):
    (hub,) = _pods(control_plane, bed, "component=hub,app.kubernetes.io/instance=tycho")
    assert hub.spec.service_account_name == "tycho-hub"
    assert not {e.name for e in hub.spec.containers[0].env or []} & {"KUBECONFIG"}
    rbac = client.RbacAuthorizationV1Api(control_plane.api_client())
    role = rbac.read_namespaced_role("tycho-hub", bed.namespace)
    original = control_plane.api_client().sanitize_for_serialization(role.rules)
    # Take `create` on pods away from the chart's Role: the hub's next spawn is refused by name.
    narrowed = [dict(r, verbs=[v for v in r["verbs"] if v != "create"]) if "pods" in r["resources"] else r
                for r in original]
    rbac.patch_namespaced_role("tycho-hub", bed.namespace, {"rules": narrowed})
    try:
        assert _api(bed, "POST", "users/bob").status_code == 201
        answer = _api(bed, "POST", "users/bob/server", json={"profile": "nginx"})
        message = answer.json().get("message", "") if answer.status_code >= 400 else _failure(bed, "bob")
        assert f"The hub is not allowed to create pods in namespace '{bed.namespace}'" in message, message
    finally:
        rbac.patch_namespaced_role("tycho-hub", bed.namespace, {"rules": original})
    assert _servers(bed, "bob") == {}


def _failure(bed: Testbed, user: str) -> str:
    with requests.get(f"{bed.public_url()}/hub/api/users/{user}/server/progress", stream=True, timeout=(10, 60),
                      headers={"Authorization": f"token {TOKEN}"}) as r:
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed") or event.get("ready"):
                    return event.get("message", "")
    return ""


#: A catalog entry the upgrades below add (a course's notebook), and one the schema takes but
#: the catalog refuses (no container), with the key the hub's log names.
COURSE = {"display_name": "Biology 101", "system": {
    "serve": {"container": "notebook", "port": 8888},
    "containers": {"notebook": {"image": "quay.io/jupyter/base-notebook:2026-05-31",
                                "command": ["jupyterhub-singleuser"], "ports": {"http": 8888}}}}}
BROKEN = {"display_name": "Broken", "system": {"serve": {"container": "x", "port": 1}, "containers": {}}}
BROKEN_KEY = "catalog.broken.system.containers"
#: How soon a catalog change must reach the form here: the test bed's kubelet writes the
#: ConfigMap's volume within about a second, the hub looks at the file once a second.
CATALOG_SECONDS = 30


def _hub(control_plane, bed: Testbed):
    (hub,) = _pods(control_plane, bed, "component=hub,app.kubernetes.io/instance=tycho")
    return hub


def _form_offers(browser, url: str, profile: str, timeout: float) -> float:
    """Seconds until the spawn form (reloaded once a second) offers ``profile``."""
    started = time.monotonic()
    while True:
        browser.get(url)
        if browser.find_elements(By.ID, f"tycho_p_{profile}"):
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"the form does not offer {profile} after {timeout} s"
        time.sleep(1)


def test_an_upgrade_with_a_new_catalog_reaches_the_running_hub_without_a_restart(
        control_plane, node_agent, bed, browser):
    """The chart's catalog is a ConfigMap the hub follows (mounted as a directory): `helm
    upgrade` with a new entry puts it on the form of the same hub pod, never restarted; then an
    upgrade with a broken catalog leaves the hub running on the last good one, its log naming
    the key once. (Fails with the catalog in the hub's checksummed config: a new pod.)"""
    hub = _hub(control_plane, bed)
    form = f"{bed.public_url()}/hub/spawn/alice/new"
    browser.get(form)
    assert browser.find_elements(By.ID, "tycho_p_nginx") and not browser.find_elements(By.ID, "tycho_p_course")

    bed.up({**VALUES, "catalog": {"course": COURSE}})
    took = _form_offers(browser, form, "course", CATALOG_SECONDS)
    print(f"\nhelm upgrade with a new catalog entry: on the form after {took:.1f} s")
    assert "Biology 101" in browser.find_element(By.CSS_SELECTOR, "label[for=tycho_p_course]").text
    same = _hub(control_plane, bed)
    assert same.metadata.uid == hub.metadata.uid and same.status.container_statuses[0].restart_count == 0
    log = node_agent.container_log(bed.namespace, hub.metadata.name, "hub")
    assert "catalog reloaded from /etc/tycho-spawner/catalog/catalog.yaml: added course" in log, log[-3000:]

    bed.up({**VALUES, "catalog": {"course": COURSE, "broken": BROKEN}})
    started = time.monotonic()
    while BROKEN_KEY not in (log := node_agent.container_log(bed.namespace, hub.metadata.name, "hub")):
        assert time.monotonic() - started < CATALOG_SECONDS, f"no error naming {BROKEN_KEY}: {log[-3000:]}"
        browser.get(form)  # the hub looks at the file when the catalog is asked for
        time.sleep(1)
    browser.get(form)
    assert browser.find_elements(By.ID, "tycho_p_course") and not browser.find_elements(By.ID, "tycho_p_broken")
    assert log.count(BROKEN_KEY) == 1, log[-3000:]
    assert "the last good catalog stays in use" in log
    # The API too: the refused entry is unknown, as before the upgrade.
    answer = _api(bed, "POST", "users/alice/servers/broken", json={"profile": "broken"})
    assert answer.status_code == 400 and "broken" in answer.json()["message"], answer.text
    same = _hub(control_plane, bed)
    assert same.metadata.uid == hub.metadata.uid and same.status.container_statuses[0].restart_count == 0
    assert same.status.container_statuses[0].ready


def test_an_upgrade_with_changed_hub_values_restarts_the_hub_and_keeps_servers_and_database(
        control_plane, bed, browser):
    hub = _hub(control_plane, bed)
    servers = {p.metadata.name: p.metadata.uid for p in _pods(control_plane, bed, "component=singleuser-server")}
    assert len(servers) == 2
    created = _api(bed, "GET", "users/alice").json()["created"]

    bed.up({**VALUES, "hub": {**VALUES["hub"], "extraEnv": {"SITE_NOTE": "upgraded"}},
            "catalog": {"nginx": {"display_name": "Course web pages"}}})
    bed.wait_for_rollout(300)
    new_hub = _hub(control_plane, bed)
    assert new_hub.metadata.uid != hub.metadata.uid  # the config checksum restarted it

    # The database survived (the same user record, its servers still tracked and ready) ...
    user = _api(bed, "GET", "users/alice").json()
    assert user["created"] == created
    assert {name: s["ready"] for name, s in user["servers"].items()} == {"": True, "lab": True}
    # ... and so did the servers: the same pods, reached through the proxy with the browser's
    # cookie (the cookie secret is kept by upgrades).
    assert {p.metadata.name: p.metadata.uid for p in _pods(control_plane, bed, "component=singleuser-server")} == servers
    browser.get(f"{bed.public_url()}/user/alice/")
    WebDriverWait(browser, 30).until(lambda b: "Nothing published yet" in b.page_source)
    # The new catalog is the one the form offers.
    browser.get(f"{bed.public_url()}/hub/spawn/alice/web")
    label = WebDriverWait(browser, 30).until(EC.presence_of_element_located((By.CSS_SELECTOR, "label[for=tycho_p_nginx]")))
    assert "Course web pages" in label.text


def test_helm_uninstall_leaves_users_servers_and_claims_and_chart_down_removes_them(control_plane, bed):
    """What the README says `helm uninstall` leaves: users' running servers (their pods,
    NetworkPolicies and token Secrets; nothing stops them once the hub is gone) and users'
    claims (their files). `bin/stage chart down` stops the servers, `--purge` deletes the claims."""
    api = control_plane.api_client()
    core, net, apps = client.CoreV1Api(api), client.NetworkingV1Api(api), client.AppsV1Api(api)
    ns = bed.namespace
    bed.helm().uninstall(bed.release, wait="watcher", timeout=120)

    def left():
        pods = sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items if not p.metadata.deletion_timestamp)
        secrets_ = sorted(s.metadata.name for s in core.list_namespaced_secret(ns).items
                          if s.type != "kubernetes.io/service-account-token")
        return {
            "pods": pods,
            "policies": sorted(p.metadata.name for p in net.list_namespaced_network_policy(ns).items),
            "secrets": secrets_,
            "claims": sorted(c.metadata.name for c in core.list_namespaced_persistent_volume_claim(ns).items
                             if not c.metadata.deletion_timestamp),
            "services": sorted(s.metadata.name for s in core.list_namespaced_service(ns).items),
            "deployments": sorted(d.metadata.name for d in apps.list_namespaced_deployment(ns).items),
            "config maps": sorted(c.metadata.name for c in core.list_namespaced_config_map(ns).items
                                  if c.metadata.name != "kube-root-ca.crt"),
        }

    servers = ["jupyter-alice", "jupyter-alice--lab"]
    deadline = time.monotonic() + 60
    while (found := left())["pods"] != servers and time.monotonic() < deadline:
        time.sleep(0.5)  # the hub's and proxy's pods terminating
    assert found == {
        "pods": servers, "policies": servers, "secrets": sorted(f"{s}-hub-token" for s in servers),
        # bob's claim too: made before the pod his refused start never got.
        "claims": ["claim-alice", "claim-bob"], "services": [], "deployments": [], "config maps": [],
    }, found

    bed.down()
    deadline = time.monotonic() + 60
    while (found := left())["pods"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert found["pods"] == found["policies"] == [] and found["claims"] == ["claim-alice", "claim-bob"], found
    bed.down(purge=True)
    deadline = time.monotonic() + 60
    while (found := left())["claims"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert found["claims"] == [], found
