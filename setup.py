"""Packaging for tycho_spawner and its Kubernetes test bed (tycho_testbed)."""
from setuptools import find_packages, setup

setup(
    name="tycho-spawner",
    version="0.1.0",
    description="JupyterHub spawner: launch catalog apps (Jupyter stacks, RStudio, nginx, any web app) as Kubernetes pods",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tycho_spawner", "tycho_spawner.*"])
    + find_packages("testbed", include=["tycho_testbed", "tycho_testbed.*"]),
    package_dir={"tycho_testbed": "testbed/tycho_testbed"},
    package_data={
        "tycho_spawner": ["templates/*", "catalog/*.yaml"],
        "tycho_testbed": ["*.yaml"],
    },
    install_requires=[
        "jupyterhub==6.1.1",
        "jupyterhub-kubespawner==7.1.0",
        "kubernetes_asyncio==36.1.0",
        "Jinja2==3.1.6",
        "PyYAML==6.0.3",
        "traitlets==5.15.0",
        "tornado==6.6.1",
    ],
    extras_require={
        "test": [
            "pytest==9.0.3",
            "pytest-asyncio==1.5.0",
            "pytest-timeout==2.4.0",
            "kubernetes==37.0.2",
            "import-linter==2.16",
            "jupyterlab==4.6.6",
            "notebook==7.6.5",
            "websockets==17.4",
            "selenium==4.50.0",
            "helm-python-sdk==0.2.2",
        ],
        "testbed": ["kubernetes==37.0.2", "PyYAML==6.0.3"],
        # bench/gate_bench.py compares tycho-gate with jupyter-server-proxy.
        "bench": ["jupyter-server-proxy==4.6.0"],
    },
    entry_points={
        "console_scripts": [
            "tycho = tycho_spawner.cli:main",
            "tycho-gate = tycho_spawner.gate.app:main",
            "tycho-testbed = tycho_testbed.__main__:main",
        ],
        "pytest11": ["tycho_testbed = tycho_testbed.pytest_plugin"],
    },
)
