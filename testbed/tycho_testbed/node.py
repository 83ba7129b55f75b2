"""The node agent: the one simulated part of the test bed, playing the kubelet of one Node.

What is real: the Node and Pod objects, the scheduler's binding, the status and Events the
agent writes through the real API server, and the processes: each container runs as a real
local process, as the pod's ``runAsUser``, in the pod's own network namespace (its own
``127.0.0.1`` shared by its containers, its own IP on a bridge the host can reach) and its own
mount namespace (volumes bind-mounted at their mountPath, see :mod:`tycho_testbed.volumes`).
Init containers run in order, each to completion, before the app containers, and status is
reported with the kubelet's reasons (PodInitializing, Init CrashLoopBackOff, Initialized...).

Heartbeats are a 1.20 kubelet's: the Node's status every 10 s and a Lease in kube-node-lease
renewed every quarter of its duration, so that the real node-lifecycle controller marks the
node Unknown and its pods not ready when the agent dies or hangs; the agent then writes its
pods' status again even if, for it, nothing changed (as a kubelet's status manager does).

Like a kubelet beside its container runtime, the agent survives its own kill -9: containers run
in sessions of their own and outlive it, and an agent started again on the same state dir takes
over the pods the API server still binds to the node (same network namespace and IP, same
processes, restart counts and readiness), restarts by restartPolicy what ended meanwhile (with
its real exit code), stops what was deleted meanwhile. A graceful stop (SIGTERM) stops every pod.

What is simulated, explicitly:

* images: there is no registry or container runtime. An image is "pulled" by finding it in the
  image table (:mod:`tycho_testbed.images`) that maps it to local programs; an image not in the
  table fails like a missing image (``ErrImagePull``, then ``ImagePullBackOff``);
* the root filesystem is the host's (only volumes, the working directory and ``/tmp`` are
  private to the pod), and resources (cpu, memory) are recorded, not enforced: no cgroups;
* cluster DNS is not CoreDNS in pods but one dnsmasq for the whole host on the node side of the
  bridge (:mod:`tycho_testbed.resolver`), fed by the agents with their cluster's Service
  records (:mod:`tycho_testbed.dns`); pods get the kubelet's resolv.conf, hosts file, hostname
  and Service environment variables (:mod:`tycho_testbed.service_env`);
* the network plugin: NetworkPolicies are enforced by the agent itself, as nftables tables in
  each pod's network namespace (:mod:`tycho_testbed.netpol`); the node (the host, where the
  tests' hub and proxy run) is always allowed both ways, and a root container could remove them;
* back-off for crash loops, image pulls and volume set-up is shorter than a kubelet's
  (seconds, not minutes);
* a changed ConfigMap or Secret reaches the configMap and secret volumes of running pods within
  about a second (a watch of each kind, :mod:`tycho_testbed.keyed_watch`), where a kubelet takes
  up to its sync period (a minute by default); subPath mounts are never updated, as on a kubelet;
* extended resources (``--extended-resource nvidia.com/gpu=2``) are numbers in the Node's
  capacity and allocatable, for the scheduler to count: no device is attached and no device
  plugin runs, so a pod given a GPU gets no ``/dev/nvidia*`` and no ``NVIDIA_VISIBLE_DEVICES``
  (what it sees is what any pod sees). Labels (``--label``) and taints (``--taint``) are real:
  they are the Node's, set when it registers and added again when an agent registers an
  existing Node (restart), as a kubelet's ``--node-labels`` and ``--register-with-taints``;
* fsGroup is applied to persistentVolumeClaim volumes (host directories) as a kubelet applies
  it to block and CSI volumes; a real kubelet does not for hostPath or NFS volumes;
* what a container runtime remembers for a kubelet is a record per pod in the state dir
  (:class:`PodRecord`: address, pids with their start times, restart counts, states) and a
  shell shim per container that stays its process's parent and writes its exit code
  (:data:`SHIM`), as a containerd shim keeps it.

It needs root (network and mount namespaces, switching user); it refuses to start otherwise.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from .dns import ResolverConfig, hosts_file, pod_hostname, pod_resolver, zone_records
from .images import ImageTable, pod_path, program_overlays
from .keyed_watch import KeyedWatch
from .netpol import Enforcer
from .resolver import Resolver, ResolverError
from .service_env import service_environment
from .service_watch import ServiceWatch
from .volumes import Mount, MountError, PodVolumes, VolumeError, bind_script, decode_keyed, go_list

log = logging.getLogger("tycho_testbed.node")

BRIDGE = "tycho0"
NETWORK = ipaddress.ip_network("10.213.0.0/16")
GATEWAY = "10.213.0.1"
BACKOFF_START, BACKOFF_MAX = 1.0, 10.0
HEARTBEAT_SECONDS = 10
#: A kubelet's --node-lease-duration-seconds default; it renews its Lease every quarter of it.
LEASE_SECONDS = 40
LEASE_NAMESPACE = "kube-node-lease"
#: Where pods' files live, like /var/lib/kubelet/pods on a real node.
POD_ROOT = Path("/var/lib/tycho-testbed")
#: A kubelet's --cluster-domain and --resolv-conf defaults; --cluster-dns is the resolver on the
#: bridge (see tycho_testbed.resolver).
CLUSTER_DOMAIN = "cluster.local"
NODE_RESOLV_CONF = "/etc/resolv.conf"


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


class RateLimiter:
    """The agent's own client rate limit (a kubelet defaults to 5 QPS, burst 10, in 1.20)."""

    def __init__(self, qps: float):
        self.interval = 1.0 / qps if qps > 0 else 0.0
        self.lock = threading.Lock()
        self.next = 0.0

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            t = time.monotonic()
            start = max(t, self.next)
            self.next = start + self.interval
        if start > t:
            time.sleep(start - t)


# ------------------------------------------------------------------------------------ network


