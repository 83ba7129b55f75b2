"""JupyterHub configuration for the gate tests: a real hub, its real proxy, local servers.

Each "server" is tycho-gate itself, started by SimpleLocalProcessSpawner with the same
JUPYTERHUB_* environment a pod's gate container gets; the upstream it forwards to is chosen
per server name from routes.json, which the tests write before spawning.
"""
import json
import os
import shutil

here = os.path.dirname(os.path.abspath(__file__))
settings = json.load(open(os.path.join(here, "settings.json")))
c = get_config()  # noqa: F821

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [shutil.which("configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{here}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = os.path.join(here, "cookie_secret")
c.JupyterHub.pid_file = os.path.join(here, "jupyterhub.pid")
c.JupyterHub.allow_named_servers = True
# Only the gate's reports may move last_activity in these tests, not the proxy's poll.
c.JupyterHub.last_activity_interval = 3600

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = settings["password"]
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {"admin"}

c.JupyterHub.services = [{"name": "gate-tests", "api_token": settings["service_token"]}]
c.JupyterHub.load_roles = [
    {
        "name": "gate-tests",
        "scopes": ["admin:users", "admin:servers", "admin:server_state", "tokens", "read:users"],
        "services": ["gate-tests"],
    },
    # carol is no admin, but the hub's RBAC lets her use alice's default server.
    {"name": "alice-default-server", "scopes": ["access:servers!server=alice/"], "users": ["carol"]},
]

c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.Spawner.cmd = [settings["gate"]]
c.Spawner.environment = {"JUPYTERHUB_ACTIVITY_INTERVAL": str(settings["activity_interval"])}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60


def pre_spawn_hook(spawner):
    routes = json.load(open(os.path.join(here, "routes.json")))
    spawner.args = list(routes.get(spawner.name, routes[""]))


c.Spawner.pre_spawn_hook = pre_spawn_hook
