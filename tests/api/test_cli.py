"""The `tycho` command's API client (login, launch, apps, logs, stop) as a person runs it: the
real command in a subprocess, against the real hub, its proxy, the service and the test bed."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cluster


def tycho(config_home, *args, stdin: str = "", env: dict | None = None, timeout: float = 300):
    environment = {k: v for k, v in os.environ.items() if k not in ("TYCHO_HUB", "TYCHO_TOKEN")}
    environment.update({"XDG_CONFIG_HOME": str(config_home), **(env or {})})
    return subprocess.run([sys.executable, "-m", "tycho_spawner.cli", *args], input=stdin, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def test_the_cli_logs_in_launches_lists_reads_logs_and_stops_an_app(api_hub, tokens, tmp_path):
    # Not logged in: a sentence saying what to do, nothing else.
    r = tycho(tmp_path, "apps")
    assert r.returncode == 1 and "tycho login --hub" in r.stderr, r

    # A wrong token is refused by the hub, and nothing is kept.
    r = tycho(tmp_path, "login", "--hub", api_hub.url, "--token", "not-a-token")
    assert r.returncode == 1 and "does not accept the token" in r.stderr, r
    assert not (tmp_path / "tycho" / "token").exists()

    # The token on stdin (as a password manager pipes it): checked, kept readable by its owner only.
    r = tycho(tmp_path, "login", "--hub", api_hub.url + "/", stdin=tokens["alice"] + "\n")
    assert r.returncode == 0, r
    assert "as alice" in r.stdout
    kept = tmp_path / "tycho" / "token"
    assert kept.read_text().strip() == tokens["alice"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    r = tycho(tmp_path, "launch", "echo", "--set", "size=large", "--name", "cli")
    assert r.returncode == 0, r
    assert r.stdout.strip() == f"{api_hub.url}/user/alice/cli/"
    # The printed URL is the running app (through the proxy, with alice's token).
    import requests

    page = requests.get(r.stdout.strip(), headers={"Authorization": f"token {tokens['alice']}"}, timeout=30)
    assert page.status_code == 200, page.text[:300]
    assert "cli" in api_hub.servers("alice")
    assert api_hub.servers("alice")["cli"]["user_options"]["choices"] == {"size": "large"}

    # The app's log: the request just made, as the app wrote it.
    r = tycho(tmp_path, "logs", "cli", "--tail", "1")
    assert r.returncode == 0, r
    assert len(r.stdout.splitlines()) == 1 and '"GET ' in r.stdout and '" 200 ' in r.stdout, r
    r = tycho(tmp_path, "logs", "cli", "--container", "nope")
    assert r.returncode == 1 and "no container 'nope'" in r.stderr, r

    r = tycho(tmp_path, "apps")
    assert r.returncode == 0, r
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "PROFILE", "CHOICES", "URL"]
    assert [row.split() for row in rows] == [["cli", "ready", "echo", "size=large", "/user/alice/cli/"]]

    # Bob's token in the environment overrides the kept login: bob has no app of that name.
    r = tycho(tmp_path, "stop", "cli", env={"TYCHO_TOKEN": tokens["bob"]})
    assert r.returncode == 1 and "cli" in r.stderr, r
    assert "cli" in api_hub.servers("alice")

    # A choice the catalog does not offer: the API's sentence, nothing launched.
    r = tycho(tmp_path, "launch", "echo", "--set", "size=huge", "--name", "other")
    assert r.returncode == 1 and "not offered" in r.stderr, r
    assert "other" not in api_hub.servers("alice")

    r = tycho(tmp_path, "stop", "cli")
    assert r.returncode == 0 and r.stdout.strip() == "Stopped cli", r
    assert "cli" not in api_hub.servers("alice")
    r = tycho(tmp_path, "apps")
    assert r.stdout.splitlines()[1:] == []
