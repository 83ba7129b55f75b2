"""The Tycho API: a JupyterHub service (``tycho-api``) under ``/services/tycho/`` that says what
a user may launch, launches, updates and stops their apps through the hub's REST API, and shows
what Kubernetes says about them (containers, restarts, node, resources, events, logs).

Layout (imports point down):

- :mod:`.views` and :mod:`.openapi`: pure, the JSON the API answers and its OpenAPI document;
- :mod:`.hub` and :mod:`.cluster`: the edges, the hub's REST API (with the caller's own token)
  and the Kubernetes API (the hub's credentials, read only);
- :mod:`.app`: the tornado application and ``main`` (the ``tycho-api`` console script);
- :mod:`.hubconfig`: the ``c.JupyterHub.services`` entry a hub configuration adds;
- :mod:`.client`: the ``tycho login/launch/apps/logs/stop`` client.
"""
