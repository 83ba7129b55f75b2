"""The fault tests' hub: the example `jupyterhub_config.py` in a real `jupyterhub` process
(tests/faults/examplehub.py), not started yet, torn down with its proxy afterwards."""
import pytest

from .examplehub import ExampleHub


@pytest.fixture
def example_hub(tmp_path, control_plane, node_agent, kube_namespace):
    hub = ExampleHub(tmp_path, kube_namespace, control_plane.kubeconfig_path)
    try:
        yield hub
    finally:
        hub.tear_down()
