"""The documentation's reference pages, written from the code at build time.

Settings, catalog fields, command lines and chart values each have one definition in the code
(traitlets' help, the catalog's pydantic models, the argparse parser and tycho-gate's traitlets
application, values.schema.json and values.yaml). A hand-written copy drifts; this module reads
those definitions and writes Markdown, which Sphinx parses as if it were in the page: a page
holds a line ``<!-- tycho-reference: NAME -->`` and :data:`SECTIONS` says what replaces it.

The functions that list items (:func:`spawner_settings`, :func:`cli_options`,
:func:`gate_options`, :func:`chart_values`) are also what ``tests/unit/test_docs.py`` checks
for missing documentation, so the test and the pages agree on what exists. Only
:func:`setup` touches Sphinx: the rest imports without it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tycho-spawner"
MARKER = re.compile(r"^<!-- tycho-reference: ([a-z-]+) -->$", re.M)


@dataclass(frozen=True)
class Item:
    """One documented thing: its name as the page shows it, its type, default and help."""

    name: str
    kind: str
    default: str
    help: str


# --- Markdown helpers --------------------------------------------------------------------


def _escape(text: str) -> str:
    """Text outside code spans with the characters Markdown would read as markup escaped
    (``<release>`` would be raw HTML, ``*`` emphasis, ``|`` a table cell's end)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part.replace("|", "\\|"))
        else:
            out.append(re.sub(r"([<>*|\[\]])", r"\\\1", part))
    return "".join(out)


def _one_line(text: str) -> str:
    return _escape(" ".join(text.split()))


def _code(value: str) -> str:
    """A code span that holds any value (backticks inside need a longer fence)."""
    if not value:
        return ""
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}".replace("|", "\\|")


def _help_block(text: str) -> str:
    """A traitlets help text (indented, Markdown-ish) as a Markdown block."""
    lines = inspect.cleandoc(text or "").splitlines()
    return "\n".join(_escape(line) if not line.startswith("    ") else line for line in lines)


# --- TychoSpawner settings -------------------------------------------------------------------


def _trait_kind(trait: Any) -> str:
    return type(trait).__name__


def _trait_default(cls: type, name: str, trait: Any) -> str:
    """The default as the code computes it; a dynamic default (``@default``) is computed as it
    would be with none of the ``JUPYTERHUB_*`` variables a hub sets (its help says how they
    change it)."""
    generator = getattr(cls, "_trait_default_generators", {}).get(name)
    if generator is not None and generator is not getattr(trait, "default", None):
        saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("JUPYTERHUB_")}
        try:
            value = generator(None)
        except Exception:
            return "computed (see the text)"
        finally:
            os.environ.update(saved)
        if name == "log_level" and isinstance(value, int):
            return logging.getLevelName(value)
        return repr(value)
    try:
        return trait.default_value_repr()
    except Exception:  # pragma: no cover - a trait without a representable default
        return "?"


def spawner_settings() -> list[Item]:
    """Every configurable trait TychoSpawner defines itself (not those it inherits)."""
    from tycho_spawner import TychoSpawner

    traits = TychoSpawner.class_own_traits(config=True)
    return [
        Item(name, _trait_kind(t), _trait_default(TychoSpawner, name, t), inspect.cleandoc(t.help or ""))
        for name, t in sorted(traits.items())
    ]


def settings_markdown() -> str:
    out = []
    for item in spawner_settings():
        out.append(f"### `{item.name}`\n")
        out.append(f"{item.kind}, default {_code(item.default)}\n")
        out.append(_help_block(item.help) + "\n")
    return "\n".join(out)


