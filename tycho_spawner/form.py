"""The spawn options form: the catalog as cards grouped by category, pre-selecting the user's
last choice, each card saying what resources its options give.

Pure: the catalog and the user's last options in, HTML out. What the form shows is computed
here (views below) so the template only lays it out; the template's inline script filters the
cards and follows the selects, and the form works without it.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional

import jinja2

from .errors import OptionsError, SpecError
from .model import Container, Limits, parse_quantity
from .profiles import Catalog, Profile

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

#: The choice kinds the template has a control for: "options" a select, "image" a text field.
#: A choice of another kind is left off the form, so the server takes its default.
RENDERED_KINDS = ("options", "image")
#: Above this many combinations of the options that can change a card's resources, the card
#: shows the resources of the options it opened with and no table for the script to follow
#: (the table is in the page, once per card: it must stay small).
MAX_RESOURCE_COMBINATIONS = 64
#: The heading of entries without a category, when other entries have one (they come last:
#: an admin's categories are the curated part of the catalog).
UNCATEGORIZED = "Other applications"
NO_RESOURCES = "not set by this application (the site's defaults apply)"

_BINARY_UNITS = (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_WRITTEN_UNITS = {"Ki": "KiB", "Mi": "MiB", "Gi": "GiB", "Ti": "TiB", "Pi": "PiB", "Ei": "EiB",
                  "k": "kB", "M": "MB", "G": "GB", "T": "TB", "P": "PB", "E": "EB"}
_SUFFIXED = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)$")


# --------------------------------------------------------------------------- what options give


def _number(value: Decimal) -> str:
    """A quantity's number without exponent or trailing zeros: 0.5, 2, 1.25."""
    return format(value.normalize(), "f")


def cpu_text(quantity: str) -> str:
    """``"500m"`` -> ``"0.5 CPU"``: the unit users read on a size, whatever the admin wrote."""
    return f"{_number(parse_quantity(quantity, 'cpu'))} CPU"


def memory_text(quantity: str) -> str:
    """``"16Gi"`` -> ``"16 GiB"``, ``"1G"`` -> ``"1 GB"`` (the admin's unit kept); plain bytes
    in the largest binary unit they reach, to one decimal."""
    match = _SUFFIXED.match(quantity)
    if match:
        return f"{_number(Decimal(match[1]))} {_WRITTEN_UNITS[match[2]]}"
    size = parse_quantity(quantity, "memory")
    for unit, factor in _BINARY_UNITS:
        if size >= factor:
            return f"{_number(round(size / factor, 1))} {unit}"
    return f"{_number(round(size, 0))} bytes"


def _amounts(limits: Limits) -> list[str]:
    out = []
    if limits.cpu is not None:
        out.append(cpu_text(limits.cpu))
    if limits.memory is not None:
        out.append(f"{memory_text(limits.memory)} memory")
    return out


def resources_text(container: Container) -> str:
    """What a container is given, in one line a user reads next to a size: its limits (``up
    to``), its requests (``guaranteed``) and GPUs. Only what the catalog entry sets: a site's
    own defaults (KubeSpawner's ``cpu_limit``...) fill in at spawn, which this does not see."""
    parts = []
    limits, requests = _amounts(container.limits), _amounts(container.requests)
    if limits:
        parts.append("up to " + " · ".join(limits))
    if requests:
        parts.append("guaranteed " + " · ".join(requests))
    gpus = max(container.limits.gpus, container.requests.gpus)
    if gpus:
        parts.append(f"{gpus} GPU" + ("s" if gpus > 1 else ""))
    return ", ".join(parts) if parts else NO_RESOURCES


def _touches_resources(dotted: str) -> bool:
    """Whether a ``set`` path can change the served container's limits or requests: the
    container itself or its limits/requests, all containers, or which container is served."""
    parts = dotted.split(".")
    if parts[0] == "serve":
        return True
    return parts[0] == "containers" and (len(parts) < 3 or parts[2] in ("limits", "requests"))


def _shown_choices(profile: Profile) -> tuple:
    """The choices a card has a control for: a locked one (the user may not change it) is
    fixed to its default and not shown, and the server refuses it if posted."""
    return tuple(c for c in profile.choices if c.kind in RENDERED_KINDS and not c.locked)


@dataclass(frozen=True)
class CardResources:
    """A card's resources: the line shown for the options it opens with, the choices whose
    options can change it (in form order), and, when small enough, the line for every
    combination of those choices' options (keyed by option keys joined with a space)."""

    text: str
    keyed_by: tuple[str, ...]
    table_json: Optional[str]


