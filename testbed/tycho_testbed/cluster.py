"""A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC, token auth),
kube-scheduler and kube-controller-manager, from Debian's packages (shared/design/LOCAL-CLUSTER.md).

Nothing here imitates Kubernetes: the binaries are the real v1.20 ones built from Debian's
``kubernetes`` source package by ``testbed/build-control-plane.sh``; this module only gives them
certificates, ports and flags, starts them, and stops them. Beside them it runs the test bed's
storage provisioner (:mod:`tycho_testbed.provisioner`), which plays what a cluster's storage
add-on (minikube's hostpath provisioner, a CSI driver) does, and creates its StorageClasses, and
kube-proxy with what the host needs around it (:mod:`tycho_testbed.service_network`): one per
host, as every node of the test bed is this host.
"""
from __future__ import annotations

import fcntl
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .service_network import NODE_ADDRESS

BUILD_SCRIPT = Path(__file__).resolve().parent.parent / "build-control-plane.sh"

#: Controllers that need a cloud or a CNI's address management are off; everything a spawner
#: relies on is on: service accounts and their tokens, garbage collection, Deployments, storage
#: (the PersistentVolume binder and expander, PVC and PV protection), and node lifecycle (a node
#: whose agent stops heartbeating becomes Ready Unknown, its pods not ready, its taints those of
#: an unreachable node). attachdetach stays off: no volume of the test bed is attached to a node
#: (its PVs are host directories).
CONTROLLERS = "*,-nodeipam,-attachdetach,-ttl,-route,-service,-cloud-node-lifecycle"
#: How long the node-lifecycle controller waits for a node's heartbeat (Lease or status) before
#: it marks the node Unknown and its pods not ready: 20 s instead of Kubernetes' 40 s so that
#: tests see a dead node soon. The test bed's node agents hold their Lease for as long and renew
#: it every quarter of it, as kubelets do by default (40 s, every 10 s). Checked every 2 s (5 s).
NODE_MONITOR_GRACE_SECONDS = 20
NODE_MONITOR_PERIOD_SECONDS = 2
#: Stopped in this order (kube-proxy first, etcd last).
COMPONENTS = ("kube-proxy", "apiserver-relay", "provisioner", "kube-scheduler", "kube-controller-manager",
              "kube-apiserver", "etcd")
#: The node kube-proxy runs as (``--hostname-override``): the first node agent's name. All the
#: test bed's nodes are this host; for ``externalTrafficPolicy: Local`` only this one's
#: endpoints count as local.
KUBE_PROXY_NODE = "tycho-node-1"

log = logging.getLogger("tycho_testbed.cluster")
#: The components' own API client rate limits. Kubernetes' defaults (scheduler 50/100,
#: controller-manager 20/30) would be what limits a burst on this test bed, not the code
#: under test; raised so that what is measured is the spawner.
CLIENT_QPS, CLIENT_BURST = 200, 400


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the process that started us exits."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def testbed_python() -> str:
    """The Python that runs the test bed's own programs (node agents, provisioner), and so the
    programs of the image table: ``$TYCHO_TESTBED_PYTHON``, else this one. Pod "images" come
    from it, independent of the environment the tests (or a hub under test) run in."""
    return os.environ.get("TYCHO_TESTBED_PYTHON") or sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_binaries() -> Path:
    """Build (or find cached) kube-apiserver, kube-scheduler, kube-controller-manager and
    kube-proxy; return their dir."""
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed with exit code {done.returncode}")
    return Path(done.stdout.strip().splitlines()[-1])


def _run_openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class ControlPlaneConfig:
    """Where a control plane keeps its files and which loopback ports it uses (0: pick a free one)."""

    state_dir: Path
    api_port: int = 0
    etcd_port: int = 0
    service_cluster_ip_range: str = "10.96.0.0/16"
    #: Keep running after the starting process exits (the CLI); tests leave it False so
    #: that an interrupted test run cannot leave a control plane behind.
    detach: bool = False


