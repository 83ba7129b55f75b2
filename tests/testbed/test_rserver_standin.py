"""The test bed's rserver stand-in runs the built-in RStudio entry, and refuses what rserver refuses.

Every run is a pod as the node agent makes one, without the API server: the entry's command
(``/bin/sh -c`` and its script, from the parsed built-in catalog) as the image's rstudio user
(uid 1000, through ``setpriv`` with all capabilities dropped), in its own network namespace
(the pod's own 127.0.0.1, so the entry's port 8787 is free whatever else runs here) and mount
namespace: the ``rstudio-tmp`` emptyDir at /tmp, the home at /home/rstudio, and the image's
program /usr/lib/rstudio-server/bin/rserver, which the image table maps to the stand-in, at
that path (a read-only overlay, nothing written to the host's /usr). The refused cases change
one thing in the entry's own rserver command line or in the files its script writes.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Callable, Optional

import pytest

from tycho_spawner.catalog_files import load_catalog
from tycho_testbed.images import ImageTable, pod_path
from tycho_testbed.node import NodeAgent

RSERVER = "/usr/lib/rstudio-server/bin/rserver"
FETCH = r"""
import http.client, json, sys
path, headers = sys.argv[1], json.loads(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", 8787, timeout=5)
conn.request("GET", path, headers=headers)
r = conn.getresponse()
print(json.dumps({"status": r.status, "headers": r.getheaders(), "body": r.read().decode()}))
"""


def rstudio_container():
    catalog = load_catalog(True, [], {})
    profile = next(p for p in catalog.profiles if p.key == "rstudio")
    system = profile.system(profile.default_choices())
    return system, system.container("rstudio")


def split_script(script: str) -> tuple[str, list[str]]:
    """The script's set-up lines, and the arguments its last line gives rserver."""
    head, sep, tail = script.partition(f"exec {RSERVER}")
    assert sep, f"the rstudio entry's script does not exec {RSERVER}"
    return head, shlex.split(tail.replace("\\\n", " "))


@dataclass
class Pod:
    proc: subprocess.Popen
    home: Path
    tmp: Path

    def stderr(self) -> str:
        return self.proc.stderr.read().decode() if self.proc.poll() is not None else ""

    def fetch(self, path: str = "/", **headers) -> dict:
        """A GET from inside the pod's network namespace."""
        done = subprocess.run(
            ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", sys.executable, "-c", FETCH, path, json.dumps(headers)],
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 0, done.stderr
        reply = json.loads(done.stdout)
        reply["headers"] = {k.lower(): v for k, v in reply["headers"]} | {
            "set-cookie": [v for k, v in reply["headers"] if k.lower() == "set-cookie"]
        }
        return reply

    def wait_serving(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"rserver stand-in exited {self.proc.returncode}:\n{self.stderr()}")
            done = subprocess.run(
                ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", sys.executable, "-c",
                 "import socket; socket.create_connection(('127.0.0.1', 8787), 1)"],
                capture_output=True,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("rserver stand-in did not listen on 127.0.0.1:8787")

    def wait_exit(self, timeout: float = 30) -> tuple[int, str]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("rserver stand-in kept running; expected it to refuse") from None
        return self.proc.returncode, self.stderr()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def pod_factory(tmp_path):
    """Starts ``argv`` as the node agent starts a container of the rstudio entry."""
    NodeAgent.preflight()  # pod users may run this Python (what the node agent does at start)
    system, container = rstudio_container()
    entry = ImageTable.load().lookup(container.image)
    assert entry is not None, f"{container.image} is not in the test bed's image table"
    program = dict(entry.programs)[RSERVER]
    pods = []

    def start(argv: list[str], as_root: bool = False, image_files: Optional[dict] = None) -> Pod:
        n = len(pods)
        work = tmp_path / f"pod{n}"
        # The image's files: the program at its path (the image table's mapping), the working
        # directory (a mount point for the home), and any others.
        files = {RSERVER: "#!/bin/sh\nexec " + shlex.join(program) + ' "$@"\n',
                 f"{container.working_dir}/.keep": "", **(image_files or {})}
        lowers = {}
        for path, text in files.items():
            top = "/" + Path(path).parts[1]
            target = work / "image" / top.strip("/") / Path(path).relative_to(top)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(0o755)
            lowers[top] = work / "image" / top.strip("/")
        for d in (work / "image").rglob("*"):
            if d.is_dir():
                d.chmod(0o755)
        # the emptyDir (as the node agent makes it with an fsGroup) and the home
        empty, home = work / "rstudio-tmp", work / "home"
        empty.mkdir()
        os.chown(empty, 0, system.security.fs_group)
        empty.chmod(0o2777)
        home.mkdir()
        os.chown(home, system.security.run_as_user, system.security.run_as_group)
        uid, gid, group = system.security.run_as_user, system.security.run_as_group, system.security.fs_group
        setup = ["set -e", "ip link set lo up"]
        for top, lower in lowers.items():
            setup.append(f"mount -t overlay overlay -o lowerdir={lower}:{top} {top}")
        # (the home first: its source, like the emptyDir's, is under the host's /tmp)
        setup += [f"mount --bind {home} {container.working_dir}", f"mount --bind {empty} /tmp",
                  f"cd {container.working_dir}"]
        drop = [] if as_root else ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={group}",
                                   "--inh-caps=-all", "--"]
        env = {"PATH": pod_path(), "HOSTNAME": "jupyter-alice", **dict(entry.env), **dict(container.env),
               "HOME": container.working_dir}
        wrapper = ["unshare", "--mount", "--net", "--propagation", "private",
                   "/bin/sh", "-c", "\n".join(setup + ['exec "$@"']), "tycho-container", *drop]
        proc = subprocess.Popen(
            [*wrapper, *entry.argv(argv[:1], argv[1:])],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        pod = Pod(proc, home, empty)
        pods.append(pod)
        return pod

    start.container = container
    yield start
    for pod in pods:
        pod.stop()


def entry_command(pod_factory, change_args: Callable[[list[str]], list[str]] = lambda a: a,
                  setup: str = "") -> list[str]:
    """The entry's command with its rserver options changed, and shell lines run before rserver."""
    container = pod_factory.container
    head, args = split_script(container.args[0])
    script = head + setup + "\nexec " + shlex.join([RSERVER, *change_args(args)]) + "\n"
    return [*container.command, script]


def page_info(reply: dict) -> dict:
    assert reply["status"] == 200, reply
    m = re.search(r"<pre id='rserver'>(.*)</pre>", reply["body"])
    assert m, reply["body"][:300]
    return json.loads(unescape(m.group(1)))


def test_the_entry_passes_the_options_rstudio_needs_as_a_user():
    container = rstudio_container()[1]
    assert container.command == ("/bin/sh", "-c")
    _, args = split_script(container.args[0])
    assert args == [
        "--server-daemonize=0", "--server-user=rstudio",
        "--server-data-dir=/tmp/rstudio-server/data",
        "--secure-cookie-key-file=/tmp/rstudio-server/secure-cookie-key",
        "--database-config-file=/tmp/rstudio-server/database.conf",
        "--rsession-config-file=/tmp/rstudio-server/rsession.conf",
        "--www-address=127.0.0.1", "--www-port=8787",
        "--www-verify-user-agent=0", "--www-frame-origin=same", "--auth-none=1",
    ]
    assert container.working_dir == "/home/rstudio" and dict(container.mounts) == {"rstudio-tmp": "/tmp"}


def test_the_builtin_entry_serves_as_uid_1000_and_lists_the_home(pod_factory):
    container = pod_factory.container
    pod = pod_factory([*container.command, *container.args])
    (pod.home / "from-jupyterlab.txt").write_text("hello")
    pod.wait_serving()
    info = page_info(pod.fetch("/"))
    assert info["standin"].startswith("rserver (RStudio Server stand-in")
    assert info["uid"] == 1000 and info["user"] == "rstudio" and info["jupyterhub_env"] == []
    assert info["home_dir"] == "/home/rstudio"
    assert "from-jupyterlab.txt" in info["home"]
    (pod.home / "later.R").write_text("x <- 1")
    assert "later.R" in page_info(pod.fetch("/"))["home"]
    # what the entry's script and rserver left in the emptyDir, as that user
    files = {str(p.relative_to(pod.tmp)) for p in pod.tmp.rglob("*")}
    assert {"rstudio-server/database.conf", "rstudio-server/rsession.conf", "rstudio-server/secure-cookie-key",
            "rstudio-server/db/rstudio.sqlite", "rstudio-server/data"} <= files
    assert (pod.tmp / "rstudio-server/db/rstudio.sqlite").stat().st_uid == 1000
    assert (pod.tmp / "rstudio-server/rsession.conf").read_text() == "session-default-working-dir=/home/rstudio\n"
    assert (pod.tmp / "rstudio-server/data").stat().st_mode & 0o1777 == 0o1777


def test_the_images_config_files_are_kept_with_the_working_dir_replaced(pod_factory):
    container = pod_factory.container
    image_conf = "# site settings\ncopilot-enabled=1\nsession-default-working-dir=/srv/elsewhere\n"
    # rocker's rserver.conf, plus a port: the command line wins
    server_conf = "rsession-which-r=/usr/local/bin/R\nwww-port=8888\n"
    pod = pod_factory([*container.command, *container.args],
                      image_files={"/etc/rstudio/rsession.conf": image_conf, "/etc/rstudio/rserver.conf": server_conf})
    pod.wait_serving()
    assert (pod.tmp / "rstudio-server/rsession.conf").read_text() == (
        "# site settings\ncopilot-enabled=1\nsession-default-working-dir=/home/rstudio\n")
    assert page_info(pod.fetch("/"))["home_dir"] == "/home/rstudio"


def test_sign_in_cookies_and_redirect_follow_the_public_root(pod_factory):
    container = pod_factory.container
    pod = pod_factory([*container.command, *container.args])
    pod.wait_serving()
    public = {"X-RStudio-Root-Path": "/user/alice", "X-Forwarded-Host": "hub.example", "X-Forwarded-Proto": "https"}
    r = pod.fetch("/auth-sign-in?appUri=%2F", **public)
    assert r["status"] == 302 and r["headers"]["location"] == "https://hub.example/user/alice/"
    cookies = {c.split("=", 1)[0]: c for c in r["headers"]["set-cookie"]}
    assert set(cookies) == {"user-id", "csrf-token"}
    assert all("Path=/user/alice;" in c or c.endswith("Path=/user/alice") for c in cookies.values())
    user_id = cookies["user-id"].split(";", 1)[0]
    assert page_info(pod.fetch("/", Cookie=user_id, **public))["signed_in"] is True
    assert page_info(pod.fetch("/", Cookie="user-id=rstudio|forged", **public))["signed_in"] is False
    # --www-frame-origin=same
    assert r["headers"]["x-frame-options"] == "SAMEORIGIN"


def test_without_www_verify_user_agent_0_a_script_is_sent_to_unsupported_browser(pod_factory):
    pod = pod_factory(entry_command(pod_factory, lambda a: [x for x in a if not x.startswith("--www-verify")]))
    pod.wait_serving()
    r = pod.fetch("/", **{"User-Agent": "python-requests/2.32"})
    assert r["status"] == 302 and r["headers"]["location"] == "/unsupported_browser.htm"
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    assert page_info(pod.fetch("/", **{"User-Agent": firefox}))["path"] == "/"


def _drop(prefix):
    return lambda args: [a for a in args if not a.startswith(prefix)]


def _replace(prefix, new):
    return lambda args: [new if a.startswith(prefix) else a for a in args]


REFUSED = {
    "unknown option": (lambda a: a + ["--www-prot=8787"], "", "unrecognised option '--www-prot'"),
    "option of another program": (lambda a: a + ["--session-default-working-dir=/home/rstudio"], "",
                                  "unrecognised option '--session-default-working-dir'"),
    "missing value": (lambda a: a + ["--www-address"], "", "the required argument for option '--www-address' is missing"),
    "bad boolean": (_replace("--auth-none", "--auth-none=maybe"), "", "for option '--auth-none' is invalid"),
    "option given twice": (lambda a: a + ["--www-port=8788"], "", "'--www-port' cannot be specified more than once"),
    "positional argument": (lambda a: a + ["8787"], "", "too many positional options"),
    "no database config: root's /var/lib/rstudio-server": (
        _drop("--database-config-file"), "", "Permission denied) [path: /var/lib/rstudio-server] (no /etc/rstudio/database.conf"),
    "database config file missing": (
        _replace("--database-config-file", "--database-config-file=/tmp/rstudio-server/nothing.conf"), "",
        "Permission denied) [path: /var/lib/rstudio-server] (no /tmp/rstudio-server/nothing.conf"),
    "database config unreadable": (lambda a: a, "chmod 000 /tmp/rstudio-server/database.conf\n",
                                   "Permission denied) [path: /tmp/rstudio-server/database.conf]"),
    "database directory not writable": (
        lambda a: a, "printf 'provider=sqlite\\ndirectory=/usr/lib/rstudio-server/db\\n' > /tmp/rstudio-server/database.conf\n",
        "[path: /usr/lib/rstudio-server/db]"),
    "database provider not simulated": (
        lambda a: a, "printf 'provider=postgresql\\n' > /tmp/rstudio-server/database.conf\n",
        "stand-in: database provider postgresql"),
    "no server user: rstudio-server": (
        _drop("--server-user"), "", "Attempt to run server as user 'rstudio-server' (uid 999) from account 'rstudio' (uid 1000)"),
    "server user root": (_replace("--server-user", "--server-user=root"), "", "Attempt to run server as user 'root' (uid 0)"),
    "server user unknown": (_replace("--server-user", "--server-user=jovyan"), "",
                            "Could not find details for server user 'jovyan'"),
    "auth-none off": (_replace("--auth-none", "--auth-none=0"), "", "stand-in: --auth-none=0 refused"),
    "daemonizing": (_replace("--server-daemonize", "--server-daemonize=1"), "", "stand-in: --server-daemonize=1 refused"),
    "no server data dir: /var/run/rstudio-server": (_drop("--server-data-dir"), "", "[path: /var/run/rstudio-server]"),
    "empty cookie key": (lambda a: a, ": > /tmp/rstudio-server/secure-cookie-key\n",
                         "[path: /tmp/rstudio-server/secure-cookie-key]"),
    "rsession config unreadable": (lambda a: a, "chmod 000 /tmp/rstudio-server/rsession.conf\n",
                                   "stand-in: rsession could not read its config file"),
    "rsession config with a key twice": (
        lambda a: a, "echo session-default-working-dir=/tmp >> /tmp/rstudio-server/rsession.conf\n",
        "option 'session-default-working-dir' cannot be specified more than once"),
    "bad SameSite": (lambda a: a + ["--www-same-site=strict"], "", "Invalid SameSite option: strict"),
    "unknown option in a config file": (
        lambda a: a + ["--config-file=/tmp/rstudio-server/rserver.conf"],
        "echo session-timeout-minutes=0 > /tmp/rstudio-server/rserver.conf\n",
        "unrecognised option 'session-timeout-minutes' in config file /tmp/rstudio-server/rserver.conf"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_rserver_refuses_the_stand_in_refuses(pod_factory, case):
    change, setup, message = REFUSED[case]
    pod = pod_factory(entry_command(pod_factory, change, setup))
    code, stderr = pod.wait_exit()
    assert code == 1, stderr
    assert "[rserver] ERROR" in stderr and message in stderr, stderr


def test_as_root_the_stand_in_refuses(pod_factory):
    pod = pod_factory(entry_command(pod_factory), as_root=True)
    code, stderr = pod.wait_exit()
    assert code == 1 and "stand-in: rserver as root" in stderr, stderr


def test_help_and_abbreviations_are_accepted_like_rserver(pod_factory):
    # boost's option guessing: an unambiguous prefix names the option; an ambiguous one is refused
    pod = pod_factory(entry_command(pod_factory, _replace("--www-verify-user-agent", "--www-verify=0")))
    pod.wait_serving()
    assert page_info(pod.fetch("/"))["path"] == "/"
    pod = pod_factory(entry_command(pod_factory, lambda a: a + ["--server-d=/tmp/x"]))
    code, stderr = pod.wait_exit()
    assert code == 1 and "'--server-d' is ambiguous" in stderr, stderr
