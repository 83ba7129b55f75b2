"""The cluster's DNS server on this host: Debian's dnsmasq, shared by every node agent.

A cluster runs CoreDNS as pods behind the kube-dns Service; the test bed has no images to run
it from, so the resolver is a real DNS server (dnsmasq, from the ``dnsmasq-base`` package) on
the node side of the pods' bridge (``10.213.0.1:53``, UDP and TCP), where every pod can reach
it and its NetworkPolicies always let it through (the node is always allowed). It reads its
records from a directory of hosts files, one per node agent, each rewritten by its agent as
Services and Endpoints change; the agent then sends dnsmasq SIGHUP, and dnsmasq reads every
file again. Not ``--hostsdir``'s inotify: dnsmasq drops a record a second file repeats, and when
the file it kept the record from is read again without it (one agent's watch ahead of another's,
a departed agent's file removed), the name is gone although the other file still has it, until
that file changes too. It forwards nothing: a name outside the records, in the cluster's zone
or not, is answered NXDOMAIN by dnsmasq itself (``--local=/#/``, no upstream servers), so no query leaves the host.

Several node agents run on one host (``cluster up --nodes N``, several test sessions): the
first to come starts dnsmasq, the last to go stops it. Each agent holds a lock on its own file
for as long as it runs; a file whose lock nobody holds belongs to an agent that died and is
removed by the next agent that joins or leaves. All of it happens under one host-wide lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional

from .dns import hosts_text

log = logging.getLogger("tycho_testbed.resolver")

RUN_DIR = Path("/run/tycho-testbed/resolver")


class ResolverError(Exception):
    """The resolver cannot be started (dnsmasq missing, or the address or port unavailable)."""


class Resolver:
    """This agent's part in the host's one resolver: its membership and its records file."""

    def __init__(self, address: str, node: str, state_dir: Path, run_dir: Path = RUN_DIR):
        self.address = address
        self.run_dir = Path(run_dir)
        digest = hashlib.sha1(str(Path(state_dir).resolve()).encode()).hexdigest()[:10]
        #: one agent: its node name, and its state dir (two test beds may both have a tycho-node-1)
        self.ident = f"{node}-{digest}"
        self.hosts_dir = self.run_dir / "hosts.d"
        self.agents_dir = self.run_dir / "agents"
        self.pid_file = self.run_dir / "dnsmasq.pid"
        self.hosts_file = self.hosts_dir / f"{self.ident}.hosts"
        self.header = f"# cluster DNS records of node agent {node} (state dir {Path(state_dir).resolve()})\n"
        self._member: Optional[int] = None
        self._published: Optional[str] = None

    # -- membership

    def join(self) -> None:
        """Take this agent's place and make sure dnsmasq runs; ResolverError if it cannot."""
        if shutil.which("dnsmasq") is None:
            raise ResolverError("needs dnsmasq (Debian's dnsmasq-base package) to serve "
                                "cluster DNS to pods: apt-get install dnsmasq-base")
        for d in (self.run_dir, self.hosts_dir, self.agents_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)  # dnsmasq reads the records as its own unprivileged user
        with self._host_lock():
            fd = os.open(self.agents_dir / f"{self.ident}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ResolverError(f"another node agent with this node name and state dir is running ({self.ident})")
            self._member = fd
            if self._remove_departed():
                self._reload()
            if not self.hosts_file.exists():
                self.publish([])
            self._ensure_running()

    def leave(self) -> None:
        """Remove this agent's records; stop dnsmasq if no other agent is left."""
        if self._member is None:
            return
        with self._host_lock():
            self.hosts_file.unlink(missing_ok=True)
            (self.agents_dir / f"{self.ident}.lock").unlink(missing_ok=True)
            os.close(self._member)
            self._member = None
            self._remove_departed()
            if not self._others():
                self._stop()
            else:
                self._reload()

    def _host_lock(self):
        return _Flock(self.run_dir / "host.lock")

    def _others(self) -> list[str]:
        """The other agents alive (holding their lock)."""
        alive = []
        for path in self.agents_dir.glob("*.lock"):
            ident = path.name[:-len(".lock")]
            if ident != self.ident and _held(path):
                alive.append(ident)
        return alive

    def _remove_departed(self) -> bool:
        """Remove the records of agents that died without leaving (kill -9, a lost test
        session); whether there were any (dnsmasq is then to read the records again)."""
        removed = False
        for path in self.hosts_dir.iterdir():
            if not path.name.endswith(".hosts"):
                path.unlink(missing_ok=True)  # not a record file (an earlier version's temporary)
                continue
            ident = path.name[:-len(".hosts")]
            lock = self.agents_dir / f"{ident}.lock"
            if ident != self.ident and not (lock.exists() and _held(lock)):
                path.unlink(missing_ok=True)
                lock.unlink(missing_ok=True)
                removed = True
                log.info("removed the DNS records of node agent %s, which is gone", ident)
        return removed

    # -- records

    def publish(self, records: Iterable[tuple[str, str]]) -> None:
        """Replace this agent's records (address, name); dnsmasq reads them at once."""
        text = hosts_text(records, self.header)
        if text == self._published:
            return
        tmp = self.run_dir / f".{self.ident}.tmp"  # beside the directory dnsmasq reads whole
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.hosts_file)
        self._published = text
        self._reload()

    def _reload(self) -> None:
        """Make dnsmasq read every agent's records again (see the module's docstring)."""
        pid = self.running_pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    # -- dnsmasq

    def argv(self) -> list[str]:
        return ["dnsmasq", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                f"--addn-hosts={self.hosts_dir}",
                # Only the bridge address. gVisor answers TCP only with bound sockets: no
                # --bind-dynamic; the bridge exists before the first agent joins.
                f"--listen-address={self.address}", "--bind-interfaces", "--port=53",
                # Authoritative for everything, forwarding nothing: NXDOMAIN outside the records.
                "--local=/#/",
                f"--pid-file={self.pid_file}", f"--log-facility={self.run_dir / 'dnsmasq.log'}"]

    def running_pid(self) -> Optional[int]:
        """dnsmasq's pid if it runs with this module's options."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        except (OSError, ValueError):
            return None
        return pid if [a.decode(errors="replace") for a in cmdline][1:] == self.argv()[1:] else None

    def _ensure_running(self) -> None:
        if self.running_pid() is not None:
            return
        self._stop()  # one started with other options, if any: only its pid file is ours to trust
        (self.run_dir / "dnsmasq.log").unlink(missing_ok=True)  # one log per run of the resolver
        err_path = self.run_dir / "dnsmasq.start-error"
        with open(err_path, "wb") as err:
            # dnsmasq returns once its daemon listens, or fails saying why on stderr.
            done = subprocess.run(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        message = err_path.read_text(errors="replace").strip().splitlines()
        err_path.unlink(missing_ok=True)
        if done.returncode != 0:
            raise ResolverError(f"cannot start the cluster DNS resolver on {self.address}:53: "
                                f"{message[-1] if message else f'dnsmasq exited with {done.returncode}'}")
        log.info("cluster DNS resolver started on %s:53 (dnsmasq, pid %s)", self.address, self.running_pid())

    def _stop(self) -> None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if _comm(pid) != "dnsmasq":
            self.pid_file.unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _comm(pid) == "dnsmasq" and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        log.info("cluster DNS resolver stopped (no node agent left on this host)")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _held(path: Path) -> bool:
    """Someone holds the lock on ``path`` (a live agent)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class _Flock:
    """The host-wide lock around joining and leaving."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
