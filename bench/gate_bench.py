#!/usr/bin/env python3
"""Benchmark: the app directly, through tycho-gate, and through jupyter-server-proxy.

One run on this machine measures, for each path to the same app (tests/gate/upstream_app.py):

* sequential latency (median, p99) on one keep-alive connection, for a small page (n=2000) and a
  1 MB body (n=300), after a warm-up (200 / 30 requests);
* websocket message round-trip time: a 32-byte text message echoed by the app (n=2000, after 200);
* throughput: requests/s and wrk's latency distribution with 16 concurrent connections.

The sequential measurements run in interleaved rounds (every path gets a slice in each round),
so the slow phases of a shared virtual machine do not land on one path only; the report shows
the spread of the per-round medians.

Paths (each hit directly on its own listening port, so only the proxy itself is measured):

* ``direct``: the app's own port;
* ``tycho-gate``: alice's default server of a real JupyterHub (tests/gate/conftest.py ``Hub``),
  i.e. tycho-gate started by the hub's spawner with ``--upstream`` the app;
* ``jupyter-server-proxy``: alice's named server "jsp", ``jupyterhub-singleuser --allow-root``
  with jupyter-server-proxy, at ``/user/alice/jsp/proxy/<app port>/``;
* unless ``--no-chp``: the same two again through the hub's configurable-http-proxy.

The app runs in its own process (not a thread of the benchmark client, which would share a
GIL with it). Requests to the gate and to jupyterhub-singleuser carry ``Authorization: token``
for alice; both cache the hub's answer, so the steady state does not call the hub. Activity
reports go out every 300 s (the tests use 1 s), so none falls inside a measurement.

Usage::

    python bench/gate_bench.py [--duration 5] [--connections 16] [--rounds 5] [--no-chp] [--json out.json]

Requires wrk (``apt-get install wrk``); without it (or with ``--no-wrk``) the throughput
table is skipped. Takes about two minutes.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import urlsplit

from bench_machine import cpu_model, load_average  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SMALL_PATH = "/"
BIG_BYTES = 1 << 20
BIG_PATH = f"/big?bytes={BIG_BYTES}"
WS_PATH = "/ws"
WS_MESSAGE = "x" * 32


# --------------------------------------------------------------------------- the app process
def serve_upstream() -> None:
    """Child mode: run the test suite's upstream app until stdin closes."""
    from tests.gate.upstream_app import UpstreamApp

    app = UpstreamApp()
    # The tests' request log would grow by one dict per request for the whole run.
    app.seen.add = lambda handler: None
    print(app.port, flush=True)
    sys.stdin.read()


class AppProcess:
    """The upstream app in a child process (its own GIL, its own core when it can get one)."""

    def __init__(self, log_path: Path) -> None:
        # Its log (tracebacks when wrk hangs up in the middle of a 1 MB body) goes to a file.
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-upstream"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=str(REPO),
        )
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError("the upstream app did not start")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------- the hub
HUB_OVERRIDES = '''

# ---- gate_bench.py overrides (appended to a copy of tests/gate/hub_config.py) ----
# Activity reports every second would be hub traffic during the measurement; use the default.
c.Spawner.environment = {{"JUPYTERHUB_ACTIVITY_INTERVAL": "300"}}
_gate_pre_spawn_hook = pre_spawn_hook


def _bench_pre_spawn_hook(spawner):
    _gate_pre_spawn_hook(spawner)
    if spawner.name == "jsp":
        spawner.cmd = [{singleuser!r}]


c.Spawner.pre_spawn_hook = _bench_pre_spawn_hook
'''


def start_hub(workdir: Path, app: AppProcess):
    from tests.gate.conftest import Hub

    singleuser = shutil.which("jupyterhub-singleuser")
    if not singleuser:
        raise SystemExit("jupyterhub-singleuser not found")
    hub = Hub(workdir, app)  # only uses app.url
    with open(workdir / "hub_config.py", "a") as f:
        f.write(HUB_OVERRIDES.format(singleuser=singleuser))
    hub.routes["jsp"] = ["--allow-root"]
    hub.write_routes()
    # The hub passes this to configurable-http-proxy; we use it to read the routing table.
    proxy_token = secrets.token_hex(16)
    os.environ["CONFIGPROXY_AUTH_TOKEN"] = proxy_token
    hub.start()
    return hub, proxy_token


