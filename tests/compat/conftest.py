"""zero-to-jupyterhub 4.4.0's own hub configuration driving TychoSpawner on the test bed.

z2jh is read from where it is (``../shared/compat/z2jh-4.4.0`` beside this repository, or
``$TYCHO_Z2JH_DIR``); without it these tests fail, saying where they looked.
"""
from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from .z2jh import Z2JHMissing, render, z2jh_dir

#: How many cases start their servers at the same time (2 cores: the hub, the node agent and
#: the servers' own start-up share them).
CONCURRENT_CASES = 5


def pytest_configure(config):
    config.addinivalue_line("markers", "cases(*names): the z2jh cases a test reads from case_runs")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/compat/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)


def _requested_cases(session) -> set:
    """The cases the selected tests read (``-k default`` runs only what it needs)."""
    names = set()
    for item in session.items:
        if "case_runs" not in getattr(item, "fixturenames", ()):
            continue
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "name" in callspec.params:
            names.add(callspec.params["name"])
        for marker in item.iter_markers("cases"):
            names.update(marker.args)
    return names


@pytest.fixture(scope="session", autouse=True)
def z2jh_path():
    """z2jh 4.4.0's directory; every test here fails (not skips) without it, saying where it
    was looked for."""
    try:
        return z2jh_dir()
    except Z2JHMissing as err:
        message = str(err)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def user_scheduler(z2jh_path, control_plane, tmp_path_factory):
    """z2jh's user scheduler (``scheduling.userScheduler.enabled``, on by default: user pods name
    ``schedulerName: <release>-user-scheduler``).

    The chart runs it as a Deployment of kube-scheduler 1.30 configured by its ConfigMap (a
    ``kubescheduler.config.k8s.io/v1`` profile with that name and its scoring weights). The
    chart is not installed on the test bed, so the test bed's own kube-scheduler (1.20: config
    ``v1beta1``) runs with a profile of that name; with one node the scoring does not matter.
    """
    from tycho_testbed.cluster import ensure_binaries

    name = render({}).name("user-scheduler")
    directory = tmp_path_factory.mktemp("user-scheduler")
    config = directory / "config.yaml"
    config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1beta1\n"
        "kind: KubeSchedulerConfiguration\n"
        f"clientConnection: {{kubeconfig: {str(control_plane.kubeconfig_path)!r}}}\n"
        "leaderElection: {leaderElect: false}\n"
        f"profiles: [{{schedulerName: {name}}}]\n"
    )
    log = open(directory / "kube-scheduler.log", "w")
    proc = subprocess.Popen(
        [str(ensure_binaries() / "kube-scheduler"), "--config", str(config), "--secure-port", "0", "--port", "0",
         "--v", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    if proc.poll() is not None:
        pytest.fail(f"the stand-in user scheduler exited: {(directory / 'kube-scheduler.log').read_text()}")
    try:
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
async def case_runs(request, hub, control_plane, node_agent, user_scheduler, tmp_path_factory):
    """The cases of ``cases.CASES`` the selected tests read, run once for the session
    (concurrently): name -> CaseRun."""
    from kubernetes import client

    from .cases import CASES, run_case

    wanted = _requested_cases(request.session)
    directory = tmp_path_factory.mktemp("z2jh-cases")
    limit = asyncio.Semaphore(CONCURRENT_CASES)
    started = time.monotonic()
    runs = await asyncio.gather(*(run_case(hub, case, control_plane, directory, limit)
                                  for case in CASES if case.name in wanted))
    starts = [s for run in runs for s in (run.tycho, run.kube) if s]
    slowest = max(starts, key=lambda s: s.seconds, default=None)
    summary = (f"z2jh cases: {len(runs)} cases, {len(starts)} server starts in {time.monotonic() - started:.1f}s"
               + (f" (a start and stop: {sum(s.seconds for s in starts) / len(starts):.1f}s on average, "
                  f"{slowest.seconds:.1f}s at most)" if starts else ""))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(summary)
    try:
        yield {run.case.name: run for run in runs}
    finally:
        core = client.CoreV1Api(control_plane.api_client())
        for run in runs:
            try:
                core.delete_namespace(run.namespace)
            except Exception as err:  # keep cleaning the others
                print(f"deleting namespace {run.namespace}: {err}")
