"""Every image the catalog can launch, and where each comes from.

A site pre-pulls these images on its nodes (the chart's ``prePuller``) or copies them to a
registry mirror, so that a user's first start does not wait minutes for a pull. The list must
hold what *any* user choice can put in a pod, not only the defaults: an option may replace an
image (an image-tag choice) or add a container. So the Systems a user can reach are enumerated
as :func:`tycho_spawner.profiles.parse_catalog` checks them: the defaults, each option alone on
top of the defaults, then combinations of options up to ``profiles.MAX_COMBINATIONS``; each
image is listed with the first (simplest) of those that puts it in a pod.

A choice of kind ``image`` lets a user type a container's image (matching the admin's pattern):
only its default can be listed, and no pre-puller can pull the others. Those containers are
marked (:attr:`ImageSource.typed_pattern`) and listed by :func:`typed_images`, for ``tycho
images`` to tell the admin.

Pure: a parsed :class:`~tycho_spawner.profiles.Catalog` in, values out; no I/O.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Optional

from .model import System
from .profiles import MAX_COMBINATIONS, Catalog, Profile

#: The name of the gate's container in a gated app's pod (render._gate_container).
GATE_CONTAINER = "gate"


@dataclass(frozen=True)
class ImageSource:
    """One place an image is launched from: a catalog entry's container, with the options a
    user picks to get it there (choice key, option key), only those that differ from the
    entry's defaults; none when the defaults launch it. ``typed_pattern``: the pattern of the
    entry's image choice for this container, when a user may type its image instead (a
    pre-puller cannot pull those); None otherwise."""

    entry: str
    container: str
    options: tuple[tuple[str, str], ...] = ()
    typed_pattern: Optional[str] = None

    def as_dict(self) -> dict:
        found = {"entry": self.entry, "container": self.container, "options": dict(self.options)}
        if self.typed_pattern is not None:
            found["user_typed"] = {"pattern": self.typed_pattern}
        return found


@dataclass(frozen=True)
class TypedImage:
    """A container whose image a user may type (a choice of kind ``image``): the list has its
    default only; any image matching ``pattern`` can run, which nothing can pull beforehand."""

    entry: str
    choice: str
    container: str
    pattern: str
    default: str

    def describe(self) -> str:
        return (f"{self.entry} (container {self.container}, choice {self.choice}): pattern {self.pattern!r}, "
                f"default {self.default}")


def typed_images(catalog: Catalog) -> tuple[TypedImage, ...]:
    """Every container of ``catalog`` whose image a user may type, in catalog order."""
    return tuple(TypedImage(profile.key, choice.key, choice.container or "", choice.pattern or "", choice.default)
                 for profile in catalog.profiles for choice in profile.choices if choice.kind == "image")


@dataclass(frozen=True)
class CatalogImage:
    """An image reference and every catalog entry container that launches it."""

    image: str
    sources: tuple[ImageSource, ...]

    def as_dict(self) -> dict:
        return {"image": self.image, "sources": [s.as_dict() for s in self.sources]}


def reachable_systems(profile: Profile) -> Iterator[tuple[tuple[tuple[str, str], ...], System]]:
    """The Systems a user can get from ``profile``, each with the options picked that differ
    from the defaults: the defaults first, then each option alone, then combinations (at most
    ``MAX_COMBINATIONS``, as the catalog's own check). Repeats are not removed here.

    A choice of kind ``image`` (a user-typed image matching an admin's pattern) counts as its
    default here: what users type is not known beforehand (see :func:`typed_images`).
    """
    defaults = profile.default_choices()

    def changed(picked: dict) -> tuple[tuple[str, str], ...]:
        return tuple((c.key, picked[c.key]) for c in profile.choices if picked[c.key] != defaults[c.key])

    yield (), profile.system(defaults)
    for choice in profile.choices:
        for option in choice.options:
            if option.key != choice.default:
                picked = dict(defaults, **{choice.key: option.key})
                yield changed(picked), profile.system(picked)
    if len(profile.choices) > 1:
        product = itertools.product(*(_values(c) for c in profile.choices))
        for combination in itertools.islice(product, MAX_COMBINATIONS):
            picked = {c.key: value for c, value in zip(profile.choices, combination)}
            if len(changed(picked)) > 1:
                yield changed(picked), profile.system(picked)


def _values(choice) -> tuple[str, ...]:
    """What a user may pick for ``choice``: its options' keys; a choice with no listed options
    (a value the user types) stands here as its default."""
    return tuple(o.key for o in choice.options) or (choice.default,)


def catalog_images(catalog: Catalog, gate_image: Optional[str]) -> tuple[CatalogImage, ...]:
    """The images ``catalog`` can launch, sorted by reference, each with its sources in catalog
    order. ``gate_image`` (tycho-gate's, or None to leave it out) counts when a System a user
    can reach says ``auth: gate``."""
    sources: dict[str, list[ImageSource]] = {}
    seen: set[tuple[str, str, str]] = set()
    typed = {(t.entry, t.container): t.pattern for t in typed_images(catalog)}

    def add(image: str, entry: str, container: str, options: tuple[tuple[str, str], ...]) -> None:
        # One source per (image, entry, container): the first, simplest way to reach it.
        if (image, entry, container) not in seen:
            seen.add((image, entry, container))
            sources.setdefault(image, []).append(ImageSource(entry, container, options, typed.get((entry, container))))

    for profile in catalog.profiles:
        for options, system in reachable_systems(profile):
            for container in system.containers:
                add(container.image, profile.key, container.name, options)
            if system.auth == "gate" and gate_image:
                add(gate_image, profile.key, GATE_CONTAINER, options)
    return tuple(CatalogImage(image, tuple(sources[image])) for image in sorted(sources))