def proxy_routes(hub, proxy_token: str) -> Dict[str, str]:
    import requests

    settings = json.loads((hub.workdir / "settings.json").read_text())
    r = requests.get(
        f"http://127.0.0.1:{settings['proxy_api_port']}/api/routes",
        headers={"Authorization": f"token {proxy_token}"},
        timeout=10,
    )
    r.raise_for_status()
    return {path: spec["target"] for path, spec in r.json().items()}


def server_target(hub, proxy_token: str, prefix: str) -> str:
    routes = proxy_routes(hub, proxy_token)
    for key in (prefix, prefix.rstrip("/")):
        if key in routes:
            return routes[key]
    raise RuntimeError(f"no proxy route for {prefix}: {routes}")


# --------------------------------------------------------------------------- measurements
@dataclass
class Endpoint:
    name: str
    base: str  # http://127.0.0.1:PORT/prefix (no trailing slash)
    headers: Dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname

    @property
    def port(self) -> int:
        return urlsplit(self.base).port

    @property
    def origin(self) -> str:
        return f"http://{urlsplit(self.base).netloc}"

    def path(self, p: str) -> str:
        return urlsplit(self.base).path.rstrip("/") + p

    def url(self, p: str) -> str:
        return self.base.rstrip("/") + p

    def ws_url(self, p: str) -> str:
        return "ws://" + urlsplit(self.base).netloc + self.path(p)


