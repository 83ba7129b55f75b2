"""The chart on the test bed: `bin/stage chart up|down|status`, and the chart tests' install.

The same steps as the README's minikube walkthrough (namespace `jhub`, release `tycho`, the
chart as it is, `helm/testbed-values.yaml` on top), through helm-python-sdk (Helm's Go SDK;
there is no helm binary here). The hub and proxy images run as the test bed's image table says
(testbed/tycho_testbed/default-images.yaml): the hub image is the jupyterhub of the environment
running the node agent, with this package; the proxy image the host's configurable-http-proxy.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

CHART = Path(__file__).resolve().parent / "tycho-spawner"
TESTBED_VALUES = Path(__file__).resolve().parent / "testbed-values.yaml"
#: The README's names (its minikube walkthrough).
NAMESPACE = "jhub"
RELEASE = "tycho"
#: Labels of the servers a release's hub starts (KubeSpawner's, plus the chart's release label).
SERVERS = "component=singleuser-server,app.kubernetes.io/instance={release}"
#: Users' claims (KubeSpawner's label): their files, never removed without --purge.
CLAIMS = "component=singleuser-storage"


class RolloutFailed(Exception):
    """The release's Deployments did not become available; the message says what each pod is doing."""


@dataclass(frozen=True)
class Testbed:
    """Where the chart goes: a kubeconfig (the test bed's admin), a namespace and a release."""

    kubeconfig: Path
    namespace: str = NAMESPACE
    release: str = RELEASE

    def helm(self):
        from helm_python import Config

        return Config(kubeconfig_path=str(self.kubeconfig), namespace=self.namespace)

    def api(self) -> client.ApiClient:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def installed(self) -> bool:
        return any(_name(r) == self.release for r in _releases(self.helm()))

    def up(self, values: Optional[dict] = None) -> None:
        """Install the release (or upgrade it with these values), creating the namespace."""
        core = client.CoreV1Api(self.api())
        try:
            core.create_namespace({"metadata": {"name": self.namespace}})
        except ApiException as err:
            if err.status != 409:
                raise
        merged = _merge(yaml.safe_load(TESTBED_VALUES.read_text()) or {}, values or {})
        helm = self.helm()
        if self.installed():
            helm.upgrade(str(CHART), self.release, merged, namespace=self.namespace)
        else:
            helm.install(str(CHART), self.release, merged, namespace=self.namespace)

    def wait_for_rollout(self, timeout: float = 300) -> None:
        """Until the hub's and the proxy's Deployments have their newest pod ready, and the hub
        answers through the public URL: a pod's readiness reaches kube-proxy's rules a moment
        later (the proxy answers 503 meanwhile, right after an upgrade's new hub pod is ready)."""
        apps = client.AppsV1Api(self.api())
        deadline = time.monotonic() + timeout
        names = [f"{self.release}-hub", f"{self.release}-proxy"]
        while True:
            pending = [n for n in names if not _rolled_out(apps.read_namespaced_deployment(n, self.namespace))]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise RolloutFailed(f"not rolled out within {timeout:.0f} s: {', '.join(pending)}\n"
                                    + self.pod_report())
            time.sleep(0.5)
        url = f"{self.public_url()}/hub/health"
        while (answer := _status(url)) != 200:
            if time.monotonic() > deadline:
                raise RolloutFailed(f"rolled out, but {url} answers {answer} after {timeout:.0f} s\n" + self.pod_report())
            time.sleep(0.5)

    def pod_report(self) -> str:
        """One line per pod of the release: phase, and each container's state."""
        core = client.CoreV1Api(self.api())
        lines = []
        for pod in core.list_namespaced_pod(self.namespace, label_selector=f"app.kubernetes.io/instance={self.release}").items:
            states = []
            for status in pod.status.container_statuses or []:
                state = status.state
                if state.waiting:
                    states.append(f"{status.name} waiting {state.waiting.reason}: {state.waiting.message or ''}".rstrip(": "))
                elif state.terminated:
                    states.append(f"{status.name} exited {state.terminated.exit_code}")
                else:
                    states.append(f"{status.name} {'ready' if status.ready else 'running, not ready'}"
                                  f" (restarts {status.restart_count})")
            lines.append(f"  {pod.metadata.name}: {pod.status.phase}; {'; '.join(states) or 'no container yet'}")
        return "\n".join(lines) or "  (no pods)"

    def public_url(self, host: str = "127.0.0.1") -> str:
        service = client.CoreV1Api(self.api()).read_namespaced_service(f"{self.release}-public", self.namespace)
        return f"http://{host}:{service.spec.ports[0].node_port}"

    def down(self, purge: bool = False) -> list[str]:
        """Uninstall the release and stop its users' servers (with no hub, nothing would stop
        them); ``purge`` also deletes users' claims, i.e. their files. Returns what it did."""
        done = []
        if self.installed():
            self.helm().uninstall(self.release, wait="watcher", timeout=120)
            done.append(f"release {self.release} uninstalled")
        core = client.CoreV1Api(self.api())
        servers = SERVERS.format(release=self.release)
        pods = [p for p in core.list_namespaced_pod(self.namespace, label_selector=servers).items
                if not p.metadata.deletion_timestamp]
        for pod in pods:
            _delete(core.delete_namespaced_pod, pod.metadata.name, self.namespace, grace_period_seconds=1)
        networking = client.NetworkingV1Api(self.api())
        for policy in networking.list_namespaced_network_policy(self.namespace, label_selector=servers).items:
            _delete(networking.delete_namespaced_network_policy, policy.metadata.name, self.namespace)
        if pods:
            done.append(f"{len(pods)} server(s) stopped: {', '.join(p.metadata.name for p in pods)}")
        claims = core.list_namespaced_persistent_volume_claim(self.namespace, label_selector=CLAIMS).items
        if purge:
            for claim in claims:
                _delete(core.delete_namespaced_persistent_volume_claim, claim.metadata.name, self.namespace)
            if claims:
                done.append(f"{len(claims)} user claim(s) deleted: {', '.join(c.metadata.name for c in claims)}")
        elif claims:
            done.append(f"kept users' files: {', '.join(c.metadata.name for c in claims)} "
                        f"(bin/stage chart down --purge deletes them)")
        return done