@dataclass
class ControlPlane:
    """A running (or startable) control plane. Use ``start()``/``stop()`` or as a context manager."""

    config: ControlPlaneConfig
    processes: dict = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return Path(self.config.state_dir)

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def volumes_dir(self) -> Path:
        """Where the provisioner keeps the PersistentVolumes' storage (``pvc-<claim uid>``)."""
        return self.state_dir / "volumes"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    def _info(self) -> dict:
        return json.loads((self.state_dir / "cluster.json").read_text())

    @property
    def server_url(self) -> str:
        return self._info()["server"]

    @property
    def admin_token(self) -> str:
        return self._info()["admin_token"]

    # ---------------------------------------------------------------- setup

    def _sans(self) -> str:
        """Names the serving certificate is valid for: loopback for the host's clients, and the
        ``kubernetes`` Service's address and names for pods (first address of the service
        range, as the API server allocates it) and its endpoint on the pods' bridge."""
        service_ip = next(ipaddress.ip_network(self.config.service_cluster_ip_range).hosts())
        names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
        return ("subjectAltName=IP:127.0.0.1,DNS:localhost," + f"IP:{service_ip},IP:{NODE_ADDRESS},"
                + ",".join(f"DNS:{n}" for n in names) + "\n")

    def _pki(self) -> None:
        pki = self.state_dir / "pki"
        sans = self._sans()
        if (pki / "apiserver.crt").exists() and (pki / "san.cnf").read_text() == sans:
            return
        pki.mkdir(parents=True, exist_ok=True)
        if not (pki / "ca.crt").exists():
            _run_openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                         "-days", "365", "-subj", "/CN=tycho-testbed-ca", cwd=pki)
            _run_openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
            _run_openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
        # (Re)made when the names change: a state dir from before the Service names were added.
        _run_openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
                     "-subj", "/CN=kube-apiserver", cwd=pki)
        (pki / "san.cnf").write_text(sans)
        _run_openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                     "-out", "apiserver.crt", "-days", "365", "-extfile", "san.cnf", cwd=pki)

    def _write_kubeconfig(self, path: Path, token: str, user: str, namespace: Optional[str] = None) -> None:
        context = {"cluster": "tycho-testbed", "user": user}
        if namespace:
            context["namespace"] = namespace  # the context's default namespace, as in a pod
        path.write_text(json.dumps({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "tycho-testbed",
                          "cluster": {"server": self.server_url, "certificate-authority": str(self.ca_path)}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "tycho-testbed", "context": context}],
            "current-context": "tycho-testbed",
        }, indent=2))
        path.chmod(0o600)

    def _spawn(self, name: str, argv: list, detach: bool, pass_fds: tuple = ()) -> subprocess.Popen:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = open(logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.state_dir,
                                start_new_session=True, pass_fds=pass_fds,
                                preexec_fn=None if detach else die_with_parent)
        log.close()
        self.processes[name] = proc
        (self.state_dir / "pids").mkdir(exist_ok=True)
        (self.state_dir / "pids" / f"{name}.pid").write_text(str(proc.pid))
        return proc

    def _wait_ready(self, timeout: float = 60) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        request = urllib.request.Request(f"{self.server_url}/readyz",
                                         headers={"Authorization": f"Bearer {self.admin_token}"})
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            proc = self.processes.get("kube-apiserver")
            if proc is not None and proc.poll() is not None:
                raise ControlPlaneError(f"kube-apiserver exited ({proc.returncode}); see {self.state_dir}/logs")
            try:
                with urllib.request.urlopen(request, context=ctx, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except Exception as err:  # not up yet
                last = err
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout}s: {last}")

    # ---------------------------------------------------------------- lifecycle

    def start(self, bin_dir: Optional[Path] = None, timeout: float = 60) -> "ControlPlane":
        bin_dir = Path(bin_dir) if bin_dir else ensure_binaries()
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._pki()
        api_port = self.config.api_port or free_port()
        etcd_port = self.config.etcd_port or free_port()
        peer_port = free_port()
        token = secrets.token_hex(24)
        # kube-proxy acts as the user the API server's default RBAC binds to system:node-proxier.
        proxy_token = secrets.token_hex(24)
        (self.state_dir / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n"
                                                   f"{proxy_token},system:kube-proxy,kube-proxy\n")
        (self.state_dir / "tokens.csv").chmod(0o600)
        (self.state_dir / "cluster.json").write_text(json.dumps(
            {"server": f"https://127.0.0.1:{api_port}", "admin_token": token, "etcd": f"http://127.0.0.1:{etcd_port}",
             "bin_dir": str(bin_dir)}))
        self._write_kubeconfig(self.kubeconfig_path, token, "admin")
        self._write_kubeconfig(self.state_dir / "kube-proxy.kubeconfig", proxy_token, "system:kube-proxy")
        pki = self.state_dir / "pki"
        data = self.state_dir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        started = time.monotonic()
        self._spawn("etcd", [
            etcd, "--data-dir", str(data), "--name", "tycho-testbed",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"tycho-testbed=http://127.0.0.1:{peer_port}",
            "--log-level", "warn",
        ], detach=self.config.detach)
        self._spawn("kube-apiserver", [
            str(bin_dir / "kube-apiserver"),
            "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
            "--bind-address", "127.0.0.1", "--secure-port", str(api_port),
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--token-auth-file", str(self.state_dir / "tokens.csv"),
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--authorization-mode", "RBAC",
            # As kubeadm, minikube and managed clusters set it: privileged containers are
            # allowed (zero-to-jupyterhub's metadata-blocking init container is one).
            "--allow-privileged=true",
            "--service-cluster-ip-range", self.config.service_cluster_ip_range,
            # The `kubernetes` Service's endpoint, reconciled by the API server itself: the
            # node's address on the pods' bridge, where a relay passes connections to
            # 127.0.0.1 (it refuses loopback endpoints; it listens on loopback only).
            "--advertise-address", NODE_ADDRESS,
            # Kubelets (node agents) are reached at their InternalIP, the test bed's bridge
            # address: their Hostname (the node's name) resolves nowhere.
            "--kubelet-preferred-address-types", "InternalIP",
            "--v", "1",
        ], detach=self.config.detach)
        try:
            self._wait_ready(timeout)
        except ControlPlaneError:
            self.stop()
            raise
        common = ["--kubeconfig", str(self.kubeconfig_path), "--leader-elect=false",
                  "--kube-api-qps", str(CLIENT_QPS), "--kube-api-burst", str(CLIENT_BURST),
                  "--bind-address", "127.0.0.1", "--secure-port", "0", "--port", "0"]
        self._spawn("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"), *common,
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"),
            "--use-service-account-credentials=false",
            "--controllers", CONTROLLERS,
            "--node-monitor-grace-period", f"{NODE_MONITOR_GRACE_SECONDS}s",
            "--node-monitor-period", f"{NODE_MONITOR_PERIOD_SECONDS}s",
        ], detach=self.config.detach)
        self._spawn("kube-scheduler", [str(bin_dir / "kube-scheduler"), *common], detach=self.config.detach)
        try:
            self._start_storage()
            self._start_services(bin_dir, api_port)
        except Exception:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - started
        return self

    def _start_storage(self) -> None:
        """The StorageClasses and their provisioner, as a cluster's storage add-on provides them.

        Volumes of an earlier run are removed first: etcd starts empty, no PV refers to them.
        """
        from .provisioner import ensure_storage_classes, reset_volumes

        reset_volumes(self.volumes_dir)
        ensure_storage_classes(self.api_client())
        self._spawn("provisioner", [testbed_python(), "-m", "tycho_testbed", "provisioner",
                                    "--kubeconfig", str(self.kubeconfig_path), "--state-dir", str(self.state_dir)],
                    detach=self.config.detach)

    def _start_services(self, bin_dir: Path, api_port: int) -> None:
        """The relay to the API server for the ``kubernetes`` Service, then, if this host's Service
        network is free, the forwarding guard and kube-proxy (:mod:`tycho_testbed.service_network`).
        Another test bed holding it is said in one line: this one's Services do not route."""
        from . import service_network
        from .node import ensure_bridge

        kube_proxy = bin_dir / "kube-proxy"
        if not os.access(kube_proxy, os.X_OK):
            raise ControlPlaneError(f"{kube_proxy} is missing: run {BUILD_SCRIPT}")
        if ensure_bridge():  # the node agents find it; removed at stop if no pod uses it
            (self.state_dir / "bridge-created").touch()
        self._spawn("apiserver-relay", service_network.relay_argv(api_port), detach=self.config.detach)
        fd = service_network.claim(self.state_dir)
        if fd is None:
            log.warning("Services of the test bed in %s do not route: this host's Service network belongs to "
                        "the test bed in %s (one kube-proxy per host)", self.state_dir, service_network.holder())
            return
        try:
            service_network.cleanup_rules(kube_proxy)  # whatever an owner that died left
            service_network.prepare_host(self.state_dir)
            argv = service_network.kube_proxy_argv(kube_proxy, self.state_dir / "kube-proxy.kubeconfig",
                                                   KUBE_PROXY_NODE, free_port(), free_port())
            proc = self._spawn("kube-proxy", argv, detach=self.config.detach, pass_fds=(fd,))
        except Exception:
            service_network.restore_host()
            raise
        finally:
            os.close(fd)  # kube-proxy holds the lock from here on
        service_network.wait_synced(proc, self.state_dir / "logs" / "kube-proxy.log")

    def _stop_services(self, owned: bool) -> None:
        """Once kube-proxy is gone: its rules removed, forwarding and the guard as they were (if
        no other test bed took the host's Service network meanwhile), the bridge if made here."""
        from . import service_network
        from .node import BRIDGE, bridge_ports

        if owned:
            fd = os.open(service_network.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                deadline = time.monotonic() + 10
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            log.warning("the host's Service network is held by %s: left to it",
                                        service_network.holder())
                            return
                        time.sleep(0.05)
                if service_network.owned_by(self.state_dir):
                    bin_dir = Path(self._info().get("bin_dir") or ensure_binaries())
                    service_network.cleanup_rules(bin_dir / "kube-proxy")
                    service_network.restore_host()
            finally:
                os.close(fd)
        marker = self.state_dir / "bridge-created"
        if marker.exists():
            if not bridge_ports():
                subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
            marker.unlink()

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM every component (kube-proxy first, etcd last), SIGKILL what is left, then
        remove kube-proxy's rules and put the host's forwarding back (if this test bed had
        them), and unmount the sized volumes (their data goes with the cluster, as etcd's does)."""
        pids = {}
        pid_dir = self.state_dir / "pids"
        for name in COMPONENTS:
            proc = self.processes.pop(name, None)
            pid = proc.pid if proc else None
            if pid is None and (pid_dir / f"{name}.pid").exists():
                pid = int((pid_dir / f"{name}.pid").read_text())
            if pid is None:
                continue
            pids[name] = (pid, proc)
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for name, (pid, proc) in pids.items():
            while time.monotonic() < deadline and _alive(pid, proc):
                time.sleep(0.05)
            if _alive(pid, proc):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if proc is not None:
                proc.wait()
            (pid_dir / f"{name}.pid").unlink(missing_ok=True)
        self._stop_services(owned="kube-proxy" in pids)
        from .provisioner import unmount_all

        unmount_all(self.volumes_dir)

    def status(self) -> dict:
        """Each component's pid and whether it runs."""
        out = {}
        for name in reversed(COMPONENTS):
            pid_file = self.state_dir / "pids" / f"{name}.pid"
            pid = int(pid_file.read_text()) if pid_file.exists() else None
            out[name] = {"pid": pid, "running": bool(pid) and _alive(pid, None)}
        return out

    # ---------------------------------------------------------------- faults (tests only)

    def freeze_api_server(self) -> None:
        """SIGSTOP kube-apiserver: connections still open, nothing answers (a hung API server).
        The caller must :meth:`thaw_api_server` it: the control plane is shared."""
        os.kill(self._pid("kube-apiserver"), signal.SIGSTOP)

    def thaw_api_server(self, timeout: float = 60) -> None:
        """SIGCONT kube-apiserver and wait until it is ready again."""
        os.kill(self._pid("kube-apiserver"), signal.SIGCONT)
        self._wait_ready(timeout)

    def stop_api_server(self, grace: float = 30) -> list:
        """SIGTERM kube-apiserver and SIGKILL it if it has not exited after ``grace`` seconds, as
        a kubelet does (it stops listening at once, then drains its watches for up to 60 s).
        Returns its command line for :meth:`start_api_server`."""
        pid, proc = self._pid("kube-apiserver"), self.processes.get("kube-apiserver")
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a frozen one acts on it too
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid, proc):
            time.sleep(0.05)
        if _alive(pid, proc):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid, proc):  # its port is free once it is gone
            time.sleep(0.05)
        return argv

    def start_api_server(self, argv: list, timeout: float = 60) -> None:
        """Start kube-apiserver again as before (same port, flags and etcd: the same cluster)
        and wait until it is ready."""
        self._spawn("kube-apiserver", argv, detach=self.config.detach)
        self._wait_ready(timeout)

    def _pid(self, name: str) -> int:
        proc = self.processes.get(name)
        return proc.pid if proc is not None else int((self.state_dir / "pids" / f"{name}.pid").read_text())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------------- clients and credentials

    def api_client(self):
        """A ``kubernetes.client.ApiClient`` acting as the cluster admin."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.server_url
        configuration.ssl_ca_cert = str(self.ca_path)
        configuration.api_key = {"authorization": f"Bearer {self.admin_token}"}
        return client.ApiClient(configuration)

    def create_namespace(self, name: str) -> str:
        """Create a namespace and wait until pods can be created in it.

        Pods are refused until the controllers have made the namespace's ``default``
        ServiceAccount and its token, as on any cluster; tests should not race that.
        """
        from kubernetes import client

        client.CoreV1Api(self.api_client()).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        self.service_account_token(name, "default")
        return name

    def service_account_token(self, namespace: str, name: str, timeout: float = 30) -> str:
        """The token of a ServiceAccount (the legacy token Secret the token controller makes in 1.20)."""
        import base64

        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        deadline = time.monotonic() + timeout
        from kubernetes.client.rest import ApiException

        while time.monotonic() < deadline:
            try:
                sa = core.read_namespaced_service_account(name, namespace)
            except ApiException as err:
                if err.status != 404:  # not made yet by the service-account controller
                    raise
                time.sleep(0.1)
                continue
            for ref in sa.secrets or []:
                secret = core.read_namespaced_secret(ref.name, namespace)
                if secret.type == "kubernetes.io/service-account-token" and (secret.data or {}).get("token"):
                    return base64.b64decode(secret.data["token"]).decode()
            time.sleep(0.1)
        raise ControlPlaneError(f"no token for service account {namespace}/{name} after {timeout}s")

    def service_account_kubeconfig(self, namespace: str, name: str, path) -> Path:
        """Write a kubeconfig acting as ServiceAccount ``namespace/name``; return its path."""
        path = Path(path)
        token = self.service_account_token(namespace, name)
        self._write_kubeconfig(path, token, f"system:serviceaccount:{namespace}:{name}", namespace)
        return path


def _alive(pid: int, proc: Optional[subprocess.Popen]) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
