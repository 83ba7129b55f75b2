"""Object names and label values for any user and server name.

`tycho_spawner.cli.server_identity` gives the names KubeSpawner (default templates, 'safe' slug
scheme) gives a server; they must be valid Kubernetes names and label values whatever the user
is called, and two different (user, server) pairs must never share a name (they would share a
pod and a NetworkPolicy).
"""
from __future__ import annotations

import random
import re
import string
from types import SimpleNamespace

import pytest

from tycho_spawner.cli import server_identity
from tycho_spawner.render import SERVER_LABEL, selector_value

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # Service names
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

TRICKY = [
    "alice",
    "Alice",
    "ALICE",
    "aLiCe",
    "alice1",
    "1alice",
    "123",
    "0",
    "a",
    "x",
    "a.b",
    "a-b",
    "a_b",
    "a b",
    "a@b",
    "a+b",
    "a/b",
    "a--b",
    "a---b",
    "a----b",
    "-a",
    "a-",
    "--",
    "---",
    ".",
    "..",
    "_",
    "alice@example.org",
    "Alice@Example.org",
    "alice.smith@example.org",
    "alice_smith",
    "alice-smith",
    "alice smith",
    "alice---3bc51062",
    "alice--x",
    "jupyter-alice",
    "ñandú",
    "nandu",
    "Ünïcødé",
    "日本語",
    "日本人",
    "😀",
    "😁",
    "\u202eevil",
    "zero\u200bwidth",
    "e\u0301",
    "\u00e9",
    "tab\there",
    "new\nline",
    "quote\"d",
    "{{ 7*7 }}",
    "a" * 300,
    "a" * 299 + "b",
    "b" + "a" * 299,
    "A" * 300,
    "é" * 300,
    "a" * 63,
    "a" * 64,
    "a" * 48,
    "a" * 49,
    "a" * 47,
    "x" * 40 + "--" + "y" * 40,
]

SERVERS = ["", "r", "R", "my-r", "my_r", "my r", "my--r", "rstudio", "a" * 100, "日本語", "x---12345678"]


def generated_names(count: int) -> list[str]:
    """Deterministic tricky names: mixed case, punctuation runs, unicode, all lengths."""
    rng = random.Random(20260531)
    alphabet = string.ascii_letters + string.digits + "-_.@+ --" + "éüñ日😀"
    names = set(TRICKY)
    while len(names) < count:
        length = rng.choice([1, 2, 3, 5, 8, 13, 30, 46, 47, 48, 49, 62, 63, 64, 100, 300])
        names.add("".join(rng.choice(alphabet) for _ in range(length)))
        # near neighbours: same name in another case, or with punctuation swapped
        base = rng.choice(sorted(names))
        names.add(base.upper())
        names.add(base.replace("-", "_"))
    return sorted(names)[:count]


def check_identity(user: str, server: str):
    identity = server_identity(user, server, "jhub")
    assert DNS_1123_LABEL.match(identity.name), identity.name
    assert DNS_1035_LABEL.match(identity.name), identity.name
    assert len(identity.name) <= 63
    labels = dict(identity.labels)
    for key, value in labels.items():
        assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)
    assert labels["component"] == "singleuser-server"
    annotations = dict(identity.annotations)
    assert annotations["hub.jupyter.org/username"] == user
    assert annotations.get("hub.jupyter.org/servername", "") == server
    selector = selector_value(identity.name)
    assert LABEL_VALUE.match(selector) and 0 < len(selector) <= 63
    return identity


@pytest.mark.parametrize("user", TRICKY, ids=lambda v: repr(v)[:30])
def test_tricky_user_names_give_valid_names_and_labels(user):
    for server in ("", "my-r", user):
        check_identity(user, server)


def test_plain_names_stay_readable():
    assert server_identity("alice", "", "jhub").name == "jupyter-alice"
    assert server_identity("alice", "my-r", "jhub").name == "jupyter-alice--my-r"
    labels = dict(server_identity("alice", "my-r", "jhub").labels)
    assert labels["hub.jupyter.org/username"] == "alice"
    assert labels["hub.jupyter.org/servername"] == "my-r"
    assert server_identity("alice", "", "jhub").namespace == "jhub"


