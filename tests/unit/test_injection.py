"""No user value can add YAML keys, end a string, start a document or run template code.

User names, server names and the hub's environment (which carries both, plus tokens and URLs)
reach the manifests. Every hostile value below must arrive byte-identical where it is used (env
values through the templates; annotation values through `tycho render`'s YAML), and the rendered
objects must have exactly the shape they have for a plain name: same object count, same keys.
Catalog values are admin-written but still never template source: `{{ }}` in them is literal.
"""
from __future__ import annotations

from functools import lru_cache

import pytest
import yaml

from tycho_spawner.catalog_files import catalog_data
from tycho_spawner.cli import server_identity
from tycho_spawner.errors import RenderError
from tycho_spawner.profiles import Catalog, parse_catalog
from tycho_spawner.render import Server, render_all, template_environment

HOSTILE = [
    '"',
    "'",
    '"quoted"',
    "\\",
    '\\"',
    "\n",
    "a\nb: c",
    "a\n  injected: true",
    "alice\nkind: Secret",
    "x: y",
    ": ",
    "- item",
    "[1, 2]",
    "{a: 1}",
    '{"a": 1}',
    "{{ 7*7 }}",
    "{{7*7}}",
    "{{ server.name }}",
    "{{ ''.__class__.__mro__ }}",
    "{% raw %}",
    "{% endraw %}",
    "{% for x in range(3) %}x{% endfor %}",
    "{# comment",
    "#}",
    "${HOME}",
    "$(id)",
    "`id`",
    "---",
    "...",
    "a\n---\nkind: Secret\n",
    "%YAML 1.1",
    "&anchor",
    "*anchor",
    "&a x\nb: *a",
    "<<: *a",
    "!!python/object/apply:os.system ['id']",
    "!!binary aGk=",
    "!secret",
    "# comment",
    "a # b",
    "|",
    ">-\n  folded",
    "?",
    "@",
    "yes",
    "no",
    "on",
    "null",
    "~",
    "true",
    "0x1F",
    "0o17",
    "010",
    "1e3",
    ".inf",
    ".nan",
    "2024-01-01",
    "12:30:00",
    "\t",
    "\r\n",
    "trailing space ",
    " leading space",
    "\x00nul",
    "\x1bescape",
    "\x08backspace",
    "ñandú",
    "日本語のユーザー",
    "Ünïcødé",
    "emoji 😀🚀",
    "\u202eright-to-left",
    "zero\u200bwidth",
    "\ufeffbom",
    "combining e\u0301",
    "\U0001f600" * 3,
    "a" * 1000,
    "{{" * 500,
    '"\n' * 500,
    "ß" * 300,
]

# Values that are legal in a user name but that the JSON-literal-in-YAML quoting does not carry
# intact: see the test at the end.
YAML_LINE_BREAKS = ["a\x85b", "a \u2028 b", "a\u2029  b", "del\x7f", "c1\x9bcontrol"]


@lru_cache(maxsize=1)
def builtin() -> Catalog:
    return parse_catalog(catalog_data(True, [], {}))


def hub_env(user: str, server_name: str) -> tuple:
    return (
        ("JUPYTERHUB_USER", user),
        ("JUPYTERHUB_SERVER_NAME", server_name),
        ("JUPYTERHUB_API_TOKEN", user + server_name),
        ("JUPYTERHUB_SERVICE_PREFIX", f"/user/{user}/{server_name}"),
    )


def make_server(user: str, server_name: str) -> Server:
    identity = server_identity(user, server_name, "jhub")
    return Server(
        name=identity.name,
        namespace=identity.namespace,
        labels=identity.labels,
        annotations=identity.annotations,
        hub_env=hub_env(user, server_name),
        app_env=(("SITE_USER", user),),
    )


