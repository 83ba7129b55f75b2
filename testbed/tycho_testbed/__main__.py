"""Command line of the test bed.

    python -m tycho_testbed cluster up|down|status|env [--state-dir D] [--nodes N] [--gpu-node] [--images FILE]
    python -m tycho_testbed node --kubeconfig K --node NAME --state-dir D [--images FILE]
                                 [--label K=V] [--taint K=V:Effect] [--extended-resource D/N=COUNT]
    python -m tycho_testbed provisioner --kubeconfig K --state-dir D

`cluster up` starts the control plane (with the storage provisioner) and N node agents
detached (they outlive the command; `cluster down` stops them); with --gpu-node also the GPU
node `tycho-node-gpu` (see GPU_NODE: labelled, tainted, two nvidia.com/gpu in its capacity). The state directory (default
$TYCHO_TESTBED_STATE or ~/.cache/tycho-testbed/run) holds certificates, kubeconfigs, logs, pid
files and the volumes' storage. $TYCHO_TESTBED_PYTHON chooses the Python that runs the node
agents and the provisioner, and so the programs of the image table (default: this one).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

#: The test bed's GPU node, as a cloud's GPU node pool makes them: labelled (as NVIDIA's GPU
#: feature discovery does) and tainted so that only pods that tolerate the taint land there
#: (which a GPU request's toleration does), with two ``nvidia.com/gpu`` in its capacity. The
#: GPUs are numbers for the scheduler: no device is attached, a pod gets no /dev/nvidia*.
GPU_NODE = "tycho-node-gpu"
GPU_NODE_LABELS = {"nvidia.com/gpu.present": "true", "tycho.test/accelerator": "nvidia-t4"}
GPU_NODE_TAINTS = ("nvidia.com/gpu=present:NoSchedule",)
GPU_NODE_RESOURCES = {"nvidia.com/gpu": "2"}

DEFAULT_STATE = Path(os.environ.get("TYCHO_TESTBED_STATE", Path.home() / ".cache" / "tycho-testbed" / "run"))


def _plane(state: Path):
    from .cluster import ControlPlane, ControlPlaneConfig

    return ControlPlane(ControlPlaneConfig(state_dir=state / "control-plane", detach=True))


def _node_pids(state: Path) -> dict:
    out = {}
    for pid_file in sorted((state / "nodes").glob("*.pid")):
        out[pid_file.stem] = int(pid_file.read_text())
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def start_node(kubeconfig: Path, name: str, state_dir: Path, images=None, log_path=None,
               index=None, detach=True, labels: Optional[dict] = None, taints: Sequence[str] = (),
               extended_resources: Optional[dict] = None) -> subprocess.Popen:
    """Start one node agent as a detached process; its log goes to ``log_path``.

    ``labels``, ``taints`` (``key=value:Effect``) and ``extended_resources`` (name -> count)
    are the Node's besides the agent's own (see the node command's --label, --taint,
    --extended-resource).

    It runs under ``testbed_python()`` ($TYCHO_TESTBED_PYTHON or this Python): pods' programs
    (jupyterhub-singleuser, tycho-gate...) come from that environment, as images are
    independent of the hub's.
    """
    from .cluster import NODE_MONITOR_GRACE_SECONDS, die_with_parent, testbed_python

    # Its Lease lasts the node-lifecycle controller's grace period, renewed every quarter of it,
    # as a kubelet's does with Kubernetes' defaults.
    argv = [testbed_python(), "-m", "tycho_testbed", "node", "--kubeconfig", str(kubeconfig),
            "--node", name, "--state-dir", str(state_dir),
            "--node-lease-duration-seconds", str(NODE_MONITOR_GRACE_SECONDS)]
    if index is not None:
        argv += ["--index", str(index)]
    if images:
        argv += ["--images", str(images)]
    for key, value in (labels or {}).items():
        argv += ["--label", f"{key}={value}"]
    for taint in taints:
        argv += ["--taint", taint]
    for resource, count in (extended_resources or {}).items():
        argv += ["--extended-resource", f"{resource}={count}"]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=None if detach else die_with_parent)
    finally:
        if log_path:
            log.close()


def start_gpu_node(kubeconfig: Path, state_dir: Path, images=None, log_path=None, index=None,
                   detach=True) -> subprocess.Popen:
    """Start the GPU node's agent (GPU_NODE, with its labels, taint and GPUs)."""
    return start_node(kubeconfig, GPU_NODE, state_dir, images, log_path, index=index, detach=detach,
                      labels=GPU_NODE_LABELS, taints=GPU_NODE_TAINTS, extended_resources=GPU_NODE_RESOURCES)


