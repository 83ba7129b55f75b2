#!/usr/bin/env python3
"""Benchmark: TychoSpawner and KubeSpawner side by side on the test bed, in one run.

One run starts this project's test bed in a temporary directory (a real Kubernetes 1.20
control plane, and node agents enough for the largest burst: 110 pods per node) and two "hub
processes", one per spawner class, each driven over a pipe by this script. Both get the same
configuration but for the class and their namespace, and start the same tiny image
(``tycho-bench/tiny:1``: the host's ``sleep infinity``, from the benchmark's own image table
``bench/spawn-bench-images.yaml``) with the same readiness (none: a server is ready when its
container runs). The operations of the two classes take turns (ABAB..., bursts ABBA) so that
slow phases of a shared machine hit both alike; no two operations ever overlap.

It measures, for each class:

* sequential start and stop (20 each): ``start()`` / ``stop()`` call to return, and when the
  pod was created, Running and deleted (seen by this script's own watch);
* bursts of 50 and 200 concurrent starts then stops (two runs each): time until all started
  and all stopped, and the worst single server's ``start()`` return minus the time its pod was
  Running;
* Kubernetes API requests per start, stop and ``poll()``: those the spawner sends (counted in
  the hub process at the Kubernetes client's REST layer) and those the API server sees from
  every client (``apiserver_request_total`` on its ``/metrics``, read around each operation);
* the hub process's CPU per start and stop (``getrusage``, all its threads);
* its RSS (``VmRSS``) idle, with 200 and with 1,000 running servers. The 1,000 run on a paper
  node (see ``PaperNode``): the node agents do not scale to that many pods on one machine.

Usage::

    python bench/spawn_bench.py            # full run (about 9 minutes on 2 cores)
    python bench/spawn_bench.py --quick    # 5 sequential, bursts of 10 and 20, 50 servers
    python bench/spawn_bench.py --json out.json --keep

Needs root (the node agents), the test bed's binaries (built and cached on first use, about 10
minutes), and this project installed (``pip install -e .``). See bench/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import http.client
import json
import math
import os
import platform
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from bench_machine import cpu_model, load_average, memory_total  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "testbed"))

IMAGES = Path(__file__).resolve().with_name("spawn-bench-images.yaml")
TINY_IMAGE = "tycho-bench/tiny:1"
TINY_COMMAND = ["sleep", "infinity"]
KINDS = ("tycho", "kube")
LABEL = {"tycho": "TychoSpawner", "kube": "KubeSpawner"}
NAMESPACE = {"tycho": "bench-tycho", "kube": "bench-kube"}
PODS_PER_NODE = 110
#: Pod addresses 10.213.<index>.x: away from `bin/stage cluster up` (1, 2...) and the test
#: suite's node agents (200-249), which share the host's pod bridge.
NODE_INDEX_BASE = 150
#: A Linux bridge takes at most 1023 ports: every pod on the machine is one (other test beds too).
BRIDGE_MAX_PORTS = 1023
START_TIMEOUT = 600
#: Requests the API server counts that no spawner causes: node heartbeats, and non-resource
#: URLs (/metrics read by this script, /readyz, discovery).
BACKGROUND_RESOURCES = {"nodes", ""}
#: Cache upkeep, driven by time, not by operations: every client's reflectors and watches
#: (the hubs re-list and re-watch every 10 s, the node agents every 60 s). The spawners' own are
#: in "sent by the spawner"; in the API server's figures they would land in whichever hub's
#: operation happens to be under way.
UPKEEP_VERBS = {"LIST", "WATCH"}


# =========================================================================== the hub process
# `spawn_bench.py --worker KIND`: one spawner class in a process of its own, reading one JSON
# command per line on stdin and answering one JSON line on its stdout.

def spawner_config(kind: str):
    """The same configuration for both classes (TychoSpawner reads KubeSpawner's section too);
    only the namespace differs, so that neither hub sees the other's pods (as two hubs would)."""
    from traitlets.config import Config

    c = Config()
    c.KubeSpawner.namespace = NAMESPACE[kind]
    c.KubeSpawner.start_timeout = START_TIMEOUT
    c.KubeSpawner.image = TINY_IMAGE
    c.KubeSpawner.cmd = TINY_COMMAND
    # TychoSpawner's pods run as 1000:100 with fsGroup 100 (the catalog's default security);
    # KubeSpawner's the same (zero-to-jupyterhub's singleuser defaults).
    c.KubeSpawner.uid = 1000
    c.KubeSpawner.gid = 100
    c.KubeSpawner.fs_gid = 100
    # events_enabled, services and network policies: each class's defaults (KubeSpawner keeps a
    # namespace-wide event reflector; TychoSpawner reads its own pod's events, and creates one
    # NetworkPolicy per server).
    c.TychoSpawner.builtin_catalog = False
    c.TychoSpawner.catalog = {
        "tiny": {
            "display_name": "Tiny (benchmark)",
            "system": {
                "serve": {"container": "app", "port": 8888},
                "containers": {
                    "app": {"image": TINY_IMAGE, "command": TINY_COMMAND, "ports": {"http": 8888}},
                },
            },
        }
    }
    return c


#: Requests the Kubernetes client of this process sent: (verb, resource, subresource) -> count.
SENT: collections.Counter = collections.Counter()


def request_key(method: str, url: str, query) -> Tuple[str, str, str]:
    """Classify a request as the API server's metric does: verb, resource, subresource."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else parts
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:])
    params = dict(query or [])
    method = method.upper()
    if method == "GET":
        verb = "WATCH" if str(params.get("watch", "")).lower() in ("true", "1") else ("GET" if name else "LIST")
    else:
        verb = method
    return verb, resource, sub


def count_requests() -> None:
    """Count every request the Kubernetes client sends, at its REST layer (watches included)."""
    from kubernetes_asyncio.client import rest

    original = rest.RESTClientObject.request

    async def request(self, method, url, *args, **kwargs):
        query = kwargs.get("query_params", args[0] if args else None)
        SENT[request_key(method, url, query)] += 1
        return await original(self, method, url, *args, **kwargs)

    rest.RESTClientObject.request = request


def cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory() -> Dict[str, float]:
    """RSS and its peak (MiB), and the open sockets (connections to the API server, mostly)."""
    out: Dict[str, float] = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # closed meanwhile
            pass
    out["sockets"] = sockets
    return out


def sent_since(before: collections.Counter) -> Dict[str, int]:
    diff = SENT - before
    return {"|".join(k): v for k, v in diff.items()}


class Worker:
    def __init__(self, kind: str):
        self.kind = kind
        self.spawners: Dict[str, Any] = {}
        self.next_id = 1

    def _cls(self):
        if self.kind == "tycho":
            from tycho_spawner import TychoSpawner

            return TychoSpawner
        from kubespawner import KubeSpawner

        return KubeSpawner

    def make(self, name: str):
        from types import SimpleNamespace

        user = SimpleNamespace(name=name, id=self.next_id, url=f"/user/{name}/", escaped_name=name)
        self.next_id += 1
        spawner = self._cls()(config=self.config, user=user, _mock=True)
        spawner.api_token = "bench-token-not-used"
        return spawner

    async def start_one(self, spawner) -> Dict[str, Any]:
        called = time.time()
        error = None
        try:
            if self.kind == "tycho":
                type(spawner)._apply_options(spawner, {"profile": "tiny"})
            await spawner.start()
        except Exception as err:  # reported, not fatal: a failed start is a figure too
            error = f"{type(err).__name__}: {getattr(err, 'message', '') or err}"
        return {"name": spawner.user.name, "pod": spawner.pod_name, "called": called,
                "returned": time.time(), "error": error}

    async def stop_one(self, name: str) -> Dict[str, Any]:
        spawner = self.spawners[name]
        called = time.time()
        error = None
        try:
            await spawner.stop()
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
        return {"name": name, "pod": spawner.pod_name, "called": called, "returned": time.time(), "error": error}

    async def op(self, command: Dict[str, Any]) -> Dict[str, Any]:
        what = command["op"]
        if what == "hello":
            self.config = spawner_config(self.kind)
            self._cls()
            return {"pid": os.getpid(), **memory()}
        if what == "memory":
            pods = events = None
            cls = self._cls()
            for key, reflector in cls.reflectors.items():
                if "pods" in str(key):
                    pods = len(reflector.resources)
                elif "events" in str(key):
                    events = len(reflector.resources)
            return {**memory(), "reflected_pods": pods, "reflected_events": events, "spawners": len(self.spawners)}
        if what == "mark":
            return {"cpu": cpu_seconds(), "sent": {"|".join(k): v for k, v in SENT.items()}}
        if what == "idle":
            sent0, cpu0 = SENT.copy(), cpu_seconds()
            await asyncio.sleep(command["seconds"])
            return {"cpu": cpu_seconds() - cpu0, "sent": sent_since(sent0)}
        names = command["names"]
        if what == "start":
            spawners = [self.make(name) for name in names]
        sent0, cpu0, t0 = SENT.copy(), cpu_seconds(), time.time()
        if what == "start":
            servers = await asyncio.gather(*(self.start_one(s) for s in spawners))
            for s, r in zip(spawners, servers):
                if r["error"] is None:
                    self.spawners[s.user.name] = s
        elif what == "stop":
            servers = await asyncio.gather(*(self.stop_one(n) for n in names))
            for n in names:
                self.spawners.pop(n, None)
        elif what == "poll":
            servers = []
            for _ in range(command.get("rounds", 1)):
                for n in names:
                    called = time.time()
                    code = await self.spawners[n].poll()
                    servers.append({"name": n, "called": called, "returned": time.time(), "code": code})
        else:
            raise ValueError(f"unknown op {what!r}")
        t1, cpu1 = time.time(), cpu_seconds()
        return {"t0": t0, "t1": t1, "cpu": cpu1 - cpu0, "sent": sent_since(sent0), "servers": servers}

    async def serve(self, inp, out) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, inp.readline)
            if not line:
                return
            command = json.loads(line)
            if command["op"] == "exit":
                out.write(json.dumps({"bye": True}) + "\n")
                out.flush()
                return
            try:
                answer = await self.op(command)
            except Exception as err:
                import traceback

                traceback.print_exc()
                answer = {"error": f"{type(err).__name__}: {err}"}
            out.write(json.dumps(answer) + "\n")
            out.flush()


def worker_main(kind: str, log_level: str) -> int:
    import logging

    # The answers go on a private copy of stdout: whatever else prints goes to the log.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Like a hub: its log at INFO (the spawners log each start and stop), here to a file.
    logging.basicConfig(level=getattr(logging, log_level), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # A hub process has JupyterHub's application loaded (tornado, SQLAlchemy, the REST API...):
    # so do both of these, so that RSS differences are the spawners' own. (TychoSpawner's
    # module imports jupyterhub.app itself, which alone would add ~40 MiB to its side.)
    import jupyterhub.app  # noqa: F401

    count_requests()
    asyncio.run(Worker(kind).serve(sys.stdin, out))
    return 0


# =========================================================================== the bench side

class Hub:
    """One hub process (a spawner class), driven over a pipe."""

    def __init__(self, kind: str, kubeconfig: Path, log_path: Path, log_level: str):
        self.kind = kind
        self.log = open(log_path, "ab")
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--log-level", log_level],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=str(REPO),
            text=True, start_new_session=True,
        )
        self.pid = self.call("hello")["pid"]

    def call(self, op: str, **kw) -> Dict[str, Any]:
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {LABEL[self.kind]} hub process died (see its log {self.log.name})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{LABEL[self.kind]}: {op}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class ApiServer:
    """The test bed's API server as admin: /metrics, /version, and a raw watch of server pods."""

    def __init__(self, plane):
        url = urlsplit(plane.server_url)
        self.host, self.port = url.hostname, url.port
        self.context = ssl.create_default_context(cafile=str(plane.ca_path))
        self.headers = {"Authorization": f"Bearer {plane.admin_token}"}

    def connection(self, timeout: Optional[float] = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout)

    def get(self, path: str) -> bytes:
        conn = self.connection()
        try:
            conn.request("GET", path, headers=self.headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
            return body
        finally:
            conn.close()

    def requests(self) -> collections.Counter:
        """apiserver_request_total summed by (verb, resource, subresource, content type).

        1.20 has no client label; the content type tells Go components (protobuf: scheduler,
        controller-manager) from the Python clients (JSON: spawners, node agents, provisioner).
        """
        out: collections.Counter = collections.Counter()
        for line in self.get("/metrics").decode().splitlines():
            if not line.startswith("apiserver_request_total{"):
                continue
            labels_text, _, value = line[len("apiserver_request_total{"):].rpartition("} ")
            labels = dict(part.split("=", 1) for part in _split_labels(labels_text))
            labels = {k: v.strip('"') for k, v in labels.items()}
            client = "protobuf" if "protobuf" in labels.get("contentType", "") else "json"
            out[(labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""), client)] += float(value)
        return out


def _split_labels(text: str) -> List[str]:
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return parts


class PodWatch(threading.Thread):
    """This script's own watch of the servers' pods: when each was first seen Running and
    ready, and when it was deleted (wall clock, the same clock the hub processes use)."""

    def __init__(self, api: ApiServer):
        super().__init__(daemon=True, name="pod-watch")
        self.api = api
        self.created: Dict[Tuple[str, str], float] = {}
        self.node: Dict[Tuple[str, str], str] = {}
        self.uid: Dict[Tuple[str, str], str] = {}
        self.running: Dict[Tuple[str, str], float] = {}
        self.deleted: Dict[Tuple[str, str], float] = {}
        self.stopping = threading.Event()
        self.conn: Optional[http.client.HTTPSConnection] = None
        self.ready = threading.Event()

    def run(self) -> None:
        selector = "labelSelector=component%3Dsingleuser-server"
        rv = json.loads(self.api.get(f"/api/v1/pods?{selector}&limit=1"))["metadata"]["resourceVersion"]
        while not self.stopping.is_set():
            try:
                self.conn = self.api.connection(timeout=None)
                self.conn.request("GET", f"/api/v1/pods?watch=1&{selector}&resourceVersion={rv}"
                                         f"&timeoutSeconds=3600&allowWatchBookmarks=true", headers=self.api.headers)
                resp = self.conn.getresponse()
                if resp.status != 200:
                    raise RuntimeError(f"watch: {resp.status}")
                self.ready.set()
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    seen = time.time()
                    event = json.loads(line)
                    pod = event["object"]
                    meta = pod.get("metadata", {})
                    if event["type"] == "ERROR":
                        rv = ""  # too old: list again from now
                        break
                    rv = meta.get("resourceVersion", rv)
                    if event["type"] == "BOOKMARK":
                        continue
                    key = (meta["namespace"], meta["name"])
                    self.created.setdefault(key, seen)
                    self.uid.setdefault(key, meta.get("uid", ""))
                    if event["type"] == "DELETED":
                        self.deleted.setdefault(key, seen)
                    elif key not in self.running and _running(pod):
                        self.running[key] = seen
                        self.node[key] = pod.get("spec", {}).get("nodeName", "")
            except Exception as err:
                if self.stopping.is_set():
                    return
                print(f"pod watch: {err}; watching again", file=sys.stderr)
                time.sleep(0.2)
            finally:
                if self.conn is not None:
                    self.conn.close()

    def stop(self) -> None:
        self.stopping.set()
        _cut(self.conn)


def _cut(conn: Optional[http.client.HTTPConnection]) -> None:
    """Shut a watch connection's socket so the thread blocked reading it returns at once."""
    if conn is not None and conn.sock is not None:
        try:
            import socket

            conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class PaperNode:
    """A Node whose pods exist on paper only, for the many-servers phase.

    The test bed's node agent runs each pod in a network namespace of its own (a bind mount
    under /run/netns) and a mount namespace of its own, which copies every such mount existing
    at its start: pod n pins the network namespaces of the n-1 before it, and the machine's
    mount and namespace work grows with the square of the pods (measured: it stalls between 300
    and 400 pods on a 2-core machine, the API server's writes taking seconds). The hub's memory
    depends on what it caches (pods, events) and holds (spawners, connections), not on what runs
    in the pods, so for this phase the pods go to this Node instead (the agents' nodes are
    cordoned): it writes each pod's status as the node agent does (ContainerCreating, then
    Running and ready, with the same conditions) and the same events (Pulling, Pulled, Created,
    Started; Killing), and finishes deletions (grace 0, UID precondition), running nothing.
    Pod addresses are 10.222.x.y, never contacted.
    """

    def __init__(self, plane, api: ApiServer, name: str, capacity: int):
        from kubernetes import client

        self.name = name
        self.capacity = capacity
        self.api = api
        configuration = client.Configuration()
        configuration.host = plane.server_url
        configuration.ssl_ca_cert = str(plane.ca_path)
        configuration.api_key = {"authorization": f"Bearer {plane.admin_token}"}
        configuration.connection_pool_maxsize = 16
        self.core = client.CoreV1Api(client.ApiClient(configuration))
        self.seen: set = set()
        self.finished: set = set()
        self.next_ip = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pool = None
        self.thread: Optional[threading.Thread] = None
        self.conn: Optional[http.client.HTTPSConnection] = None

    def start(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from tycho_testbed.node import now

        self.core.create_node({"metadata": {"name": self.name, "labels": {
            "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}}})
        capacity = {"cpu": "64", "memory": "256Gi", "pods": str(self.capacity), "ephemeral-storage": "100Gi"}
        stamp = now()
        self.core.patch_node_status(self.name, {"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "spawn_bench.py paper node", "lastHeartbeatTime": stamp,
                            "lastTransitionTime": stamp}],
            "nodeInfo": {"kubeletVersion": "v1.20.2-spawn-bench-paper", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "paper://none",
                         "osImage": "", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                         "systemUUID": "", "bootID": ""}}})
        self.core.patch_node(self.name, {"spec": {"taints": None}})  # admission's not-ready taint
        self.pool = ThreadPoolExecutor(8, thread_name_prefix="paper")
        self.thread = threading.Thread(target=self._watch, daemon=True, name="paper-node")
        self.thread.start()
        # Heartbeats, as the node agent's: without them the node-lifecycle controller takes the
        # node as lost after its grace period and taints it, and no pod is scheduled on it.
        threading.Thread(target=self._heartbeats, daemon=True, name="paper-lease").start()

    def _heartbeats(self) -> None:
        from kubernetes import client

        from tycho_testbed.node import LEASE_NAMESPACE

        leases = client.CoordinationV1Api(self.core.api_client)
        while True:
            renewed = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            spec = {"holderIdentity": self.name, "leaseDurationSeconds": 20, "renewTime": renewed}
            try:
                try:
                    leases.patch_namespaced_lease(self.name, LEASE_NAMESPACE, {"spec": spec})
                except client.rest.ApiException as err:
                    if err.status != 404:
                        raise
                    leases.create_namespaced_lease(LEASE_NAMESPACE, {
                        "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE}, "spec": spec})
            except Exception as err:
                print(f"paper node: lease renewal failed: {err}", file=sys.stderr)
            if self.stopping.wait(5):
                return

    def _watch(self) -> None:
        query = f"fieldSelector=spec.nodeName%3D{self.name}"
        rv = ""
        while not self.stopping.is_set():
            try:
                self.conn = self.api.connection(timeout=None)
                self.conn.request("GET", f"/api/v1/pods?watch=1&{query}&resourceVersion={rv}&timeoutSeconds=3600",
                                  headers=self.api.headers)
                resp = self.conn.getresponse()
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        rv = ""
                        break
                    pod = event["object"]
                    rv = pod["metadata"].get("resourceVersion", rv)
                    if event["type"] != "DELETED":
                        self._handle(pod)
            except Exception as err:
                if self.stopping.is_set():
                    return
                print(f"paper node watch: {err}; watching again", file=sys.stderr)
                time.sleep(0.2)
            finally:
                if self.conn is not None:
                    self.conn.close()

    def _handle(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            if pod["metadata"].get("deletionTimestamp"):
                if uid in self.finished:
                    return
                self.finished.add(uid)
                self.pool.submit(self._guard, self._finish, pod)
            elif uid not in self.seen:
                self.seen.add(uid)
                self.next_ip += 1
                ip = f"10.222.{self.next_ip // 250}.{self.next_ip % 250 + 2}"
                self.pool.submit(self._guard, self._run, pod, ip)

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:
            if not self.stopping.is_set():
                print(f"paper node: {fn.__name__} {args[0]['metadata']['name']}: {err}", file=sys.stderr)

    def _event(self, pod: dict, reason: str, message: str, container: str) -> None:
        from tycho_testbed.node import now

        meta = pod["metadata"]
        stamp = now()
        self.core.create_namespaced_event(meta["namespace"], {
            "metadata": {"name": f"{meta['name']}.{os.urandom(8).hex()}", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                               "uid": meta["uid"], "apiVersion": "v1", "fieldPath": f"spec.containers{{{container}}}"},
            "reason": reason, "message": message, "type": "Normal",
            "source": {"component": "kubelet", "host": self.name},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1})

    def _status(self, pod: dict, ip: str, running: bool) -> None:
        from tycho_testbed.node import now, pod_conditions

        stamp = now()
        statuses = []
        for c in pod["spec"]["containers"]:
            state = {"running": {"startedAt": stamp}} if running else {"waiting": {"reason": "ContainerCreating"}}
            entry = {"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": running,
                     "restartCount": 0, "state": state, "lastState": {}, "started": running}
            if running:
                entry["containerID"] = f"paper://{pod['metadata']['uid']}/{c['name']}"
            statuses.append(entry)
        phase = "Running" if running else "Pending"
        conditions = [{**c, "lastTransitionTime": stamp} for c in pod_conditions([], statuses, phase)]
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], {"status": {
            "phase": phase, "hostIP": "10.213.0.1", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": stamp,
            "conditions": conditions, "containerStatuses": statuses}})

    def _run(self, pod: dict, ip: str) -> None:
        self._status(pod, ip, running=False)
        for c in pod["spec"]["containers"]:
            image = c.get("image", "")
            self._event(pod, "Pulling", f'Pulling image "{image}"', c["name"])
            self._event(pod, "Pulled", f'Successfully pulled image "{image}" in 0s (paper node)', c["name"])
            self._event(pod, "Created", f"Created container {c['name']}", c["name"])
            self._event(pod, "Started", f"Started container {c['name']}", c["name"])
        self._status(pod, ip, running=True)

    def _finish(self, pod: dict) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        for c in pod["spec"]["containers"]:
            self._event(pod, "Killing", f"Stopping container {c['name']}", c["name"])
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0, body=client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])))
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    def stop(self) -> None:
        self.stopping.set()
        _cut(self.conn)
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _running(pod: dict) -> bool:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return (status.get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)
            and not pod["metadata"].get("deletionTimestamp"))


