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
    # Ranges, not pins: the package is installed into sites' hub images (zero-to-jupyterhub
    # 4.4.0's runs jupyterhub 5.5.0, kubespawner 7.0.0, tornado 6.5.7, traitlets 5.15.1). CI
    # tests the oldest supported set (exactly z2jh 4.4.0's hub requirements) and the newest
    # (constraints/newest.txt).
    install_requires=[
        "jupyterhub>=5.5,<7",
        "jupyterhub-kubespawner>=7.0,<8",
        "kubernetes_asyncio>=24.2.3",
        "Jinja2>=3.1,<4",
        "PyYAML>=6.0,<7",
        "traitlets>=5.15,<6",
        # The catalog's one definition (tycho_spawner/schema.py); JupyterHub itself requires it.
        "pydantic>=2.13,<3",
        "tornado>=6.5,<7",
        # KubeSpawner's slugs, used directly by `tycho import-profiles`.
        "python-slugify>=8",
        # The Tycho API (tycho-api, a service in the hub) serves Swagger UI at
        # /services/tycho/docs from this package's files (no CDN).
        "swagger-ui-py>=25.7,<26",
    ],
    extras_require={
        # tycho-gate runs in its own image (gate/Dockerfile): it uses tornado 6.6's
        # cross-origin check. The spawner, in the hub, does not need it.
        "gate": ["tornado>=6.6,<7"],
        "test": [
            "pytest==9.0.3",
            "pytest-asyncio==1.5.0",
            "pytest-timeout==2.4.0",
            "kubernetes==36.0.3",
            "import-linter==2.16",
            "jupyterlab==4.6.6",
            "notebook==7.6.5",
            "websockets==17.4",
            "selenium==4.50.0",
            "helm-python-sdk==0.2.2",
            # zero-to-jupyterhub's hub configuration (loaded by the compatibility tests) uses curl.
            "pycurl>=7.45",
            # The Tycho API's tests: property-based requests from its OpenAPI document, and the
            # Swagger UI files it serves at /services/tycho/docs (pinned here; a range above).
            "schemathesis==4.32.5",
            "openapi-spec-validator==0.9.0",
            "swagger-ui-py==25.7.1",
        ],
        "testbed": ["kubernetes==36.0.3", "PyYAML>=6.0"],
        # bench/gate_bench.py compares tycho-gate with jupyter-server-proxy.
        "bench": ["jupyter-server-proxy==4.6.0"],
    },
    entry_points={
        "console_scripts": [
            "tycho = tycho_spawner.cli:main",
            "tycho-gate = tycho_spawner.gate.app:main",
            "tycho-api = tycho_spawner.api.app:main",
            "tycho-testbed = tycho_testbed.__main__:main",
        ],
        "pytest11": ["tycho_testbed = tycho_testbed.pytest_plugin"],
    },
)