def _delete(delete, name: str, namespace: str, **kwargs) -> None:
    """Delete, counting an object already gone as deleted: a pod stopped by an earlier
    `chart down` may vanish between the list and the delete (CI: a second `down` got 404)."""
    try:
        delete(name, namespace, **kwargs)
    except ApiException as err:
        if err.status != 404:
            raise


def _releases(helm) -> list:
    found = helm.list(all_states=True)
    return list(getattr(found, "releases", None) or found or [])


def _status(url: str):
    """The HTTP status of a GET, or the error in words."""
    import requests

    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException as err:
        return f"nothing ({type(err).__name__})"


def _name(release) -> str:
    return release["name"] if isinstance(release, dict) else release.name


def _rolled_out(deployment) -> bool:
    status, spec = deployment.status, deployment.spec
    return (
        (status.observed_generation or 0) >= deployment.metadata.generation
        and (status.updated_replicas or 0) == spec.replicas
        and (status.available_replicas or 0) == spec.replicas
        and (status.replicas or 0) == spec.replicas
    )


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/stage chart", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"), required="KUBECONFIG" not in os.environ)
    parser.add_argument("--namespace", default=os.environ.get("TYCHO_CHART_NAMESPACE", NAMESPACE))
    parser.add_argument("--release", default=os.environ.get("TYCHO_CHART_RELEASE", RELEASE))
    parser.add_argument("-f", "--values", type=Path, action="append", default=[], help="more values files, in order")
    parser.add_argument("--purge", action="store_true", help="down: also delete users' claims (their files)")
    parser.add_argument("--timeout", type=float, default=300, help="up: seconds to wait for the rollout")
    args = parser.parse_args(argv)
    bed = Testbed(args.kubeconfig, args.namespace, args.release)
    if args.action == "up":
        values: dict = {}
        for path in args.values:
            values = _merge(values, yaml.safe_load(path.read_text()) or {})
        started = time.monotonic()
        bed.up(values)
        try:
            bed.wait_for_rollout(args.timeout)
        except RolloutFailed as err:
            print(f"stage: {err}", file=sys.stderr)
            return 1
        print(f"stage: release {args.release} in namespace {args.namespace} rolled out in "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr)
        print(bed.public_url())
    elif args.action == "down":
        for line in bed.down(args.purge) or ["nothing installed"]:
            print(f"stage: {line}", file=sys.stderr)
    else:
        if not bed.installed():
            print(f"release {args.release}: not installed")
            return 1
        print(f"release {args.release} in {args.namespace}: {bed.public_url()}\n{bed.pod_report()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
