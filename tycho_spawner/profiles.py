"""The catalog: the applications a site offers, and how a user's choice becomes a System.

The catalog is a keyed map (``{profile_key: profile}``) rather than a list, because Helm and
traitlets merge maps key by key: an admin adds, overrides or disables one entry from a second
values file without restating the others. Choices work the same way: each option names a few
``set`` patches (dotted paths into the profile's System description), written by the admin.
A user only ever picks option *keys*; no user-typed value reaches a System, which is what makes
the whole options path safe to expose on a form and over the REST API.

Pure: no files, no environment. :func:`parse_catalog` checks every profile and every option once
(so a broken entry stops the hub at start, naming the key) and :meth:`Catalog.select` turns user
options into a :class:`Selection`, raising :class:`OptionsError` for anything not offered.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from . import schema
from .errors import CatalogError, OptionsError, SpecError, shown
from .model import System

_KEY_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The keys, from the catalog's one definition (tycho_spawner.schema).
PROFILE_FIELDS = tuple(schema.Entry.model_fields)
CHOICE_FIELDS = tuple(schema.Choice.model_fields)
OPTION_FIELDS = tuple(schema.Option.model_fields)
ACCESS_FIELDS = tuple(schema.Access.model_fields)
#: What a choice is: one of the admin's options (a select), or an image the user types, which
#: must match the admin's pattern in full.
CHOICE_KINDS = ("options", "image")
#: The longest image reference a user may type (a name with a registry, a tag and a digest fits).
MAX_IMAGE_CHARACTERS = 512
#: Combinations of options checked at load; beyond it, each option is still checked alone.
MAX_COMBINATIONS = 512
#: What a user with no entry they may launch is told (form and API alike).
NOTHING_OFFERED = "no application of this hub's catalog is available to you; ask its administrators for access"


def merge(base: Any, override: Any) -> Any:
    """Deep-merge ``override`` onto ``base`` the way Helm merges values files.

    Mappings merge key by key; anything else is replaced; a ``None`` value removes the key.
    Neither argument is modified.
    """
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in override.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _key(value: Any, path: str) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _KEY_RE.match(value):
        raise CatalogError(path, f"{value!r} is not a valid key (lowercase letters, digits and '-', at most 63)")
    return value


def _text(data: Mapping, key: str, path: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise CatalogError(f"{path}.{key}", f"expected a string, got {value!r}")
    return value


def _fields(data: Any, path: str, allowed: tuple[str, ...]) -> Mapping:
    if not isinstance(data, Mapping):
        raise CatalogError(path, f"expected a mapping, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise CatalogError(f"{path}.{key}", f"unknown key (expected one of: {', '.join(allowed)})")
    return data


def _apply_patches(spec: dict, patches: tuple[tuple[str, Any], ...]) -> dict:
    out = copy.deepcopy(spec)
    for dotted, value in patches:
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Who:
    """The user a catalog is shown to: JupyterHub's name, groups (including those an
    authenticator manages) and admin flag. Built at the edge (the spawner) from the hub's user."""

    name: str
    groups: frozenset = frozenset()
    admin: bool = False


@dataclass(frozen=True)
class Access:
    """Who may use an entry, a choice or an option: members of any of ``groups``, or one of
    ``users``. ``restricted`` is False when the catalog says nothing (everyone may)."""

    groups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    restricted: bool = False

    def allows(self, who: Who) -> bool:
        return not self.restricted or who.name in self.users or not who.groups.isdisjoint(self.groups)


EVERYONE = Access()


@dataclass(frozen=True)
class Option:
    """One offered value of a choice; ``patches`` are the admin's ``set`` entries."""

    key: str
    display_name: str
    description: str
    patches_json: str  # JSON of a list of [dotted.path, value]: immutable, and values stay admin-written
    access: Access = EVERYONE

    @property
    def patches(self) -> tuple[tuple[str, Any], ...]:
        return tuple((p, v) for p, v in json.loads(self.patches_json))


