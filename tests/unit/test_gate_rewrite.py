"""tycho-gate's pure rules: what reaches the app and how the app's URLs come back."""
import pytest

from tycho_spawner.gate.rewrite import (
    PathMap,
    forward_request_headers,
    end_to_end,
    strip_hub_cookies,
)
from tycho_spawner.gate.upstream import Upstream, UpstreamError

GATE_COOKIE = "jupyterhub-user-alice"


def forward(headers, **kw):
    args = dict(gate_cookie=GATE_COOKIE, drop_authorization=False, remote_ip="10.0.0.9",
                scheme="https", host="hub.example", prefix="/user/alice/")
    args.update(kw)
    return forward_request_headers(headers, **args)


@pytest.mark.parametrize(
    "cookie, kept",
    [
        ("jupyterhub-user-alice=s3cret; app=1", "app=1"),
        ("jupyterhub-session-id=x; jupyterhub-hub-login=y", ""),
        ("__Host-jupyterhub-user-alice=s; a=b", "a=b"),
        ("jupyterhub-user-alice-oauth-state=s; theme=dark; _xsrf=t", "theme=dark; _xsrf=t"),
        ("jupyterhub-user-bob-named=z", ""),
    ],
)
def test_hub_cookies_never_reach_the_app(cookie, kept):
    assert strip_hub_cookies(cookie, GATE_COOKIE) == kept


def test_forwarded_headers_drop_hop_by_hop_and_hub_credentials():
    out = dict(forward(
        [("Host", "hub.example"), ("Connection", "keep-alive, X-Secret"), ("X-Secret", "1"),
         ("Keep-Alive", "300"), ("Proxy-Authorization", "p"), ("Cookie", "jupyterhub-session-id=1"),
         ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "spoofed"), ("Accept", "*/*"),
         ("Authorization", "token abc")],
        drop_authorization=True,
    ))
    assert out == {
        "Host": "hub.example", "Accept": "*/*",
        "X-Forwarded-For": "1.2.3.4, 10.0.0.9", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "hub.example", "X-Forwarded-Prefix": "/user/alice",
    }


def test_app_authorization_is_kept_when_the_hub_did_not_use_it():
    out = dict(forward([("Authorization", "Basic YTpi")], drop_authorization=True))
    assert out["Authorization"] == "Basic YTpi"
    out = dict(forward([("Authorization", "Bearer app-token")], drop_authorization=False))
    assert out["Authorization"] == "Bearer app-token"


def test_websocket_handshake_headers_are_left_to_the_websocket_client():
    out = dict(forward([("Sec-WebSocket-Key", "k"), ("Sec-WebSocket-Version", "13"),
                        ("Sec-WebSocket-Protocol", "p"), ("Upgrade", "websocket"), ("Origin", "o")],
                       websocket=True))
    assert "Sec-WebSocket-Key" not in out and "Upgrade" not in out and out["Origin"] == "o"


def test_response_hop_by_hop_headers_are_dropped():
    kept = list(end_to_end([("Transfer-Encoding", "chunked"), ("Connection", "close"),
                                  ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]))
    assert kept == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


@pytest.mark.parametrize(
    "uri, keep, base, expected",
    [
        ("/user/alice/", False, "", "/"),
        ("/user/alice", False, "", "/"),
        ("/user/alice/a/b?x=1", False, "", "/a/b?x=1"),
        ("/user/alice/a", False, "/app", "/app/a"),
        ("/user/alice/a?x=1", True, "", "/user/alice/a?x=1"),
    ],
)
def test_paths_to_the_app(uri, keep, base, expected):
    assert PathMap("/user/alice/", keep, base).to_upstream(uri) == expected


def test_the_hubs_token_parameter_is_removed_only_when_it_authenticated():
    paths = PathMap("/user/alice/")
    assert paths.to_upstream("/user/alice/x?token=t&a=1", drop_token=True) == "/x?a=1"
    assert paths.to_upstream("/user/alice/x?token=t&a=1") == "/x?token=t&a=1"


@pytest.mark.parametrize(
    "location, expected",
    [
        ("/login", "/user/alice/login"),
        ("/user/alice/already", "/user/alice/already"),
        ("http://127.0.0.1:8080/x?y=1", "/user/alice/x?y=1"),
        ("http://hub.example/x", "/user/alice/x"),
        ("https://elsewhere.example/x", "https://elsewhere.example/x"),
        ("relative/page", "relative/page"),
        ("//evil.example/x", "//evil.example/x"),
    ],
)
def test_locations_from_the_app(location, expected):
    assert PathMap("/user/alice/").location(location, {"127.0.0.1:8080", "hub.example"}) == expected


def test_locations_with_kept_prefix_only_lose_the_apps_own_host():
    paths = PathMap("/user/alice/", keep_prefix=True)
    assert paths.location("/user/alice/x", {"127.0.0.1:8080"}) == "/user/alice/x"
    assert paths.location("http://127.0.0.1:8080/user/alice/x", {"127.0.0.1:8080"}) == "/user/alice/x"


