"""The gate's pure rules: which headers and cookies reach the app, and how paths are mapped.

Nothing here does I/O, so every rule is unit-tested on its own. The security-relevant ones:

* the hub's credentials never reach the app: its cookies (``jupyterhub-*``, including the
  gate's own OAuth cookie) are removed from ``Cookie``, and an ``Authorization`` header or
  ``token`` query parameter the hub accepted is removed;
* hop-by-hop headers are not forwarded in either direction (RFC 9110 section 7.6.1);
* with the prefix stripped, ``Location`` and cookie ``Path`` values the app emits are moved
  back under ``/user/<name>/``, so redirects work and the app's cookies stay scoped to this
  server instead of leaking to every server on the hub's domain;
* the gate alone tells the app where it is publicly (``X-Forwarded-Proto``/``-Host``/``-Prefix``
  and the optional prefix header): the same headers from the browser or a front proxy are
  dropped, and so are ``X-Forwarded-Port`` and RFC 7239 ``Forwarded``. Apps that build their
  own URLs from these (RStudio's redirects to ``/auth-sign-in``) then build URLs the gate
  recognises and maps back: two proxies in a row (an ingress, then the hub's proxy) send
  ``X-Forwarded-Port: 443,80``, which RStudio appends to the host, and RStudio prefers
  ``Forwarded`` to everything else and cuts its host at the first ``-``.

RStudio's sign-in redirect (rstudio/rstudio#8888, which jupyter-rsession-proxy rewrites by
hand) needs nothing of its own here: RStudio sends either ``/auth-sign-in?appUri=...`` (an
absolute path at its root: moved under the prefix like any other) or the full public URL it
computed from the headers above (already under the prefix: left alone), and sets its cookies
with ``Path=/user/<name>`` (the public root, without a trailing slash: also left alone).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Never forwarded: they describe one connection, not the message (plus Proxy-* below).
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Proxy-Connection",
    )
)
#: Request headers that say where the request came from and what the public URL is: the gate
#: sets the ``X-Forwarded-*`` ones itself (``For`` extended, the others replaced); ``Port`` and
#: ``Forwarded`` are dropped, so the app sees one consistent account (Host carries the port).
FORWARDED = frozenset(
    ("x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix",
     "x-forwarded-port", "forwarded")
)
#: Websocket handshake headers the websocket client writes itself.
WEBSOCKET_HANDSHAKE = frozenset(
    ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol")
)
_HUB_TOKEN_AUTH = re.compile(r"^\s*(token|bearer)\s", re.IGNORECASE)


def is_hub_cookie(name: str, gate_cookie: str) -> bool:
    """JupyterHub's cookies: the session, the hub login, and every server's OAuth cookie."""
    bare = name[len("__Host-"):] if name.startswith("__Host-") else name
    return bare.startswith("jupyterhub-") or name == gate_cookie or name.startswith(gate_cookie + "-")


def strip_hub_cookies(cookie_header: str, gate_cookie: str) -> str:
    """The ``Cookie`` header without the hub's cookies; the app's own cookies are kept as sent."""
    kept = []
    for pair in cookie_header.split(";"):
        name = pair.split("=", 1)[0].strip()
        if name and not is_hub_cookie(name, gate_cookie):
            kept.append(pair.strip())
    return "; ".join(kept)


def connection_tokens(value: Optional[str]) -> frozenset:
    """Header names a ``Connection`` header lists; they are hop-by-hop for this message only."""
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def forward_request_headers(
    headers: Iterable[Tuple[str, str]],
    *,
    gate_cookie: str,
    drop_authorization: bool,
    remote_ip: str,
    scheme: str,
    host: str,
    prefix: str,
    websocket: bool = False,
    prefix_header: str = "",
) -> List[Tuple[str, str]]:
    """The headers the app receives for one request.

    ``drop_authorization`` is true when the hub authenticated the request by a token in the
    ``Authorization`` header; that token is the user's hub credential, not the app's.
    ``prefix_header`` names an extra header carrying the public prefix (RStudio's
    ``X-RStudio-Root-Path``); a value the browser sent under that name is dropped.
    """
    out: List[Tuple[str, str]] = []
    forwarded_for = []
    for name, value in end_to_end(headers):
        low = name.lower()
        if websocket and low in WEBSOCKET_HANDSHAKE:
            continue
        if low == "x-forwarded-for":
            forwarded_for.append(value)
            continue
        if low in FORWARDED or (prefix_header and low == prefix_header.lower()):
            continue
        if low == "cookie":
            value = strip_hub_cookies(value, gate_cookie)
            if not value:
                continue
        if low == "authorization" and drop_authorization and _HUB_TOKEN_AUTH.match(value):
            continue
        out.append((name, value))
    forwarded_for.append(remote_ip)
    public_root = prefix.rstrip("/") or "/"
    out.append(("X-Forwarded-For", ", ".join(forwarded_for)))
    out.append(("X-Forwarded-Proto", scheme))
    out.append(("X-Forwarded-Host", host))
    out.append(("X-Forwarded-Prefix", public_root))
    if prefix_header:
        out.append((prefix_header, public_root))
    return out


def end_to_end(headers: Iterable[Tuple[str, str]]) -> Iterator[Tuple[str, str]]:
    """The headers of a message minus the hop-by-hop ones (both directions use this)."""
    headers = list(headers)
    listed = connection_tokens(", ".join(v for k, v in headers if k.lower() == "connection"))
    for name, value in headers:
        low = name.lower()
        if low in HOP_BY_HOP or low in listed or low.startswith("proxy-"):
            continue
        yield name, value


@dataclass(frozen=True)
class PathMap:
    """Maps public paths (``/user/alice/x``) to the app's paths, and the app's URLs back.

    ``prefix`` is the server's prefix with a trailing slash (``JUPYTERHUB_SERVICE_PREFIX``).
    With ``keep_prefix`` the app is configured for the prefix and sees paths unchanged;
    otherwise the app believes it lives at ``/`` (under ``base_path`` of the upstream URL).
    """

    prefix: str
    keep_prefix: bool = False
    base_path: str = ""

    def to_upstream(self, uri: str, drop_token: bool = False) -> str:
        """The request target for the app: path mapped, ``token`` removed if it was the hub's."""
        parts = urlsplit(uri)
        path = parts.path
        if not self.keep_prefix:
            bare = self.prefix.rstrip("/")
            if path == bare or path.startswith(self.prefix):
                path = "/" + path[len(self.prefix):]
            path = self.base_path + path
        query = parts.query
        if drop_token and query:
            pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
            query = urlencode(pairs)
        return urlunsplit(("", "", path, query, ""))

    def from_upstream_path(self, path: str) -> str:
        """An absolute path the app emitted, as the browser must request it.

        Paths already under the prefix are the public ones (an app told its public root, by
        ``X-Forwarded-Prefix`` or the prefix header, emits them), including the root itself
        without its trailing slash (``/user/alice``: RStudio's cookie path).
        """
        if self.keep_prefix or path.startswith(self.prefix) or path == self.prefix.rstrip("/"):
            return path
        if self.base_path and (path == self.base_path or path.startswith(self.base_path + "/")):
            path = path[len(self.base_path):] or "/"
        return self.prefix + path.lstrip("/")

    def location(self, value: str, own_netlocs: Iterable[str]) -> str:
        """A ``Location`` the app sent, valid for the browser.

        Absolute URLs that point at the app itself (its loopback address or the public host
        it was told in ``Host``) become absolute paths under the prefix; relative references
        are left alone because the browser resolves them against the public URL already;
        URLs to other sites are left alone.
        """
        parts = urlsplit(value)
        if parts.scheme or parts.netloc:
            if parts.netloc.lower() not in {n.lower() for n in own_netlocs}:
                return value
            path = self.from_upstream_path(parts.path or "/")
            return urlunsplit(("", "", path, parts.query, parts.fragment))
        if parts.path.startswith("/") and not parts.path.startswith("//"):
            return urlunsplit(("", "", self.from_upstream_path(parts.path), parts.query, parts.fragment))
        return value

    def set_cookie(self, value: str) -> str:
        """A ``Set-Cookie`` whose ``Path`` is the app's root, moved under the server's prefix."""
        if self.keep_prefix:
            return value
        attrs = value.split(";")
        for i, attr in enumerate(attrs[1:], start=1):
            name, _, path = attr.partition("=")
            if name.strip().lower() == "path":
                attrs[i] = f" Path={self.from_upstream_path(path.strip() or '/')}"
                return ";".join(attrs)
        return value
