"""tycho-gate: hub-authenticated, token-free access to web apps that know nothing of JupyterHub.

The gate runs as a pod's main container in front of an app (RStudio, nginx, any web server)
that listens only on the pod's loopback or a Unix socket. It is the only process that holds
the hub's OAuth client (the ``JUPYTERHUB_*`` environment): it sends anonymous browsers through
the hub's login, lets through only users the hub grants ``access:servers`` on this server,
strips the hub's credentials before forwarding, and reports real activity to the hub so the
idle culler works. See ``../shared/design/GATE.md`` for the guarantees and ``app.GateApp``
for the options.

Modules: ``upstream`` (where the app is), ``rewrite`` (pure header, path and cookie rules),
``client`` (a streaming, keep-alive HTTP/1.1 client for the app), ``activity`` (reports to
the hub), ``handlers`` (the tornado handlers) and ``app`` (the command line).
"""
