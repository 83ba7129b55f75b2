"""tycho_spawner: a JupyterHub spawner that launches catalog applications as Kubernetes pods.

``TychoSpawner`` is imported lazily so that the pure layers (model, profiles, render) and the
``tycho`` command line load without JupyterHub or a Kubernetes client.
"""

__version__ = "0.1.0"
__all__ = ["TychoSpawner", "__version__"]


def __getattr__(name):
    if name == "TychoSpawner":
        from .spawner import TychoSpawner

        return TychoSpawner
    raise AttributeError(name)
