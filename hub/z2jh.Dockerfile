# A zero-to-jupyterhub 4.4.0 hub image with TychoSpawner added, for sites that keep z2jh's chart
# (README: "Switching a zero-to-jupyterhub hub"). Build from the repository root:
#   docker build -f hub/z2jh.Dockerfile -t registry.example.org/k8s-hub-tycho:4.4.0-0.1.0 .
#
# The package declares version ranges that z2jh 4.4.0's pinned hub environment satisfies, so
# pip adds tycho-spawner (and python-slugify's, already there) without changing any of z2jh's
# pins; `pip check` fails the build if anything were inconsistent. CI installs this package the
# same way into a venv of exactly z2jh 4.4.0's requirements and checks every pin.
FROM quay.io/jupyterhub/k8s-hub:4.4.0

USER root
COPY setup.py pyproject.toml README.md /tmp/tycho/
COPY tycho_spawner /tmp/tycho/tycho_spawner
COPY testbed/tycho_testbed /tmp/tycho/testbed/tycho_testbed
RUN pip install --no-cache-dir /tmp/tycho && pip check && rm -rf /tmp/tycho
USER 1000