def replaced_markdown() -> str:
    """The KubeSpawner settings a catalog entry replaces or combines with (site_settings.py,
    which the hub also logs from), each with KubeSpawner's own help text."""
    from kubespawner import KubeSpawner

    from tycho_spawner import site_settings

    traits = KubeSpawner.class_traits(config=True)
    out = []
    for title, table in (
        ("Replaced: the catalog entry decides, the site's value is not used", site_settings.REPLACED),
        ("Combined: the site's value applies unless the entry sets its own", site_settings.COMBINED),
    ):
        out.append(f"### {title}\n")
        out.append("| KubeSpawner setting | with TychoSpawner | KubeSpawner's help (first sentence) |")
        out.append("|---|---|---|")
        for name, what in table.items():
            trait = traits.get(name)
            first = _first_sentence(inspect.cleandoc(trait.help or "")) if trait is not None else ""
            out.append(f"| `{name}` | {_one_line(what)} | {_one_line(first)} |")
        out.append("")
    return "\n".join(out)


def _first_sentence(text: str) -> str:
    paragraph = text.split("\n\n", 1)[0]
    match = re.match(r"(.+?[.:])(\s|$)", " ".join(paragraph.split()))
    return match.group(1) if match else paragraph


# --- The catalog --------------------------------------------------------------------------


def catalog_markdown() -> str:
    from tycho_spawner import schema

    return schema.reference_markdown()


def catalog_fields() -> list[Item]:
    """Every field of every catalog model, by ``Model.field``."""
    from tycho_spawner import schema

    return [
        Item(f"{model.__name__}.{name}", "", "", info.description or "")
        for model in schema.REFERENCE
        for name, info in model.model_fields.items()
    ]


# --- The `tycho` command ---------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name) or "", sub


def _option_name(action: argparse.Action) -> str:
    if action.option_strings:
        return ", ".join(action.option_strings)
    return action.metavar if isinstance(action.metavar, str) else action.dest


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    return parser._get_formatter()._expand_help(action)


def _option_value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        return "{" + ",".join(map(str, action.choices)) + "}"
    if action.option_strings:
        return action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return {"+": "one or more", "*": "any number", "?": "optional"}.get(str(action.nargs), "")


def cli_options() -> list[Item]:
    """Every argument of every `tycho` subcommand (help options left out), as ``tycho SUB --opt``."""
    from tycho_spawner.cli import build_parser

    items = []
    parser = build_parser()
    for name, summary, sub in _subcommands(parser):
        items.append(Item(f"tycho {name}", "command", "", summary or sub.description or ""))
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            items.append(Item(f"tycho {name} {_option_name(action)}", _option_value(action),
                              _default(action), _option_help(sub, action)))
    return items


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
        return ""
    return repr(action.default) if isinstance(action.default, str) else str(action.default)


def cli_markdown() -> str:
    from tycho_spawner.cli import build_parser

    parser = build_parser()
    out = [_escape(parser.description or "") + "\n", "```text", parser.format_usage().strip(), "```\n"]
    for name, summary, sub in _subcommands(parser):
        out.append(f"### `tycho {name}`\n")
        out.append(_one_line(sub.description or summary) + "\n")
        out.append("```text\n" + sub.format_usage().strip() + "\n```\n")
        out.append("| argument | value | default | meaning |\n|---|---|---|---|")
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            value = _option_value(action)
            shown = value if value in ("one or more", "any number", "optional") else _code(value)
            out.append(f"| {_code(_option_name(action))} | {shown} | "
                       f"{_code(_default(action))} | {_one_line(_option_help(sub, action))} |")
        out.append("")
    return "\n".join(out)


# --- The `tycho-gate` command ------------------------------------------------------------------


