"""Services on the test bed: the real kube-proxy, and what the host needs around it.

kube-proxy (iptables mode, built from the same Debian source package as the control plane)
runs in the host's network namespace, where the pods' bridge ``tycho0`` and their gateway
``10.213.0.1`` are: a pod's packet to a ClusterIP goes to its gateway, the host's netfilter
rewrites it to an endpoint and routes it back onto the bridge, as on a real node whose pods sit
on a bridge. Its chains (``KUBE-SERVICES``, ``KUBE-NODEPORTS``...) are global to that network
namespace and each kube-proxy deletes the ``KUBE-*`` chains it does not know, so two clusters
cannot both have one there: the host's Service network belongs to one test bed at a time, the
first to take :data:`LOCK` (test sessions side by side: the others run without Services and
say so in one line). The lock is held by the kube-proxy process itself, so it is free again the
moment that process is gone, however it ended.

Around it, what a node's setup provides:

* forwarding (``net.ipv4.ip_forward``), which ClusterIP traffic needs, behind a guard set up
  first: an nftables table of its own (:data:`GUARD_TABLE`) that forwards only between pods on
  ``tycho0`` and drops (and counts) anything else, so no pod's packet can leave this machine;
* ``bridge-nf-call-iptables``: the reply of a pod reached through a Service goes back to its
  client over the bridge, and must pass the host's conntrack to be rewritten to the Service's
  address (as on any bridge-based node; kube-proxy masquerades a pod reaching itself);
* the values the host had are recorded in :data:`HOST_STATE` and put back, with the guard
  removed and ``kube-proxy --cleanup`` run, when the owner stops (or by the next owner, if the
  one before died without cleaning up).

The API server listens on 127.0.0.1 only; the ``kubernetes`` Service's endpoint is
``10.213.0.1:<its port>`` (``--advertise-address``, reconciled by the API server), where a
relay (Debian's ``socat``) listening on that address of the bridge passes connections to it.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Optional

log = logging.getLogger("tycho_testbed.service_network")

BRIDGE = "tycho0"
POD_NETWORK = "10.213.0.0/16"
#: The node's address on the pods' bridge: every node agent's InternalIP and the pods' gateway.
NODE_ADDRESS = "10.213.0.1"
RUN_DIR = Path("/run/tycho-testbed")
LOCK = RUN_DIR / "services.lock"
HOST_STATE = RUN_DIR / "services.json"
GUARD_TABLE = "tycho_testbed_forward"
#: Set while a test bed owns the host's Service network, put back afterwards. kube-proxy itself
#: sets route_localnet (NodePorts on 127.0.0.1); it is recorded to be put back too.
SYSCTLS = {
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/ipv4/conf/all/route_localnet": None,
    "net/ipv4/ip_forward": "1",
}


class ServicesError(RuntimeError):
    """The host's Service network could not be set up."""


def guard_script() -> str:
    """The forwarding guard: what the host forwards is pod to pod on the bridge, nothing else.

    In and out of the bridge, whatever the addresses: with ``bridge-nf-call-iptables`` frames
    bridged between pods pass the forward hook too (a pod standing in for an outside address
    is reached that way), and an address outside is only ever routed out another interface.
    Its own table, so it neither depends on nor disturbs kube-proxy's (iptables) rules: a packet
    dropped by any table's forward chain is dropped, whatever the others accept. It comes after
    iptables' filter chain, so that kube-proxy answers first for a Service without endpoints (a
    REJECT: the client sees "connection refused", as on any cluster); what it lets pass, the
    guard still judges.
    """
    return (f"table ip {GUARD_TABLE} {{}}\n"
            f"delete table ip {GUARD_TABLE}\n"
            f"table ip {GUARD_TABLE} {{\n"
            "\tchain forward {\n"
            "\t\ttype filter hook forward priority filter + 10; policy accept;\n"
            f'\t\tiifname "{BRIDGE}" oifname "{BRIDGE}" accept comment "pod to pod: stays on the bridge"\n'
            '\t\tcounter drop comment "anything else forwarded would leave the bridge: never"\n'
            "\t}\n"
            "}\n")


