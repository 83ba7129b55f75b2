"""The model: parsing a System description, with errors that name the exact path of a bad value.

What an admin notices: a typo in a catalog stops the hub with a message that points at the key,
and a System, once parsed, cannot be changed behind the renderer's back (frozen dataclasses).
"""
from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal

import pytest

from tycho_spawner.errors import SpecError
from tycho_spawner.model import (
    Container,
    Limits,
    Probe,
    Security,
    Serve,
    System,
    Volume,
    parse_quantity,
)

PATH = "catalog.app.system"


def spec(**overrides) -> dict:
    """A small valid System description: one app container plus a sidecar."""
    data = {
        "serve": {"container": "app", "port": 8888},
        "containers": {
            "app": {
                "image": "example.org/app:1.0",
                "command": ["run-app"],
                "args": ["--port", "8888"],
                "env": {"MODE": "demo", "WORKERS": 2},
                "ports": {"http": 8888},
                "limits": {"cpu": "2", "memory": "4Gi"},
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "readiness": {"http": "/healthz"},
                "working_dir": "/home/app",
                "mounts": {"scratch": "/scratch"},
            },
            "side": {"image": "example.org/side:2", "ports": {"metrics": 9100}},
        },
        "volumes": {"scratch": {"size_limit": "1Gi"}},
    }
    data.update(overrides)
    return data


def parse(data: dict) -> System:
    return System.from_dict("app", data, PATH)


def error_of(data: dict) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(data)
    return info.value


# --------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    "value, expected",
    [
        (1, Decimal(1)),
        (0.5, Decimal("0.5")),
        ("1", Decimal(1)),
        ("0", Decimal(0)),
        (".5", Decimal("0.5")),
        ("500m", Decimal("0.5")),
        ("100Mi", Decimal(100 * 2**20)),
        ("2Gi", Decimal(2 * 2**30)),
        ("1Ki", Decimal(1024)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1.5G", Decimal("1.5e9")),
        ("2k", Decimal(2000)),
        ("250M", Decimal("2.5e8")),
    ],
)
def test_valid_quantities_have_their_numeric_value(value, expected):
    assert parse_quantity(value, "x") == expected


@pytest.mark.parametrize(
    "value, shown",
    [
        ("2GG", "'2GG'"),
        ("-1", "'-1'"),
        ("+1", "'+1'"),
        ("abc", "'abc'"),
        ("", "''"),
        ("Gi", "'Gi'"),
        ("1gi", "'1gi'"),
        ("1 Gi", "'1 Gi'"),
        (" 1", "' 1'"),
        ("1.2.3", "'1.2.3'"),
        (-1, "'-1'"),
        (float("inf"), "'inf'"),
        (True, "True"),
        (False, "False"),
        (None, "None"),
        ([1], "[1]"),
        ({"cpu": 1}, "{'cpu': 1}"),
    ],
)
def test_invalid_quantities_are_refused_naming_the_path(value, shown):
    with pytest.raises(SpecError) as info:
        parse_quantity(value, "catalog.x.limits.memory")
    assert str(info.value) == f"catalog.x.limits.memory: {shown} is not a Kubernetes quantity"
    assert info.value.path == "catalog.x.limits.memory"


def test_bad_memory_limit_names_the_exact_path():
    data = spec()
    data["containers"]["app"]["limits"]["memory"] = "2GG"
    err = error_of(data)
    assert str(err) == "catalog.app.system.containers.app.limits.memory: '2GG' is not a Kubernetes quantity"
    assert err.path == "catalog.app.system.containers.app.limits.memory"


@pytest.mark.parametrize("section", ["limits", "requests"])
@pytest.mark.parametrize("key", ["cpu", "memory", "ephemeral_storage"])
def test_every_quantity_field_is_checked(section, key):
    data = spec()
    data["containers"]["side"][section] = {key: "lots"}
    err = error_of(data)
    assert err.path == f"{PATH}.containers.side.{section}.{key}"
    assert "'lots' is not a Kubernetes quantity" in str(err)


def test_volume_size_limit_is_a_quantity():
    data = spec(volumes={"scratch": {"size_limit": "1 GB"}})
    assert error_of(data).path == f"{PATH}.volumes.scratch.size_limit"


