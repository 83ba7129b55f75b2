"""The spawn options form: the catalog as cards, pre-selecting the user's last choice."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import jinja2

from .errors import OptionsError
from .profiles import Catalog

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_form(catalog: Catalog, previous: Any = None) -> str:
    """HTML for the options form. ``previous`` is the user's last ``user_options``, if any.

    Stored options that no longer match the catalog (an entry removed since) fall back to
    the default, rather than failing to show the form.
    """
    try:
        selection = catalog.select(previous or {})
    except OptionsError:
        selection = catalog.select({})
    chosen: Mapping[str, Mapping[str, str]] = {selection.profile.key: dict(selection.choices)}
    return _ENV.get_template("form.html.j2").render(
        catalog=catalog, selected=selection.profile.key, chosen=chosen
    )
