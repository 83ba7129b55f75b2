"""The spawn form: one card per application, keyboard accessible, pre-selecting the last choice.

The HTML is parsed with the standard library's parser (what a browser would see), and a
submission is simulated the way a browser builds one: the checked radio plus every <select>.
"""
from __future__ import annotations

from functools import lru_cache
from html.parser import HTMLParser

import pytest

from tycho_spawner.catalog_files import catalog_data
from tycho_spawner.form import render_form
from tycho_spawner.profiles import Catalog, merge, parse_catalog


class Form(HTMLParser):
    """The bits of the form that matter: inputs, selects with their options, labels, ids."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.radios: list[dict] = []
        self.selects: list[dict] = []
        self.labels: list[dict] = []
        self.ids: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._select = None
        self._option = None
        self._labels_open: list[dict] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "label":
            label = {"for": a.get("for"), "text": "", "contains": []}
            self.labels.append(label)
            self._labels_open.append(label)
        elif tag == "input" and a.get("type") == "radio":
            self.radios.append(a)
            for label in self._labels_open:
                label["contains"].append(a.get("id"))
        elif tag == "select":
            self._select = {**a, "options": []}
            self.selects.append(self._select)
            for label in self._labels_open:
                label["contains"].append(a.get("id"))
        elif tag == "option" and self._select is not None:
            self._option = {**a, "text": ""}
            self._select["options"].append(self._option)

    def handle_endtag(self, tag):
        if tag == "label" and self._labels_open:
            self._labels_open.pop()
        elif tag == "select":
            self._select = None
        elif tag == "option":
            self._option = None

    def handle_data(self, data):
        self.text.append(data)
        for label in self._labels_open:
            label["text"] += data
        if self._option is not None:
            self._option["text"] += data

    def label_for(self, element_id: str) -> dict:
        (label,) = [lab for lab in self.labels if lab["for"] == element_id]
        return label

    def checked_profile(self) -> list[str]:
        return [r["value"] for r in self.radios if "checked" in r]

    def selected(self, name: str) -> list[str]:
        (select,) = [s for s in self.selects if s["name"] == name]
        return [o["value"] for o in select["options"] if "selected" in o]

    def submission(self, profile=None) -> dict:
        """What a browser posts: the checked radio (or `profile`) and each select's value."""
        data = {"profile": [profile or self.checked_profile()[0]]}
        for select in self.selects:
            chosen = [o["value"] for o in select["options"] if "selected" in o] or [select["options"][0]["value"]]
            data[select["name"]] = chosen[:1]
        return data


@lru_cache(maxsize=1)
def builtin() -> Catalog:
    return parse_catalog(catalog_data(True, [], {}))


def form_of(catalog=None, previous=None) -> Form:
    return Form(render_form(catalog or builtin(), previous))


def test_one_radio_per_profile_with_a_linked_label():
    form = form_of()
    assert [r["value"] for r in form.radios] == [p.key for p in builtin().profiles]
    for radio, profile in zip(form.radios, builtin().profiles):
        assert radio["name"] == "profile"
        assert radio["id"]
        label = form.label_for(radio["id"])
        assert profile.display_name in label["text"]
        # the description is tied to the radio for screen readers
        described = radio["aria-describedby"]
        assert described in form.ids
    assert len(form.ids) == len(set(form.ids)), "ids are unique"


def test_each_choice_is_a_labelled_select():
    form = form_of()
    expected = [f"{p.key}.{c.key}" for p in builtin().profiles for c in p.choices]
    assert [s["name"] for s in form.selects] == expected
    for select in form.selects:
        profile_key, _, choice_key = select["name"].partition(".")
        choice = builtin().get(profile_key).choice(choice_key)
        label = form.label_for(select["id"])
        assert choice.display_name in label["text"]
        assert [o["value"] for o in select["options"]] == [o.key for o in choice.options]
        assert [o["text"] for o in select["options"]] == [o.display_name for o in choice.options]


def test_descriptions_are_shown():
    text = " ".join(form_of().text)
    for profile in builtin().profiles:
        assert profile.description in text