def test_numbers_from_yaml_are_kept_as_kubernetes_writes_them():
    limits = Limits.from_dict({"cpu": 0.5, "memory": 2, "ephemeral_storage": "10Gi", "gpus": 1}, "l")
    assert limits == Limits(cpu="0.5", memory="2", gpus=1, ephemeral_storage="10Gi")
    assert limits.as_resources() == {
        "cpu": "0.5",
        "memory": "2",
        "ephemeral-storage": "10Gi",
        "nvidia.com/gpu": "1",
    }
    assert Limits().as_resources() == {}


@pytest.mark.parametrize("gpus", [-1, 65, "1", True, 1.0])
def test_gpus_are_a_small_whole_number(gpus):
    with pytest.raises(SpecError) as info:
        Limits.from_dict({"gpus": gpus}, "p.limits")
    assert info.value.path == "p.limits.gpus"


# --------------------------------------------------------------------------- unknown / missing keys


@pytest.mark.parametrize(
    "mutate, path, allowed",
    [
        (lambda d: d.update(containerz={}), PATH + ".containerz", "containers, serve, auth, volumes, security, gate, home, network, scheduling"),
        (
            lambda d: d["containers"]["app"].update(imagePullPolicy="Always"),
            PATH + ".containers.app.imagePullPolicy",
            "image, command, args, env, env_from, ports, limits, requests, readiness, working_dir, mounts",
        ),
        (
            lambda d: d["containers"]["app"]["limits"].update(memroy="1Gi"),
            PATH + ".containers.app.limits.memroy",
            "cpu, memory, gpus, ephemeral_storage",
        ),
        (
            lambda d: d["containers"]["app"]["readiness"].update(path="/x"),
            PATH + ".containers.app.readiness.path",
            "http, tcp, port, initial_delay_seconds, period_seconds, failure_threshold",
        ),
        (
            lambda d: d.update(security={"runAsUser": 1000}),
            PATH + ".security.runAsUser",
            "run_as_user, run_as_group, fs_group",
        ),
        (
            lambda d: d["volumes"]["scratch"].update(medium="Memory"),
            PATH + ".volumes.scratch.medium",
            "size_limit, memory, claim, config_map, secret, sub_path, read_only, optional",
        ),
        (lambda d: d["serve"].update(path="/"), PATH + ".serve.path", "container, port"),
    ],
)
def test_unknown_keys_are_named_with_the_allowed_list(mutate, path, allowed):
    data = spec()
    mutate(data)
    err = error_of(data)
    assert str(err) == f"{path}: unknown key (expected one of: {allowed})"


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda d: d.pop("containers"), PATH + ".containers"),
        (lambda d: d.pop("serve"), PATH + ".serve"),
        (lambda d: d["serve"].pop("port"), PATH + ".serve.port"),
        (lambda d: d["serve"].pop("container"), PATH + ".serve.container"),
        (lambda d: d["containers"]["side"].pop("image"), PATH + ".containers.side.image"),
        (lambda d: d["containers"]["side"].update(image=None), PATH + ".containers.side.image"),
    ],
)
def test_missing_required_keys_are_named(mutate, path):
    data = spec()
    mutate(data)
    err = error_of(data)
    assert str(err) == f"{path}: is required"


def test_a_system_needs_a_container():
    assert error_of(spec(containers={})).path == PATH + ".containers"


@pytest.mark.parametrize("containers", [["app"], "app", None])
def test_containers_are_a_map_keyed_by_name(containers):
    data = spec(containers=containers)
    assert error_of(data).path == PATH + ".containers"


def test_not_a_mapping_at_all():
    with pytest.raises(SpecError, match=r"^catalog\.app\.system: expected a mapping, got list$"):
        parse(["containers"])


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize("name", ["App", "my_app", "-app", "app-", "a" * 64, "", "ap p"])
def test_container_names_are_dns_labels(name):
    data = spec()
    data["containers"][name] = data["containers"].pop("side")
    err = error_of(data)
    assert err.path == f"{PATH}.containers.{name}"


@pytest.mark.parametrize("image", ["", "a b", "app\n:1", 5, None])
def test_image_must_be_a_reference(image):
    data = spec()
    data["containers"]["side"]["image"] = image
    err = error_of(data)
    assert err.path == f"{PATH}.containers.side.image"