@dataclass(frozen=True)
class Choice:
    """A variant the user may pick for a profile (image tag, size, UI), with its default.

    ``kind`` "options": the user picks one of ``options`` by key. ``kind`` "image": the user
    types an image for ``container``, taken only when ``pattern`` matches it in full; it is
    the one user-typed value that reaches a pod, and only as that container's image.
    ``locked``: shown to nobody and fixed to its default (a user outside the choice's access).
    """

    key: str
    display_name: str
    default: str
    options: tuple[Option, ...]
    kind: str = "options"
    pattern: Optional[str] = None
    container: Optional[str] = None
    access: Access = EVERYONE
    locked: bool = False

    def option(self, key: str) -> Optional[Option]:
        for option in self.options:
            if option.key == key:
                return option
        return None

    def accepts(self, value: Any) -> bool:
        """Whether a user may send ``value`` for this choice."""
        if self.locked or not isinstance(value, str):
            return False
        if self.kind == "image":
            return _image_matches(self.pattern or "", value)
        return self.option(value) is not None

    def patches_for(self, value: str) -> tuple[tuple[str, Any], ...]:
        if self.kind == "image":
            return ((f"containers.{self.container}.image", value),)
        option = self.option(value)
        assert option is not None, (self.key, value)
        return option.patches

    def offered(self) -> str:
        """What a user may send, for error messages."""
        if self.kind == "image":
            return f"an image matching {self.pattern!r}"
        return ", ".join(o.key for o in self.options)


def _image_matches(pattern: str, value: str) -> bool:
    return (0 < len(value) <= MAX_IMAGE_CHARACTERS and value.isprintable() and not any(c.isspace() for c in value)
            and re.fullmatch(pattern, value) is not None)


@dataclass(frozen=True)
class Profile:
    """One catalog entry: how it is shown, the System it launches, the choices it offers."""

    key: str
    display_name: str
    description: str
    order: int
    default: bool
    choices: tuple[Choice, ...]
    system_json: str  # the System description before choices, as JSON (immutable)
    #: The heading the form lists this entry under ("" for none); entries of one category keep
    #: their catalog order.
    category: str = ""
    access: Access = EVERYONE

    def choice(self, key: str) -> Optional[Choice]:
        for choice in self.choices:
            if choice.key == key:
                return choice
        return None

    def default_choices(self) -> dict[str, str]:
        return {c.key: c.default for c in self.choices}

    def system(self, choices: Mapping[str, str], path: Optional[str] = None) -> System:
        """The System for a full set of already-validated choice keys."""
        spec = json.loads(self.system_json)
        for choice in self.choices:
            spec = _apply_patches(spec, choice.patches_for(choices[choice.key]))
        return System.from_dict(self.key, spec, path or self.key)

    def visible_to(self, who: Who) -> Optional["Profile"]:
        """This entry as ``who`` may launch it (options they may not use removed, choices they
        may not change fixed to their default), or None when they may not launch it at all."""
        if not self.access.allows(who):
            return None
        choices = []
        for choice in self.choices:
            if not choice.access.allows(who):
                choices.append(replace(choice, locked=True))
                continue
            if choice.kind == "options":
                options = tuple(o for o in choice.options if o.access.allows(who))
                if not options:
                    return None
                if len(options) != len(choice.options):
                    default = choice.default if any(o.key == choice.default for o in options) else options[0].key
                    choice = replace(choice, options=options, default=default)
            choices.append(choice)
        return replace(self, choices=tuple(choices))


@dataclass(frozen=True)
class Selection:
    """A validated user choice: the profile and one option key for each of its choices."""

    profile: Profile
    choices: tuple[tuple[str, str], ...]

    def system(self) -> System:
        return self.profile.system(dict(self.choices))

    def as_user_options(self) -> dict:
        """The canonical ``user_options`` (stored by the hub, shown in the admin panel)."""
        return {"profile": self.profile.key, "choices": dict(self.choices)}