def test_app_cookie_paths_stay_under_the_server():
    paths = PathMap("/user/alice/")
    assert paths.set_cookie("s=1; Path=/; HttpOnly") == "s=1; Path=/user/alice/; HttpOnly"
    assert paths.set_cookie("s=1; path=/sub") == "s=1; Path=/user/alice/sub"
    assert paths.set_cookie("s=1") == "s=1"
    assert PathMap("/user/alice/", keep_prefix=True).set_cookie("s=1; Path=/") == "s=1; Path=/"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("http://127.0.0.1:8787", Upstream("127.0.0.1", 8787)),
        ("http://localhost:8080/app/", Upstream("localhost", 8080, base_path="/app")),
        ("unix:/tmp/app.sock", Upstream("unix-socket", 80, socket_path="/tmp/app.sock")),
    ],
)
def test_upstream_addresses(value, expected):
    assert Upstream.parse(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("https://127.0.0.1:8787", "use http://"),
        ("127.0.0.1:8787", "use http://"),
        ("unix:relative.sock", "absolute path"),
        ("http://127.0.0.1:99999", "out of range"),
        ("http://u:p@127.0.0.1:1", "credentials"),
    ],
)
def test_bad_upstreams_are_refused_with_the_reason(value, message):
    with pytest.raises(UpstreamError, match=message):
        Upstream.parse(value)


def test_a_prefix_header_carries_the_prefix_and_cannot_be_spoofed():
    out = forward([("X-RStudio-Root-Path", "/user/mallory")], prefix_header="X-RStudio-Root-Path")
    assert [v for k, v in out if k.lower() == "x-rstudio-root-path"] == ["/user/alice"]


def test_port_and_rfc7239_forwarded_headers_from_front_proxies_never_reach_the_app():
    # An ingress then the hub's proxy each append: RStudio would put "443,80" after the host
    # of every URL it builds; and it prefers Forwarded to X-Forwarded-*, cutting the host at
    # the first "-". The gate's own X-Forwarded-* are the app's one account of the public URL.
    out = forward([("Host", "my-hub.example"), ("X-Forwarded-Proto", "https,http"),
                   ("X-Forwarded-Port", "443,80"), ("X-Forwarded-Host", "my-hub.example"),
                   ("Forwarded", "for=1.2.3.4;host=my-hub.example;proto=https")],
                  host="my-hub.example", prefix_header="X-RStudio-Root-Path")
    assert out == [
        ("Host", "my-hub.example"),
        ("X-Forwarded-For", "10.0.0.9"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "my-hub.example"), ("X-Forwarded-Prefix", "/user/alice"),
        ("X-RStudio-Root-Path", "/user/alice"),
    ]


# RStudio behind the gate (prefix stripped, public root in X-RStudio-Root-Path): the
# redirects of its sign-in (rstudio/rstudio#8888) and of its browser check, as it sends them,
# and where the browser must go. Its own host is 127.0.0.1:8787; the public one hub.example.
RSTUDIO_NETLOCS = {"127.0.0.1:8787", "hub.example"}


@pytest.mark.parametrize(
    "prefix, location, browser_goes_to, rstudio_gets",
    [
        # the #8888 form: an absolute path at RStudio's root, the prefix missing
        ("/user/alice/", "/auth-sign-in?appUri=%2F", "/user/alice/auth-sign-in?appUri=%2F", "/auth-sign-in?appUri=%2F"),
        ("/user/alice/my-r/", "/auth-sign-in?appUri=%2Fx", "/user/alice/my-r/auth-sign-in?appUri=%2Fx",
         "/auth-sign-in?appUri=%2Fx"),
        # the full URL RStudio computes from X-Forwarded-Proto/-Host and the root path header
        ("/user/alice/", "http://hub.example/user/alice/auth-sign-in?appUri=%2F",
         "/user/alice/auth-sign-in?appUri=%2F", "/auth-sign-in?appUri=%2F"),
        ("/user/alice/my-r/", "https://hub.example/user/alice/my-r/", "/user/alice/my-r/", "/"),
        ("/user/alice/", "http://hub.example/user/alice", "/user/alice", "/"),
        # its internal address (when it did not know its root), and the browser check's page
        ("/user/alice/", "http://127.0.0.1:8787/auth-sign-in?appUri=%2F",
         "/user/alice/auth-sign-in?appUri=%2F", "/auth-sign-in?appUri=%2F"),
        ("/user/alice/", "/unsupported_browser.htm", "/user/alice/unsupported_browser.htm", "/unsupported_browser.htm"),
    ],
)
def test_rstudio_sign_in_redirects_come_back_under_the_prefix_and_reach_rstudio(
    prefix, location, browser_goes_to, rstudio_gets
):
    paths = PathMap(prefix)
    assert paths.location(location, RSTUDIO_NETLOCS) == browser_goes_to
    assert paths.to_upstream(browser_goes_to) == rstudio_gets


@pytest.mark.parametrize("prefix", ["/user/alice/", "/user/alice/my-r/"])
def test_rstudio_cookies_on_its_public_root_keep_that_path(prefix):
    # RStudio scopes user-id and csrf-token to its root path, which it writes without the
    # trailing slash: that path is already the public one (it matches /user/alice/... and not
    # /user/alicebob, RFC 6265 section 5.1.4), so it must not be prefixed a second time.
    root = prefix.rstrip("/")
    paths = PathMap(prefix)
    assert paths.set_cookie(f"user-id=rstudio|1|sig; path={root}; HttpOnly") == f"user-id=rstudio|1|sig; Path={root}; HttpOnly"
    assert paths.set_cookie(f"csrf-token=t; path={root}/; SameSite=Lax") == f"csrf-token=t; Path={root}/; SameSite=Lax"
    # a cookie for RStudio's own root (an app not told its prefix) still moves under it
    assert paths.set_cookie("csrf-token=t; path=/") == f"csrf-token=t; Path={prefix}"