@pytest.mark.parametrize(
    "env, path",
    [
        ({"1BAD": "x"}, "env.1BAD"),
        ({"HAS SPACE": "x"}, "env.HAS SPACE"),
        ({"FLAG": True}, "env.FLAG"),
        ({"LIST": ["a"]}, "env.LIST"),
        ({"NONE": None}, "env.NONE"),
        (["A=1"], "env"),
    ],
)
def test_env_names_and_values(env, path):
    data = spec()
    data["containers"]["side"]["env"] = env
    assert error_of(data).path == f"{PATH}.containers.side.{path}"


def test_env_values_become_strings_in_order():
    system = parse(spec())
    assert system.container("app").env == (("MODE", "demo"), ("WORKERS", "2"))


@pytest.mark.parametrize(
    "ports, path",
    [
        ({"metrics": 0}, "ports.metrics"),
        ({"metrics": 65536}, "ports.metrics"),
        ({"metrics": "9100"}, "ports.metrics"),
        ({"metrics": True}, "ports.metrics"),
        ({"Metrics": 9100}, "ports.Metrics"),
        ({"a-very-long-port-name": 9100}, "ports.a-very-long-port-name"),
        ([9100], "ports"),
    ],
)
def test_ports(ports, path):
    data = spec()
    data["containers"]["side"]["ports"] = ports
    assert error_of(data).path == f"{PATH}.containers.side.{path}"


def test_requests_above_limits_are_refused():
    data = spec()
    data["containers"]["app"]["requests"]["cpu"] = "3"
    err = error_of(data)
    assert str(err) == f"{PATH}.containers.app.requests.cpu: 3 is more than the limit 2"


def test_requests_compare_by_value_not_by_spelling():
    data = spec()
    # 1Gi (1073741824) is more than 1G (1000000000), though "1G" < "1Gi" as text.
    data["containers"]["app"]["limits"]["memory"] = "1G"
    data["containers"]["app"]["requests"]["memory"] = "1Gi"
    assert error_of(data).path == f"{PATH}.containers.app.requests.memory"
    # and 2000m is exactly 2: allowed.
    data = spec()
    data["containers"]["app"]["requests"]["cpu"] = "2000m"
    assert parse(data).container("app").requests.cpu == "2000m"


def test_a_request_without_a_limit_is_fine():
    data = spec()
    data["containers"]["side"]["requests"] = {"memory": "64Gi"}
    assert parse(data).container("side").requests.memory == "64Gi"


@pytest.mark.parametrize("working_dir", ["home/app", "", 5])
def test_working_dir_must_be_absolute(working_dir):
    data = spec()
    data["containers"]["app"]["working_dir"] = working_dir
    assert error_of(data).path == f"{PATH}.containers.app.working_dir"


@pytest.mark.parametrize(
    "readiness, path",
    [
        ({}, "readiness"),
        ({"http": "/", "tcp": True}, "readiness"),
        ({"http": "healthz"}, "readiness.http"),
        ({"tcp": False}, "readiness.tcp"),
        ({"tcp": True, "port": 0}, "readiness.port"),
        ({"tcp": True, "period_seconds": 0}, "readiness.period_seconds"),
        ({"tcp": True, "failure_threshold": "3"}, "readiness.failure_threshold"),
    ],
)
def test_readiness_probe(readiness, path):
    data = spec()
    data["containers"]["app"]["readiness"] = readiness
    assert error_of(data).path == f"{PATH}.containers.app.{path}"


def test_tcp_probe_on_a_container_with_several_ports_needs_a_port():
    data = spec()
    data["containers"]["app"]["ports"] = {"http": 8888, "debug": 5678}
    data["containers"]["app"]["readiness"] = {"tcp": True}
    err = error_of(data)
    assert str(err).startswith(f"{PATH}.containers.app.readiness.port: is required")
    data["containers"]["app"]["readiness"] = {"tcp": True, "port": 5678}
    assert parse(data).container("app").readiness.port == 5678


def test_probe_defaults_to_the_single_port():
    probe = parse(spec()).container("app").readiness
    assert probe == Probe(port=8888, http_path="/healthz")