def test_no_previous_options_selects_the_default():
    form = form_of()
    assert form.checked_profile() == [builtin().default_profile.key]
    for profile in builtin().profiles:
        for choice in profile.choices:
            assert form.selected(f"{profile.key}.{choice.key}") == [choice.default]


def test_previous_options_are_preselected():
    form = form_of(previous={"profile": "rstudio", "choices": {"size": "large"}})
    assert form.checked_profile() == ["rstudio"]
    assert form.selected("rstudio.size") == ["large"]
    assert form.selected("scipy.size") == ["small"], "other cards show their defaults"
    form = form_of(previous={"profile": "scipy", "choices": {"ui": "classic", "size": "medium"}})
    assert form.checked_profile() == ["scipy"]
    assert form.selected("scipy.ui") == ["classic"] and form.selected("scipy.size") == ["medium"]


@pytest.mark.parametrize(
    "previous",
    [
        {"profile": "removed-app"},
        {"profile": "scipy", "choices": {"size": "gigantic"}},
        {"profile": "scipy", "choices": {"gpu": "yes"}},
        {"profile": "scipy", "image": "old-style"},
        ["scipy"],
        "scipy",
        {},
        None,
    ],
)
def test_stale_previous_options_fall_back_to_the_default(previous):
    form = form_of(previous=previous)
    assert form.checked_profile() == [builtin().default_profile.key]
    assert form.selected("scipy.size") == ["small"]


def test_exactly_one_profile_is_checked():
    for previous in (None, {"profile": "nginx"}, {"profile": "r"}):
        assert len(form_of(previous=previous).checked_profile()) == 1


@pytest.mark.parametrize("previous", [None, {"profile": "rstudio", "choices": {"size": "large"}}])
def test_browser_submission_gives_back_the_options(previous):
    """The form and options_from_form agree: submitting the form unchanged is accepted."""
    form = form_of(previous=previous)
    options = builtin().options_from_form(form.submission())
    assert options == builtin().select(previous or {}).as_user_options()


@pytest.mark.parametrize("key", ["base", "scipy", "r", "rstudio", "nginx"])
def test_picking_another_card_submits_that_card(key):
    form = form_of()
    options = builtin().options_from_form(form.submission(profile=key))
    assert options == builtin().select({"profile": key}).as_user_options()


def hostile_catalog() -> Catalog:
    evil = '<script>alert("x")</script>'
    return parse_catalog(
        merge(
            catalog_data(True, [], {}),
            {
                "nginx": {
                    "display_name": evil,
                    "description": f"{evil} & <b>bold</b>",
                },
                "rstudio": {
                    "choices": {
                        "size": {
                            "display_name": f"Size {evil}",
                            "options": {"large": {"display_name": f'Large" onmouseover="alert(1)'}},
                        }
                    }
                },
            },
        )
    )


def test_display_names_and_descriptions_are_escaped():
    html = render_form(hostile_catalog())
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html
    assert 'onmouseover="alert(1)' not in html
    form = Form(html)
    assert "script" not in form.tags and "b" not in form.tags
    # and the text reads back as written
    assert any('<script>alert("x")</script>' in lab["text"] for lab in form.labels)
    (large,) = [o for s in form.selects if s["name"] == "rstudio.size" for o in s["options"] if o["value"] == "large"]
    assert large["text"] == 'Large" onmouseover="alert(1)'
    assert "onmouseover" not in large


def test_ids_are_unique_for_any_keys():
    system = {
        "serve": {"container": "c", "port": 80},
        "containers": {"c": {"image": "example.org/c:1", "ports": {"http": 80}}},
    }
    choice = lambda key: {key: {"options": {"one": {}, "two": {}}}}  # noqa: E731
    catalog = parse_catalog(
        {
            "a-b": {"system": system, "choices": choice("c")},
            "a": {"system": system, "choices": choice("b-c")},
            "x": {"system": system},
            "profile": {"system": system, "choices": choice("x")},
        }
    )
    form = Form(render_form(catalog))
    assert len(form.ids) == len(set(form.ids)), sorted(form.ids)