def gate_options() -> list[Item]:
    """tycho-gate's command line: its aliases and flags, then its other settings (``--GateApp.x``)."""
    from tycho_spawner.gate.app import GateApp

    traits = GateApp.class_traits(config=True)
    items = []
    for alias, target in GateApp.aliases.items():
        cls_name, trait_name = target.split(".", 1)
        trait = traits.get(trait_name) if cls_name == "GateApp" else _application_trait(trait_name)
        items.append(Item(f"--{alias}", _trait_kind(trait), _trait_default(GateApp, trait_name, trait),
                          inspect.cleandoc(trait.help or "")))
    for flag, (_config, help_text) in GateApp.flags.items():
        items.append(Item(f"--{flag}", "flag", "", inspect.cleandoc(help_text or "")))
    aliased = {target.split(".", 1)[1] for target in GateApp.aliases.values() if target.startswith("GateApp.")}
    aliased |= {name for _c, _h in GateApp.flags.values() for name in _c.get("GateApp", {})}
    for name, trait in sorted(GateApp.class_own_traits(config=True).items()):
        if name not in aliased:
            items.append(Item(f"--GateApp.{name}", _trait_kind(trait), _trait_default(GateApp, name, trait),
                              inspect.cleandoc(trait.help or "")))
    return items


def _application_trait(name: str) -> Any:
    from traitlets.config import Application

    return Application.class_traits(config=True)[name]


def gate_markdown() -> str:
    from tycho_spawner.gate.app import GateApp

    out = [_help_block(GateApp.description) + "\n", "```text", inspect.cleandoc(GateApp.examples), "```\n"]
    out.append("| option | type | default | meaning |\n|---|---|---|---|")
    for item in gate_options():
        out.append(f"| {_code(item.name + ('=…' if item.kind != 'flag' else ''))} | {item.kind} | "
                   f"{_code(item.default)} | {_one_line(item.help)} |")
    out.append("\nEvery option is also a setting of `GateApp` (`--GateApp.upstream=...`, or a config file "
               "read by traitlets); `tycho-gate --help-all` prints the same list.\n")
    return "\n".join(out)


# --- The chart's values ---------------------------------------------------------------------------


def values_comments(text: str) -> dict[str, str]:
    """The comment block right above each key of values.yaml, by dotted path.

    Prose lines are joined; indented example lines (``#   - to: ...``) become code spans.
    """
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped[1:])
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            if pending:
                comments[".".join(key for _, key in stack)] = _comment_text(pending)
        pending = []
    return comments


def _comment_text(lines: list[str]) -> str:
    parts = []
    example = False
    for raw in lines:
        body = raw[1:] if raw.startswith(" ") else raw
        if body.startswith("  ") and (example or (parts and parts[-1].rstrip().endswith(":"))):
            example = True
            parts.append(_code(body.strip()))
        else:
            example = False
            parts.append(_escape(body.strip()))
    return " ".join(parts)


@dataclass(frozen=True)
class ChartValue:
    """One value of the chart: where it is, its type, its default, its description and where
    that description comes from (``schema``, ``values.yaml`` or nothing)."""

    path: str
    kind: str
    default: str
    description: str
    source: str
    leaf: bool


def _schema_kind(schema: dict) -> str:
    if "enum" in schema:
        return " \\| ".join(_code(json.dumps(v)) for v in schema["enum"])
    kind = schema.get("type", "")
    if isinstance(kind, list):
        return " or ".join(kind)
    return kind or "any"