def shape(value):
    """The structure of a manifest without its string values: keys, list lengths, types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, str):
        yield value


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


@lru_cache(maxsize=1)
def packaged_templates():
    return template_environment()


def render(profile: str, user: str, server_name: str) -> list[dict]:
    system = builtin().select({"profile": profile}).system()
    return render_all(system, make_server(user, server_name), packaged_templates())


@lru_cache(maxsize=None)
def baseline_shape(profile: str, named: bool):
    return shape(render(profile, "alice", "srv" if named else ""))


def auth_container(pod: dict, profile: str) -> dict:
    name = "gate" if builtin().select({"profile": profile}).system().auth == "gate" else "notebook"
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == name]
    return container


def served_container(pod: dict, profile: str) -> dict:
    name = builtin().select({"profile": profile}).system().serve.container
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == name]
    return container


def check_values_arrive(objects: list[dict], profile: str, user: str, server_name: str) -> None:
    pod = objects[0]
    env = env_of(auth_container(pod, profile))
    assert env["JUPYTERHUB_USER"] == user
    assert env["JUPYTERHUB_SERVER_NAME"] == server_name
    assert env["JUPYTERHUB_API_TOKEN"] == user + server_name
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == f"/user/{user}/{server_name}"
    assert env_of(served_container(pod, profile))["SITE_USER"] == user
    annotations = pod["metadata"]["annotations"]
    assert annotations["hub.jupyter.org/username"] == user
    if server_name:
        assert annotations["hub.jupyter.org/servername"] == server_name
    else:
        assert "hub.jupyter.org/servername" not in annotations


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v)[:40])
def test_hostile_names_change_nothing_but_the_values(value):
    # a Jupyter app on the default server, and a gated app on a named server of the same name
    for profile, user, server_name in (("base", value, ""), ("rstudio", value, value)):
        objects = render(profile, user, server_name)
        assert len(objects) == 2
        assert shape(objects) == baseline_shape(profile, bool(server_name)), (user, server_name)
        check_values_arrive(objects, profile, user, server_name)
        # template code in a value is never evaluated
        if "7*7" in value:
            assert "49" not in list(strings(objects))
        if "{{ server.name }}" in value:
            assert objects[0]["metadata"]["name"] not in list(strings(objects[0]["spec"]))


@lru_cache(maxsize=1)
def cli_baseline_shape():
    import contextlib
    import io

    from tycho_spawner import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["render", "nginx", "--user", "alice", "--server", "srv"]) == 0
    return shape(list(yaml.safe_load_all(out.getvalue())))


CLI_SAMPLE = [
    "alice\nkind: Secret",
    "{{ 7*7 }}",
    "{% raw %}",
    "---",
    "a\n---\nkind: Secret\n",
    "&a x\nb: *a",
    '"\n' * 500,
    "日本語のユーザー",
    "\x00nul",
    "yes",
] + YAML_LINE_BREAKS


@pytest.mark.parametrize("value", CLI_SAMPLE, ids=lambda v: repr(v)[:40])
def test_tycho_render_output_round_trips_hostile_names(value, capsys):
    """What `tycho render --user VALUE --server VALUE` prints reads back as the same names."""
    from tycho_spawner import cli

    capsys.readouterr()
    assert cli.main(["render", "nginx", f"--user={value}", f"--server={value}"]) == 0
    out = capsys.readouterr().out
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Pod", "NetworkPolicy"]
    annotations = docs[0]["metadata"]["annotations"]
    assert annotations == {"hub.jupyter.org/username": value, "hub.jupyter.org/servername": value}
    assert shape(docs) == cli_baseline_shape()
    assert "49" not in list(strings(docs))
    assert out.startswith("---\n") and out.count("\n---\n") == 1


def test_values_cannot_add_keys_anywhere():
    """A value that *would* add a key if pasted unquoted must show up only as a value."""
    user = 'alice"\nmetadata: {name: evil}\nspec:\n  hostNetwork: true\n#'
    objects = render("base", user, "")
    pod = objects[0]
    assert "hostNetwork" not in pod["spec"]
    assert pod["metadata"]["name"] != "evil"
    assert sum(1 for s in strings(objects) if s == user) >= 3  # env x2 + annotation


def catalog_with(value: str) -> Catalog:
    return parse_catalog(
        {
            "app": {
                "display_name": value,
                "description": value,
                "system": {
                    "serve": {"container": "app", "port": 8080},
                    "containers": {
                        "app": {
                            "image": "example.org/app:{{7*7}}",
                            "command": [value],
                            "args": [value, "{% raw %}", "{{ server.name }}"],
                            "env": {"VALUE": value, "OTHER": "{{ server.name }}"},
                            "ports": {"http": 8080},
                            "working_dir": "/srv/{{ 7*7 }}",
                            "readiness": {"http": "/{{ 7*7 }}"},
                        }
                    },
                },
            }
        }
    )


@pytest.mark.parametrize("value", ["{{ 7*7 }}", "{% if true %}yes{% endif %}", "{# x #}", "a\nb: c", "{{ server.name }}"])
def test_catalog_values_are_emitted_literally(value):
    system = catalog_with(value).select({}).system()
    server = Server(name="jupyter-alice", namespace="jhub")
    objects = render_all(system, server, template_environment())
    (container,) = objects[0]["spec"]["containers"]
    assert container["image"] == "example.org/app:{{7*7}}"
    assert container["command"] == [value]
    assert container["args"] == [value, "{% raw %}", "{{ server.name }}"]
    assert env_of(container) == {"VALUE": value, "OTHER": "{{ server.name }}"}
    assert container["workingDir"] == "/srv/{{ 7*7 }}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/{{ 7*7 }}"
    assert "49" not in list(strings(objects))
    assert "jupyter-alice" not in container["args"]


def test_namespace_and_gate_image_are_quoted_too():
    system = builtin().select({"profile": "nginx"}).system()
    from tycho_spawner.render import GateSettings

    server = Server(
        name="jupyter-alice",
        namespace="ns\nkind: Secret",
        gate=GateSettings(image='gate:1"\n    privileged: true'),
    )
    objects = render_all(system, server, template_environment())
    assert [o["kind"] for o in objects] == ["Pod", "NetworkPolicy"]
    assert objects[1]["metadata"]["namespace"] == "ns\nkind: Secret"
    gate = objects[0]["spec"]["containers"][0]
    assert gate["image"] == 'gate:1"\n    privileged: true'
    assert "privileged" not in gate


@pytest.mark.parametrize("value", YAML_LINE_BREAKS, ids=lambda v: repr(v))
def test_yaml_line_break_characters_in_a_user_name_arrive_intact(value):
    try:
        objects = render("base", value, "")
    except RenderError as err:  # pragma: no cover - the current failure mode for DEL / C1
        pytest.fail(f"render failed: {err}")
    env = env_of(objects[0]["spec"]["containers"][0])
    assert env["JUPYTERHUB_USER"] == value