def guard_dropped() -> Optional[int]:
    """Packets the guard has dropped so far; None when the guard is not in place."""
    done = subprocess.run(["nft", "-j", "list", "table", "ip", GUARD_TABLE], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    for item in json.loads(done.stdout)["nftables"]:
        rule = item.get("rule")
        if rule and any("drop" in e for e in rule["expr"]):
            return next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return None


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key


def _read(key: str) -> str:
    return _sysctl_path(key).read_text().strip()


def _write(key: str, value: str) -> None:
    _sysctl_path(key).write_text(value + "\n")


def claim(owner: Path) -> Optional[int]:
    """Take the host's Service network for the test bed whose state is in ``owner``: the locked
    file's descriptor, to be passed to kube-proxy, or None if another test bed's kube-proxy holds
    it. Whatever a previous owner left (rules, sysctls, guard) is cleaned up by the caller."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{owner}\n".encode())
    return fd


def holder() -> str:
    """Which test bed holds the host's Service network (its state directory), as it wrote it."""
    try:
        return LOCK.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def prepare_host(owner: Path) -> None:
    """Record what the host has (unless a previous owner's record is still there: that one holds
    the values from before any test bed), put the guard in place, then turn forwarding on."""
    if not _sysctl_path("net/bridge/bridge-nf-call-iptables").exists():
        raise ServicesError("/proc/sys/net/bridge/bridge-nf-call-iptables is missing: Services need the "
                            "br_netfilter kernel module (modprobe br_netfilter)")
    record = _host_record()
    if record is None:
        record = {"sysctls": {key: _read(key) for key in SYSCTLS}, "iptables_tables": _iptables_tables()}
    record["owner"] = str(owner)
    HOST_STATE.write_text(json.dumps(record))
    done = subprocess.run(["nft", "-f", "-"], input=guard_script(), capture_output=True, text=True)
    if done.returncode != 0:
        raise ServicesError(f"nft refused the forwarding guard: {done.stderr.strip()}")
    if guard_dropped() is None:
        raise ServicesError(f"the forwarding guard (nft table ip {GUARD_TABLE}) is not in place")
    for key, value in SYSCTLS.items():  # ip_forward last: the guard is in place
        if value is not None:
            _write(key, value)


def _host_record() -> Optional[dict]:
    try:
        return json.loads(HOST_STATE.read_text())
    except (OSError, ValueError):
        return None


def restore_host() -> None:
    """Put the host back as it was found: forwarding first, then the guard, then the rest."""
    record = _host_record()
    if record is None:
        return
    found = record["sysctls"]
    _write("net/ipv4/ip_forward", found["net/ipv4/ip_forward"])
    subprocess.run(["nft", "delete", "table", "ip", GUARD_TABLE], capture_output=True)
    for key, value in found.items():
        if _sysctl_path(key).exists():
            _write(key, value)
    HOST_STATE.unlink(missing_ok=True)


def owned_by(owner: Path) -> bool:
    record = _host_record()
    return record is not None and record.get("owner") == str(owner)


#: The tables iptables (nf_tables backend) makes for kube-proxy.
IPTABLES_TABLES = ("filter", "nat", "mangle")


def _iptables_tables() -> list:
    """Which of iptables' tables the host has (as nftables tables of family ip)."""
    out = subprocess.run(["nft", "list", "tables", "ip"], capture_output=True, text=True).stdout.split()
    return [t for t in IPTABLES_TABLES if t in out]


def cleanup_rules(kube_proxy: Path) -> None:
    """``kube-proxy --cleanup``, then what it leaves: its chains ``KUBE-PROXY-CANARY``,
    ``KUBE-MARK-MASQ`` and ``KUBE-MARK-DROP``, and iptables' tables the host did not have before
    (when nothing but those chains is in them)."""
    done = subprocess.run([str(kube_proxy), "--cleanup", "--v", "0"], capture_output=True, text=True)
    if done.returncode != 0:
        log.warning("kube-proxy --cleanup failed (%s): %s", done.returncode, " ".join(done.stderr.split())[-300:])
    record = _host_record()
    had = set(record["iptables_tables"]) if record else set(IPTABLES_TABLES)
    for table in _iptables_tables():
        listing = subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True, text=True)
        if listing.returncode != 0:
            continue
        items = json.loads(listing.stdout)["nftables"]
        chains = [i["chain"]["name"] for i in items if "chain" in i]
        ours = [c for c in chains if c.startswith("KUBE-")]
        foreign_rules = [i for i in items if "rule" in i and not i["rule"]["chain"].startswith("KUBE-")]
        if table not in had and not foreign_rules:
            subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
            continue
        for chain in ours:
            subprocess.run(["nft", "flush", "chain", "ip", table, chain], capture_output=True)
        for chain in ours:
            subprocess.run(["nft", "delete", "chain", "ip", table, chain], capture_output=True)


def kube_proxy_argv(kube_proxy: Path, kubeconfig: Path, node: str, healthz_port: int, metrics_port: int) -> list:
    return [
        str(kube_proxy), "--kubeconfig", str(kubeconfig), "--proxy-mode", "iptables",
        "--hostname-override", node, "--bind-address", NODE_ADDRESS,
        # Pods' traffic keeps its source (the bridge's conntrack rewrites replies); traffic from
        # elsewhere (the host) to a ClusterIP is masqueraded, as is a pod reaching itself.
        "--cluster-cidr", POD_NETWORK,
        # NodePorts on this machine's loopback and the node's address only: never on eth0.
        "--nodeport-addresses", f"127.0.0.0/8,{POD_NETWORK}",
        "--healthz-bind-address", f"127.0.0.1:{healthz_port}",
        "--metrics-bind-address", f"127.0.0.1:{metrics_port}",
        # 0: leave the host's conntrack table size and timeouts as they are.
        "--conntrack-max-per-core", "0", "--conntrack-tcp-timeout-established", "0",
        "--conntrack-tcp-timeout-close-wait", "0",
        "--oom-score-adj", "0",
        "--v", "1",
    ]


def wait_synced(proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Until kube-proxy has written the ``kubernetes`` Service's rules (its first full sync)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServicesError(f"kube-proxy exited ({proc.returncode}); see {log_path}")
        done = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES"], capture_output=True, text=True)
        if "default/kubernetes:https" in done.stdout:
            return
        time.sleep(0.2)
    raise ServicesError(f"kube-proxy wrote no rule for the kubernetes Service after {timeout}s; see {log_path}")


def relay_argv(port: int) -> list:
    """The relay from the ``kubernetes`` Service's endpoint (the node's address on the bridge) to
    the API server on 127.0.0.1: TCP passed through, TLS end to end."""
    return ["socat", f"TCP4-LISTEN:{port},bind={NODE_ADDRESS},reuseaddr,fork", f"TCP4:127.0.0.1:{port}"]
