"""The real ``jupyterhub`` command with z2jh's configuration, as z2jh's hub pod runs it (its
files at /usr/local/etc/jupyterhub in a private mount namespace, its environment, its command
``jupyterhub --config /usr/local/etc/jupyterhub/jupyterhub_config.py --upgrade-db``) with
``hub.config.JupyterHub.spawner_class: tycho_spawner.TychoSpawner``.

While it starts, its log names each site setting a catalog entry replaces, once, saying what
replaces it; a broken catalog in ``hub.config.TychoSpawner.catalog`` stops it with a non-zero
exit naming the key. Only the start-up matters here: the hub runs in its own network namespace
(loopback only), where z2jh's proxy (``proxy-api``) does not exist; it is stopped once the lines
are there, or has exited by itself.
"""
from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest

from .z2jh import HubPod, render

pytestmark = pytest.mark.cluster

#: z2jh values whose settings a catalog entry replaces or combines with (on top of z2jh's
#: defaults: image, cmd, uid, fsGid, memory guarantee).
SITE = {"singleuser": {"cpu": {"limit": 2, "guarantee": 0.5}, "memory": {"limit": "4G"},
                       "defaultUrl": "/lab/tree/README.md", "cmd": ["jupyterhub-singleuser", "--debug"]}}
NAMED = ("image", "cmd", "uid", "fs_gid", "cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee", "default_url")
#: JupyterHub says this once it has set up its spawners (after the configuration is applied).
PAST_SPAWNERS = re.compile(r"Initialized \d+ spawners|Failed to connect to proxy|Proxy appears to be")


def run_hub(values: dict, directory, done, timeout: float = 90):
    """Run z2jh's hub until ``done(lines)`` or its exit; return (exit code or None, lines)."""
    namespace = "z2jh-hub"
    pod = HubPod.prepare(render(values, namespace=namespace), namespace, directory / "pod")
    srv = directory / "srv"  # the hub's working directory (its database volume in the pod)
    srv.mkdir()
    argv = pod.command({"action": "exec", "argv": pod.hub_argv(), "cwd": str(srv)})
    proc = subprocess.Popen(argv, env=pod.environment(), cwd=str(srv), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not done(lines) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        code = proc.poll()
        if code is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)
    return code, lines


def _named(lines) -> list:
    return [m.group(1) for m in (re.search(r"TychoSpawner: site setting (\w+) ", line) for line in lines) if m]


def test_hub_start_names_each_replaced_setting_once(tmp_path):
    code, lines = run_hub(SITE, tmp_path, lambda lines: any(PAST_SPAWNERS.search(line) for line in lines))
    output = "".join(lines)
    assert any(PAST_SPAWNERS.search(line) for line in lines), (
        f"the hub did not get past its spawners (exit {code}):\n{output}")
    assert "Using Spawner: tycho_spawner.spawner.TychoSpawner" in output, output
    named = _named(lines)
    assert sorted(named) == sorted(NAMED), f"settings named at start: {named}, expected {sorted(NAMED)}:\n{output}"
    for line in lines:
        if "TychoSpawner: site setting" in line:
            assert "replaced by" in line or "applies as" in line, line
    image_line = next(line for line in lines if "site setting image =" in line)
    assert "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0" in image_line
    assert "system.containers" in image_line


def test_broken_catalog_stops_the_hub_naming_the_key(tmp_path):
    broken = {"hub": {"config": {"TychoSpawner": {"catalog": {
        "base": {"system": {"containers": {"notebook": {"limits": {"memory": "2GG"}}}}}}}}}}
    # The catalog is checked when the configuration is applied, before the spawners are set
    # up: a hub that gets past them did not stop on it.
    code, lines = run_hub(broken, tmp_path, lambda lines: any(PAST_SPAWNERS.search(line) for line in lines))
    output = "".join(lines)
    assert code not in (None, 0), f"the hub went on with a broken catalog (exit {code}):\n{output}"
    assert "catalog.base.system.containers.notebook.limits.memory" in output, output
    assert "2GG" in output
