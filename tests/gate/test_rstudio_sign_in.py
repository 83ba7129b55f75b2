"""RStudio's sign-in through tycho-gate, a real hub and its real proxy, with no change of its own.

RStudio (here the test bed's rserver stand-in, started as uid 1000 with the built-in entry's
own rserver options) answers a first visit with ``/auth-sign-in``, which sets its ``user-id``
and ``csrf-token`` cookies on its root path and redirects back to ``appUri``. It builds these
URLs from ``X-RStudio-Root-Path`` and the forwarding headers (``Forwarded``, else
``X-Forwarded-Proto``/``-Host``/``-Port``), the source of rstudio/rstudio#8888 behind other
proxies. Behind the gate the redirect comes back under ``/user/<name>/<server>/``, the cookies
keep the root path RStudio gave them, and the next request is signed in; headers a front proxy
adds (an ingress's ``X-Forwarded-Port``, which the hub's proxy extends to ``443,<port>``) do not
send the browser anywhere else.
"""
from __future__ import annotations

import html
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from tycho_spawner.catalog_files import load_catalog
from tycho_testbed.cluster import free_port
from tycho_testbed.node import NodeAgent

from .conftest import path_of

pytestmark = pytest.mark.gate

RSERVER = "/usr/lib/rstudio-server/bin/rserver"


def entry_rserver_args() -> list[str]:
    """The rserver options of the built-in rstudio entry (the last line of its script)."""
    catalog = load_catalog(True, [], {})
    profile = next(p for p in catalog.profiles if p.key == "rstudio")
    script = profile.system(profile.default_choices()).container("rstudio").args[0]
    return shlex.split(script.partition(f"exec {RSERVER}")[2].replace("\\\n", " "))


@pytest.fixture(scope="module")
def rstudio(hub):
    NodeAgent.preflight()  # uid 1000 may run this Python, as in a test bed pod
    work = tempfile.mkdtemp(prefix="tycho-rserver-", dir="/tmp")
    os.chown(work, 1000, 1000)
    database = os.path.join(work, "database.conf")
    with open(database, "w") as f:
        f.write(f"provider=sqlite\ndirectory={work}/db\n")
    os.chown(database, 1000, 1000)
    port = free_port()
    args = [a.replace("/tmp/rstudio-server", work).replace("--www-port=8787", f"--www-port={port}")
            for a in entry_rserver_args() if not a.startswith("--rsession-config-file")]
    proc = subprocess.Popen(
        ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--inh-caps=-all", "--",
         sys.executable, "-m", "tycho_testbed.standins.rserver", *args],
        env={"PATH": os.environ["PATH"], "HOME": work, "USER": "rstudio"}, cwd=work,
        stderr=subprocess.PIPE, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the rserver stand-in did not listen"
            time.sleep(0.1)
    hub.routes["rstudio"] = ["--upstream", f"http://127.0.0.1:{port}", "--prefix-header", "X-RStudio-Root-Path"]
    hub.write_routes()
    hub.start_server("alice", "rstudio")
    yield f"{hub.url}/user/alice/rstudio/"
    hub.stop_server("alice", "rstudio")
    proc.kill()
    proc.wait(10)
    shutil.rmtree(work, ignore_errors=True)


def page_info(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.url, response.text[:300])
    return json.loads(html.unescape(re.search(r"<pre id='rserver'>(.*)</pre>", response.text).group(1)))


def test_rstudio_sign_in_comes_back_under_the_prefix_and_signs_in(hub, rstudio):
    session = hub.login("alice")
    first = page_info(session.get(rstudio))  # through the hub's OAuth, as a browser
    assert first["signed_in"] is False and first["root_path_header"] == "/user/alice/rstudio"

    r = session.get(rstudio + "auth-sign-in?appUri=%2F", allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == "/user/alice/rstudio/"
    cookies = {c.name: c for c in session.cookies if c.name in ("user-id", "csrf-token")}
    assert set(cookies) == {"user-id", "csrf-token"}
    # RStudio's root path, which it writes without the trailing slash, is kept as it is
    assert {c.path for c in cookies.values()} == {"/user/alice/rstudio"}

    followed = session.get(rstudio + "auth-sign-in?appUri=%2Fsome%2Fpage")
    assert path_of(followed.url) == "/user/alice/rstudio/some/page"
    info = page_info(followed)
    assert info["signed_in"] is True and info["path"] == "/some/page"
    assert not [c for c in info["cookies"] if c.startswith("jupyterhub-")]
    assert followed.headers["X-Frame-Options"] == "SAMEORIGIN"  # --www-frame-origin=same


@pytest.mark.parametrize("front", [
    {"X-Forwarded-Port": "443"},  # the hub's proxy makes it "443,<its port>"
    {"Forwarded": "for=10.1.2.3;host=front-proxy.example;proto=https"},  # RFC 7239, preferred by RStudio
], ids=["x-forwarded-port", "forwarded"])
def test_front_proxy_forwarding_headers_do_not_redirect_rstudio_elsewhere(hub, rstudio, front):
    session = hub.login("alice")
    page_info(session.get(rstudio))
    r = session.get(rstudio + "auth-sign-in?appUri=%2Fx", headers=front, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/user/alice/rstudio/x"