@pytest.mark.parametrize(
    "a, b",
    [
        (("alice", ""), ("Alice", "")),
        (("Alice", ""), ("ALICE", "")),
        (("a.b", ""), ("a-b", "")),
        (("a-b", ""), ("a_b", "")),
        (("a_b", ""), ("a b", "")),
        (("alice", "r"), ("alice", "R")),
        (("alice", "my-r"), ("alice", "my_r")),
        (("a", "b"), ("a--b", "")),
        (("a", "b--c"), ("a--b", "c")),
        (("alice", "x"), ("alice--x", "")),
        (("a" * 300, ""), ("a" * 299 + "b", "")),
        (("a" * 300, ""), ("b" + "a" * 299, "")),
        (("a" * 100, "b"), ("a" * 100, "c")),
        (("ñandú", ""), ("nandu", "")),
        (("😀", ""), ("😁", "")),
        (("e\u0301", ""), ("\u00e9", "")),
        (("alice", ""), ("alice", "alice")),
    ],
)
def test_names_differing_only_by_case_or_punctuation_do_not_collide(a, b):
    first, second = check_identity(*a), check_identity(*b)
    assert first.name != second.name
    assert selector_value(first.name) != selector_value(second.name)


def test_no_collisions_across_two_thousand_tricky_names():
    users = generated_names(2000)
    assert len(users) == 2000
    seen: dict[str, tuple[str, str]] = {}
    selectors: dict[str, str] = {}
    pairs = [(u, "") for u in users] + [(u, s) for u in users[::10] for s in SERVERS if s]
    for user, server in pairs:
        identity = check_identity(user, server)
        assert identity.name not in seen, f"{(user, server)} and {seen[identity.name]} share {identity.name}"
        seen[identity.name] = (user, server)
        selector = selector_value(identity.name)
        assert selector not in selectors, (identity.name, selectors[selector])
        selectors[selector] = identity.name
    assert len(seen) == len(pairs) >= 2000


def test_selector_label_of_rendered_objects_is_the_unique_value():
    from tycho_spawner.catalog_files import catalog_data
    from tycho_spawner.profiles import parse_catalog
    from tycho_spawner.render import render_all, template_environment

    system = parse_catalog(catalog_data(True, [], {})).select({"profile": "nginx"}).system()
    env = template_environment()
    values = set()
    for user in ("a" * 300, "A" * 300, "日本語"):
        pod, policy = render_all(system, server_identity(user, "Web Site", "jhub"), env)
        value = pod["metadata"]["labels"][SERVER_LABEL]
        assert LABEL_VALUE.match(value) and len(value) <= 63
        assert policy["spec"]["podSelector"]["matchLabels"] == {SERVER_LABEL: value}
        for obj in (pod, policy):
            for label in obj["metadata"]["labels"].values():
                assert LABEL_VALUE.match(label) and len(label) <= 63
        values.add(value)
    assert len(values) == 3


@pytest.mark.parametrize("name", ["", "x" * 63, "x" * 64, "x" * 300, "-x", "x-", "Jupyter-Alice", "a..b"])
def test_selector_value_is_always_a_valid_label_value(name):
    value = selector_value(name)
    assert LABEL_VALUE.match(value) and len(value) <= 63
    if len(name) > 63:
        assert value.startswith("h-")


def test_selector_value_hashes_are_distinct_for_long_names():
    values = {selector_value("x" * n) for n in range(64, 400)}
    assert len(values) == 400 - 64


# ------------------------------------------------------------- same names as KubeSpawner itself


def kubespawner_names(user: str, server: str):
    """KubeSpawner 7's own pod name and labels (via its internals, no cluster needed)."""
    from kubespawner import KubeSpawner

    fake = SimpleNamespace(
        name=server,
        user=SimpleNamespace(name=user, id=1),
        slug_scheme="safe",
        _namespace_default=lambda: "jhub",
        common_labels={
            "app": "jupyterhub",
            "heritage": "jupyterhub",
            "app.kubernetes.io/name": "jupyterhub",
            "app.kubernetes.io/managed-by": "kubespawner",
        },
        component_label="singleuser-server",
    )
    fake._build_common_labels = lambda extra: KubeSpawner._build_common_labels(fake, extra)
    return (
        KubeSpawner._expand_user_properties(fake, "jupyter-{user_server}"),
        KubeSpawner._build_pod_labels(fake, {}),
    )


@pytest.mark.parametrize(
    "user, server",
    [("alice", ""), ("Alice", ""), ("alice", "my-r"), ("a--b", "c"), ("é" * 300, "Ünïcode server"), ("a" * 47, "b")],
)
def test_tycho_render_shows_the_names_kubespawner_gives(user, server):
    name, labels = kubespawner_names(user, server)
    identity = server_identity(user, server, "jhub")
    assert identity.name == name
    assert dict(identity.labels) == labels