@dataclass(frozen=True)
class Catalog:
    """The parsed, validated catalog, ordered for display."""

    profiles: tuple[Profile, ...]

    def visible_to(self, who: Who, admins_see_all: bool = True) -> "Catalog":
        """The catalog ``who`` may launch from: what the form shows them and what their starts
        are checked against, so an entry they may not use is refused exactly as an unknown one
        (the answer reveals nothing). Admins see everything unless ``admins_see_all`` is off."""
        if who.admin and admins_see_all:
            return self
        visible = tuple(p for p in (profile.visible_to(who) for profile in self.profiles) if p is not None)
        return self if visible == self.profiles else Catalog(profiles=visible)

    def get(self, key: str) -> Optional[Profile]:
        for profile in self.profiles:
            if profile.key == key:
                return profile
        return None

    @property
    def default_profile(self) -> Profile:
        if not self.profiles:
            raise OptionsError(NOTHING_OFFERED)
        for profile in self.profiles:
            if profile.default:
                return profile
        return self.profiles[0]

    def select(self, user_options: Any) -> Selection:
        """Validate user options (from the form or the REST API) into a Selection.

        Accepted shape: ``{"profile": KEY, "choices": {CHOICE: OPTION}}``; both keys optional
        (an empty dict means the default profile with its defaults). Anything else, including
        any extra key, is refused: options are never silently ignored.
        """
        if user_options is None:
            user_options = {}
        if not isinstance(user_options, Mapping):
            raise OptionsError("user options must be a JSON object")
        extra = sorted(str(k) for k in user_options if k not in ("profile", "choices"))
        if extra:
            raise OptionsError(
                f"unknown option {shown(extra[0])}: only 'profile' and 'choices' are accepted"
            )
        if not self.profiles:
            raise OptionsError(NOTHING_OFFERED)
        key = user_options.get("profile")
        if key is None:
            key = self.default_profile.key
        elif not isinstance(key, str) or not key:
            raise OptionsError("'profile' must be a string: the key of an application")
        profile = self.get(key)
        if profile is None:
            offered = ", ".join(p.key for p in self.profiles)
            raise OptionsError(f"unknown application {shown(key)}; offered: {offered}")
        requested = user_options.get("choices")
        if requested is None:
            requested = {}
        if not isinstance(requested, Mapping):
            raise OptionsError("'choices' must be a JSON object")
        chosen = profile.default_choices()
        for name, value in requested.items():
            choice = profile.choice(name) if isinstance(name, str) else None
            if choice is None or choice.locked:
                offered = ", ".join(c.key for c in profile.choices if not c.locked) or "none"
                raise OptionsError(f"{profile.display_name} has no choice {shown(name)} (choices: {offered})")
            if not choice.accepts(value):
                raise OptionsError(
                    f"{shown(value)} is not offered for {choice.display_name} of {profile.display_name} "
                    f"(offered: {choice.offered()})"
                )
            chosen[name] = value
        return Selection(profile=profile, choices=tuple((c.key, chosen[c.key]) for c in profile.choices))

    def options_from_form(self, formdata: Mapping[str, list]) -> dict:
        """Turn the spawn form's fields into canonical user options.

        The form posts ``profile`` and one ``<profile>.<choice>`` field per choice of every card.
        Every field must be one the form could have sent with a value it offered; the selected
        profile's choices become the options, the other cards' fields are checked and dropped.
        """
        profile_values = formdata.get("profile")
        if not profile_values or len(profile_values) != 1:
            raise OptionsError("choose exactly one application")
        selected = profile_values[0]
        choices: dict[str, str] = {}
        for field_name, values in formdata.items():
            if field_name == "profile":
                continue
            profile_key, _, choice_key = str(field_name).partition(".")
            profile = self.get(profile_key)
            choice = profile.choice(choice_key) if profile else None
            if choice is None or choice.locked:
                raise OptionsError(f"unexpected form field {shown(field_name)}")
            if profile_key != selected and choice.kind == "image":
                # What the user left typed in another card's field is dropped unread: it
                # launches nothing, and a half-typed image there must not refuse this start.
                if len(values) != 1 or not isinstance(values[0], str) or len(values[0]) > MAX_IMAGE_CHARACTERS:
                    raise OptionsError(f"unexpected value of form field {shown(field_name)}")
                continue
            if len(values) != 1 or not choice.accepts(values[0]):
                raise OptionsError(f"{shown(values)} is not offered for {choice.display_name} of {profile.display_name}")
            if profile_key == selected:
                choices[choice_key] = values[0]
        return self.select({"profile": selected, "choices": choices}).as_user_options()