# --------------------------------------------------------------------------- measurement records

class Recorder:
    """Everything measured, by kind and phase."""

    def __init__(self, api: ApiServer, watch: PodWatch, hubs: Dict[str, Hub], settle: float):
        self.api = api
        self.watch = watch
        self.hubs = hubs
        self.settle = settle
        self.resurrected: set = set()  # uid prefixes of deleted pods a node agent set up again
        self.stuck: set = set()  # ... and left running
        # kind -> phase -> list of op results (with "seen": API server delta)
        self.ops: Dict[str, Dict[str, List[dict]]] = {k: collections.defaultdict(list) for k in KINDS}

    def quiesce(self, quiet: float, timeout: float = 60) -> None:
        """Wait until the test bed is done with the last operation: for `quiet` seconds, no
        writes to pods or events and no change in which deleted pods of this run still have a
        network namespace on a node.

        The test bed's node agent can start a second worker for a pod it has just deleted (a
        watch event for the pod still queued): that worker sets the pod up again (network
        namespace, process, status writes and events, refused or orphaned), and either deletes
        it again seconds later or, when no event for the pod comes any more, keeps it running
        until the agent stops. That work must not land in the next operation, of the other
        class; the ones left running are counted (`stuck`)."""
        deadline = time.monotonic() + timeout
        step = quiet / 2
        last = None
        calm = 0
        left: set = set()
        while time.monotonic() < deadline:
            writes = sum(v for (verb, resource, _sub, _client), v in self.api.requests().items()
                         if resource in ("pods", "events") and verb not in UPKEEP_VERBS)
            gone = {self.watch.uid.get(key, "")[:13] for key in list(self.watch.deleted)}
            gone.discard("")
            listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            left = {line.split()[0][len("tycho-"):] for line in listing.splitlines()
                    if line.startswith("tycho-") and line.split()[0][len("tycho-"):] in gone}
            self.resurrected.update(left)
            state = (writes, frozenset(left))
            calm = calm + 1 if state == last else 0
            last = state
            if calm >= 2:
                break
            time.sleep(step)
        else:
            print(f"  the test bed was still busy after {timeout:.0f} s", file=sys.stderr)
        self.stuck = left

    def run(self, kind: str, phase: str, op: str, names: List[str], settle: Optional[float] = None, **kw) -> dict:
        """One operation of one hub, with the hub's CPU and requests and the API server's
        counters read around it, `settle` seconds after it returns: what the operation caused
        after it returned (events still arriving in the hub's caches, the node's last status
        writes, garbage collection) is counted too."""
        hub = self.hubs[kind]
        settle = self.settle if settle is None else settle
        self.quiesce(quiet=2 * settle)
        mark0 = hub.call("mark")
        before = self.api.requests()
        result = hub.call(op, names=names, **kw)
        time.sleep(settle)
        mark1 = hub.call("mark")
        after = self.api.requests()
        result["seen"] = {"|".join(k): v for k, v in _diff(after, before).items()}
        result["cpu_total"] = mark1["cpu"] - mark0["cpu"]
        result["sent_total"] = {k: v - mark0["sent"].get(k, 0) for k, v in mark1["sent"].items()
                                if v - mark0["sent"].get(k, 0)}
        result["phase"], result["op"], result["n"] = phase, op, len(names)
        for server in result["servers"]:
            key = (NAMESPACE[kind], server.get("pod") or "")
            if op == "start" and key in self.watch.created:
                server["created"] = self.watch.created[key]
            if op == "start" and key in self.watch.running:
                server["running"] = self.watch.running[key]
                server["node"] = self.watch.node.get(key)
            if op == "stop" and key in self.watch.deleted:
                server["deleted"] = self.watch.deleted[key]
        self.ops[kind][phase].append(result)
        failed = [s for s in result["servers"] if s.get("error")]
        if failed:
            print(f"  {LABEL[kind]} {phase} {op}: {len(failed)} failed, e.g. {failed[0]['error']}", file=sys.stderr)
        return result


