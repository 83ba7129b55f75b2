"""Which servers' objects `tycho gc` deletes: the rules of tycho_spawner.orphans, on plain values.

The same function decides against the real hub and API server in tests/faults/test_orphans.py;
here each rule is checked alone, including the cases a test bed run cannot stage on demand
(a policy left without its pod, an object that names no user, escaped label values).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tycho_spawner import cli
from tycho_spawner.gc import label_value
from tycho_spawner.orphans import (
    NETWORK_POLICY, POD, HubServer, ServerObject, find_orphans, fixed_label_keys, mixed_hubs,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(minutes=10)


def pod(name, user, server="", created=OLD, labels=(), annotate=True):
    annotations = {}
    if annotate:
        annotations["hub.jupyter.org/username"] = user
        if server:
            annotations["hub.jupyter.org/servername"] = server
    base = {"hub.jupyter.org/username": label_value(user), "hub.jupyter.org/servername": label_value(server),
            "tycho-spawner/server": name}
    return ServerObject(POD, name, f"uid-{name}", created, tuple(sorted({**base, **dict(labels)}.items())),
                        tuple(sorted(annotations.items())))


def policy(name, user, server="", created=OLD, labels=()):
    base = {"hub.jupyter.org/username": label_value(user), "hub.jupyter.org/servername": label_value(server),
            "tycho-spawner/server": name}
    return ServerObject(NETWORK_POLICY, name, f"uid-np-{name}", created, tuple(sorted({**base, **dict(labels)}.items())))


def judge(objects, active, min_age=60):
    return find_orphans(objects, active, now=NOW, min_age=min_age, label_value=label_value)


def names(verdicts):
    return [(o.kind, o.name) for o in verdicts.orphans]


def test_servers_the_hub_has_are_kept_and_the_others_are_orphans_pods_first():
    objects = [
        policy("jupyter-bob", "bob"), pod("jupyter-bob", "bob"),
        pod("jupyter-alice", "alice"), policy("jupyter-alice", "alice"),
        pod("jupyter-alice--web", "alice", "web"), policy("jupyter-alice--web", "alice", "web"),
    ]
    verdicts = judge(objects, {HubServer("alice", "")})
    assert names(verdicts) == [
        ("pod", "jupyter-bob"), ("pod", "jupyter-alice--web"),
        ("networkpolicy", "jupyter-bob"), ("networkpolicy", "jupyter-alice--web"),
    ]
    assert verdicts.spared == ()
    bob = verdicts.orphans[0]
    assert (bob.user, bob.server, bob.uid) == ("bob", "", "uid-jupyter-bob")
    assert bob.describe() == "pod jupyter-bob (user 'bob', server '': not running or pending in the hub)"
    web = verdicts.orphans[1]
    assert web.describe() == "pod jupyter-alice--web (user 'alice', server 'web': not running or pending in the hub)"


def test_a_pod_names_its_server_exactly_through_its_annotations():
    # 'bob@x.org' is escaped in labels; the annotation carries the name as the hub knows it.
    objects = [pod("jupyter-bob-x-org", "bob@x.org", "Lab 1"), policy("jupyter-bob-x-org", "bob@x.org", "Lab 1")]
    assert judge(objects, {HubServer("bob@x.org", "Lab 1")}).orphans == ()
    assert names(judge(objects, {HubServer("bob@x.org", "")})) == [
        ("pod", "jupyter-bob-x-org"), ("networkpolicy", "jupyter-bob-x-org")]
    # Two users whose labels could be confused are still told apart.
    assert names(judge([pod("jupyter-a", "Bob")], {HubServer("bob", "")})) == [("pod", "jupyter-a")]


def test_a_pod_without_annotations_is_matched_on_its_labels():
    objects = [pod("jupyter-bob-x-org", "bob@x.org", annotate=False)]
    assert judge(objects, {HubServer("bob@x.org", "")}).orphans == ()
    assert names(judge(objects, {HubServer("carol", "")})) == [("pod", "jupyter-bob-x-org")]


def test_a_policy_goes_with_the_pod_of_its_name():
    # Its labels say another user (a site's label scheme changed since): the pod decides.
    objects = [pod("jupyter-bob", "bob"), policy("jupyter-bob", "robert")]
    assert judge(objects, {HubServer("bob", "")}).orphans == ()
    verdicts = judge(objects, {HubServer("robert", "")})
    assert names(verdicts) == [("pod", "jupyter-bob"), ("networkpolicy", "jupyter-bob")]
    assert verdicts.orphans[1].why == verdicts.orphans[0].why


def test_a_policy_without_its_pod_is_matched_on_its_labels():
    objects = [policy("jupyter-bob-x-org", "bob@x.org"), policy("jupyter-carol", "carol", "r")]
    verdicts = judge(objects, {HubServer("bob@x.org", "")})
    assert names(verdicts) == [("networkpolicy", "jupyter-carol")]
    assert verdicts.orphans[0].why == (
        "no pod; user label 'carol', server label 'r': not running or pending in the hub")


def test_young_objects_are_left_for_a_later_run_with_their_policy():
    young = NOW - timedelta(seconds=20)
    objects = [pod("jupyter-bob", "bob", created=young), policy("jupyter-bob", "bob", created=young - timedelta(hours=1)),
               policy("jupyter-dan", "dan", created=young)]
    verdicts = judge(objects, set())
    assert verdicts.orphans == ()
    assert [s.describe() for s in verdicts.spared] == [
        "pod jupyter-bob (created 20 s ago, under the minimum age of 60 s)",
        "networkpolicy jupyter-dan (created 20 s ago, under the minimum age of 60 s)",
    ]
    assert names(judge(objects, set(), min_age=0)) == [
        ("pod", "jupyter-bob"), ("networkpolicy", "jupyter-bob"), ("networkpolicy", "jupyter-dan")]
    # A clock a little behind the API server's: a creation "in the future" is young, never negative.
    ahead = judge([pod("jupyter-eve", "eve", created=NOW + timedelta(seconds=3))], set())
    assert ahead.spared[0].why.startswith("created 0 s ago")


def test_an_object_that_names_no_user_is_left_alone():
    anonymous_pod = ServerObject(POD, "jupyter-x", "u1", OLD, (("tycho-spawner/server", "jupyter-x"),))
    anonymous_policy = ServerObject(NETWORK_POLICY, "jupyter-y", "u2", OLD, (("tycho-spawner/server", "jupyter-y"),))
    verdicts = judge([anonymous_pod, policy("jupyter-x", "x"), anonymous_policy], set())
    assert verdicts.orphans == ()
    assert [s.describe() for s in verdicts.spared] == [
        "pod jupyter-x (it names no user (hub.jupyter.org/username))",
        "networkpolicy jupyter-y (it names no user (hub.jupyter.org/username))",
    ]


def test_no_objects_or_no_servers():
    assert judge([], {HubServer("a", "")}).orphans == ()
    assert judge([], set()).spared == ()


@pytest.mark.parametrize("selector, keys", [
    ("", set()),
    ("app.kubernetes.io/instance=tycho", {"app.kubernetes.io/instance"}),
    ("a=b, c==d,e!=f,g in (h, i),!j,k", {"a", "c"}),
    ("release notin (x,y),app=jupyterhub", {"app"}),
])
def test_the_label_keys_a_selector_fixes(selector, keys):
    assert fixed_label_keys(selector) == keys


def test_objects_of_two_hubs_under_one_selector_are_refused():
    ours = pod("jupyter-a", "a", labels={"app.kubernetes.io/instance": "tycho"})
    theirs = pod("jupyter-b", "b", labels={"app.kubernetes.io/instance": "other"})
    unlabelled = pod("jupyter-c", "c")
    message = mixed_hubs([ours, theirs], "")
    assert message.startswith("the selected servers' objects carry different app.kubernetes.io/instance labels "
                              "('other', 'tycho'): they belong to more than one hub")
    assert "--selector" in message
    assert "none" in mixed_hubs([ours, unlabelled], "")
    assert mixed_hubs([ours, theirs], "app.kubernetes.io/instance=tycho") is None
    assert mixed_hubs([ours, ours], "") is None
    assert mixed_hubs([unlabelled], "") is None
    release = pod("jupyter-d", "d", labels={"release": "x"})
    assert "release labels" in mixed_hubs([unlabelled, release], "app.kubernetes.io/instance=tycho")


# ----------------------------------------------------------------------- the command line


def test_gc_without_a_hub_url_or_token_says_which_in_one_line(monkeypatch, capsys):
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert cli.main(["gc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tycho: no hub API URL: give --hub-api-url") and err.count("\n") == 1
    assert cli.main(["gc", "--hub-api-url", "http://127.0.0.1:1/hub/api"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tycho: no hub token: set JUPYTERHUB_API_TOKEN") and err.count("\n") == 1


@pytest.mark.parametrize("args", [["--min-age", "-1"], ["--every", "0"], ["--every", "soon"], ["--min-age", "inf"]])
def test_gc_refuses_bad_durations(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["gc", *args])
    assert exit_.value.code == 2
    assert "seconds" in capsys.readouterr().err