def parse_catalog(data: Any, path: str = "catalog") -> Catalog:
    """Parse and fully validate a catalog mapping (already merged from all its sources)."""
    if not isinstance(data, Mapping):
        raise CatalogError(path, f"expected a mapping of profiles, got {type(data).__name__}")
    profiles = []
    for key, entry in data.items():
        ppath = f"{path}.{key}"
        _key(key, ppath)
        _fields(entry, ppath, PROFILE_FIELDS)
        disabled = entry.get("disabled", False)
        if not isinstance(disabled, bool):
            raise CatalogError(f"{ppath}.disabled", "must be true or false")
        if disabled:
            continue  # a disabled entry is not offered: what it would launch is not checked
        try:
            schema.validate(schema.Entry, entry, ppath)
        except SpecError as err:
            raise CatalogError(err.path, err.message) from None
        profiles.append(_parse_profile(key, entry, ppath))
    if not profiles:
        raise CatalogError(path, "offers no application (every profile is disabled or the catalog is empty)")
    defaults = [p.key for p in profiles if p.default]
    if len(defaults) > 1:
        raise CatalogError(path, f"more than one profile is marked default: {', '.join(defaults)}")
    profiles.sort(key=lambda p: (p.order, p.key))
    return Catalog(profiles=tuple(profiles))


def _parse_profile(key: str, entry: Mapping, path: str) -> Profile:
    order = entry.get("order", 100)
    if isinstance(order, bool) or not isinstance(order, int):
        raise CatalogError(f"{path}.order", f"expected an integer, got {order!r}")
    default = entry.get("default", False)
    if not isinstance(default, bool):
        raise CatalogError(f"{path}.default", "must be true or false")
    system = entry.get("system")
    if not isinstance(system, Mapping):
        raise CatalogError(f"{path}.system", "is required: the application's containers and served port")
    _plain(system, f"{path}.system")
    choices_data = entry.get("choices") or {}
    if not isinstance(choices_data, Mapping):
        raise CatalogError(f"{path}.choices", f"expected a mapping of choices, got {type(choices_data).__name__}")
    containers = system.get("containers")
    serve = system.get("serve")
    served = serve.get("container") if isinstance(serve, Mapping) else None
    container_names = tuple(containers) if isinstance(containers, Mapping) else ()
    choices = tuple(_parse_choice(ck, cv, f"{path}.choices.{ck}", served, container_names)
                    for ck, cv in choices_data.items())
    profile = Profile(
        key=key,
        display_name=_text(entry, "display_name", path, key),
        description=_text(entry, "description", path, ""),
        category=_text(entry, "category", path, ""),
        access=_parse_access(entry.get("access"), f"{path}.access"),
        order=order,
        default=default,
        choices=choices,
        system_json=json.dumps(system, sort_keys=False),
    )
    # Validate the description as written (a bad value must not hide behind an option that
    # happens to replace it), then the defaults, then each option on top of the defaults, so
    # that every System a user can reach through one choice is known to parse.
    try:
        System.from_dict(key, system, f"{path}.system")
    except SpecError as err:
        raise CatalogError(err.path, err.message) from None
    _checked_system(profile, profile.default_choices(), path, path)
    for choice in choices:
        if choice.kind == "image":
            continue  # its default is checked with the defaults above
        for option in choice.options:
            picked = dict(profile.default_choices(), **{choice.key: option.key})
            _checked_system(profile, picked, f"{path}.choices.{choice.key}.options.{option.key}", path)
    # Then every combination a user can pick, so no pair of options fails only at spawn time
    # (a typed image counts as its default: the pattern decides the rest).
    keys = [tuple(o.key for o in c.options) if c.kind == "options" else (c.default,) for c in choices]
    for combination in itertools.islice(itertools.product(*keys), MAX_COMBINATIONS):
        picked = {c.key: value for c, value in zip(choices, combination)}
        where = ", ".join(f"{c}={o}" for c, o in picked.items())
        _checked_system(profile, picked, f"{path}.choices[{where}]", path)
    return profile