def ensure_bridge() -> bool:
    """Create the pods' bridge (host side 10.213.0.1/16) if needed; True if this call created it."""
    if sh("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        return False
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{GATEWAY}/{NETWORK.prefixlen}", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    return True


def bridge_ports() -> list[str]:
    out = sh("ip", "-o", "link", "show", "master", BRIDGE, check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]


def netns_name(uid: str) -> str:
    return f"tycho-{uid[:13]}"


def create_pod_network(uid: str, ip: str) -> None:
    ns = netns_name(uid)
    host_if = "vt" + hashlib.sha1(uid.encode()).hexdigest()[:11]
    delete_pod_network(uid)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
    sh("ip", "link", "set", host_if, "master", BRIDGE)
    # Hairpin, as a CNI bridge plugin's hairpinMode: a pod reaching itself through its Service
    # comes back out of the bridge port it came in by.
    sh("ip", "link", "set", host_if, "type", "bridge_slave", "hairpin", "on")
    sh("ip", "link", "set", host_if, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "addr", "add", f"{ip}/{NETWORK.prefixlen}", "dev", "eth0")
    # Addresses are reused as pods come and go: what cached the previous pod's MAC for this
    # address (the host, other pods) would send it nowhere for up to a minute. Like a CNI
    # bridge plugin, announce the new owner with a gratuitous ARP as eth0 comes up
    # (arp_notify), and drop the host's entry.
    sh("ip", "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_notify")
    sh("ip", "neigh", "flush", "to", ip, "dev", BRIDGE, check=False)
    sh("ip", "-n", ns, "link", "set", "eth0", "up")
    sh("ip", "-n", ns, "route", "add", "default", "via", GATEWAY)


def pod_network_exists(uid: str) -> bool:
    """The pod's network namespace is still there (an earlier run of the agent made it)."""
    return (Path("/run/netns") / netns_name(uid)).exists()


def delete_pod_network(uid: str) -> None:
    host_if = "vt" + hashlib.sha1(uid.encode()).hexdigest()[:11]
    sh("ip", "link", "del", host_if, check=False)
    sh("ip", "netns", "del", netns_name(uid), check=False)


def _api_message(err) -> str:
    """The API server's own sentence for a refusal (what was invalid), else its HTTP reason."""
    try:
        return json.loads(err.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(err.reason)


def _refused_field(err) -> Optional[str]:
    """The field an Invalid (422) answer names first, if any."""
    try:
        return json.loads(err.body)["details"]["causes"][0]["field"]
    except (TypeError, ValueError, KeyError, IndexError):
        return None


# ------------------------------------------------------------------------------------ pods


class ConfigError(Exception):
    """A container's configuration cannot be resolved (CreateContainerConfigError)."""


# ------------------------------------------------------------------------------------ what outlives the agent

#: The end of every container's start script. The shell stays as the container's shim: the
#: parent of its process, it writes the process's exit code (128 + signal for a signal) to fd 9,
#: opened before the pod's mounts hide the state dir. An agent restarted after a kill -9 is no
#: longer the parent of what it started: this file is how it learns how a container ended while
#: it was away, as a kubelet learns it from its container runtime. The shim waits through
#: SIGTERM (its container's process gets it) and says nothing (no "Terminated" in the log).
SHIM = ["set +e", "trap : TERM INT HUP", "exec 8>&2 2>/dev/null", '(exec 2>&8 8>&- 9>&-; exec "$@")',
        "code=$?", "echo $code >&9", "exit $code"]


def stamp(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def process_start_time(pid: int) -> Optional[int]:
    """When a running process started (clock ticks after boot): with its pid, what tells it from
    a later process given the same pid. None if no such process runs (gone, or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # from field 3 (state) on; the name may hold spaces
    return None if fields[0] in ("Z", "X") else int(fields[19])


class AdoptedProcess:
    """A container's shim started by an earlier run of this agent (killed with kill -9): not a
    child of this agent, so watched through a pidfd, its exit code read from the shim's file.
    Offers what the pod worker uses of ``subprocess.Popen``: ``pid``, ``poll()``, ``wait()``
    (which returns None, not raises, when ``timeout`` passes)."""

    def __init__(self, pid: int, start_time: Optional[int], exit_file: Path):
        self.pid = pid
        self.exit_file = exit_file
        self.returncode: Optional[int] = None
        self.finished_at: Optional[str] = None
        self._lock = threading.Lock()
        try:
            self._pidfd: Optional[int] = os.pidfd_open(pid)
        except OSError:
            self._pidfd = None
        # Compared once the pidfd is open: from then on it names the process that started then.
        if self._pidfd is not None and (start_time is None or process_start_time(pid) != start_time):
            os.close(self._pidfd)
            self._pidfd = None
        if self._pidfd is None:
            self._finish()

    def __del__(self):
        if getattr(self, "_pidfd", None) is not None:
            os.close(self._pidfd)

    def _finish(self) -> None:
        """The code the shim wrote, and when; 137 (killed) when the shim itself was killed."""
        try:
            code, finished = self.exit_file.read_text().strip(), self.exit_file.stat().st_mtime
        except OSError:
            code, finished = "", 0.0
        self.returncode = int(code) if code.isdigit() else 137
        self.finished_at = stamp(finished) if code.isdigit() else None

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        if self.returncode is None:
            ended = select.poll()  # not select(): pidfds of many pods go past FD_SETSIZE
            ended.register(self._pidfd, select.POLLIN)
            if not ended.poll(None if timeout is None else timeout * 1000):
                return None
            with self._lock:
                if self.returncode is None:
                    self._finish()
        return self.returncode

    def poll(self) -> Optional[int]:
        return self.wait(0)

    def signal_group(self, signum: int) -> None:
        """Signal the container's process group, unless its pid now names another process."""
        if self.poll() is None or process_start_time(self.pid) is None:
            try:
                os.killpg(self.pid, signum)
            except ProcessLookupError:
                pass


@dataclass(frozen=True)
class ContainerRecord:
    """What a container runtime remembers of a container: its process (pid and start time), its
    restart count, its state and the previous instance's end."""

    pid: Optional[int]
    pid_start: Optional[int]
    restarts: int
    state: dict
    last_state: dict
    started_at: Optional[str]
    ready: bool
    pulled: bool


@dataclass(frozen=True)
class PodRecord:
    """What the agent needs to take a pod over after a kill -9 (``state.json`` in the pod's
    directory of the state dir): a kubelet finds it in its container runtime (the sandbox and
    its IP, the containers, their restart counts and exit codes) and its checkpoints."""

    uid: str
    namespace: str
    name: str
    ip: str
    start_time: str
    phase: str
    grace_seconds: int
    #: condition type -> [status, lastTransitionTime]
    transitions: dict
    containers: dict[str, ContainerRecord]

    @classmethod
    def load(cls, path: Path) -> "PodRecord":
        data = json.loads(path.read_text())
        return cls(**{**data, "containers": {name: ContainerRecord(**c) for name, c in data["containers"].items()}})

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class ContainerRun:
    name: str
    spec: dict
    #: an init container: runs to completion, in order, before the app containers start.
    init: bool = False
    #: a subprocess.Popen, or an AdoptedProcess after the agent's restart
    proc: Optional[subprocess.Popen] = None
    #: its start time (see process_start_time), recorded with its pid
    pid_start: Optional[int] = None
    state: dict = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict = field(default_factory=dict)
    restarts: int = 0
    ready: bool = False
    started_at: Optional[str] = None
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    probe_ok: int = 0
    probe_fail: int = 0
    next_probe: float = 0.0
    pulled: bool = False

    @property
    def field_path(self) -> str:
        """How Events name the container (``involvedObject.fieldPath``)."""
        return f"spec.{'initContainers' if self.init else 'containers'}{{{self.name}}}"

    @property
    def succeeded(self) -> bool:
        return self.state.get("terminated", {}).get("exitCode") == 0

    def api_status(self, pod_uid: str) -> dict:
        """This container's entry in containerStatuses / initContainerStatuses, as a kubelet
        writes it (init containers are ready once they exited 0, and have no ``started``)."""
        entry = {"name": self.name, "image": self.spec.get("image", ""), "imageID": "",
                 "ready": self.succeeded if self.init else self.ready,
                 "restartCount": self.restarts, "state": self.state, "lastState": self.last_state}
        if not self.init:
            entry["started"] = self.proc is not None
        if self.proc is not None or "terminated" in self.state:
            entry["containerID"] = f"tycho://{pod_uid}/{self.name}"
        return entry


def pod_phase(restart_policy: str, init_statuses: list[dict], statuses: list[dict]) -> str:
    """The kubelet's getPhase: a pod's phase from its container statuses."""
    pending_init = failed_init = 0
    for s in init_statuses:
        state = s["state"]
        if "running" in state:
            pending_init += 1
        elif "terminated" in state:
            failed_init += state["terminated"]["exitCode"] != 0
        elif "terminated" in s["lastState"]:
            failed_init += s["lastState"]["terminated"]["exitCode"] != 0
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = 0
    for s in statuses:
        state = s["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif "terminated" in s["lastState"]:
            stopped += 1
        else:
            waiting += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    if pending_init or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"  # all restarting
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def pod_conditions(init_statuses: list[dict], statuses: list[dict], phase: str) -> list[dict]:
    """Initialized, ContainersReady and Ready with the kubelet's reasons and messages
    (pkg/kubelet/status/generate.go), without transition times."""
    unready_init = [s["name"] for s in init_statuses if not s["ready"]]
    if phase == "Succeeded":
        initialized = {"type": "Initialized", "status": "True", "reason": "PodCompleted"}
    elif unready_init:
        initialized = {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
                       "message": f"containers with incomplete status: {go_list(unready_init)}"}
    else:
        initialized = {"type": "Initialized", "status": "True"}
    unready = [s["name"] for s in statuses if not s["ready"]]
    if phase == "Succeeded":
        ready = {"status": "False", "reason": "PodCompleted"}
    elif unready:
        ready = {"status": "False", "reason": "ContainersNotReady",
                 "message": f"containers with unready status: {go_list(unready)}"}
    else:
        ready = {"status": "True"}
    # reason and message always present, null when unset: the status patch merges conditions by
    # type, and a field left out would keep its old value.
    return [{"reason": None, "message": None, **condition}
            for condition in (initialized, {"type": "Ready", **ready}, {"type": "ContainersReady", **ready})]


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: dict) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, unknown stay."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, value)


class PodWorker(threading.Thread):
    """Runs one pod from binding to deletion, writing its status like a kubelet."""

    def __init__(self, agent: "NodeAgent", pod: dict, record: Optional[PodRecord] = None):
        super().__init__(daemon=True, name=f"pod-{pod['metadata']['name']}")
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.name = meta["name"]
        self.namespace = meta["namespace"]
        # Logs, exit codes and the pod's record in the state dir; the pod's own files (home, /tmp,
        # volumes) where a kubelet keeps them, outside /tmp, because /tmp is replaced inside the pod.
        self.logs = agent.state_dir / "pods" / f"{self.namespace}_{self.name}_{self.uid}"
        self.dir = POD_ROOT / agent.node / self.uid
        self.ip: Optional[str] = None
        self.delete_requested = threading.Event()
        self.wake = threading.Event()
        spec = pod["spec"]
        # A kubelet shows containers it has not started as ContainerCreating, or as
        # PodInitializing (init containers included) when the pod has init containers.
        waiting = {"waiting": {"reason": "PodInitializing" if spec.get("initContainers") else "ContainerCreating"}}
        self.init_containers = [ContainerRun(c["name"], c, init=True, state=dict(waiting))
                                for c in spec.get("initContainers") or []]
        self.containers = [ContainerRun(c["name"], c, state=dict(waiting)) for c in spec["containers"]]
        self.volumes = PodVolumes(agent, pod, self.dir)
        self.volumes_ready = False
        #: set (from the ConfigMap/Secret watch) when an object the pod's volumes project changed
        self.keyed_changed = threading.Event()
        self.keyed_subscribed = False
        self.next_volume_try = 0.0
        self.volume_backoff = BACKOFF_START
        self.start_time = now()
        self.phase = "Pending"
        self.transitions: dict[str, tuple[str, str]] = {}
        self.last_status: Optional[str] = None
        #: the conditions' statuses last written, and the resourceVersion that write made: to
        #: notice a later writer (the node-lifecycle controller)
        self.written_conditions: Optional[dict] = None
        self.written_version = 0
        #: a pod an earlier run of this agent ran, taken over (see _adopt)
        self.record = record
        self.saved: Optional[str] = None
        if meta.get("deletionTimestamp"):
            self.delete_requested.set()

    # -- helpers

    @property
    def restart_policy(self) -> str:
        return self.pod["spec"].get("restartPolicy", "Always")

    @property
    def all_containers(self) -> list[ContainerRun]:
        return self.init_containers + self.containers

    def event(self, reason: str, message: str, kind: str = "Normal", container: Optional[ContainerRun] = None) -> None:
        self.agent.event(self.pod, reason, message, kind, container.field_path if container else None)

    def update(self, pod: dict) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.delete_requested.set()
        # The node-lifecycle controller marks the pods of a node it lost not ready: the status this
        # agent writes must be written again, even unchanged, as a kubelet's status manager does.
        if self.written_conditions is not None and int(pod["metadata"]["resourceVersion"]) > self.written_version:
            conditions = (pod.get("status") or {}).get("conditions") or []
            if self.written_conditions != {c["type"]: c["status"] for c in conditions
                                           if c["type"] in self.written_conditions}:
                self.last_status = None
        self.wake.set()

    # -- the loop

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.name)

    def _run(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "home").mkdir(exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        os.chmod(self.dir / "tmp", 0o1777)
        self.ip = self.agent.allocate_ip(self.uid)
        sandbox = self.record is not None and pod_network_exists(self.uid)
        if self.record is not None:
            self._adopt(self.record, sandbox)
        self._save()  # before the network: whatever has a network has a record
        if not sandbox:
            create_pod_network(self.uid, self.ip)
        self._write_dns_files()
        # Its NetworkPolicy filters before any container runs: never reachable unprotected. An
        # adopted pod keeps its filters meanwhile; they are written again from today's policies.
        self.agent.netpol.protect(self.pod, self.ip, netns_name(self.uid), self.delete_requested)
        self.write_status()
        while not self.delete_requested.is_set():
            try:
                self._step()
                self.write_status()
                self._save()
            except Exception as err:
                # The API server away (restarting, unreachable): keep the containers running and
                # try again, as a kubelet does; the status is written again once it answers.
                log.warning("pod %s/%s: %s; retrying in 1 s", self.namespace, self.name, err)
                self.wake.wait(timeout=1.0)
                self.wake.clear()
                continue
            self.wake.wait(timeout=self._next_wakeup())
            self.wake.clear()
        self._terminate()

    def _write_dns_files(self) -> None:
        """The pod's /etc/resolv.conf and /etc/hosts, written once as a kubelet writes them when
        it makes the pod's sandbox (kept for a pod taken over after a restart), bound into each
        of its containers."""
        etc = self.dir / "etc"
        if (etc / "resolv.conf").exists() and (etc / "hosts").exists():
            return
        etc.mkdir(exist_ok=True)
        agent = self.agent
        try:
            node = ResolverConfig.parse(Path(agent.resolv_conf).read_text())
        except OSError:
            node = ResolverConfig()
        formed = pod_resolver(self.pod, node, agent.cluster_dns, agent.cluster_domain)
        for warning in formed.warnings:
            self.event("DNSConfigForming", warning, "Warning")
        for name, text in (("hosts", hosts_file(self.pod, self.ip, agent.cluster_domain)),
                           ("resolv.conf", formed.config.render())):
            (etc / f".{name}").write_text(text)
            os.chmod(etc / f".{name}", 0o644)
            os.replace(etc / f".{name}", etc / name)

    def _adopt(self, record: PodRecord, sandbox: bool) -> None:
        """Take over a pod that an earlier run of this agent (killed with kill -9) left running,
        as a kubelet restarted beside its container runtime: same address, start time and
        conditions' transition times; each container as it was, running on if its process runs
        (the pid with the start time recorded), else ended with the code its shim wrote, then
        restarted or not by restartPolicy, counted, in the next pass. Readiness is kept until a
        probe says otherwise (a 1.20 kubelet shows not ready until its first probe:
        kubernetes#100277). Without its network namespace the pod's sandbox is lost: what still
        ran of it is killed, and restarted in a new one."""
        self.start_time, self.phase = record.start_time, record.phase
        self.transitions = {kind: (value[0], value[1]) for kind, value in record.transitions.items()}
        running = []
        for c in self.all_containers:
            saved = record.containers.get(c.name)
            if saved is None:
                continue
            c.restarts, c.state, c.last_state = saved.restarts, saved.state, saved.last_state
            c.started_at, c.ready, c.pulled, c.pid_start = saved.started_at, saved.ready, saved.pulled, saved.pid_start
            if saved.pid is None:
                continue
            c.proc = AdoptedProcess(saved.pid, saved.pid_start, self.logs / f"{c.name}.exit")
            if c.proc.poll() is not None:
                continue  # its end is noticed by the next pass
            if not sandbox:
                c.proc.signal_group(signal.SIGKILL)
                c.proc.wait()
                continue
            self._wake_on_exit(c.proc)
            c.next_probe = time.monotonic()
            running.append(c.name)
        log.info("pod %s/%s: taken over at %s, still running: %s", self.namespace, self.name, record.ip,
                 ", ".join(running) or "nothing")

    def _save(self) -> None:
        """Write the pod's record (``state.json``) when it changed: a later run of the agent takes
        the pod over from it."""
        if self.agent.stopping.is_set():
            return  # the pods are being stopped with the agent: nothing to take over
        spec = self.pod["spec"]
        containers = {c.name: ContainerRecord(pid=c.proc.pid if c.proc is not None else None, pid_start=c.pid_start,
                                              restarts=c.restarts, state=c.state, last_state=c.last_state,
                                              started_at=c.started_at, ready=c.ready, pulled=c.pulled)
                      for c in self.all_containers}
        grace = spec.get("terminationGracePeriodSeconds")
        text = PodRecord(uid=self.uid, namespace=self.namespace, name=self.name, ip=self.ip, start_time=self.start_time,
                         phase=self.phase, grace_seconds=30 if grace is None else int(grace),
                         transitions={kind: list(value) for kind, value in self.transitions.items()},
                         containers=containers).dump()
        if text == self.saved:
            return
        path = self.logs / "state.json"
        path.with_suffix(".tmp").write_text(text)
        os.replace(path.with_suffix(".tmp"), path)
        self.saved = text

    def _next_wakeup(self) -> float:
        if not self.volumes_ready:
            times = [self.next_volume_try]
        else:
            times = [c.next_start for c in self.all_containers if c.proc is None and c.next_start]
            times += [c.next_probe for c in self.containers if c.proc is not None]
        if not times:
            return 1.0
        return max(0.01, min(min(times) - time.monotonic(), 1.0))

    def _step(self) -> None:
        """One pass of the kubelet's pod sync: volumes, then init containers one at a time, each
        to completion, then the app containers."""
        t = time.monotonic()
        if self.volumes_ready and self.keyed_changed.is_set():
            self._resync_volumes()
        if not self.volumes_ready and not self._set_up_volumes(t):
            # Containers taken over after a restart run on meanwhile: watched, probed.
            for c in self.all_containers:
                if c.proc is not None:
                    self._drive(c, t)
            return
        for c in self.init_containers:
            if c.succeeded:
                continue
            self._drive(c, t)
            if not c.succeeded:
                break  # running, backing off, or failed for good: later ones wait
        else:
            for c in self.containers:
                self._drive(c, t)
        self._update_phase()

    def _set_up_volumes(self, t: float) -> bool:
        """Set up the pod's volumes; on failure FailedMount events, and a retry with back-off
        (the containers stay waiting, as on a kubelet)."""
        if t < self.next_volume_try:
            return False
        if not self.keyed_subscribed:
            # Before the objects are first read: a change after that read is then not missed.
            self.agent.keyed.subscribe(self.uid, self.volumes.keyed_objects(), self._on_keyed_change)
            self.keyed_subscribed = True
        try:
            self.volumes.set_up()
        except VolumeError as err:
            for message in err.messages:
                self.event("FailedMount", message, "Warning")
            log.info("pod %s/%s: volumes not ready: %s", self.namespace, self.name, err)
            self.next_volume_try = t + self.volume_backoff
            self.volume_backoff = min(self.volume_backoff * 2, BACKOFF_MAX)
            return False
        self.volumes_ready = True
        return True

    def _on_keyed_change(self) -> None:
        """From the watch thread: a ConfigMap or Secret this pod mounts may have changed."""
        self.keyed_changed.set()
        self.wake.set()

    def _resync_volumes(self) -> None:
        """A kubelet's sync of a running pod's configMap and secret volumes: written again (the
        ``..data`` swap) when their objects changed. An API error leaves the flag set: the loop
        retries a second later."""
        self.keyed_changed.clear()
        try:
            written = self.volumes.resync()
        except Exception:
            self.keyed_changed.set()
            raise
        if written:
            log.info("pod %s/%s: volumes updated from their objects: %s", self.namespace, self.name,
                     ", ".join(written))

    def _drive(self, c: ContainerRun, t: float) -> None:
        """Advance one container: notice its exit, probe it, or (re)start it when due."""
        if c.proc is not None:
            code = c.proc.poll()
            if code is not None:
                self._exited(c, code)
            elif not c.init:
                self._probe(c, t)
        elif "terminated" not in c.state and t >= c.next_start:
            self._start_container(c)

    def _exited(self, c: ContainerRun, code: int) -> None:
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as runtimes report
        # when a container that ended while the agent was away ended (its shim's exit file)
        finished = getattr(c.proc, "finished_at", None) or now()
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": c.started_at, "finishedAt": finished, "containerID": f"tycho://{self.uid}/{c.name}"}
        # A runtime tears down the whole container when its main process ends: background
        # children it left (its process group) go with it, as they would with the PID namespace.
        _signal_group(c.proc, signal.SIGKILL)
        c.proc = None
        c.ready = False
        if c.init:  # init containers are retried on failure unless restartPolicy is Never
            restart = code != 0 and self.restart_policy != "Never"
        else:
            restart = self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)
        log.info("pod %s/%s: container %s exited with %s", self.namespace, self.name, c.name, code)
        if restart:
            c.last_state = {"terminated": terminated}
            c.restarts += 1
            c.state = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": f"back-off {c.backoff:.0f}s restarting failed container={c.name} pod={self.name}_{self.namespace}({self.uid})"}}
            self.event("BackOff", "Back-off restarting failed container", "Warning", c)
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
        else:
            c.state = {"terminated": terminated}

    def _update_phase(self) -> None:
        if self.phase in ("Succeeded", "Failed"):
            return  # terminal, as on a kubelet
        self.phase = pod_phase(self.restart_policy, [c.api_status(self.uid) for c in self.init_containers],
                               [c.api_status(self.uid) for c in self.containers])

    # -- starting containers

    def _start_container(self, c: ContainerRun) -> None:
        entry = self._pull(c)
        if entry is None:
            return
        try:
            uid, gid, groups = self._identity(c)
            env = self._environment(c, entry)
            workdir = c.spec.get("workingDir") or entry.working_dir or str(self.dir / "home")
            mounts = self._mounts(c, workdir, env)
        except (ConfigError, MountError) as err:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
            self.event("Failed", f"Error: {err}", "Warning", c)
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            return
        argv = entry.argv([expand(a, env) for a in c.spec.get("command") or []],
                          [expand(a, env) for a in c.spec.get("args") or []])
        if not argv:
            c.state = {"waiting": {"reason": "CreateContainerError", "message": "no command specified"}}
            return
        env.setdefault("HOME", workdir if any(m.target == workdir for m in mounts) else str(self.dir / "home"))
        # The new mount namespace copies /run/netns, where every pod's network namespace is
        # bound: dropped here, or each container would keep all earlier pods' namespaces alive.
        exit_file = self.logs / f"{c.name}.exit"
        exit_file.unlink(missing_ok=True)
        script = ["set -e", f"exec 9>{shlex.quote(str(exit_file))}", "umount -l /run/netns 2>/dev/null || true",
                  *program_overlays(entry, self.dir / "image" / c.name),
                  *bind_script(mounts, self.dir / "mnt" / c.name), f"hostname {shlex.quote(pod_hostname(self.pod))}",
                  f"cd {shlex.quote(workdir)}", *SHIM]
        drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
                "--groups=" + ",".join(str(g) for g in groups) if groups else "--clear-groups",
                "--inh-caps=-all", "--"] if uid != 0 else []
        wrapper = ["ip", "netns", "exec", netns_name(self.uid), "unshare", "--mount", "--uts", "--propagation", "private",
                   "/bin/sh", "-c", "\n".join(script), "tycho-container", *drop, *argv]
        logfile = open(self.logs / f"{c.name}.log", "ab")
        try:
            c.proc = subprocess.Popen(wrapper, env=env, stdout=logfile, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:
            c.state = {"waiting": {"reason": "CreateContainerError", "message": str(err)}}
            return
        finally:
            logfile.close()
        c.pid_start = process_start_time(c.proc.pid)
        self._wake_on_exit(c.proc)
        c.started_at = now()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = "readinessProbe" not in c.spec
        self._save()  # its pid at once: a kill -9 of the agent from now on leaves it to take over
        probe = c.spec.get("readinessProbe") or {}
        c.next_probe = time.monotonic() + float(probe.get("initialDelaySeconds", 0))
        c.probe_ok = c.probe_fail = 0
        self.event("Created", f"Created container {c.name}", container=c)
        self.event("Started", f"Started container {c.name}", container=c)
        log.info("pod %s/%s: started %s as uid %s: %s", self.namespace, self.name, c.name, uid, argv)

    def _wake_on_exit(self, proc: subprocess.Popen) -> None:
        """Wake the pod's loop as soon as the process ends: the next init container, a restart
        or the new status should not wait for the loop's next tick."""
        def wait():
            proc.wait()
            self.wake.set()

        threading.Thread(target=wait, daemon=True, name=f"wait-{proc.pid}").start()

    def _pull(self, c: ContainerRun):
        """The test bed's image pull: the image's entry in the image table, or, for an image
        the table does not have, ErrImagePull then ImagePullBackOff as for a missing image."""
        image = c.spec.get("image", "")
        entry = self.agent.images.lookup(image)
        if entry is None:
            first = c.state.get("waiting", {}).get("reason") not in ("ErrImagePull", "ImagePullBackOff")
            self.event("Pulling", f'Pulling image "{image}"', container=c)
            message = f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found in the test bed image table'
            self.event("Failed", f'Failed to pull image "{image}": {message}', "Warning", c)
            self.event("Failed", "Error: ErrImagePull", "Warning", c)
            if first:
                c.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
            else:
                c.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
                self.event("BackOff", f'Back-off pulling image "{image}"', "Normal", c)
            c.next_start = time.monotonic() + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)
            return None
        if not c.pulled:
            self.event("Pulling", f'Pulling image "{image}"', container=c)
            self.event("Pulled", f'Successfully pulled image "{image}" in 0s (test bed image table)', container=c)
            c.pulled = True
        return entry

    def _identity(self, c: ContainerRun) -> tuple[int, int, list[int]]:
        psc = self.pod["spec"].get("securityContext") or {}
        csc = c.spec.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser", 0))
        gid = csc.get("runAsGroup", psc.get("runAsGroup", uid if uid else 0))
        groups = list(psc.get("supplementalGroups") or [])
        if psc.get("fsGroup") is not None:
            groups.append(psc["fsGroup"])
        if (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")) and uid == 0:
            raise ConfigError("container has runAsNonRoot and image will run as root")
        return int(uid), int(gid), sorted(set(int(g) for g in groups))

    def _field(self, path: str) -> str:
        meta, spec, status = self.pod["metadata"], self.pod["spec"], {"podIP": self.ip, "hostIP": GATEWAY}
        simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
                  "spec.nodeName": spec.get("nodeName", ""), "spec.serviceAccountName": spec.get("serviceAccountName", ""),
                  "status.podIP": status["podIP"], "status.hostIP": status["hostIP"]}
        if path in simple:
            return simple[path] or ""
        m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
        if m:
            return (meta.get(m.group(1)) or {}).get(m.group(2), "")
        raise ConfigError(f"unsupported fieldRef {path!r}")

    def _keyed(self, kind: str, ref: dict, read: dict) -> Optional[str]:
        """``read``: what this container's start has read already, by kind and name (as a
        kubelet, one read per Secret or ConfigMap, however many variables name it)."""
        name, key, optional = ref.get("name"), ref.get("key"), ref.get("optional", False)
        if (kind, name) not in read:
            read[kind, name] = self.agent.read_keyed(kind, self.namespace, name)
        data = read[kind, name]
        if data is None:
            if optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found')
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key]

    def _environment(self, c: ContainerRun, entry) -> dict:
        """The image's ENV, then the Service variables of the Services that exist now, then the
        container's envFrom and env, each over the ones before (as a kubelet: a container's own
        variable wins over a Service's, and a $(VAR) reference sees both)."""
        env = {"PATH": pod_path(), "HOSTNAME": pod_hostname(self.pod)}
        read: dict = {}
        env.update(dict(entry.env))
        env.update(service_environment(self.agent.services.services(), self.namespace,
                                       self.pod["spec"].get("enableServiceLinks", True) is not False))
        for source in c.spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = source.get(key)
                if ref:
                    data = self.agent.read_keyed(kind, self.namespace, ref.get("name"))
                    if data is None and not ref.get("optional"):
                        raise ConfigError(f'{kind.lower()} "{ref.get("name")}" not found')
                    for k, v in (data or {}).items():
                        env[prefix + k] = v
        for item in c.spec.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                vf = item["valueFrom"]
                if "fieldRef" in vf:
                    env[name] = self._field(vf["fieldRef"]["fieldPath"])
                elif "secretKeyRef" in vf:
                    value = self._keyed("Secret", vf["secretKeyRef"], read)
                    if value is not None:
                        env[name] = value
                elif "configMapKeyRef" in vf:
                    value = self._keyed("ConfigMap", vf["configMapKeyRef"], read)
                    if value is not None:
                        env[name] = value
                elif "resourceFieldRef" in vf:
                    env[name] = "0"
            else:
                env[name] = expand(item.get("value", ""), env)
        return env

    # -- volumes

    def _mounts(self, c: ContainerRun, workdir: str, env: dict) -> list[Mount]:
        """The container's mounts: a private /tmp, a private working directory, its volumes.

        Keyed by target so that a volume mounted at the working directory (a home volume at
        /home/jovyan) replaces the pod's own home there.
        """
        mounts = {"/tmp": Mount("/tmp", str(self.dir / "tmp")),
                  "/etc/resolv.conf": Mount("/etc/resolv.conf", str(self.dir / "etc" / "resolv.conf")),
                  "/etc/hosts": Mount("/etc/hosts", str(self.dir / "etc" / "hosts"))}
        if not workdir.startswith(str(self.dir)) and (not os.path.isdir(workdir) or workdir.startswith("/home/")):
            # The image's working directory (e.g. /home/jovyan): the pod's own home, not the host's.
            mounts[os.path.normpath(workdir)] = Mount(os.path.normpath(workdir), str(self.dir / "home"))
        uid, gid, _ = self._identity(c)
        os.chown(self.dir / "home", uid, gid)
        for m in self.volumes.mounts(c.spec, lambda value: expand(value, env)):
            mounts[m.target] = m
        return list(mounts.values())

    # -- readiness

    def _probe(self, c: ContainerRun, t: float) -> None:
        probe = c.spec.get("readinessProbe")
        if not probe or t < c.next_probe:
            return
        c.next_probe = t + float(probe.get("periodSeconds", 10))
        ok = self._run_probe(probe)
        if ok:
            c.probe_ok += 1
            c.probe_fail = 0
            if c.probe_ok >= int(probe.get("successThreshold", 1)):
                c.ready = True
        else:
            c.probe_fail += 1
            c.probe_ok = 0
            if c.probe_fail >= int(probe.get("failureThreshold", 3)) and c.ready:
                c.ready = False
                self.event("Unhealthy", "Readiness probe failed", "Warning", c)

    def _port(self, port, c_ports=None) -> int:
        if isinstance(port, int):
            return port
        for c in self.containers:
            for p in c.spec.get("ports") or []:
                if p.get("name") == port:
                    return p["containerPort"]
        return int(port)

    def _run_probe(self, probe: dict) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "tcpSocket" in probe:
                with socket.create_connection((self.ip, self._port(probe["tcpSocket"]["port"])), timeout=timeout):
                    return True
            if "httpGet" in probe:
                get = probe["httpGet"]
                conn = http.client.HTTPConnection(self.ip, self._port(get["port"]), timeout=timeout)
                try:
                    conn.request("GET", get.get("path", "/"))
                    return 200 <= conn.getresponse().status < 400
                finally:
                    conn.close()
            if "exec" in probe:
                done = subprocess.run(["ip", "netns", "exec", netns_name(self.uid), *probe["exec"]["command"]],
                                      capture_output=True, timeout=timeout)
                return done.returncode == 0
        except (OSError, subprocess.TimeoutExpired, http.client.HTTPException):
            return False
        return False

    # -- status

    def status(self) -> dict:
        init_statuses = [c.api_status(self.uid) for c in self.init_containers]
        statuses = [c.api_status(self.uid) for c in self.containers]
        conditions = [{**cond, "lastTransitionTime": self._transition(cond)}
                      for cond in pod_conditions(init_statuses, statuses, self.phase)]
        status = {"phase": self.phase, "hostIP": GATEWAY, "podIP": self.ip, "podIPs": [{"ip": self.ip}],
                  "startTime": self.start_time, "conditions": conditions, "containerStatuses": statuses,
                  "qosClass": "Burstable"}
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        return status

    def _transition(self, condition: dict) -> str:
        """When the condition last changed status (kept across writes, as a kubelet does)."""
        kind, value = condition["type"], condition["status"]
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != value:
            self.transitions[kind] = (value, now())
        return self.transitions[kind][1]

    def write_status(self) -> None:
        status = self.status()
        # Transition times are not compared: a write only when something else changed.
        key = json.dumps({**status, "conditions": [(c["type"], c["status"], c.get("reason"), c.get("message"))
                                                   for c in status["conditions"]]}, sort_keys=True)
        if key == self.last_status:
            return
        written = self.agent.patch_status(self.namespace, self.name, self.uid, status)
        if written is not None:
            self.last_status = key
            self.written_conditions = {c["type"]: c["status"] for c in status["conditions"]}
            self.written_version = written

    # -- deletion

    def _terminate(self) -> None:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        grace = 30 if grace is None else int(grace)
        running = [c for c in self.all_containers if c.proc is not None]
        for c in running:
            self.event("Killing", f"Stopping container {c.name}", container=c)
            _signal_group(c.proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in running):
            time.sleep(0.05)
        self.kill_now()
        self.agent.release_ip(self.uid)
        self.agent.keyed.unsubscribe(self.uid)
        self.agent.delete_pod(self.namespace, self.name, self.uid)
        self.agent.forget(self.uid)
        log.info("pod %s/%s: deleted", self.namespace, self.name)

    def kill_now(self) -> None:
        """SIGKILL what still runs, then remove the pod's network namespace and files."""
        for c in self.all_containers:
            if c.proc is not None and c.proc.poll() is None:
                _signal_group(c.proc, signal.SIGKILL)
                c.proc.wait()
        self.agent.netpol.release(self.uid)  # its filters go with its network namespace
        delete_pod_network(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.logs / "state.json").unlink(missing_ok=True)  # nothing left to take over