@pytest.mark.parametrize("command", ["run-app", [1], {"a": "b"}])
def test_command_is_a_list_of_strings(command):
    data = spec()
    data["containers"]["app"]["command"] = command
    assert error_of(data).path.startswith(f"{PATH}.containers.app.command")


# --------------------------------------------------------------------------- system-level rules


def test_run_as_root_is_refused():
    err = error_of(spec(security={"run_as_user": 0}))
    assert str(err) == f"{PATH}.security.run_as_user: apps run as non-root: 0 is not allowed"


@pytest.mark.parametrize("user", [-1, True, "1000", 2**31])
def test_run_as_user_must_be_a_uid(user):
    assert error_of(spec(security={"run_as_user": user})).path == f"{PATH}.security.run_as_user"


def test_security_defaults_are_non_root():
    security = parse(spec()).security
    assert security == Security(run_as_user=1000, run_as_group=100, fs_group=100)
    assert parse(spec(security={"fs_group": None})).security.fs_group is None


def test_serve_container_must_exist():
    err = error_of(spec(serve={"container": "web", "port": 8888}))
    assert str(err) == f"{PATH}.serve.container: 'web' is not one of the containers (app, side)"


def test_serve_port_must_be_a_port_of_the_served_container():
    err = error_of(spec(serve={"container": "app", "port": 8889}))
    assert str(err) == f"{PATH}.serve.port: 8889 is not a port of container 'app'"
    # a port of *another* container is not the served container's port either
    err = error_of(spec(serve={"container": "app", "port": 9100}))
    assert err.path == f"{PATH}.serve.port"


def test_duplicate_ports_across_containers_are_refused():
    data = spec()
    data["containers"]["side"]["ports"] = {"metrics": 8888}
    err = error_of(data)
    assert err.path == f"{PATH}.containers.side.ports.metrics"
    assert "port 8888 is already used by container 'app'" in err.message


def test_duplicate_ports_within_a_container_are_refused():
    data = spec()
    data["containers"]["side"]["ports"] = {"metrics": 9100, "other": 9100}
    assert error_of(data).path == f"{PATH}.containers.side.ports.other"


def test_mounts_must_reference_volumes():
    data = spec()
    data["containers"]["side"]["mounts"] = {"cache": "/cache"}
    err = error_of(data)
    assert str(err) == f"{PATH}.containers.side.mounts.cache: no such volume in this system"


def test_mount_paths_are_absolute():
    data = spec()
    data["containers"]["app"]["mounts"] = {"scratch": "scratch"}
    assert error_of(data).path == f"{PATH}.containers.app.mounts.scratch"


@pytest.mark.parametrize("auth", ["none", "", None, True])
def test_auth_is_jupyter_or_gate(auth):
    assert error_of(spec(auth=auth)).path == f"{PATH}.auth"


def test_a_gated_app_cannot_have_a_readiness_probe_the_kubelet_could_never_pass():
    data = spec(auth="gate")
    data["containers"]["app"]["readiness"] = {"tcp": True}
    err = error_of(data)
    assert err.path == f"{PATH}.containers.app.readiness"
    assert "loopback" in str(err)


@pytest.mark.parametrize(
    "gate, where",
    [
        ({"keep_prefix": "yes"}, "gate.keep_prefix"),
        ({"prefix_header": "X Bad: header"}, "gate.prefix_header"),
        ({"prefix_header": 3}, "gate.prefix_header"),
        ({"upstream": "x"}, "gate.upstream"),
    ],
)
def test_gate_options_are_checked(gate, where):
    data = spec(auth="gate", gate=gate)
    del data["containers"]["app"]["readiness"]
    assert error_of(data).path == f"{PATH}.{where}"


def test_gate_options_need_a_gated_app():
    assert error_of(spec(gate={"keep_prefix": True})).path == f"{PATH}.gate"


def test_volume_memory_flag_is_boolean():
    assert error_of(spec(volumes={"scratch": {"memory": "yes"}})).path == f"{PATH}.volumes.scratch.memory"


# --------------------------------------------------------------------------- the parsed value