def _lookup(values: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(values, dict) or key not in values:
            return None
        values = values[key]
    return values


def chart_values() -> list[ChartValue]:
    """Every value of values.schema.json (the catalog as one value: its fields are the catalog
    reference), with values.yaml's default."""
    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    defaults = yaml.safe_load(text) or {}
    comments = values_comments(text)
    out: list[ChartValue] = []

    def walk(node: dict, prefix: str) -> None:
        for key, sub in (node.get("properties") or {}).items():
            path = f"{prefix}.{key}" if prefix else key
            described = " ".join((sub.get("description") or "").split())
            source = "schema" if described else ""
            if not described and comments.get(path):
                described, source = comments[path], "values.yaml"
            elif described:
                described = _escape(described)
            children = sub.get("properties") if path != "catalog" else None
            default = _lookup(defaults, path)
            shown = "" if children else json.dumps(default, separators=(", ", ": "))
            out.append(ChartValue(path, _schema_kind(sub), shown, described, source, not children))
            if children:
                walk(sub, path)

    walk(schema, "")
    return out


#: Values that are Helm's, not the chart's (``global`` is always allowed by the schema).
CHART_SKIPPED = ("global",)


def chart_groups_documented(values: list[ChartValue]) -> set[str]:
    """Groups whose description covers their keys: described, and holding only plain values
    (``image: {name, tag, pullPolicy}``, ``egressAllowRules``, ``resources``)."""
    by_parent: dict[str, list[ChartValue]] = {}
    for value in values:
        by_parent.setdefault(value.path.rpartition(".")[0], []).append(value)
    return {
        value.path for value in values
        if not value.leaf and value.description and all(child.leaf for child in by_parent.get(value.path, []))
    }


def undocumented_chart_values() -> list[str]:
    """Values with no description of their own nor of a group that covers them."""
    values = [v for v in chart_values() if v.path not in CHART_SKIPPED]
    groups = chart_groups_documented(values)
    return [v.path for v in values
            if v.leaf and not v.description and v.path.rpartition(".")[0] not in groups]


def chart_markdown() -> str:
    values = [v for v in chart_values() if v.path not in CHART_SKIPPED]
    groups = chart_groups_documented(values)
    out: list[str] = []
    for value in values:
        if "." not in value.path:   # a top-level value: a section of its own
            out.append(f"\n## `{value.path}`\n")
            if value.description:
                out.append(value.description + "\n")
            out.append("| value | type | default | what |\n|---|---|---|---|")
            if not value.leaf:
                continue
        name = f"**`{value.path}`**" if not value.leaf else f"`{value.path}`"
        text = value.description
        parent = value.path.rpartition(".")[0]
        if not text and parent in groups:
            text = f"(see `{parent}`)"
        out.append(f"| {name} | {value.kind} | {_code(value.default)} | {text} |")
    return "\n".join(out) + "\n"


# --- Permissions ----------------------------------------------------------------------------------


def rbac_markdown() -> str:
    from tycho_spawner import rbac

    out = ["| storage type | API group | resources | verbs |", "|---|---|---|---|"]
    for storage in rbac.STORAGE_ROLE_RULES:
        for rule in rbac.spawner_role_rules(storage):
            group = rule["apiGroups"][0] or "(core)"
            out.append(f"| `{storage}` | `{group}` | {', '.join(rule['resources'])} | {', '.join(rule['verbs'])} |")
    return "\n".join(out) + "\n"


# --- The REST API ----------------------------------------------------------------------------


def _api_document() -> dict:
    from tycho_spawner.api.openapi import document

    return document()


def _schema_text(schema: dict) -> str:
    """A short type: a schema's name for a reference, ``array of X``, ``a or b``, an enum."""
    if not isinstance(schema, dict):
        return ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "enum" in schema:
        return " \\| ".join(_code(json.dumps(v)) for v in schema["enum"])
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        return f"array of {_schema_text(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_schema_text(schema['additionalProperties'])}"
    return kind or "any"


def api_operations() -> list[Item]:
    """Every operation of the OpenAPI document, as ``METHOD /path``, with its summary."""
    out = []
    for path, item in _api_document()["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                out.append(Item(f"{method.upper()} {path}", op.get("operationId", ""), "",
                                " ".join(filter(None, (op.get("summary"), op.get("description"))))))
    return out