def _signal_group(proc, signum: int) -> None:
    if isinstance(proc, AdoptedProcess):
        proc.signal_group(signum)
        return
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------------ the agent


class NodeAgent:
    """Registers a Node, runs the pods bound to it, and reports on them."""

    def __init__(self, kubeconfig: str, node: str, images: ImageTable, state_dir: Path,
                 index: int = 1, qps: float = 100.0, cpu: str = "8", memory: str = "32Gi",
                 lease_seconds: int = LEASE_SECONDS, cluster_domain: str = CLUSTER_DOMAIN,
                 resolv_conf: str = NODE_RESOLV_CONF, labels: Optional[dict[str, str]] = None,
                 taints: tuple["Taint", ...] = (), extended_resources: Optional[dict[str, str]] = None):
        from kubernetes import client, config

        if os.geteuid() != 0:
            raise SystemExit("tycho_testbed node: needs root (network and mount namespaces, "
                             "running pod processes as their runAsUser). Run it as root.")
        self.node = node
        self.images = images
        self.state_dir = Path(state_dir)
        self.index = index
        self.capacity = {"cpu": cpu, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi",
                         **(extended_resources or {})}
        #: the Node's labels: a kubelet's own, then --label's (which may not replace those)
        self.labels = {**node_labels(node), **(labels or {})}
        #: --taint's, on the Node from its registration (a kubelet's --register-with-taints)
        self.taints = tuple(taints)
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.coordination = client.CoordinationV1Api(self.api)
        self.lease_seconds = lease_seconds
        #: since when the Node has been reported Ready (its condition's lastTransitionTime)
        self.ready_since: Optional[str] = None
        #: pods an earlier run of this agent ran (their records), until taken over or torn down
        self.records: dict[str, PodRecord] = {}
        self.limiter = RateLimiter(qps)
        self.workers: dict[str, PodWorker] = {}
        #: Pods whose worker tore them down: a queued MODIFIED event must not start them again.
        self.finished: set[str] = set()
        self.ips: dict[str, str] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.created_bridge = False
        #: The node's network plugin, simulated: NetworkPolicies as nftables tables in pods' namespaces.
        self.netpol = Enforcer(self.api, self.call, [GATEWAY])
        #: Cluster DNS: the host's one resolver on the bridge, fed with this cluster's records.
        self.cluster_domain = cluster_domain
        self.cluster_dns = (GATEWAY,)
        self.resolv_conf = resolv_conf
        self.resolver = Resolver(GATEWAY, node, self.state_dir)
        self.zone_changed = threading.Event()
        self.services = ServiceWatch(self.api, self.call, self.zone_changed.set)
        #: ConfigMaps and Secrets mounted by this node's pods: their volumes follow them.
        self.keyed = KeyedWatch(self.api, self.call)
        #: why the agent could not start (a sentence), if it could not
        self.failure: Optional[str] = None
        #: the kubelet's containerLogs endpoint (kubelet_logs.py), on the InternalIP, once started
        self.kubelet_logs = None

    # -- API helpers (rate limited)

    def call(self, fn, *args, **kwargs):
        self.limiter.wait()
        return fn(*args, **kwargs)

    def event(self, pod: dict, reason: str, message: str, kind: str = "Normal", field_path: Optional[str] = None):
        meta = pod["metadata"]
        stamp = now()
        body = {
            "metadata": {"name": f"{meta['name']}.{os.urandom(8).hex()}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                               "uid": meta["uid"], "apiVersion": "v1",
                               **({"fieldPath": field_path} if field_path else {})},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
        }
        try:
            self.call(self.core.create_namespaced_event, meta["namespace"], body)
        except Exception as err:  # events are best effort, as for a kubelet
            log.debug("event %s for %s failed: %s", reason, meta["name"], err)

    def patch_status(self, namespace: str, name: str, uid: str, status: dict) -> Optional[int]:
        """Write a pod's status; the pod's resourceVersion it made, or None when it must be
        written again (the API server refused it for now). A pod that no longer exists needs no
        status: 0.

        The write names the pod's uid, as a kubelet's does: a pod deleted and created again under
        the same name is another pod, and a late write of the first one's status (its address
        merged into the second's list) must not land on it."""
        from kubernetes.client.rest import ApiException

        try:
            pod = self.call(self.core.patch_namespaced_pod_status, name, namespace,
                            {"metadata": {"uid": uid}, "status": status})
        except ApiException as err:
            if err.status == 404 or _refused_field(err) == "metadata.uid":
                return 0  # gone, or gone and another pod of its name made since
            log.warning("status of %s/%s: %s", namespace, name, _api_message(err))
            return None
        return int(pod.metadata.resource_version)

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        while True:
            try:
                self.call(self.core.delete_namespaced_pod, name, namespace, grace_period_seconds=0,
                          body=client.V1DeleteOptions(grace_period_seconds=0,
                                                      preconditions=client.V1Preconditions(uid=uid)))
                return
            except ApiException as err:
                if err.status not in (404, 409):
                    log.warning("deleting %s/%s: %s", namespace, name, err.reason)
                return
            except Exception as err:  # the API server away: the deletion must still finish
                if self.stopping.is_set():
                    return
                log.warning("deleting %s/%s: %s; retrying in 1 s", namespace, name, err)
                time.sleep(1.0)

    def read(self, fn, *args) -> Optional[dict]:
        """An object as the API serves it (a dict), or None if it does not exist."""
        from kubernetes.client.rest import ApiException

        try:
            # The JSON as served: building the client's model objects and back cost more CPU
            # than the request itself.
            return json.loads(self.call(fn, *args, _preload_content=False).data)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def read_raw(self, kind: str, namespace: str, name: str) -> Optional[dict[str, bytes]]:
        """The keys of a Secret or ConfigMap as bytes (volume files), or None if it is missing."""
        fn = self.core.read_namespaced_secret if kind == "Secret" else self.core.read_namespaced_config_map
        obj = self.read(fn, name, namespace)
        return None if obj is None else decode_keyed(kind, obj)

    def read_keyed(self, kind: str, namespace: str, name: str) -> Optional[dict]:
        """The keys of a Secret or ConfigMap as text (environment variables)."""
        data = self.read_raw(kind, namespace, name)
        return None if data is None else {k: v.decode(errors="replace") for k, v in data.items()}

    def read_claim(self, namespace: str, name: str) -> Optional[dict]:
        return self.read(self.core.read_namespaced_persistent_volume_claim, name, namespace)

    def read_volume(self, name: str) -> Optional[dict]:
        return self.read(self.core.read_persistent_volume, name)

    # -- addresses

    def allocate_ip(self, uid: str) -> str:
        with self.lock:
            if uid in self.ips:
                return self.ips[uid]
            used = set(self.ips.values())
            for host in range(2, 255):
                ip = f"10.213.{self.index}.{host}"
                if ip not in used:
                    self.ips[uid] = ip
                    return ip
        raise RuntimeError("no pod address left on this node")

    def release_ip(self, uid: str) -> None:
        with self.lock:
            self.ips.pop(uid, None)

    def forget(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)
            self.finished.add(uid)

    # -- node

    def register(self) -> None:
        from kubernetes.client.rest import ApiException

        spec: dict = {"podCIDR": f"10.213.{self.index}.0/24"}
        if self.taints:
            spec["taints"] = [t.as_api() for t in self.taints]
        body = {"metadata": {"name": self.node, "labels": self.labels}, "spec": spec}
        try:
            self.call(self.core.create_node, body)
        except ApiException as err:
            if err.status != 409:
                raise
            self._reconcile_node()
        self.heartbeat()
        self.renew_lease()

    def _reconcile_node(self) -> None:
        """The Node exists already (the agent restarted, or the Node outlived an earlier agent):
        give it this agent's labels and taints again. Taints others put there (the
        node-lifecycle controller's not-ready and unreachable ones, an admin's) stay; a taint of
        ours with the same key and effect gets our value. Nothing is removed: as with a kubelet,
        a taint dropped from the command line stays until someone removes it."""
        from kubernetes.client.rest import ApiException

        ours = [t.as_api() for t in self.taints]
        for _ in range(10):
            node = self.api.sanitize_for_serialization(self.call(self.core.read_node, self.node))
            meta, current = node["metadata"], list((node.get("spec") or {}).get("taints") or [])
            kept = [t for t in current if not any(t["key"] == o["key"] and t["effect"] == o["effect"] for o in ours)]
            taints = kept + ours
            labels_ok = all((meta.get("labels") or {}).get(k) == v for k, v in self.labels.items())
            same = sorted(map(_taint_key, taints)) == sorted(map(_taint_key, current))
            if labels_ok and same:
                return
            # Node taints are replaced as a whole by a patch: the resourceVersion makes it fail
            # (409) rather than drop a taint the controller added since the read.
            patch = {"metadata": {"labels": self.labels, "resourceVersion": meta["resourceVersion"]},
                     "spec": {"taints": taints}}
            try:
                self.call(self.core.patch_node, self.node, patch)
                log.info("node %s: labels and taints set again on the existing Node", self.node)
                return
            except ApiException as err:
                if err.status != 409:
                    raise
        raise RuntimeError(f"node {self.node}: could not set its taints (the Node kept changing)")

    def heartbeat(self, ready: bool = True) -> None:
        """Post the Node's status, its Ready condition's heartbeat included. Not rate limited: a
        kubelet posts heartbeats through a client of their own, so busy pods never delay them."""
        stamp = now()
        if ready and self.ready_since is None:
            self.ready_since = stamp
        conditions = [{"type": "Ready", "status": "True" if ready else "False",
                       "reason": "KubeletReady" if ready else "KubeletStopped",
                       "message": "tycho test bed node agent" + (" is posting ready status" if ready else " stopped"),
                       "lastHeartbeatTime": stamp, "lastTransitionTime": self.ready_since if ready else stamp}]
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            conditions.append({"type": kind, "status": "False", "reason": f"KubeletHasNo{kind}",
                               "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
        status = {"conditions": conditions, "capacity": self.capacity, "allocatable": self.capacity,
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_logs.port if self.kubelet_logs else 0}},
                  "addresses": [{"type": "InternalIP", "address": GATEWAY}, {"type": "Hostname", "address": self.node}],
                  "nodeInfo": {"kubeletVersion": "v1.20.2-tycho-testbed", "operatingSystem": "linux",
                               "architecture": "amd64", "containerRuntimeVersion": "tycho://local-processes",
                               "osImage": "Debian (tycho test bed)", "kernelVersion": os.uname().release,
                               "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}
        self.core.patch_node_status(self.node, {"status": status})

    def _heartbeats(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception as err:
                log.warning("heartbeat failed: %s", err)

    def renew_lease(self) -> None:
        """Renew the Node's Lease (``kube-node-lease/<node>``, owned by the Node), creating it if
        missing, as a kubelet does every quarter of its lease duration: the node-lifecycle
        controller takes a node whose Lease and status have both stood still for its grace period
        as lost (Ready Unknown, its pods not ready). Not rate limited, as heartbeats."""
        from kubernetes.client.rest import ApiException

        renewed = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": self.lease_seconds, "renewTime": renewed}
        try:
            self.coordination.patch_namespaced_lease(self.node, LEASE_NAMESPACE, {"spec": spec})
            return
        except ApiException as err:
            if err.status != 404:
                raise
        node_uid = self.core.read_node(self.node).metadata.uid
        owner = {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": node_uid}
        self.coordination.create_namespaced_lease(LEASE_NAMESPACE, {
            "metadata": {"name": self.node, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
            "spec": {**spec, "acquireTime": renewed}})

    def _leases(self) -> None:
        while not self.stopping.wait(self.lease_seconds / 4):
            try:
                self.renew_lease()
            except Exception as err:
                log.warning("lease renewal failed: %s", err)

    # -- preflight

    @staticmethod
    def preflight() -> None:
        """Let pod users (non-root) run this environment's Python: traverse rights on its parents."""
        path = Path(sys.executable).resolve()
        for parent in list(path.parents)[:-1]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
                log.warning("granted traverse (o+x) on %s so pod users can run %s", parent, path)

    # -- main loop

    def _load_records(self) -> None:
        """Read the records of the pods an earlier run of this agent left (it was killed): their
        addresses are reserved now, the pods taken over or torn down once the API server has
        listed this node's pods. Pod directories of an agent from before records existed hold
        pid files instead: those processes are killed, their namespaces removed, as before."""
        pods_dir = self.state_dir / "pods"
        if not pods_dir.exists():
            return
        for path in pods_dir.glob("*/state.json"):
            try:
                record = PodRecord.load(path)
            except (OSError, ValueError, TypeError, KeyError) as err:
                log.warning("%s: unreadable (%s); its pod is not taken over", path, err)
                continue
            self.records[record.uid] = record
            self.ips[record.uid] = record.ip
        for pid_file in pods_dir.glob("*/*.pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError, PermissionError):
                pass
            pid_file.unlink(missing_ok=True)
            delete_pod_network(pid_file.parent.name.rsplit("_", 1)[-1])
        if self.records:
            log.info("%d pod(s) of an earlier run found; taken over once listed", len(self.records))

    def _tear_down_orphans(self) -> None:
        """Pods of an earlier run that the API server no longer has (deleted with no grace period
        while the agent was away) are torn down, as a kubelet kills orphaned pods."""
        with self.lock:
            orphans, self.records = list(self.records.values()), {}
        for record in orphans:
            threading.Thread(target=self._tear_down, args=(record,), daemon=True,
                             name=f"orphan-{record.name}").start()

    def _tear_down(self, record: PodRecord) -> None:
        logs = self.state_dir / "pods" / f"{record.namespace}_{record.name}_{record.uid}"
        procs = [AdoptedProcess(c.pid, c.pid_start, logs / f"{name}.exit")
                 for name, c in record.containers.items() if c.pid is not None]
        running = [p for p in procs if p.poll() is None]
        for proc in running:
            proc.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + record.grace_seconds
        while time.monotonic() < deadline and any(p.poll() is None for p in running):
            time.sleep(0.05)
        for proc in running:
            proc.signal_group(signal.SIGKILL)
            proc.wait()
        delete_pod_network(record.uid)
        shutil.rmtree(POD_ROOT / self.node / record.uid, ignore_errors=True)
        (logs / "state.json").unlink(missing_ok=True)
        self.release_ip(record.uid)
        log.info("pod %s/%s: gone from the API server while the agent was away; torn down", record.namespace,
                 record.name)

    def handle(self, kind: str, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if kind == "DELETED":
                if worker:
                    worker.delete_requested.set()
                    worker.wake.set()
                return
            if worker is None:
                if uid in self.finished:
                    # A late event of a pod this agent already tore down: never run it again.
                    return
                record = self.records.pop(uid, None)
                if record is not None:
                    # Run by an earlier run of this agent: taken over, whatever its phase or
                    # deletion (a deleted one is then stopped as any deletion).
                    worker = PodWorker(self, pod, record)
                    self.workers[uid] = worker
                    worker.start()
                    return
                if pod["metadata"].get("deletionTimestamp"):
                    # Being deleted, and nothing of it runs here (deleted before we ever started
                    # it, or after an earlier worker finished): finish the deletion only.
                    threading.Thread(target=self.delete_pod, args=(pod["metadata"]["namespace"],
                                                                   pod["metadata"]["name"], uid), daemon=True).start()
                    return
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") and uid not in self.workers:
                    return
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
                return
        worker.update(pod)

    def run(self) -> int:
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.preflight()
        self.created_bridge = ensure_bridge()
        self._serve_logs()
        try:
            self.resolver.join()
        except ResolverError as err:
            self.failure = str(err)
            log.error("%s", err)
            self.stopping.set()
            return 1
        self._load_records()
        self.register()
        threading.Thread(target=self._heartbeats, daemon=True, name="heartbeat").start()
        threading.Thread(target=self._leases, daemon=True, name="lease").start()
        self.netpol.start(self.stopping)  # policies, pods, namespaces, Services, Endpoints listed before any pod runs
        self.services.start(self.stopping)  # Services listed before any container gets their variables
        self.keyed.start(self.stopping)  # mounted ConfigMaps' and Secrets' changes reach running pods
        threading.Thread(target=self._publish_zone, daemon=True, name="dns-records").start()
        log.info("node %s ready (pods on 10.213.%s.0/24)", self.node, self.index)
        selector = f"spec.nodeName={self.node}"
        while not self.stopping.is_set():
            try:
                listing = self.call(self.core.list_pod_for_all_namespaces, field_selector=selector)
                for pod in listing.items:
                    self.handle("ADDED", self.api.sanitize_for_serialization(pod))
                self._tear_down_orphans()  # listed: what the API server no longer has
                rv = listing.metadata.resource_version
                w = watch.Watch()
                for ev in w.stream(self.core.list_pod_for_all_namespaces, field_selector=selector,
                                   resource_version=rv, timeout_seconds=60, _request_timeout=90):
                    if self.stopping.is_set():
                        w.stop()
                        break
                    self.handle(ev["type"], ev["raw_object"])
            except ApiException as err:
                if self.stopping.is_set():
                    break
                log.warning("watch: %s, relisting", err.reason)
                time.sleep(0.5)
            except Exception as err:
                if self.stopping.is_set():
                    break
                log.warning("watch failed: %s, relisting", err)
                time.sleep(0.5)
        return 0

    def _serve_logs(self) -> None:
        """The kubelet's containerLogs endpoint on the Node's InternalIP (the bridge's address on
        the host); its port goes into the Node's status, where the API server looks for it."""
        from .kubelet_logs import KubeletLogServer

        self.kubelet_logs = KubeletLogServer(GATEWAY, self.state_dir, self.container_log, (GATEWAY,),
                                             self.stopping).start()
        log.info("node %s: container logs at https://%s:%s/containerLogs/", self.node, GATEWAY,
                 self.kubelet_logs.port)

    def container_log(self, namespace: str, name: str, container: str):
        """Where a container of a pod this agent runs writes its output (None: not here)."""
        from .kubelet_logs import LogSource

        with self.lock:
            workers = [w for w in self.workers.values() if w.namespace == namespace and w.name == name]
        for worker in workers:
            for c in worker.all_containers:
                if c.name == container:
                    return LogSource(worker.logs / f"{c.name}.log",
                                     lambda c=c, w=worker: "running" in c.state and not w.delete_requested.is_set())
        return None

    def _publish_zone(self) -> None:
        """Keep this agent's records in the resolver equal to the cluster's Services and ready
        endpoints (one rewrite per burst of changes)."""
        while not self.stopping.is_set():
            if not self.zone_changed.wait(0.5):
                continue
            self.zone_changed.clear()
            try:
                self.resolver.publish(zone_records(self.services.services(), self.services.endpoints(),
                                                   self.cluster_domain))
            except OSError as err:
                log.warning("cannot write the cluster DNS records: %s", err)

    def shutdown(self) -> None:
        """Kill every pod's processes, remove namespaces, mark the Node NotReady, leave the
        host's resolver (stopped if no other agent uses it)."""
        self.stopping.set()
        if self.kubelet_logs is not None:
            self.kubelet_logs.stop()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.kill_now()
        try:
            self.resolver.leave()
        except OSError as err:
            log.warning("leaving the cluster DNS resolver: %s", err)
        try:
            self.heartbeat(ready=False)
        except Exception:
            pass
        if self.created_bridge and not bridge_ports():
            sh("ip", "link", "del", BRIDGE, check=False)


# ------------------------------------------------------------------------------------ labels, taints, resources

#: A label name (or a qualified name's part after the prefix), as Kubernetes validates it.
_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def node_labels(node: str) -> dict[str, str]:
    """The labels the agent gives its Node itself, as a kubelet does (and ours)."""
    return {"kubernetes.io/hostname": node, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
            "tycho-testbed/node": "true"}


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME.fullmatch(name))


def _label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_NAME.fullmatch(value)))


@dataclass(frozen=True)
class Taint:
    """A taint of the Node (``key=value:effect``); the scheduler keeps pods that do not tolerate
    it off the node (NoSchedule)."""

    key: str
    value: str
    effect: str

    def as_api(self) -> dict:
        return {"key": self.key, "effect": self.effect, **({"value": self.value} if self.value else {})}


def _taint_key(taint: dict) -> tuple:
    return (taint.get("key"), taint.get("value") or "", taint.get("effect"))


def parse_label(text: str) -> tuple[str, str]:
    """``--label key=value``: a clear error naming what is wrong, before the agent starts."""
    key, sep, value = text.partition("=")
    if not sep or not _qualified_name(key):
        raise argparse.ArgumentTypeError(f"{text!r}: not KEY=VALUE with a valid label key")
    if not _label_value(value):
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a valid label value")
    return key, value


def parse_taint(text: str) -> Taint:
    """``--taint key=value:Effect`` (or ``key:Effect``), as a kubelet's --register-with-taints."""
    spec, sep, effect = text.rpartition(":")
    if not sep or effect not in TAINT_EFFECTS:
        raise argparse.ArgumentTypeError(f"{text!r}: not KEY[=VALUE]:EFFECT with EFFECT one of "
                                         f"{', '.join(TAINT_EFFECTS)}")
    key, _, value = spec.partition("=")
    if not _qualified_name(key):
        raise argparse.ArgumentTypeError(f"{text!r}: {key!r} is not a valid taint key")
    if not _label_value(value):
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a valid taint value")
    return Taint(key, value, effect)


def parse_extended_resource(text: str) -> tuple[str, str]:
    """``--extended-resource domain/name=count``: an extended resource is named with a domain
    outside kubernetes.io, and counted in whole units (as the API server requires)."""
    name, sep, count = text.partition("=")
    domain = name.rpartition("/")[0]
    if not sep or not domain or not _qualified_name(name):
        raise argparse.ArgumentTypeError(f"{text!r}: not DOMAIN/NAME=COUNT (e.g. nvidia.com/gpu=2)")
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise argparse.ArgumentTypeError(f"{text!r}: {name!r} is in the kubernetes.io domain, not an extended resource")
    if not count.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: {count!r} is not a whole number of {name}")
    return name, str(int(count))


def node_extra_labels(node: str, labels: list[tuple[str, str]]) -> dict[str, str]:
    """--label's labels as a dict; ValueError naming the label that repeats or replaces one of
    the agent's own (``kubernetes.io/hostname``...)."""
    out: dict[str, str] = {}
    own = node_labels(node)
    for key, value in labels:
        if key in own:
            raise ValueError(f"--label {key}={value}: {key} is set by the agent itself ({own[key]!r})")
        if key in out and out[key] != value:
            raise ValueError(f"--label {key}: given twice ({out[key]!r}, {value!r})")
        out[key] = value
    return out


def unique_taints(taints: list[Taint]) -> tuple[Taint, ...]:
    """--taint's taints; ValueError naming a key and effect given twice."""
    seen: dict[tuple[str, str], Taint] = {}
    for taint in taints:
        if (taint.key, taint.effect) in seen and seen[(taint.key, taint.effect)] != taint:
            raise ValueError(f"--taint {taint.key}:{taint.effect}: given twice")
        seen[(taint.key, taint.effect)] = taint
    return tuple(seen.values())


def _positive_seconds(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds of at least 1")
    return int(text)


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of a user allowed to manage nodes and pods")
    parser.add_argument("--node", default="tycho-node-1", help="Node name (default: tycho-node-1)")
    parser.add_argument("--index", type=int, default=None,
                        help="node number 1-250: pod IPs are 10.213.INDEX.x (default: from the name's last number)")
    parser.add_argument("--images", help="image table YAML (default: the packaged default-images.yaml)")
    parser.add_argument("--state-dir", required=True,
                        help="directory for the pods' logs and records (a restarted agent takes its pods over "
                             "from them)")
    parser.add_argument("--kube-api-qps", type=float, default=100.0,
                        help="the agent's API request rate limit (a kubelet's default is 5); 0: none")
    parser.add_argument("--node-lease-duration-seconds", type=_positive_seconds, default=LEASE_SECONDS,
                        help="the Node's Lease duration; renewed every quarter of it (default, as a kubelet's: "
                             f"{LEASE_SECONDS})")
    parser.add_argument("--cluster-domain", default=CLUSTER_DOMAIN,
                        help=f"the cluster's DNS domain, in pods' search path (default, as a kubelet's: {CLUSTER_DOMAIN})")
    parser.add_argument("--resolv-conf", default=NODE_RESOLV_CONF,
                        help="the node's resolver file, for pods with dnsPolicy Default (default: /etc/resolv.conf)")
    parser.add_argument("--cpu", default="8", help="cpu capacity the Node reports")
    parser.add_argument("--memory", default="32Gi", help="memory capacity the Node reports")
    parser.add_argument("--label", dest="labels", action="append", type=parse_label, default=[], metavar="KEY=VALUE",
                        help="a label of the Node, besides the agent's own (repeatable)")
    parser.add_argument("--taint", dest="taints", action="append", type=parse_taint, default=[],
                        metavar="KEY[=VALUE]:EFFECT",
                        help="a taint of the Node, as a kubelet's --register-with-taints (repeatable); EFFECT is "
                             "NoSchedule, PreferNoSchedule or NoExecute")
    parser.add_argument("--extended-resource", dest="extended_resources", action="append",
                        type=parse_extended_resource, default=[], metavar="DOMAIN/NAME=COUNT",
                        help="an extended resource in the Node's capacity and allocatable, e.g. nvidia.com/gpu=2 "
                             "(repeatable); only a number for the scheduler: no device is attached")
    parser.add_argument("-v", "--verbose", action="store_true")


def run_node(args) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    index = args.index
    if index is None:
        m = re.search(r"(\d+)$", args.node)
        index = int(m.group(1)) if m else 1
    try:
        labels = node_extra_labels(args.node, args.labels)
        taints = unique_taints(args.taints)
        extended = dict(args.extended_resources)
        if len(extended) != len(args.extended_resources):
            raise ValueError("--extended-resource: a resource is given twice")
    except ValueError as err:
        print(f"tycho_testbed node: {err}", file=sys.stderr)
        return 2
    agent = NodeAgent(args.kubeconfig, args.node, ImageTable.load(args.images), Path(args.state_dir),
                      index=index, qps=args.kube_api_qps, cpu=args.cpu, memory=args.memory,
                      lease_seconds=args.node_lease_duration_seconds, cluster_domain=args.cluster_domain,
                      resolv_conf=args.resolv_conf, labels=labels, taints=taints, extended_resources=extended)

    def on_signal(signum, frame):
        log.info("signal %s: shutting down", signum)
        agent.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner = threading.Thread(target=agent.run, daemon=True, name="watch")
    runner.start()
    while not agent.stopping.wait(0.5):
        if not runner.is_alive():
            break
    agent.shutdown()
    if agent.failure:
        print(f"tycho_testbed node: {agent.failure}", file=sys.stderr)
        return 1
    return 0