def test_a_full_system_parses_to_what_was_written():
    data = spec()
    before = copy.deepcopy(data)
    system = parse(data)
    assert data == before, "parsing must not modify its input"
    assert system.name == "app"
    assert [c.name for c in system.containers] == ["app", "side"]
    assert system.serve == Serve(container="app", port=8888)
    assert system.auth == "jupyter"
    assert system.volumes == (Volume(name="scratch", size_limit="1Gi"),)
    app = system.served
    assert app == Container(
        name="app",
        image="example.org/app:1.0",
        command=("run-app",),
        args=("--port", "8888"),
        env=(("MODE", "demo"), ("WORKERS", "2")),
        ports=(("http", 8888),),
        limits=Limits(cpu="2", memory="4Gi"),
        requests=Limits(cpu="500m", memory="1Gi"),
        readiness=Probe(port=8888, http_path="/healthz"),
        working_dir="/home/app",
        mounts=(("scratch", "/scratch"),),
    )
    with pytest.raises(KeyError):
        system.container("nope")


def test_equal_descriptions_give_equal_hashable_systems():
    a, b = parse(spec()), parse(spec())
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "get, attribute, value",
    [
        (lambda s: s, "name", "other"),
        (lambda s: s, "containers", ()),
        (lambda s: s, "auth", "gate"),
        (lambda s: s.serve, "port", 1),
        (lambda s: s.security, "run_as_user", 0),
        (lambda s: s.served, "image", "evil:latest"),
        (lambda s: s.served, "env", ()),
        (lambda s: s.served.limits, "memory", "1Ti"),
        (lambda s: s.served.readiness, "port", 1),
        (lambda s: s.volumes[0], "memory", True),
    ],
)
def test_parsed_values_are_frozen(get, attribute, value):
    obj = get(parse(spec()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attribute, value)


def test_collections_inside_are_immutable_too():
    system = parse(spec())
    assert isinstance(system.containers, tuple)
    assert isinstance(system.served.env, tuple) and isinstance(system.served.ports, tuple)
    with pytest.raises(AttributeError):
        system.containers.append(system.served)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the user's home


def test_home_says_where_the_app_keeps_the_users_files():
    home = parse(spec(home={"container": "side", "path": "/data/user/", "sub_path": "work/web", "read_only": True})).home
    assert (home.container, home.path, home.sub_path, home.read_only, home.enabled) == (
        "side", "/data/user", "work/web", True, True)
    assert parse(spec(home={"path": "/srv/home"})).home.container == "app", "the serving container by default"
    assert parse(spec()).home.path is None and parse(spec()).home.enabled, "unset: the site's own path"
    assert parse(spec(home=False)).home.enabled is False


@pytest.mark.parametrize(
    "home, path, message",
    [
        ({"path": "home/app"}, PATH + ".home.path", "must be an absolute path"),
        ({"path": "/"}, PATH + ".home.path", "not a usable mount point"),
        ({"path": "/srv/../etc"}, PATH + ".home.path", "not a usable mount point"),
        ({"container": "app"}, PATH + ".home.path", "is required"),
        ({"path": "/scratch"}, PATH + ".home.path", "already the mount point of volume 'scratch' in container 'app'"),
        ({"path": "/h", "container": "nope"}, PATH + ".home.container", "'nope' is not one of the containers"),
        ({"path": "/h", "sub_path": "../other-user"}, PATH + ".home.sub_path", "relative path inside the home"),
        ({"path": "/h", "sub_path": "/abs"}, PATH + ".home.sub_path", "relative path inside the home"),
        ({"path": "/h", "read_only": "yes"}, PATH + ".home.read_only", "true or false"),
        ({"path": "/h", "size": "1Gi"}, PATH + ".home.size", "unknown key"),
        (True, PATH + ".home", "or false for none"),
    ],
)
def test_a_bad_home_is_refused_naming_the_key(home, path, message):
    err = error_of(spec(home=home))
    assert err.path == path
    assert message in err.message


def test_a_bad_home_in_a_catalog_stops_the_hub_naming_the_key():
    from tycho_spawner.errors import CatalogError
    from tycho_spawner.profiles import parse_catalog

    entry = {"system": spec(home={"path": "relative/home"})}
    with pytest.raises(CatalogError) as info:
        parse_catalog({"app": entry})
    assert str(info.value) == "catalog.app.system.home.path: 'relative/home' must be an absolute path"