def _diff(after: collections.Counter, before: collections.Counter) -> collections.Counter:
    out = collections.Counter()
    for k, v in after.items():
        d = v - before.get(k, 0)
        if d:
            out[k] = d
    return out


def wait_for_watch(watch: PodWatch, keys: List[Tuple[str, str]], timeout: float = 10) -> None:
    """Give this script's watch a moment to have seen every pod Running (it runs beside the
    hubs, and may lag a busy hub by a few milliseconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(k not in watch.running for k in keys):
        time.sleep(0.02)


# =========================================================================== the run

def nodes_needed(args) -> int:
    """Node agents for the most pods they run at once (110 pods each)."""
    most = max(2 * args.sequential + 4, max(args.bursts), args.rss_servers if args.many_on_agents else 0)
    return max(1, math.ceil(most * 1.05 / PODS_PER_NODE))


def bridge_ports() -> int:
    out = subprocess.run(["ip", "-o", "link", "show", "master", "tycho0"], capture_output=True, text=True).stdout
    return len([l for l in out.splitlines() if ":" in l])


def room_on_bridge(pods: int, log, wait: float = 120) -> bool:
    """Whether `pods` more pods fit on the host's pod bridge (other test beds use it too);
    waits a while for room."""
    deadline = time.monotonic() + wait
    while bridge_ports() + pods > BRIDGE_MAX_PORTS:
        if time.monotonic() > deadline:
            return False
        log(f"the pod bridge has {bridge_ports()} ports in use: waiting for room for {pods} pods")
        time.sleep(10)
    return True


def machine_info(api: Optional[ApiServer]) -> List[str]:
    import aiohttp
    import jupyterhub
    import kubespawner

    import tycho_spawner

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "tycho_spawner"], capture_output=True,
                           text=True).stdout.strip()
    kube = ""
    if api is not None:
        try:
            kube = json.loads(api.get("/version")).get("gitVersion", "")
        except Exception:
            pass
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPUs: {os.cpu_count()} ({cpu_model()}), {memory_total()}; load average at the start: {load_average()}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, jupyterhub {jupyterhub.__version__}, "
        f"kubespawner {getattr(kubespawner, '__version__', '?')}, kubernetes_asyncio {_version('kubernetes_asyncio')}, "
        f"aiohttp {aiohttp.__version__}, tycho_spawner {tycho_spawner.__version__} "
        f"(git {commit or '?'}{', tycho_spawner/ modified' if dirty else ''})",
        f"- Kubernetes API server {kube or '?'} (the test bed's), its scheduler and controller-manager, "
        "the node agents and both hub processes share these CPUs",
    ]


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


def names(prefix: str, n: int) -> List[str]:
    width = len(str(n - 1)) if n > 1 else 1
    return [f"{prefix}-{i:0{width}d}" for i in range(n)]


def order(i: int) -> Tuple[str, str]:
    return KINDS if i % 2 == 0 else KINDS[::-1]


def run_benchmark(args, workdir: Path, cleanup: List) -> Dict[str, Any]:
    from tycho_testbed.__main__ import start_node, wait_node_ready
    from tycho_testbed.cluster import ControlPlane, ControlPlaneConfig

    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    plane = ControlPlane(ControlPlaneConfig(state_dir=workdir / "control-plane"))
    cleanup.append(("control plane", plane.stop))
    log(f"control plane in {workdir}")
    plane.start()
    api = ApiServer(plane)
    info = machine_info(api)
    n_nodes = args.nodes or nodes_needed(args)
    log(f"{n_nodes} node agent(s), {PODS_PER_NODE} pods each")
    agents = []

    def stop_agents():
        for proc in agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in agents:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_agents_and_tidy():
        stop_agents()
        for i in range(1, n_nodes + 1):  # the agents' empty per-node directories
            try:
                (Path("/var/lib/tycho-testbed") / f"bench-node-{i}").rmdir()
            except OSError:
                pass

    cleanup.append(("node agents", stop_agents_and_tidy))
    for i in range(1, n_nodes + 1):
        name = f"bench-node-{i}"
        agents.append(start_node(plane.kubeconfig_path, name, workdir / "nodes" / name, IMAGES,
                                 workdir / f"{name}.log", index=NODE_INDEX_BASE + i, detach=False))
    client = plane.api_client()
    for i in range(1, n_nodes + 1):
        wait_node_ready(client, f"bench-node-{i}", timeout=120)
    from kubernetes.client import CoreV1Api

    client_core = CoreV1Api(client)
    for kind in KINDS:
        plane.create_namespace(NAMESPACE[kind])

    watch = PodWatch(api)
    watch.start()
    cleanup.append(("pod watch", watch.stop))
    if not watch.ready.wait(30):
        raise RuntimeError("the pod watch did not start")

    hubs: Dict[str, Hub] = {}
    for kind in KINDS:
        hubs[kind] = Hub(kind, plane.kubeconfig_path, workdir / f"hub-{kind}.log", args.log_level)
        cleanup.append((f"{LABEL[kind]} hub", hubs[kind].close))
    rec = Recorder(api, watch, hubs, args.settle)
    results: Dict[str, Any] = {"machine": info, "nodes": n_nodes, "paper": not args.many_on_agents,
                               "memory": {k: {} for k in KINDS},
                               "idle": {k: {} for k in KINDS}}

    # Warm-up (not measured): the first start of each class starts its reflectors.
    log("warm-up")
    for kind in KINDS:
        warm = names(f"warm{kind[0]}", 2)
        rec.run(kind, "warm-up", "start", warm)
        rec.run(kind, "warm-up", "stop", warm)
        results["memory"][kind]["idle"] = hubs[kind].call("memory")

    # Sequential: one server at a time, the two classes taking turns.
    log(f"sequential: {args.sequential} starts, polls, {args.sequential} stops per class")
    seq = {k: [] for k in KINDS}
    for i in range(args.sequential):
        for kind in order(i):
            name = f"seq{kind[0]}-{i:02d}"
            rec.run(kind, "sequential", "start", [name])
            seq[kind].append(name)
    for i, kind in enumerate(order(0)):
        rec.run(kind, "sequential", "poll", seq[kind], rounds=args.poll_rounds)
    for i in range(args.sequential):
        for kind in order(i + 1):
            rec.run(kind, "sequential", "stop", [seq[kind][i]])

    # Bursts: n concurrent starts, then n concurrent stops; repetitions in ABBA order.
    for size in args.bursts:
        for rep in range(args.burst_reps):
            for kind in order(rep):
                if not room_on_bridge(size, log):
                    raise RuntimeError(f"the pod bridge tycho0 has {bridge_ports()} ports in use: no room for {size} pods")
                log(f"burst of {size} ({rep + 1}/{args.burst_reps}): {LABEL[kind]}")
                batch = names(f"b{size}{kind[0]}{rep}", size)
                r = rec.run(kind, f"burst-{size}", "start", batch, settle=args.burst_settle)
                wait_for_watch(watch, [(NAMESPACE[kind], s["pod"]) for s in r["servers"] if not s["error"]])
                for s in r["servers"]:
                    s.setdefault("running", watch.running.get((NAMESPACE[kind], s["pod"])))
                    s.setdefault("node", watch.node.get((NAMESPACE[kind], s["pod"])))
                if size == max(args.bursts):
                    results["memory"][kind].setdefault("burst", []).append(hubs[kind].call("memory"))
                started = [s["name"] for s in r["servers"] if not s["error"]]
                rec.run(kind, f"burst-{size}", "stop", started, settle=args.burst_settle)

    # Many servers: grow to rss_servers in chunks, measure, idle a while, stop them all. The
    # class whose burst came last goes second, so that neither starts right after its own burst.
    if not args.many_on_agents:
        log(f"many servers on a paper node (the {n_nodes} node agents cordoned)")
        for i in range(1, n_nodes + 1):
            client_core.patch_node(f"bench-node-{i}", {"spec": {"unschedulable": True}})
        paper = PaperNode(plane, api, "bench-paper-1", args.rss_servers + 100)
        cleanup.append(("paper node", paper.stop))
        paper.start()
    last_burst_kind = order(args.burst_reps - 1)[1]
    for kind in (KINDS if last_burst_kind == KINDS[1] else KINDS[::-1]):
        running: List[str] = []
        if args.many_on_agents and not room_on_bridge(args.rss_servers, log):
            results["memory"][kind]["skipped"] = f"no room for {args.rss_servers} pods on the pod bridge"
            continue
        log(f"{args.rss_servers} servers: {LABEL[kind]}")
        for c in range(math.ceil(args.rss_servers / args.rss_chunk)):
            n = min(args.rss_chunk, args.rss_servers - len(running))
            batch = names(f"m{kind[0]}{c:02d}", n)
            r = rec.run(kind, "many", "start", batch, settle=args.burst_settle)
            running += [s["name"] for s in r["servers"] if not s["error"]]
            log(f"  {len(running)} running ({r['t1'] - r['t0']:.1f} s for {n})")
        time.sleep(2)
        results["memory"][kind]["many"] = hubs[kind].call("memory")
        results["idle"][kind] = {"servers": len(running), "seconds": args.idle_seconds,
                                 **hubs[kind].call("idle", seconds=args.idle_seconds)}
        for c in range(0, len(running), args.rss_chunk):
            rec.run(kind, "many", "stop", running[c:c + args.rss_chunk], settle=args.burst_settle)
        results["memory"][kind]["after"] = hubs[kind].call("memory")

    rec.quiesce(quiet=2 * args.burst_settle)
    results["ops"] = rec.ops
    results["resurrected"] = len(rec.resurrected)
    results["stuck"] = len(rec.stuck)
    return results


# =========================================================================== the report

def pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def fmt(v: Optional[float], digits: int = 3) -> str:
    if v is None or v != v:
        return "–"
    return f"{v:.{digits}f}"


def span(values: List[float], digits: int = 2) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "–"
    if len(values) == 1 or fmt(min(values), digits) == fmt(max(values), digits):
        return fmt(values[0], digits)
    return f"{fmt(min(values), digits)}–{fmt(max(values), digits)}"


def ops_of(results, kind: str, phases: List[str], op: str) -> List[dict]:
    return [r for p in phases for r in results["ops"][kind].get(p, []) if r["op"] == op]


#: The resources the spawners sent requests on (filled in from the run: pods, events,
#: networkpolicies). The API server's figures count requests on these, from every client;
#: requests on other resources in the same window are the cluster's own periodic work
#: (controllers' resyncs, the provisioner's watches), shown apart.
SPAWNER_RESOURCES: set = set()


def counted(field: str, key: str, others: str = "") -> bool:
    """Whether a request counts: for `seen`, requests on the spawners' resources but cache
    upkeep; `others="upkeep"`: only their cache upkeep; `others="resources"`: other resources."""
    if field != "seen":
        return not others
    verb, resource = key.split("|")[:2]
    mine = resource in SPAWNER_RESOURCES
    if others == "upkeep":
        return mine and verb in UPKEEP_VERBS
    if others == "resources":
        return not mine and resource not in BACKGROUND_RESOURCES
    return mine and verb not in UPKEEP_VERBS


def per_op(ops: List[dict], field: str, unit_count: Optional[int] = None, others: str = "") -> float:
    """Requests per server for a list of operations: `sent_total` (the hub's own) or `seen` (the
    API server's, every client, on the spawners' resources; see `counted`)."""
    total = 0.0
    for r in ops:
        for key, v in r[field].items():
            if counted(field, key, others):
                total += v
    n = unit_count if unit_count is not None else sum(r["n"] for r in ops)
    return total / n if n else float("nan")


def breakdown(ops: List[dict], field: str, n: int) -> str:
    counts: collections.Counter = collections.Counter()
    for r in ops:
        for key, v in r[field].items():
            parts = key.split("|")
            if not counted(field, key):
                continue
            verb, resource, sub = parts[:3]
            label = f"{verb} {resource}{'/' + sub if sub else ''}"
            if field == "seen":
                label += " (Go)" if parts[3] == "protobuf" else ""
            counts[label] += v
    return ", ".join(f"{label} {v / n:.2f}" for label, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize(results, args) -> Dict[str, Any]:
    S: Dict[str, Dict[str, Any]] = {}
    for kind in KINDS:
        for ops in results["ops"][kind].values():
            for r in ops:
                SPAWNER_RESOURCES.update(key.split("|")[1] for key in r.get("sent_total", {}))
    SPAWNER_RESOURCES.discard("")
    for kind in KINDS:
        s: Dict[str, Any] = {}
        starts = ops_of(results, kind, ["sequential"], "start")
        stops = ops_of(results, kind, ["sequential"], "stop")
        ok = [sv for r in starts for sv in r["servers"] if not sv["error"]]
        s["seq_start"] = [sv["returned"] - sv["called"] for sv in ok]
        s["seq_start_lag"] = [sv["returned"] - sv["running"] for sv in ok if sv.get("running")]
        s["seq_start_create"] = [sv["created"] - sv["called"] for sv in ok if sv.get("created")]
        s["seq_start_cluster"] = [sv["running"] - sv["created"] for sv in ok if sv.get("running") and sv.get("created")]
        s["seq_stop"] = [sv["returned"] - sv["called"] for r in stops for sv in r["servers"] if not sv["error"]]
        s["seq_stop_lag"] = [sv["returned"] - sv["deleted"] for r in stops for sv in r["servers"]
                             if not sv["error"] and sv.get("deleted")]
        s["failures"] = sum(1 for p in results["ops"][kind].values() for r in p for sv in r["servers"] if sv.get("error"))
        for size in args.bursts:
            bs = ops_of(results, kind, [f"burst-{size}"], "start")
            be = ops_of(results, kind, [f"burst-{size}"], "stop")
            s[f"b{size}_start"] = [r["t1"] - r["t0"] for r in bs]
            s[f"b{size}_stop"] = [r["t1"] - r["t0"] for r in be]
            s[f"b{size}_worst"] = [max((sv["returned"] - sv["running"] for sv in r["servers"] if sv.get("running")),
                                       default=float("nan")) for r in bs]
            s[f"b{size}_created"] = [statistics.median([sv["created"] - r["t0"] for sv in r["servers"]
                                                        if sv.get("created")] or [float("nan")]) for r in bs]
            s[f"b{size}_last_running"] = [max((sv["running"] - r["t0"] for sv in r["servers"] if sv.get("running")),
                                              default=float("nan")) for r in bs]
            s[f"b{size}_lag_median"] = [statistics.median([sv["returned"] - sv["running"] for sv in r["servers"]
                                                           if sv.get("running")] or [float("nan")]) for r in bs]
        all_starts = ops_of(results, kind, ["sequential"] + [f"burst-{b}" for b in args.bursts], "start")
        all_stops = ops_of(results, kind, ["sequential"] + [f"burst-{b}" for b in args.bursts], "stop")
        polls = ops_of(results, kind, ["sequential"], "poll")
        n_polls = sum(len(r["servers"]) for r in polls)
        s["sent_start"] = per_op(all_starts, "sent_total")
        s["seen_start"] = per_op(all_starts, "seen")
        s["sent_stop"] = per_op(all_stops, "sent_total")
        s["seen_stop"] = per_op(all_stops, "seen")
        s["sent_poll"] = per_op(polls, "sent_total", n_polls)
        s["seen_poll"] = per_op(polls, "seen", n_polls)
        s["other_start"] = per_op(all_starts, "seen", others="resources")
        s["other_stop"] = per_op(all_stops, "seen", others="resources")
        s["upkeep_start"] = per_op(all_starts, "seen", others="upkeep")
        s["upkeep_stop"] = per_op(all_stops, "seen", others="upkeep")
        s["seq_sent_start"] = per_op(starts, "sent_total")
        s["seq_seen_start"] = per_op(starts, "seen")
        s["seq_sent_stop"] = per_op(stops, "sent_total")
        s["seq_seen_stop"] = per_op(stops, "seen")
        n_starts = sum(r["n"] for r in all_starts)
        n_stops = sum(r["n"] for r in all_stops)
        s["breakdown"] = {
            "start, sent": breakdown(all_starts, "sent_total", n_starts),
            "start, seen": breakdown(all_starts, "seen", n_starts),
            "stop, sent": breakdown(all_stops, "sent_total", n_stops),
            "stop, seen": breakdown(all_stops, "seen", n_stops),
            "poll, sent": breakdown(polls, "sent_total", n_polls) or "none",
            "poll, seen": breakdown(polls, "seen", n_polls) or "none",
        }
        s["cpu_start_ms"] = 1000 * sum(r["cpu_total"] for r in all_starts) / n_starts
        s["cpu_stop_ms"] = 1000 * sum(r["cpu_total"] for r in all_stops) / n_stops
        s["cpu_start_seq_ms"] = 1000 * sum(r["cpu_total"] for r in starts) / max(1, sum(r["n"] for r in starts))
        big = max(args.bursts)
        bigs = ops_of(results, kind, [f"burst-{big}"], "start")
        s["cpu_start_big_ms"] = 1000 * sum(r["cpu_total"] for r in bigs) / max(1, sum(r["n"] for r in bigs))
        many = ops_of(results, kind, ["many"], "start")
        s["many_chunks"] = [r["t1"] - r["t0"] for r in many]
        s["cpu_start_many_ms"] = 1000 * sum(r["cpu_total"] for r in many) / max(1, sum(r["n"] for r in many))
        mem = results["memory"][kind]
        s["rss_idle"] = mem["idle"]["VmRSS"]
        s["rss_big"] = [m["VmRSS"] for m in mem.get("burst", [])]
        s["rss_many"] = mem.get("many", {}).get("VmRSS", float("nan"))
        s["mem_many"] = mem.get("many", {})
        s["hwm"] = mem.get("after", {}).get("VmHWM", float("nan"))
        s["sockets_big"] = [m["sockets"] for m in mem.get("burst", [])]
        s["sockets_many"] = mem.get("many", {}).get("sockets", float("nan"))
        s["skipped"] = mem.get("skipped")
        idle = results["idle"][kind]
        s["idle_cpu_pct"] = 100 * idle.get("cpu", float("nan")) / idle.get("seconds", 1)
        s["idle_sent_per_min"] = 60 * sum(idle.get("sent", {}).values()) / idle.get("seconds", 1)
        S[kind] = s
    return S


def report(results, args, command: str, elapsed: float) -> str:
    S = summarize(results, args)
    t, k = S["tycho"], S["kube"]
    small, big = min(args.bursts), max(args.bursts)
    med = lambda v: statistics.median(v) if v else float("nan")
    lines: List[str] = []
    out = lines.append
    out("# Spawn benchmark: TychoSpawner vs KubeSpawner on the test bed")
    out("")
    out(f"Command: `{command}`  ")
    paper = " (paper node)" if results.get("paper") else ""
    out(f"Run time: {elapsed / 60:.1f} min; {results['nodes']} node agents"
        f"{f', the {args.rss_servers}-server phase on a paper node' if paper else ''}; "
        f"failed starts or stops: Tycho {t['failures']}, Kube {k['failures']}")
    out("")
    out("Machine:")
    out("")
    lines.extend(results["machine"])
    out("")
    out(f"## Figures (times in seconds; bursts: {args.burst_reps} runs each, lowest–highest)")
    out("")
    out("| measure | TychoSpawner | KubeSpawner | Tycho/Kube | target | met |")
    out("| --- | ---: | ---: | ---: | ---: | :---: |")

    def row(label, tv, kv, digits=3, target=None, ratio=None, shown=None):
        tm, km = (med(tv), med(kv)) if isinstance(tv, list) else (tv, kv)
        r = tm / km if km and km == km and tm == tm else float("nan")
        ts = span(tv, digits) if isinstance(tv, list) and shown == "span" else fmt(tm, digits)
        ks = span(kv, digits) if isinstance(kv, list) and shown == "span" else fmt(km, digits)
        if target is None:
            goal, met = "", ""
        elif target[0] == "ratio":
            goal, met = f"≤ {target[1]:.1f}", ("yes" if r <= target[1] else "**NO**")
        else:  # ("plus", extra): absolute difference
            goal, met = f"≤ Kube + {target[1]}", ("yes" if tm <= km + target[1] else "**NO**")
        out(f"| {label} | {ts} | {ks} | {fmt(r, 2)} | {goal} | {met} |")

    n = args.sequential
    row(f"sequential start, median of {n}", t["seq_start"], k["seq_start"], target=("ratio", 0.5))
    row(f"sequential start, p90 of {n}", [pct(t["seq_start"], 0.9)], [pct(k["seq_start"], 0.9)])
    row("sequential start: start() call → pod created, median", t["seq_start_create"], k["seq_start_create"])
    row("sequential start: pod created → Running, median", t["seq_start_cluster"], k["seq_start_cluster"])
    row("sequential start: pod Running → start() return, median", t["seq_start_lag"], k["seq_start_lag"])
    row(f"sequential stop, median of {n}", t["seq_stop"], k["seq_stop"])
    row("sequential stop: return − pod deleted, median", t["seq_stop_lag"], k["seq_stop_lag"])
    for size in args.bursts:
        last = size == big
        row(f"burst {size}: all started", t[f"b{size}_start"], k[f"b{size}_start"], 2,
            target=("ratio", 0.5) if last else None, shown="span")
        row(f"burst {size}: pods created, median (the hub's side)", t[f"b{size}_created"], k[f"b{size}_created"], 2,
            shown="span")
        row(f"burst {size}: last pod Running (the cluster's side)", t[f"b{size}_last_running"],
            k[f"b{size}_last_running"], 2, shown="span")
        row(f"burst {size}: all stopped", t[f"b{size}_stop"], k[f"b{size}_stop"], 2, shown="span")
        row(f"burst {size}: worst start() return − its pod Running", t[f"b{size}_worst"], k[f"b{size}_worst"], 2,
            target=("ratio", 1.0) if last else None, shown="span")
        row(f"burst {size}: median start() return − pod Running", t[f"b{size}_lag_median"],
            k[f"b{size}_lag_median"], 2, shown="span")
    row("API requests per start, sent by the spawner", t["sent_start"], k["sent_start"], 2)
    row("API requests per start, seen by the API server (sequential)", t["seq_seen_start"], k["seq_seen_start"], 2,
        target=("plus", 1))
    row("API requests per stop, sent by the spawner", t["sent_stop"], k["sent_stop"], 2)
    row("API requests per stop, seen by the API server (sequential)", t["seq_seen_stop"], k["seq_seen_stop"], 2,
        target=("plus", 1))
    row("API requests per poll(), sent by the spawner", t["sent_poll"], k["sent_poll"], 2)
    row("API requests per poll(), seen by the API server", t["seen_poll"], k["seen_poll"], 2)
    row("hub CPU per start (ms)", t["cpu_start_ms"], k["cpu_start_ms"], 1, target=("ratio", 1.0))
    row("hub CPU per stop (ms)", t["cpu_stop_ms"], k["cpu_stop_ms"], 1)
    row("hub RSS idle, after warm-up (MiB)", t["rss_idle"], k["rss_idle"], 1)
    row(f"hub RSS with {big} servers (MiB)", t["rss_big"], k["rss_big"], 1, shown="span")
    row(f"hub RSS with {args.rss_servers} servers{paper} (MiB)", t["rss_many"], k["rss_many"], 1,
        target=("ratio", 1.0))
    out("")
    out("Requests sent and CPU: over every measured start (sequential and bursts) and stop, and "
        f"{args.poll_rounds} rounds of poll() over the {n} sequentially started servers, from the call until "
        f"{args.settle:g} s (bursts {args.burst_settle:g} s) after it returned. \"Seen by the API server\": "
        "`apiserver_request_total` read around each operation, every client (the spawner, scheduler, "
        "controller-manager, node agents), on the resources the spawners use "
        f"({', '.join(sorted(SPAWNER_RESOURCES))}, with their subresources), but LIST and WATCH (every client's "
        "cache upkeep, driven by time: they land in whichever operation is under way; see the details), over "
        "the sequential operations (in bursts the node agents' status writes and deletes vary with timing). "
        "The extra object TychoSpawner creates and deletes is its NetworkPolicy, hence the +1 targets.")
    out("")
    out("## Details")
    out("")
    out("| measure | TychoSpawner | KubeSpawner |")
    out("| --- | ---: | ---: |")
    out(f"| hub CPU per start: sequential / burst {big} / growing to {args.rss_servers} (ms) | "
        f"{fmt(t['cpu_start_seq_ms'], 1)} / {fmt(t['cpu_start_big_ms'], 1)} / {fmt(t['cpu_start_many_ms'], 1)} | "
        f"{fmt(k['cpu_start_seq_ms'], 1)} / {fmt(k['cpu_start_big_ms'], 1)} / {fmt(k['cpu_start_many_ms'], 1)} |")
    out(f"| API requests seen by the API server per start / stop, all measured (bursts too) | "
        f"{fmt(t['seen_start'], 2)} / {fmt(t['seen_stop'], 2)} | {fmt(k['seen_start'], 2)} / {fmt(k['seen_stop'], 2)} |")
    out(f"| API requests sent by the spawner per sequential start / stop | {fmt(t['seq_sent_start'], 2)} / "
        f"{fmt(t['seq_sent_stop'], 2)} | {fmt(k['seq_sent_start'], 2)} / {fmt(k['seq_sent_stop'], 2)} |")
    out(f"| seen in the same windows, per start / stop: LIST and WATCH of {', '.join(sorted(SPAWNER_RESOURCES))} "
        f"(every client's cache upkeep) | {fmt(t['upkeep_start'], 2)} / {fmt(t['upkeep_stop'], 2)} | "
        f"{fmt(k['upkeep_start'], 2)} / {fmt(k['upkeep_stop'], 2)} |")
    out(f"| seen in the same windows, per start / stop: other resources (controllers' periodic work) | "
        f"{fmt(t['other_start'], 2)} / {fmt(t['other_stop'], 2)} | {fmt(k['other_start'], 2)} / {fmt(k['other_stop'], 2)} |")
    out(f"| starting {args.rss_servers}{paper} in chunks of {args.rss_chunk}: time per chunk (s) | "
        f"{' '.join(fmt(v, 1) for v in t['many_chunks'])} | {' '.join(fmt(v, 1) for v in k['many_chunks'])} |")
    out(f"| idle with {args.rss_servers} servers{paper}: hub CPU (% of a core) / requests sent per minute | "
        f"{fmt(t['idle_cpu_pct'], 1)} / {fmt(t['idle_sent_per_min'], 1)} | {fmt(k['idle_cpu_pct'], 1)} / {fmt(k['idle_sent_per_min'], 1)} |")
    mt, mk = t["mem_many"], k["mem_many"]
    out(f"| cached in the hub with {args.rss_servers} servers: pods / events | "
        f"{mt.get('reflected_pods', '–')} / {mt.get('reflected_events') if mt.get('reflected_events') is not None else 'none'} | "
        f"{mk.get('reflected_pods', '–')} / {mk.get('reflected_events') if mk.get('reflected_events') is not None else 'none'} |")
    out(f"| hub peak RSS, whole run (VmHWM, MiB) | {fmt(t['hwm'], 1)} | {fmt(k['hwm'], 1)} |")
    out(f"| test bed: deleted pods a node agent set up again (waited for between operations) | "
        f"{results.get('resurrected', '–')}, {results.get('stuck', '–')} of them left running (both classes) | |")
    out(f"| hub's open sockets with {big} / {args.rss_servers} servers (API server connections) | "
        f"{span(t['sockets_big'], 0)} / {fmt(t['sockets_many'], 0)} | {span(k['sockets_big'], 0)} / {fmt(k['sockets_many'], 0)} |")
    for kind in KINDS:
        if S[kind]["skipped"]:
            out("")
            out(f"{LABEL[kind]} with {args.rss_servers} servers: not measured ({S[kind]['skipped']}).")
    out("")
    out("Requests per operation by verb and resource (\"(Go)\": sent with protobuf, i.e. by the scheduler or "
        "controller-manager; the rest is JSON: the spawner, node agents, provisioner):")
    out("")
    for kind in KINDS:
        out(f"- {LABEL[kind]}:")
        for what, text in S[kind]["breakdown"].items():
            out(f"  - {what}: {text}")
    return "\n".join(lines)


# =========================================================================== main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="INFO", help="the hub processes' log level (default INFO, as a hub)")
    parser.add_argument("--quick", action="store_true",
                        help="small counts for development: 5 sequential, bursts of 10 and 20, 50 servers")
    parser.add_argument("--sequential", type=int, help="sequential starts and stops per class (default 20)")
    parser.add_argument("--bursts", help="burst sizes, comma-separated (default 50,200)")
    parser.add_argument("--burst-reps", type=int, default=2, help="runs of each burst per class (default 2, ABBA)")
    parser.add_argument("--rss-servers", type=int, help="servers running when the RSS is read (default 1000)")
    parser.add_argument("--rss-chunk", type=int, default=200, help="started concurrently on the way there (default 200)")
    parser.add_argument("--poll-rounds", type=int, default=5, help="poll() rounds over the sequential servers (default 5)")
    parser.add_argument("--idle-seconds", type=float, help="idle window with all servers running (default 30)")
    parser.add_argument("--settle", type=float, default=0.3,
                        help="seconds after a sequential operation before the API server's counters are read")
    parser.add_argument("--burst-settle", type=float, default=1.0, help="the same after a burst (default 1)")
    parser.add_argument("--nodes", type=int, help="node agents (default: enough for the most servers they run at once)")
    parser.add_argument("--many-on-agents", action="store_true",
                        help="run the many-servers phase on the node agents too, not on a paper node")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement as JSON")
    args = parser.parse_args()
    if args.worker:
        return worker_main(args.worker, args.log_level)

    quick = args.quick
    args.sequential = args.sequential or (5 if quick else 20)
    args.bursts = [int(x) for x in (args.bursts or ("10,20" if quick else "50,200")).split(",")]
    args.rss_servers = args.rss_servers or (50 if quick else 1000)
    args.rss_chunk = min(args.rss_chunk, args.rss_servers)
    args.idle_seconds = args.idle_seconds if args.idle_seconds is not None else (10 if quick else 30)
    if os.geteuid() != 0:
        print("spawn_bench.py: needs root (the test bed's node agents)", file=sys.stderr)
        return 2
    most = max(max(args.bursts), args.rss_servers if args.many_on_agents else 0)
    if bridge_ports() + most > BRIDGE_MAX_PORTS:
        print(f"spawn_bench.py: the pod bridge tycho0 has {bridge_ports()} ports in use; {most} pods would not fit",
              file=sys.stderr)
        return 2

    command = " ".join(shlex.quote(a) for a in ["python", os.path.relpath(sys.argv[0])] + sys.argv[1:])
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="spawn-bench-"))
    cleanup: List[Tuple[str, Any]] = []

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results = None
    try:
        results = run_benchmark(args, workdir, cleanup)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        for what, stop in reversed(cleanup):
            try:
                stop()
            except Exception as err:
                print(f"stopping the {what}: {err}", file=sys.stderr)
        if args.keep or results is None:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if results is None:
        return 1
    elapsed = time.monotonic() - started
    if args.json:  # first: a report that fails must not lose the measurements
        Path(args.json).write_text(json.dumps({"command": command, "elapsed_s": elapsed, "args": vars(args),
                                               "results": results}, indent=1, default=str))
    print(report(results, args, command, elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