def percentile(sorted_values: List[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarize(ns: List[int]) -> Dict[str, float]:
    ms = sorted(v / 1e6 for v in ns)
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "mean": sum(ms) / len(ms)}


class HTTPProbe:
    """GET requests one after another on a single keep-alive connection."""

    def __init__(self, ep: Endpoint, path: str, expect: Optional[bytes] = None):
        self.ep = ep
        self.full = ep.path(path)
        self.expect = expect
        self.conn = http.client.HTTPConnection(ep.host, ep.port, timeout=60)
        self.times: List[int] = []

    def touch(self) -> None:
        """One untimed request, reconnecting if the server closed the idle connection.

        configurable-http-proxy (node) closes keep-alive connections idle for 5 s, which they
        are while the other paths have their turn.
        """
        try:
            self.run(1, record=False, touch=False)
        except (http.client.RemoteDisconnected, ConnectionError):
            self.conn.close()
            self.run(1, record=False, touch=False)

    def run(self, n: int, record: bool = True, touch: bool = True) -> None:
        if touch:
            self.touch()
        conn, full, headers = self.conn, self.full, self.ep.headers
        clock = time.perf_counter_ns
        for _ in range(n):
            t0 = clock()
            conn.request("GET", full, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            t1 = clock()
            if resp.status != 200:
                raise RuntimeError(f"{self.ep.name} GET {full}: {resp.status} {body[:300]!r}")
            if self.expect is not None:
                if body != self.expect:
                    raise RuntimeError(f"{self.ep.name} GET {full}: body differs from the app's ({len(body)} bytes)")
                self.expect = None  # checked once
            if resp.will_close:
                raise RuntimeError(f"{self.ep.name} GET {full}: connection not kept alive")
            if record:
                self.times.append(t1 - t0)

    def close(self) -> None:
        self.conn.close()


class WebSocketProbe:
    """Round trips of one small text message over one websocket, echoed by the app."""

    def __init__(self, ep: Endpoint):
        from websockets.sync.client import connect

        # No compression (neither the app nor the proxies negotiate it), no keep-alive pings
        # in the middle of a measurement, no proxy from the environment.
        kwargs = dict(compression=None, max_size=None, open_timeout=30, ping_interval=None, proxy=None)
        if ep.headers:
            kwargs["additional_headers"] = ep.headers
            kwargs["origin"] = ep.origin
        self.ep = ep
        self.ws = connect(ep.ws_url(WS_PATH), **kwargs).__enter__()
        self.times: List[int] = []

    def run(self, n: int, record: bool = True) -> None:
        ws = self.ws
        clock = time.perf_counter_ns
        for _ in range(n):
            t0 = clock()
            ws.send(WS_MESSAGE)
            reply = ws.recv()
            t1 = clock()
            if reply != WS_MESSAGE:
                raise RuntimeError(f"{self.ep.name} websocket echoed {reply!r}")
            if record:
                self.times.append(t1 - t0)

    def close(self) -> None:
        self.ws.__exit__(None, None, None)


def fetch(ep: Endpoint, path: str) -> bytes:
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=60)
    try:
        conn.request("GET", ep.path(path), headers=ep.headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{ep.name} GET {path}: {resp.status} {body[:300]!r}")
        return body
    finally:
        conn.close()


def sequential_rounds(
    endpoints: List[Endpoint], small_expect: bytes, big_expect: bytes, args: argparse.Namespace
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Latency of every path, measured in interleaved rounds.

    Each round runs a slice of every measurement on every path, so slow phases of a shared
    machine (other tenants, frequency changes) hit all paths alike instead of one of them.
    """
    probes = {}
    try:
        for ep in endpoints:
            probes[ep.name] = {
                "small_seq": HTTPProbe(ep, SMALL_PATH, small_expect),
                "big_seq": HTTPProbe(ep, BIG_PATH, big_expect),
                "ws": WebSocketProbe(ep),
            }
        counts = {"small_seq": args.small_n, "big_seq": args.big_n, "ws": args.ws_n}
        warmups = {"small_seq": 200, "big_seq": 30, "ws": 200}
        for name, kinds in probes.items():
            for kind, probe in kinds.items():
                probe.run(warmups[kind], record=False)
        per_round: Dict[str, Dict[str, List[float]]] = {name: {k: [] for k in counts} for name in probes}
        for r in range(args.rounds):
            for name, kinds in probes.items():
                for kind, probe in kinds.items():
                    n = counts[kind] // args.rounds + (1 if r < counts[kind] % args.rounds else 0)
                    before = len(probe.times)
                    probe.run(n)
                    per_round[name][kind].append(summarize(probe.times[before:])["p50"])
        results = {}
        for name, kinds in probes.items():
            results[name] = {}
            for kind, probe in kinds.items():
                summary = summarize(probe.times)
                summary["round_p50_min"] = min(per_round[name][kind])
                summary["round_p50_max"] = max(per_round[name][kind])
                results[name][kind] = summary
        return results
    finally:
        for kinds in probes.values():
            for probe in kinds.values():
                probe.close()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk_command(ep: Endpoint, path: str, duration: float, connections: int, redact: bool = False) -> List[str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    for name, value in ep.headers.items():
        if redact and name.lower() == "authorization":
            value = "token <TOKEN>"
        cmd += ["-H", f"{name}: {value}"]
    return cmd + [ep.url(path)]


def run_wrk(ep: Endpoint, path: str, duration: float, connections: int) -> Dict[str, float]:
    out = subprocess.run(
        wrk_command(ep, path, duration, connections), capture_output=True, text=True, timeout=duration + 60
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed for {ep.name}: {out.stderr or out.stdout}")
    text = out.stdout
    result: Dict[str, float] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    result["rps"] = float(m.group(1)) if m else float("nan")
    for q in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", text, re.M)
        result[f"p{q}"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", text)
    result["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    result["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", text)
    result["socket_errors"] = m.group(1).strip() if m else ""
    return result


# --------------------------------------------------------------------------- reporting
def fmt(v: Optional[float], digits: int = 3) -> str:
    if v is None or v != v:
        return "–"
    return f"{v:.{digits}f}"


def fmt_added(v: Optional[float], base: Optional[float]) -> str:
    if v is None or base is None or v != v or base != base:
        return "–"
    return f"{v - base:+.3f}"


def machine_info() -> List[str]:
    import jupyter_server
    import jupyter_server_proxy
    import jupyterhub
    import tornado
    import websockets

    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        v = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        wrk_version = (v.stdout or v.stderr).splitlines()[0] if (v.stdout or v.stderr) else ""
    return [
        f"- CPUs: {os.cpu_count()} ({cpu_model()}); load average before the run: {load_average()}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, tornado {tornado.version}, jupyterhub {jupyterhub.__version__}, "
        f"jupyter_server {jupyter_server.__version__}, jupyter-server-proxy {jupyter_server_proxy.__version__}, "
        f"websockets {websockets.__version__}",
        f"- load generator: {wrk_version or 'wrk not installed'}",
        "- client (this script, wrk), the app, the gate / jupyterhub-singleuser, the hub and its proxy all "
        "share these CPUs",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--small-n", type=int, default=2000, help="sequential small-page requests (default 2000)")
    parser.add_argument("--big-n", type=int, default=300, help="sequential 1 MB requests (default 300)")
    parser.add_argument("--ws-n", type=int, default=2000, help="websocket round trips (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the sequential runs (default 5)")
    parser.add_argument("--no-chp", dest="chp", action="store_false", help="skip the rows through the hub's proxy")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="skip the throughput runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream()
        return 0

    command = " ".join(shlex.quote(a) for a in ["python", os.path.relpath(sys.argv[0])] + sys.argv[1:])
    if args.wrk and not shutil.which("wrk"):
        print("wrk not found (apt-get install wrk): skipping the throughput runs", file=sys.stderr)
        args.wrk = False
    info = machine_info()
    started = time.monotonic()

    workdir = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    app = AppProcess(workdir / "app.log")
    hub = None
    server_pids: List[int] = []
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    endpoints: List[Endpoint] = []
    try:
        hub, proxy_token = start_hub(workdir, app)
        token = hub.user_token("alice")
        auth = {"Authorization": f"token {token}"}
        hub.start_server("alice")
        hub.start_server("alice", "jsp", timeout=120)
        gate_prefix = hub.server_model("alice")["url"]  # /user/alice/
        jsp_prefix = hub.server_model("alice", "jsp")["url"]  # /user/alice/jsp/
        gate_target = server_target(hub, proxy_token, gate_prefix)
        jsp_target = server_target(hub, proxy_token, jsp_prefix)
        server_pids = [hub.gate_pid("alice"), hub.gate_pid("alice", "jsp")]
        jsp_path = f"{jsp_prefix}proxy/{app.port}"

        endpoints = [
            Endpoint("direct", app.url),
            Endpoint("tycho-gate", gate_target + gate_prefix.rstrip("/"), auth),
            Endpoint("jupyter-server-proxy", jsp_target + jsp_path, auth),
        ]
        if args.chp:
            endpoints += [
                Endpoint("CHP → tycho-gate", hub.url + gate_prefix.rstrip("/"), auth),
                Endpoint("CHP → jupyter-server-proxy", hub.url + jsp_path, auth),
            ]

        small_expect = fetch(endpoints[0], SMALL_PATH)
        big_expect = fetch(endpoints[0], BIG_PATH)
        assert len(big_expect) == BIG_BYTES
        print(f"sequential latency, {args.rounds} interleaved rounds ...", file=sys.stderr, flush=True)
        results = sequential_rounds(endpoints, small_expect, big_expect, args)
        if args.wrk:
            for ep in endpoints:
                print(f"wrk: {ep.name} ({ep.url('/')}) ...", file=sys.stderr, flush=True)
                results[ep.name]["small_wrk"] = run_wrk(ep, SMALL_PATH, args.duration, args.connections)
                results[ep.name]["big_wrk"] = run_wrk(ep, BIG_PATH, args.duration, args.connections)
    finally:
        if hub is not None:
            for server in ("jsp", ""):
                try:
                    if hub.server_model("alice", server):
                        hub.stop_server("alice", server)
                except Exception as err:  # keep cleaning up
                    print(f"stopping alice/{server}: {err}", file=sys.stderr)
            hub.stop()
            for pid in server_pids:  # should be gone already; the hub stops its servers
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        app.stop()
        os.environ.pop("CONFIGPROXY_AUTH_TOKEN", None)
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started

    # ----------------------------------------------------------------- the report
    direct = results["direct"]
    lines: List[str] = []
    out = lines.append
    out("# tycho-gate benchmark")
    out("")
    out(f"Command: `{command}`  ")
    out(f"Run time: {elapsed:.0f} s")
    out("")
    out("Machine:")
    out("")
    lines.extend(info)
    out("")
    out("Endpoints (each on its own listening port unless marked CHP):")
    out("")
    for ep in endpoints:
        out(f"- {ep.name}: `{ep.url('/')}`")
    out("")
    out(
        f"## Sequential latency, one keep-alive connection (ms; small page n={args.small_n}, "
        f"1 MB n={args.big_n}; websocket {len(WS_MESSAGE)}-byte message round trip n={args.ws_n})"
    )
    out("")
    out("| path | small p50 | small p99 | 1 MB p50 | 1 MB p99 | ws RTT p50 | ws RTT p99 |")
    out("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        out(
            f"| {name} | {fmt(r['small_seq']['p50'])} | {fmt(r['small_seq']['p99'])} | "
            f"{fmt(r['big_seq']['p50'])} | {fmt(r['big_seq']['p99'])} | "
            f"{fmt(r['ws']['p50'])} | {fmt(r['ws']['p99'])} |"
        )
    out("")
    out("## Added median latency vs direct (ms)")
    out("")
    out("| path | small page | 1 MB | ws RTT |")
    out("| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        if name == "direct":
            continue
        out(
            f"| {name} | {fmt_added(r['small_seq']['p50'], direct['small_seq']['p50'])} | "
            f"{fmt_added(r['big_seq']['p50'], direct['big_seq']['p50'])} | "
            f"{fmt_added(r['ws']['p50'], direct['ws']['p50'])} |"
        )
    out("")
    out(f"Run-to-run spread: lowest–highest median of the {args.rounds} interleaved rounds (ms)")
    out("")
    out("| path | small page | 1 MB | ws RTT |")
    out("| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        out(
            f"| {name} | "
            + " | ".join(f"{r[k]['round_p50_min']:.3f}–{r[k]['round_p50_max']:.3f}" for k in ("small_seq", "big_seq", "ws"))
            + " |"
        )
    if args.wrk:
        out("")
        out(f"## Throughput, wrk -t1 -c{args.connections} -d{args.duration:g}s (requests/s; latency ms)")
        out("")
        out("| path | small req/s | small p50 | small p99 | 1 MB req/s | 1 MB p50 | 1 MB p99 |")
        out("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        problems = []
        for name, r in results.items():
            s, b = r["small_wrk"], r["big_wrk"]
            out(
                f"| {name} | {fmt(s['rps'], 0)} | {fmt(s['p50'], 2)} | {fmt(s['p99'], 2)} | "
                f"{fmt(b['rps'], 0)} | {fmt(b['p50'], 2)} | {fmt(b['p99'], 2)} |"
            )
            for kind, w in (("small", s), ("1 MB", b)):
                if w["non2xx"] or w["socket_errors"]:
                    problems.append(f"{name} {kind}: {w['non2xx']} non-2xx, socket errors: {w['socket_errors'] or 0}")
        if problems:
            out("")
            out("wrk reported errors: " + "; ".join(problems))
        out("")
        example = endpoints[1]
        out(f"wrk command (tycho-gate, small page): `{shlex.join(wrk_command(example, SMALL_PATH, args.duration, args.connections, redact=True))}`")

    gate, jsp = results.get("tycho-gate"), results.get("jupyter-server-proxy")
    if gate and jsp:
        out("")
        out("## Verdict")
        out("")
        checks = [
            ("small page p50", gate["small_seq"]["p50"], jsp["small_seq"]["p50"], False),
            ("1 MB p50", gate["big_seq"]["p50"], jsp["big_seq"]["p50"], False),
            ("ws RTT p50", gate["ws"]["p50"], jsp["ws"]["p50"], False),
        ]
        if args.wrk:
            checks += [
                ("small page req/s", gate["small_wrk"]["rps"], jsp["small_wrk"]["rps"], True),
                ("1 MB req/s", gate["big_wrk"]["rps"], jsp["big_wrk"]["rps"], True),
            ]
        for label, g, j, higher_better in checks:
            beats = g > j if higher_better else g < j
            ratio = (g / j) if higher_better else (j / g)
            digits = 0 if higher_better else 3
            out(f"- {label}: gate {fmt(g, digits)} vs jupyter-server-proxy {fmt(j, digits)} → "
                f"{'gate better' if beats else 'GATE WORSE'} ({ratio:.2f}x)")
        for label, key in (("small page", "small_seq"), ("1 MB", "big_seq"), ("ws RTT", "ws")):
            added = gate[key]["p50"] - direct[key]["p50"]
            out(f"- gate adds {added:+.3f} ms at the median ({label}): "
                f"{'under 1 ms' if added < 1 else 'NOT under 1 ms'}")

    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"command": command, "machine": info, "elapsed_s": elapsed, "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
