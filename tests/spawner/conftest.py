"""A real JupyterHub (MockHub, with the real configurable-http-proxy) using TychoSpawner against
the test bed's real API server and node agent.

The fixtures (`hub`, `hub_namespace`, `kube_env`) live in `tests/hubfixtures.py`, registered once
for the session by `tests/conftest.py`: `tests/compat` uses the same hub.
"""
from tests.hubfixtures import api_json, bridge_address, browser_login, labelled_objects, wait_for_spawn  # noqa: F401
