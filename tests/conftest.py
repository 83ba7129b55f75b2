"""Fixtures shared by several test directories, registered here once.

The hub (`tests/hubfixtures.py`) is a MockHub, a process-wide singleton: it must be one
session fixture for the whole run, not one per directory (`tests/spawner` and `tests/compat`
run in one session under `bin/stage test`).
"""
from tests.hubfixtures import hub, hub_namespace, kube_env  # noqa: F401  (fixtures)