@lru_cache(maxsize=2048)
def card_resources(profile: Profile, chosen: tuple[tuple[str, str], ...]) -> CardResources:
    """The resources a card shows, for ``chosen`` (every choice's option key, validated).

    Only the choices whose options' ``set`` paths can reach the served container's resources
    are combined (usually one: the size), so a catalog of many entries stays cheap to show.
    Cached: a Profile is immutable and equal profiles give equal results; the form is rendered
    for every view of the spawn page and the catalog is re-read for each.
    """
    base = dict(chosen)
    keyed = tuple(
        c for c in _shown_choices(profile)
        if any(_touches_resources(path) for option in c.options for path, _ in option.patches)
    )

    def text(picked: Mapping[str, str]) -> str:
        try:
            return resources_text(profile.system({**base, **picked}).served)
        except SpecError:  # a combination beyond what parse_catalog checks (MAX_COMBINATIONS)
            return "this combination of options cannot start"

    current = text({})
    count = 1
    for choice in keyed:
        count *= len(choice.options)
    table_json = None
    if keyed and count <= MAX_RESOURCE_COMBINATIONS:
        table = {}
        for combination in itertools.product(*(c.options for c in keyed)):
            picked = {c.key: o.key for c, o in zip(keyed, combination)}
            table[" ".join(o.key for o in combination)] = text(picked)
        table_json = json.dumps(table, ensure_ascii=False, separators=(",", ":"))
    return CardResources(text=current, keyed_by=tuple(c.key for c in keyed), table_json=table_json)


# --------------------------------------------------------------------------- the form's views


@dataclass(frozen=True)
class OptionView:
    key: str
    display_name: str
    selected: bool


@dataclass(frozen=True)
class ChoiceView:
    """One control of a card. ``kind`` picks the template's macro (a new kind of choice is a
    new macro there and an entry of RENDERED_KINDS); ``field`` is the posted name; ``value``
    the current value of a typed choice (an image), ``pattern`` what it must match."""

    key: str
    kind: str
    display_name: str
    field: str
    element_id: str
    options: tuple[OptionView, ...]
    keys_resources: bool
    value: str = ""
    pattern: str = ""
    default: str = ""


@dataclass(frozen=True)
class CardView:
    key: str
    display_name: str
    description: str
    category: str
    checked: bool
    choices: tuple[ChoiceView, ...]
    resources: CardResources
    #: Lowercased name, description and category: what the filter box matches.
    search: str


@dataclass(frozen=True)
class GroupView:
    """The cards under one heading; ``heading`` is "" when no entry has a category."""

    heading: str
    element_id: str
    cards: tuple[CardView, ...]


def _card(profile: Profile, checked: bool, chosen: Mapping[str, str]) -> CardView:
    full = {c.key: chosen.get(c.key, c.default) for c in profile.choices}
    resources = card_resources(profile, tuple(full.items()))
    choices = tuple(
        ChoiceView(
            key=c.key,
            kind=c.kind,
            display_name=c.display_name,
            field=f"{profile.key}.{c.key}",
            element_id=f"tycho_c_{profile.key}_{c.key}",
            options=tuple(OptionView(o.key, o.display_name, o.key == full[c.key]) for o in c.options),
            keys_resources=c.key in resources.keyed_by,
            value=full[c.key] if c.kind == "image" else "",
            pattern=c.pattern or "",
            default=c.default,
        )
        for c in _shown_choices(profile)
    )
    return CardView(
        key=profile.key,
        display_name=profile.display_name,
        description=profile.description,
        category=profile.category,
        checked=checked,
        choices=choices,
        resources=resources,
        search=" ".join((profile.display_name, profile.description, profile.category)).lower(),
    )


def form_groups(catalog: Catalog, previous: Any = None) -> tuple[GroupView, ...]:
    """The cards, grouped under their category in the order of each category's first entry;
    entries without one last under :data:`UNCATEGORIZED` (no heading at all when no entry has
    a category). ``previous`` is the user's last ``user_options``; stale ones (an entry or
    option removed since) fall back to the default rather than failing to show the form."""
    try:
        selection = catalog.select(previous or {})
    except OptionsError:
        selection = catalog.select({})
    chosen = dict(selection.choices)
    by_category: dict[str, list[CardView]] = {}
    for profile in catalog.profiles:
        checked = profile.key == selection.profile.key
        card = _card(profile, checked, chosen if checked else {})
        by_category.setdefault(profile.category, []).append(card)
    if list(by_category) == [""]:
        return (GroupView("", "tycho_g_0", tuple(by_category[""])),)
    ordered = [c for c in by_category if c] + ([""] if "" in by_category else [])
    return tuple(
        GroupView(category or UNCATEGORIZED, f"tycho_g_{i}", tuple(by_category[category]))
        for i, category in enumerate(ordered)
    )


def render_form(catalog: Catalog, previous: Any = None) -> str:
    """HTML for the options form. ``previous`` is the user's last ``user_options``, if any."""
    groups = form_groups(catalog, previous)
    return _ENV.get_template("form.html.j2").render(
        groups=groups, total=sum(len(g.cards) for g in groups)
    )
