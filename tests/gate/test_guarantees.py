"""GATE.md's guarantees, each against a real JupyterHub, its real proxy and a real app.

Numbers in the test names refer to the guarantees in ``../shared/design/GATE.md``.
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from .conftest import ACTIVITY_INTERVAL, Hub, path_of, submit_first_form

pytestmark = pytest.mark.gate


def ws_url(hub: Hub, path: str) -> str:
    return hub.url.replace("http://", "ws://") + path


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def open_app(session: requests.Session, url: str) -> requests.Response:
    """A page view that follows the hub's OAuth redirects, like a browser."""
    r = session.get(url)
    assert r.status_code == 200, (r.status_code, r.url, r.text[:300])
    return r


# 1. anonymous HTTP -> the hub's login; after login the owner lands on the app, no token.
def test_1_anonymous_page_goes_to_hub_login_and_reaches_nothing(hub, alice_server, upstream_app):
    before = upstream_app.seen.count()
    r = requests.get(alice_server + "echo", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/hub/api/oauth2/authorize?client_id=jupyterhub-user-alice")
    followed = requests.get(alice_server + "echo")
    assert path_of(followed.url) == "/hub/login"
    assert upstream_app.seen.count() == before


def test_1_owner_lands_on_the_app_with_no_token_anywhere(hub, alice_server, upstream_app):
    session = hub.login("alice")
    r = open_app(session, alice_server + "echo")
    assert path_of(r.url) == "/user/alice/echo"
    assert "token" not in r.url
    echoed = r.json()
    assert echoed["path"] == "/echo"
    # Nothing the hub issued reaches the app: no hub cookie, no Authorization.
    forwarded = json.dumps(echoed["headers"])
    for cookie in session.cookies:
        if cookie.name.startswith("jupyterhub-"):
            assert cookie.value not in forwarded, cookie.name
    assert "jupyterhub-session-id" not in forwarded
    assert "jupyterhub-user-alice" not in forwarded
    assert "Authorization" not in echoed["headers"]
    assert "token" not in r.text.lower()


# 2. anonymous websocket -> 403, the app sees nothing.
def test_2_anonymous_websocket_is_refused_before_the_app(hub, alice_server, upstream_app):
    before = upstream_app.seen.count()
    with pytest.raises(InvalidStatus) as err:
        ws_connect(ws_url(hub, "/user/alice/ws"), origin=hub.url, open_timeout=10)
    assert err.value.response.status_code == 403
    assert upstream_app.seen.count() == before


# 3. another user -> 403, over HTTP and websockets, with cookie or token.
def test_3_another_user_is_refused_http_and_websocket(hub, alice_server, upstream_app):
    before = upstream_app.seen.count()
    bob = hub.login("bob")
    r = bob.get(alice_server + "echo")
    assert r.status_code == 403
    token = hub.user_token("bob")
    r = requests.get(alice_server + "echo", headers={"Authorization": f"token {token}"})
    assert r.status_code == 403
    assert "bob" in r.text and "may not use this server" in r.text
    with pytest.raises(InvalidStatus) as err:
        ws_connect(
            ws_url(hub, "/user/alice/ws"),
            origin=hub.url,
            additional_headers={"Authorization": f"token {token}"},
            open_timeout=10,
        )
    assert err.value.response.status_code == 403
    assert upstream_app.seen.count() == before


# 4. the owner -> the app, HTTP and websockets (same-origin Origin), nothing cross-origin.
def test_4_owner_websocket_round_trips_text_binary_and_subprotocol(hub, alice_server):
    session = hub.login("alice")
    open_app(session, alice_server)
    with ws_connect(
        ws_url(hub, "/user/alice/ws"),
        origin=hub.url,
        additional_headers={"Cookie": cookie_header(session)},
        subprotocols=["tycho.test", "other"],
        open_timeout=10,
    ) as ws:
        assert ws.subprotocol == "tycho.test"
        ws.send("hello")
        assert ws.recv(10) == "hello"
        blob = bytes(range(256)) * 4096
        ws.send(blob)
        assert ws.recv(10) == blob
        ws.send("headers")
        seen = json.loads(ws.recv(10))
        assert "jupyterhub-user-alice" not in seen.get("Cookie", "")
        ws.send("close-4001")
        with pytest.raises(Exception):
            ws.recv(10)
        assert ws.close_code == 4001 and ws.close_reason == "app says bye"


def test_4_a_websocket_to_an_app_path_that_speaks_none_is_a_502_and_one_log_line(hub, alice_server):
    session = hub.login("alice")
    open_app(session, alice_server)
    before = len(hub.log_text())
    with pytest.raises(InvalidStatus) as info:
        ws_connect(ws_url(hub, "/user/alice/echo"), origin=hub.url,
                   additional_headers={"Cookie": cookie_header(session)}, open_timeout=10)
    assert info.value.response.status_code == 502
    assert b"The app did not accept a websocket here (Non-websocket response)." in info.value.response.body
    deadline = time.monotonic() + 5
    while "did not accept a websocket" not in hub.log_text()[before:] and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = hub.log_text()[before:]
    said = [line for line in logged.splitlines() if "did not accept a websocket" in line]
    assert len(said) == 1, logged
    assert "Traceback" not in logged, logged


def test_4_cross_origin_websocket_and_post_are_refused(hub, alice_server, upstream_app):
    session = hub.login("alice")
    open_app(session, alice_server)
    before = upstream_app.seen.count()
    with pytest.raises(InvalidStatus) as err:
        ws_connect(
            ws_url(hub, "/user/alice/ws"),
            origin="http://evil.example",
            additional_headers={"Cookie": cookie_header(session)},
            open_timeout=10,
        )
    assert err.value.response.status_code == 403
    r = session.post(alice_server + "echo", data="x", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = session.post(
        alice_server + "echo", data="x", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    )
    assert r.status_code == 403
    assert upstream_app.seen.count() == before
    ok = session.post(alice_server + "echo", data="x", headers={"Origin": hub.url})
    assert ok.status_code == 200 and ok.json()["method"] == "POST"


# 5. admins and users the hub's RBAC grants access:servers -> in, after the consent step.
@pytest.mark.parametrize("who", ["admin", "carol"])
def test_5_granted_users_get_in_after_consent(hub, alice_server, who):
    session = hub.login(who)
    r = session.get(alice_server + "echo")
    if path_of(r.url).startswith("/hub/api/oauth2/authorize"):
        assert r.status_code == 200 and "alice" in r.text  # the hub's consent page
        r = submit_first_form(session, r)
    assert r.status_code == 200, r.text[:500]
    assert path_of(r.url) == "/user/alice/echo"
    assert r.json()["path"] == "/echo"


def test_5_grant_is_per_server(hub, alice_server):
    hub.start_server("alice", "named")
    carol = hub.login("carol")
    r = carol.get(f"{hub.url}/user/alice/named/echo")
    # Refused by the hub at its authorize step (no grant, so no consent form) or the gate.
    assert r.status_code == 403


# 6. activity: the time of the last real request, never "now" while idle, any server name.
def _activity(hub: Hub, user: str, server: str) -> datetime:
    stamp = hub.server_model(user, server)["last_activity"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.parametrize("server", ["", "named"])
def test_6_activity_is_the_last_request_and_stays_put_while_idle(hub, alice_server, server):
    hub.start_server("alice", server)
    session = hub.login("alice")
    url = f"{hub.url}/user/alice/{server + '/' if server else ''}echo"
    open_app(session, url)
    time.sleep(3 * ACTIVITY_INTERVAL)  # let the post-login activity settle
    session.get(url)
    requested = datetime.now().astimezone()
    deadline = time.monotonic() + 10 * ACTIVITY_INTERVAL
    while time.monotonic() < deadline:
        reported = _activity(hub, "alice", server)
        if abs((reported - requested).total_seconds()) < 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"hub has {reported}, request was at {requested}")
    time.sleep(4 * ACTIVITY_INTERVAL)  # idle: several report intervals, no requests
    assert _activity(hub, "alice", server) == reported


# 7. prefix: stripped by default (redirects and cookie paths fixed), or kept.
def test_7_stripped_prefix_fixes_redirects_and_cookie_paths(hub, alice_server):
    session = hub.login("alice")
    open_app(session, alice_server)
    loc = lambda kind: session.get(alice_server + f"redirect/{kind}", allow_redirects=False).headers["Location"]
    assert loc("absolute-path") == "/user/alice/target?x=1"
    assert loc("self-url") == "/user/alice/target"
    assert loc("relative") == "target"
    assert loc("elsewhere") == "https://example.org/elsewhere"
    r = session.get(alice_server + "set-cookie")
    assert "Path=/user/alice/" in r.headers["Set-Cookie"]
    followed = session.get(alice_server + "redirect/absolute-path")
    assert path_of(followed.url) == "/user/alice/target"
    assert followed.status_code == 200


def test_7_kept_prefix_passes_the_path_unchanged(hub, alice_server, upstream_app):
    hub.routes["kept"] = ["--upstream", upstream_app.url, "--keep-prefix"]
    hub.write_routes()
    hub.start_server("alice", "kept")
    session = hub.login("alice")
    r = open_app(session, f"{hub.url}/user/alice/kept/echo?q=1")
    assert r.json()["uri"] == "/user/alice/kept/echo?q=1"


# 8. readiness: the hub sees the server ready only once the app answers.
def test_8_not_ready_before_the_app_answers(hub, tmp_path):
    from .upstream_app import UpstreamApp

    socket_path = str(tmp_path / "late.sock")
    hub.routes["late"] = ["--upstream", f"unix:{socket_path}"]
    hub.write_routes()
    hub.start_server("alice", "late", wait=False)
    time.sleep(3)
    model = hub.server_model("alice", "late")
    assert model is not None and not model["ready"] and model["pending"] == "spawn"
    late_app = UpstreamApp(unix_path=socket_path)
    started = time.monotonic()
    hub.wait_ready("alice", "late", timeout=30)
    assert time.monotonic() - started < 10
    session = hub.login("alice")
    r = open_app(session, f"{hub.url}/user/alice/late/echo")
    assert r.json()["path"] == "/echo"
    assert late_app.seen.count() >= 1


# 9. large bodies, streaming and long polls pass through without being held whole.
def _rss_peak_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_9_large_bodies_stream_both_ways_in_bounded_memory(hub, alice_server):
    session = hub.login("alice")
    open_app(session, alice_server)
    pid = hub.gate_pid("alice")
    size = 256 * 1024 * 1024
    with session.get(alice_server + f"big?bytes={size}", stream=True) as r:
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == size
        got = sum(len(c) for c in r.iter_content(1 << 20))
    assert got == size
    with session.get(alice_server + f"big?bytes={size // 4}&length=0", stream=True) as r:
        assert "Content-Length" not in r.headers
        assert sum(len(c) for c in r.iter_content(1 << 20)) == size // 4

    def body():
        chunk = b"y" * (1 << 20)
        for _ in range(size // len(chunk)):
            yield chunk

    r = session.post(alice_server + "upload", data=body(), headers={"Origin": hub.url})
    assert r.status_code == 200 and r.json() == {"received": size}
    r = session.put(alice_server + "upload", data=b"z" * (8 << 20), headers={"Origin": hub.url})
    assert r.json() == {"received": 8 << 20}
    # A browser that gives up half-way costs nothing: the gate stops reading and goes on.
    with session.get(alice_server + f"big?bytes={size}", stream=True) as r:
        assert len(next(r.iter_content(1 << 20))) > 0
    assert session.get(alice_server + "echo").json()["path"] == "/echo"
    # 256 MiB went through each way; the gate's peak memory stayed a small fraction of it.
    assert _rss_peak_kib(pid) < 128 * 1024


def test_9_long_poll_chunks_arrive_as_the_app_sends_them(hub, alice_server, upstream_app):
    session = hub.login("alice")
    open_app(session, alice_server)
    first = threading.Event()
    lines = []

    def read():
        with session.get(alice_server + "slow", stream=True, timeout=30) as r:
            for line in r.iter_lines():
                lines.append(line)
                first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10), "the first chunk was held back"
    assert lines == [b"first"]
    upstream_app.release_all()
    reader.join(10)
    assert lines == [b"first", b"second"]


# 10. the hub token and the user's hub cookies are never forwarded, nor logged.
def test_10_token_auth_is_stripped_and_nothing_secret_is_logged(hub, alice_server, upstream_app):
    token = hub.user_token("alice")
    r = requests.get(alice_server + "echo", headers={"Authorization": f"token {token}"})
    assert r.status_code == 200
    assert "Authorization" not in r.json()["headers"]
    r = requests.get(alice_server + "echo", headers={"Authorization": "Basic YXBwOmFwcA=="})
    assert r.status_code in (302, 200) and path_of(r.url) == "/hub/login"
    session = hub.login("alice")
    open_app(session, alice_server + "echo?x=1")
    log = hub.log_text()
    gate_lines = "\n".join(l for l in log.splitlines() if "tycho_gate" in l or "GateApp" in l)
    assert token not in log
    for cookie in session.cookies:
        if cookie.name.startswith("jupyterhub-user-"):
            assert cookie.value not in log
    assert "code=" not in gate_lines and "state=" not in gate_lines


def test_unknown_path_outside_prefix_is_404_and_app_down_is_502(hub, alice_server):
    # The gate only answers under its prefix (the hub's proxy sends nothing else).
    session = hub.login("alice")
    open_app(session, alice_server)
    assert requests.get(hub.url + "/user/alice/../../hub/api").status_code in (200, 404)