def api_markdown() -> str:
    doc = _api_document()
    responses = doc.get("components", {}).get("responses", {})
    base = (doc.get("servers") or [{}])[0].get("url", "")
    out = [f"**{_escape(doc['info']['title'])}**, version {doc['info']['version']}, OpenAPI {doc['openapi']}; "
           f"paths below are under `{base}` on the hub's address.\n", _help_block(doc["info"].get("description", "")) + "\n"]
    out.append("## Authentication\n\n| scheme | how | meaning |\n|---|---|---|")
    for name, scheme in doc.get("components", {}).get("securitySchemes", {}).items():
        how = f"{scheme.get('in', '')} `{scheme.get('name', '')}`"
        out.append(f"| `{name}` | {how} | {_one_line(scheme.get('description', ''))} |")
    out.append("\n## Operations\n")
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            out.append(f"### `{method.upper()} {path}`\n")
            out.append(_one_line(op.get("summary", "")) + "\n")
            if op.get("description"):
                out.append(_help_block(op["description"]) + "\n")
            params = [*shared, *op.get("parameters", [])]
            if params:
                out.append("| parameter | in | type | default | meaning |\n|---|---|---|---|---|")
                for par in params:
                    schema = par.get("schema", {})
                    default = json.dumps(schema["default"]) if "default" in schema else ""
                    required = " (required)" if par.get("required") else ""
                    out.append(f"| `{par['name']}`{required} | {par['in']} | {_schema_text(schema)} | "
                               f"{_code(default)} | {_one_line(par.get('description', ''))} |")
                out.append("")
            body = op.get("requestBody")
            if body:
                for ctype, content in body.get("content", {}).items():
                    out.append(f"Body ({ctype}): {_schema_text(content.get('schema', {}))}\n")
            out.append("| status | meaning | body |\n|---|---|---|")
            for status, resp in sorted(op.get("responses", {}).items()):
                if "$ref" in resp:
                    resp = responses.get(resp["$ref"].rsplit("/", 1)[-1], {})
                bodies = ", ".join(f"{_schema_text(c.get('schema', {}))} ({ctype})"
                                   for ctype, c in resp.get("content", {}).items())
                out.append(f"| {status} | {_one_line(resp.get('description', ''))} | {bodies} |")
            out.append("")
    out.append("## Schemas\n")
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out.append(f"### {name}\n")
        if schema.get("description"):
            out.append(_one_line(schema["description"]) + "\n")
        props = schema.get("properties") or {}
        if not props:
            out.append(f"{_schema_text(schema)}\n")
            continue
        required = set(schema.get("required", []))
        out.append("| field | type | required | meaning |\n|---|---|---|---|")
        for field, sub in props.items():
            out.append(f"| `{field}` | {_schema_text(sub)} | {'yes' if field in required else ''} | "
                       f"{_one_line(sub.get('description', ''))} |")
        out.append("")
    return "\n".join(out)


#: Marker name -> the function writing its Markdown.
SECTIONS: dict[str, Callable[[], str]] = {
    "settings": settings_markdown,
    "replaced-settings": replaced_markdown,
    "catalog": catalog_markdown,
    "cli": cli_markdown,
    "gate-cli": gate_markdown,
    "chart-values": chart_markdown,
    "rbac": rbac_markdown,
    "rest-api": api_markdown,
}


def expand(source: str, where: str = "") -> str:
    """The page's text with each marker replaced by its generated Markdown."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise ValueError(f"{where}: unknown reference section {name!r} (known: {', '.join(SECTIONS)})")
        return SECTIONS[name]()

    return MARKER.sub(replace, source)


def setup(app: Any) -> dict:  # pragma: no cover - run by Sphinx
    import tycho_spawner

    where = Path(tycho_spawner.__file__).resolve()
    if ROOT not in where.parents:
        raise RuntimeError(f"the reference would be written from {where}, not from this checkout ({ROOT})")
    def source_read(_app: Any, docname: str, source: list) -> None:
        if MARKER.search(source[0]):
            source[0] = expand(source[0], docname)

    app.connect("source-read", source_read)
    # The generated pages change when the code does: never reuse a pickled environment.
    app.connect("env-get-outdated", lambda _app, env, added, changed, removed: [
        doc for doc in env.found_docs if doc.startswith("reference/")])
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