def wait_node_ready(api_client, name: str, timeout: float = 30) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            node = core.read_node(name)
            ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
            tainted = any(t.key == "node.kubernetes.io/not-ready" for t in node.spec.taints or [])
            if ready and not tainted:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"node {name} not Ready after {timeout}s")


def cluster_up(args) -> int:
    state = Path(args.state_dir)
    plane = _plane(state)
    status = plane.status()
    if all(s["running"] for s in status.values()):
        print(f"test bed already up ({state})")
        return 0
    plane.stop()
    t = time.monotonic()
    plane.start()
    nodes_dir = state / "nodes"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, args.nodes + 1):
        name = f"tycho-node-{i}"
        proc = start_node(plane.kubeconfig_path, name, state / "node-state" / name, args.images,
                          nodes_dir / f"{name}.log")
        (nodes_dir / f"{name}.pid").write_text(str(proc.pid))
        wait_node_ready(plane.api_client(), name)
    if args.gpu_node:
        # Pod addresses 10.213.100.x: after the plain nodes' (1, 2...), before a test run's.
        proc = start_gpu_node(plane.kubeconfig_path, state / "node-state" / GPU_NODE, args.images,
                              nodes_dir / f"{GPU_NODE}.log", index=100)
        (nodes_dir / f"{GPU_NODE}.pid").write_text(str(proc.pid))
        wait_node_ready(plane.api_client(), GPU_NODE)
    gpu = f" and {GPU_NODE}" if args.gpu_node else ""
    print(f"test bed up in {time.monotonic() - t:.1f}s: {plane.server_url}, {args.nodes} node(s){gpu}")
    print(f"  export KUBECONFIG={plane.kubeconfig_path}")
    return 0


def cluster_down(args) -> int:
    state = Path(args.state_dir)
    for name, pid in _node_pids(state).items():
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        (state / "nodes" / f"{name}.pid").unlink(missing_ok=True)
    _plane(state).stop()
    print("test bed down")
    return 0


def cluster_status(args) -> int:
    state = Path(args.state_dir)
    plane = _plane(state)
    up = True
    for name, s in plane.status().items():
        print(f"{name:24} {'running' if s['running'] else 'stopped'}  pid {s['pid']}")
        up &= s["running"]
    for name, pid in _node_pids(state).items():
        alive = _alive(pid)
        print(f"{name:24} {'running' if alive else 'stopped'}  pid {pid}")
        up &= alive
    if up:
        from kubernetes import client

        for node in client.CoreV1Api(plane.api_client()).list_node().items:
            ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), "Unknown")
            print(f"node {node.metadata.name}: Ready={ready}")
    return 0 if up else 1


def cluster_env(args) -> int:
    plane = _plane(Path(args.state_dir))
    print(f"export KUBECONFIG={plane.kubeconfig_path}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tycho-testbed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cluster = sub.add_parser("cluster", help="the control plane and its node agents")
    cluster.add_argument("action", choices=["up", "down", "status", "env"])
    cluster.add_argument("--state-dir", default=str(DEFAULT_STATE))
    cluster.add_argument("--nodes", type=int, default=1, help="node agents to start (default 1)")
    cluster.add_argument("--gpu-node", action="store_true",
                         help=f"also start the GPU node {GPU_NODE} (up only): tainted, with nvidia.com/gpu capacity")
    cluster.add_argument("--images", help="image table for the node agents (default: the packaged one)")
    node = sub.add_parser("node", help="run one node agent in the foreground (needs root)")
    from .node import add_node_arguments, run_node

    add_node_arguments(node)
    provisioner = sub.add_parser("provisioner", help="run the storage provisioner in the foreground (needs root)")
    from .provisioner import add_provisioner_arguments, run_provisioner

    add_provisioner_arguments(provisioner)
    args = parser.parse_args(argv)
    if args.command == "node":
        return run_node(args)
    if args.command == "provisioner":
        return run_provisioner(args)
    return {"up": cluster_up, "down": cluster_down, "status": cluster_status, "env": cluster_env}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