def _plain(value: Any, path: str) -> None:
    """Refuse values JSON cannot carry (YAML dates, binary...) with the key that holds them."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise CatalogError(f"{path}.{k}", "keys must be strings (quote it in YAML)")
            _plain(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _plain(v, f"{path}[{i}]")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise CatalogError(path, f"{value!r} is a {type(value).__name__}, not a string or number (quote it in YAML)")


def _checked_system(profile: Profile, choices: dict, where: str, system_path: str) -> None:
    try:
        profile.system(choices, path=f"{system_path}.system")
    except SpecError as err:
        if where == system_path:
            raise CatalogError(err.path, err.message) from None
        raise CatalogError(where, f"with this option, {err.path}: {err.message}") from None


def _parse_access(data: Any, path: str) -> Access:
    """``{groups: [...], users: [...]}``: JupyterHub group and user names."""
    if data is None:
        return EVERYONE
    _fields(data, path, ACCESS_FIELDS)
    names = {}
    for key in ACCESS_FIELDS:
        value = data.get(key) or []
        if not isinstance(value, (list, tuple)):
            raise CatalogError(f"{path}.{key}", f"expected a list of names, got {type(value).__name__}")
        for i, name in enumerate(value):
            if not isinstance(name, str) or not name.strip():
                raise CatalogError(f"{path}.{key}[{i}]", f"expected a name, got {name!r}")
        names[key] = tuple(value)
    return Access(groups=names["groups"], users=names["users"], restricted=True)


def _parse_choice(key: Any, data: Any, path: str, served: Optional[str] = None,
                  containers: tuple[str, ...] = ()) -> Choice:
    _key(key, path)
    _fields(data, path, CHOICE_FIELDS)
    kind = data.get("kind", "options")
    if kind not in CHOICE_KINDS:
        raise CatalogError(f"{path}.kind", f"{kind!r} is not one of: {', '.join(CHOICE_KINDS)}")
    access = _parse_access(data.get("access"), f"{path}.access")
    if kind == "image":
        return _parse_image_choice(key, data, path, served, containers, access)
    for field_name in ("pattern", "container"):
        if field_name in data:
            raise CatalogError(f"{path}.{field_name}", "only for a choice of kind: image")
    options_data = data.get("options")
    if not isinstance(options_data, Mapping) or not options_data:
        raise CatalogError(f"{path}.options", "needs at least one option (a mapping keyed by option)")
    options = []
    for okey, odata in options_data.items():
        opath = f"{path}.options.{okey}"
        _key(okey, opath)
        odata = {} if odata is None else odata
        _fields(odata, opath, OPTION_FIELDS)
        patches = odata.get("set") or {}
        if not isinstance(patches, Mapping):
            raise CatalogError(f"{opath}.set", "expected a mapping of dotted.path: value")
        for dotted, value in patches.items():
            if not isinstance(dotted, str) or not all(part for part in dotted.split(".")):
                raise CatalogError(f"{opath}.set", f"{dotted!r} is not a dotted path")
            _plain(value, f"{opath}.set.{dotted}")
        options.append(
            Option(
                key=okey,
                display_name=_text(odata, "display_name", opath, okey),
                description=_text(odata, "description", opath, ""),
                patches_json=json.dumps([[k, v] for k, v in patches.items()]),
                access=_parse_access(odata.get("access"), f"{opath}.access"),
            )
        )
    default = data.get("default", options[0].key)
    if not isinstance(default, str) or default not in {o.key for o in options}:
        raise CatalogError(f"{path}.default", f"{default!r} is not one of the options")
    return Choice(
        key=key,
        display_name=_text(data, "display_name", path, key),
        default=default,
        options=tuple(options),
        access=access,
    )


def _parse_image_choice(key: str, data: Mapping, path: str, served: Optional[str],
                        containers: tuple[str, ...], access: Access) -> Choice:
    if "options" in data:
        raise CatalogError(f"{path}.options", "a choice of kind: image has no options (the user types the image)")
    pattern = data.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise CatalogError(f"{path}.pattern", "is required: a regular expression the whole image must match")
    try:
        re.compile(pattern)
    except re.error as err:
        raise CatalogError(f"{path}.pattern", f"{pattern!r} is not a regular expression: {err}") from None
    container = data.get("container", served)
    if not isinstance(container, str) or (containers and container not in containers):
        raise CatalogError(f"{path}.container", f"{container!r} is not one of the containers ({', '.join(containers)})")
    default = data.get("default")
    if not isinstance(default, str) or not default:
        raise CatalogError(f"{path}.default", "is required: the image used when the user types none")
    if not _image_matches(pattern, default):
        raise CatalogError(f"{path}.default", f"{default!r} does not match the pattern {pattern!r}")
    return Choice(key=key, display_name=_text(data, "display_name", path, key), default=default, options=(),
                  kind="image", pattern=pattern, container=container, access=access)
