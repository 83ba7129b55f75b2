"""The catalog's structure, defined once: every key, where it may appear, its type and its help.

Pydantic models (JupyterHub itself depends on pydantic, in every version this package supports)
from which come:

- the structural half of validation, with errors at the exact dotted path of the value
  (:func:`validate`; :mod:`tycho_spawner.profiles` and :mod:`tycho_spawner.model` call it
  before they check what spans several keys, such as ``serve.container`` naming a container);
- the documentation's catalog field reference (:func:`reference_markdown`, written into
  docs/reference/catalog.md as the site is built);
- the catalog part of the chart's ``values.schema.json`` (:func:`chart_catalog_schema`).

Single values (a quantity, a name, a path) are checked by :mod:`tycho_spawner.checks`, the same
functions the model uses. Values Kubernetes defines the shape of (NetworkPolicy egress rules,
tolerations, node affinity) are written as Kubernetes writes them: here they are objects, and
:mod:`tycho_spawner.model` checks them as the API server would.

Pure: no files, no hub. ``python -m tycho_spawner.schema`` rewrites the chart's schema from this
module (a unit test fails when it or the documentation's reference drifts).
"""
from __future__ import annotations

import copy
import json
from typing import Annotated, Any, Callable, Mapping, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from . import checks
from .errors import SpecError

# --------------------------------------------------------------------------- single values


def _leaf(check: Callable[[Any], Any], json_schema: dict) -> Any:
    """A value checked by one of :mod:`checks` (None passes: it means "not given")."""

    def run(value: Any) -> Any:
        if value is None:
            return None
        try:
            check(value)
        except SpecError as err:
            raise PydanticCustomError("tycho", "{message}", {"message": err.message}) from None
        return value

    return Annotated[Any, AfterValidator(run), WithJsonSchema(json_schema)]


def _one_of(*allowed: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in allowed:
            raise SpecError("", f"{value!r} is not one of: {', '.join(allowed)}")
    return check


def _range(low: int, high: int) -> Any:
    return _leaf(lambda v: checks.integer(v, "", low, high), {"type": "integer", "minimum": low, "maximum": high})


Text = _leaf(lambda v: checks.string(v, "", allow_empty=True), {"type": "string"})
Name = _leaf(lambda v: checks.string(v, ""), {"type": "string", "minLength": 1})
Label = _leaf(lambda v: checks.dns_label(v, ""), {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"})
ObjectName = _leaf(lambda v: checks.object_name(v, ""), {"type": "string", "maxLength": 253})
Quantity = _leaf(lambda v: checks.parse_quantity(v, ""), {"type": ["string", "number"]})
Port = _range(1, 65535)
Bool = _leaf(lambda v: checks.boolean(v, ""), {"type": "boolean"})
Integer = _leaf(lambda v: checks.integer(v, "", -(2**31), 2**31 - 1), {"type": "integer"})
AbsolutePath = _leaf(lambda v: checks.absolute_path(v, ""), {"type": "string", "pattern": "^/"})
Strings = _leaf(lambda v: checks.string_list(v, ""), {"type": "array", "items": {"type": "string"}})
HubName = _leaf(lambda v: checks.string(v if not isinstance(v, str) or v.strip() else "", ""),
                {"type": "string", "minLength": 1})
AnyMapping = _leaf(lambda v: checks.mapping(v, ""), {"type": "object"})
Objects = _leaf(lambda v: checks.a_list(v, ""), {"type": "array", "items": {"type": "object"}})
ChoiceKind = _leaf(_one_of("options", "image"), {"enum": ["options", "image"]})
AuthMode = _leaf(_one_of("jupyter", "gate"), {"enum": ["jupyter", "gate"]})


def _object(what: str) -> Any:
    return _leaf(lambda v: checks.object_name(v, "", what), {"type": "string", "maxLength": 253})


def _plain_mapping(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise SpecError("", f"expected a mapping, got {type(value).__name__}")


def _egress_list(value: Any) -> None:
    if not isinstance(value, (list, tuple)):
        raise SpecError("", "expected a list of NetworkPolicy egress rules ({to: [...], ports: [...]}), "
                            f"got {type(value).__name__}")


def _user_id(value: Any) -> None:
    if checks.integer(value, "", 0, 2**31 - 1) == 0:
        raise SpecError("", "apps run as non-root: 0 is not allowed")


SecretName = _object("secret name")
ConfigMapName = _object("config map name")
ClaimName = _object("claim name")
PriorityClassName = _object("priority class name")
UserId = _leaf(_user_id, {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})
EgressAllow = _leaf(_plain_mapping, {"type": "object"})
EgressRules = _leaf(_egress_list, {"type": "array", "items": {"type": "object"}})
Count = _range(0, 64)
Seconds = _range(0, 3600)
Period = _range(1, 3600)
Failures = _range(1, 1000)
GroupId = _range(0, 2**31 - 1)


def _either(scalar: Any, model: type, scalar_schema_tag: str = "value") -> Any:
    """A scalar or a mapping (``gpus: 1`` or ``gpus: {count: 1, resource: ...}``): the input's
    shape picks which is checked, so an error speaks of the one the admin wrote."""

    def which(value: Any) -> str:
        return "<mapping>" if isinstance(value, Mapping) else "<value>"

    return Annotated[
        Union[Annotated[model, Tag("<mapping>")], Annotated[scalar, Tag("<value>")]],
        Discriminator(which),
    ]


#: Parts of pydantic's error locations that are not keys of the catalog.
_NOT_KEYS = {"<mapping>", "<value>", "[key]"}


# --------------------------------------------------------------------------- structure


class _Part(BaseModel):
    """A mapping of the catalog: only its fields, each optional unless said otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _only_known_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise PydanticCustomError("tycho", "{message}", {"message": f"expected a mapping, got {type(data).__name__}"})
        allowed = tuple(cls.model_fields)
        for key in data:
            if not isinstance(key, str) or key not in allowed:
                raise PydanticCustomError("unknown_key", "{message}", {
                    "message": f"unknown key (expected one of: {', '.join(allowed)})", "key": str(key)})
        return data


class Access(_Part):
    """Who may use an entry, a choice or an option. Without it, everyone may; with it, the
    members of any of its groups and the users it names (the hub's admins too, unless
    `TychoSpawner.admins_launch_everything` is False). Others are not shown it, and a start
    asking for it is refused as one asking for something that does not exist."""

    groups: Optional[list[HubName]] = Field(None, description="JupyterHub group names (an authenticator's managed groups too).")
    users: Optional[list[HubName]] = Field(None, description="JupyterHub user names.")


class Option(_Part):
    """One offered value of a choice."""

    display_name: Text = Field(None, description="The name on the form (default: the option's key).")
    description: Text = Field(None, description="A sentence under the name.")
    set: AnyMapping = Field(None, description="`dotted.path: value` patches into the entry's `system` "
                                              "(`containers.notebook.limits.memory: 8Gi`); `null` removes the key.")
    access: Optional[Access] = Field(None, description="Who may pick this option (see `access`).")


class Choice(_Part):
    """A variant of an entry the user picks on the form or in `user_options.choices`."""

    display_name: Text = Field(None, description="The label on the form (default: the choice's key).")
    kind: ChoiceKind = Field(
        None, description="`options` (default): one of `options`. `image`: the user types an image, "
                          "taken only if `pattern` matches it in full.")
    default: Text = Field(None, description="The option key (kind `options`, default: the first) or the "
                                            "image (kind `image`, required) used when the user picks none.")
    options: Optional[dict[Label, Optional[Option]]] = Field(None, description="The offered values, by key (kind `options`).")
    pattern: Name = Field(None, description="Kind `image`: a regular expression the whole image must match.")
    container: Label = Field(None, description="Kind `image`: whose image it is (default: the served container).")
    access: Optional[Access] = Field(None, description="Who may change this choice; others get its default.")


class Serve(_Part):
    """Which container answers HTTP for the user, and on which port of the pod."""

    container: Label = Field(..., description="A key of `containers`.")
    port: Port = Field(..., description="One of that container's `ports`.")


class Gpus(_Part):
    """GPUs by resource name: `{count: 1, resource: amd.com/gpu}`."""

    count: Count = Field(..., description="How many.")
    resource: Name = Field(None, description="The extended resource (default `nvidia.com/gpu`; "
                                             "`amd.com/gpu`, `gpu.intel.com/i915`, MIG slices such as "
                                             "`nvidia.com/mig-1g.5gb`). The pod tolerates the taint of that name.")


class Limits(_Part):
    """Compute resources of a container, as Kubernetes quantities; over the site's own
    (KubeSpawner's `cpu_limit`, `mem_limit`, ...) key by key."""

    cpu: Quantity = Field(None, description="CPUs (`2`, `500m`).")
    memory: Quantity = Field(None, description="Bytes (`4Gi`).")
    gpus: Optional[_either(Count, Gpus)] = Field(
        None, description="GPUs: a number of `nvidia.com/gpu`, or `{count, resource}` (limits only).")
    ephemeral_storage: Quantity = Field(None, description="Scratch disk of the container (`10Gi`).")


class Probe(_Part):
    """How Kubernetes decides the app is ready: an HTTP GET or a TCP connect."""

    http: Name = Field(None, description="A path to GET (`/api`); or give `tcp: true`.")
    tcp: Bool = Field(None, description="Ready once the port accepts connections.")
    port: Port = Field(None, description="Default: the container's only port.")
    initial_delay_seconds: Seconds = Field(None, description="Wait before the first probe (default 0).")
    period_seconds: Period = Field(None, description="Between probes (default 1).")
    failure_threshold: Failures = Field(None, description="Failures before not ready (default 3).")


class EnvRef(_Part):
    """A variable from a key of a Secret or ConfigMap of the server's namespace: Kubernetes
    fills it in; the value never passes the hub (whose Role cannot read Secrets)."""

    secret: SecretName = Field(None, description="The Secret's name (or give `config_map`).")
    config_map: ConfigMapName = Field(None, description="The ConfigMap's name (or give `secret`).")
    key: Name = Field(..., description="The key in it.")
    optional: Bool = Field(None, description="Start even if it is missing (default: the start fails naming it).")


class EnvFrom(_Part):
    """Every key of a Secret or ConfigMap as variables."""

    secret: SecretName = Field(None, description="The Secret's name (or give `config_map`).")
    config_map: ConfigMapName = Field(None, description="The ConfigMap's name (or give `secret`).")
    prefix: Text = Field(None, description="Put before each key's name.")
    optional: Bool = Field(None, description="Start even if it is missing.")


def _env_value(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError("", f"expected a string, got {value!r}")


EnvValue = _leaf(_env_value, {"type": ["string", "number"]})


class Container(_Part):
    """One process image of the app; the containers of an entry share the pod's network."""

    image: Name = Field(..., description="The image reference.")
    command: Strings = Field(None, description="Replaces the image's entrypoint.")
    args: Strings = Field(None, description="Arguments.")
    env: Optional[dict[Name, _either(EnvValue, EnvRef)]] = Field(
        None, description="Variables by name: a string, or `{secret|config_map: NAME, key: KEY}`.")
    env_from: Optional[list[EnvFrom]] = Field(None, description="Whole Secrets or ConfigMaps as variables.")
    ports: Optional[dict[Label, Port]] = Field(None, description="Named ports (names of at most 15 characters).")
    limits: Optional[Limits] = Field(None, description="At most this much.")
    requests: Optional[Limits] = Field(None, description="Reserved for it (at most the limits).")
    readiness: Optional[Probe] = Field(None, description="Readiness probe (not for an app behind the gate).")
    working_dir: AbsolutePath = Field(None, description="Working directory.")
    mounts: Optional[dict[Label, AbsolutePath]] = Field(None, description="A key of `volumes` and where it is mounted.")




class Volume(_Part):
    """A volume of the entry's containers: scratch space (an emptyDir) unless it names a
    claim, a ConfigMap or a Secret of the server's namespace."""

    size_limit: Quantity = Field(None, description="Scratch space: its size limit.")
    memory: Bool = Field(None, description="Scratch space: in memory (tmpfs).")
    claim: ClaimName = Field(None, description="An existing PersistentVolumeClaim (a shared dataset, a group's space).")
    config_map: ConfigMapName = Field(None, description="A ConfigMap, its keys as files (read-only).")
    secret: SecretName = Field(None, description="A Secret, its keys as files (read-only).")
    sub_path: Name = Field(None, description="Mount this folder of the volume; `{username}` becomes the user's "
                                             "escaped name (a per-user folder of one claim).")
    read_only: Bool = Field(None, description="Refuse writes.")
    optional: Bool = Field(None, description="ConfigMap or Secret: start even if it is missing.")


class Security(_Part):
    """The identity the app runs as; never root."""

    run_as_user: UserId = Field(None, description="Default 1000.")
    run_as_group: GroupId = Field(None, description="Default 100.")
    fs_group: GroupId = Field(None, description="Group owning the volumes (default 100; null: none).")


class Home(_Part):
    """Where the app keeps the user's files: the site's home volume is mounted there."""

    container: Label = Field(None, description="Default: the served container.")
    path: AbsolutePath = Field(..., description="Where in that container.")
    sub_path: Name = Field(None, description="A folder of the home (created if missing).")
    read_only: Bool = Field(None, description="Refuse writes.")


class GateOptions(_Part):
    """How tycho-gate presents the server's URL prefix to an app behind it (`auth: gate`)."""

    keep_prefix: Bool = Field(None, description="Pass `/user/NAME/...` unchanged (default: the site's "
                                                "`TychoSpawner.gate_keep_prefix`).")
    prefix_header: Name = Field(None, description="A request header carrying the prefix (`X-RStudio-Root-Path`).")


class Network(_Part):
    """Where the app's servers may connect, over the site's own settings."""

    egress_allow: EgressAllow = Field(None, description="zero-to-jupyterhub's `egressAllowRules` keys "
                                                       "(`privateIPs: true`...), each replacing the site's.")
    egress: EgressRules = Field(None, description="NetworkPolicy egress rules as Kubernetes writes them, "
                                              "added to the site's.")


class Scheduling(_Part):
    """Where the pod may run, over the site's KubeSpawner settings."""

    node_selector: AnyMapping = Field(None, description="Node labels (`{accelerator: nvidia-t4}`); keys replace the site's.")
    tolerations: Objects = Field(None, description="Tolerations as Kubernetes writes them; added to the site's.")
    node_affinity: AnyMapping = Field(None, description="A nodeAffinity as Kubernetes writes it; must hold as well "
                                                        "as the site's.")
    priority_class: PriorityClassName = Field(None, description="A PriorityClass name; replaces the site's.")


def _home_false(value: Any) -> None:
    if value is not False:
        raise SpecError("", "give the app's home as {container: NAME, path: /absolute/path}, or false for none")


HomeOff = _leaf(_home_false, {"const": False})


class System(_Part):
    """What the entry launches: its containers, which one serves, how users are let in."""

    containers: dict[Label, Container] = Field(..., description="The containers, by name.")
    serve: Serve = Field(..., description="Which container answers HTTP, on which port.")
    auth: AuthMode = Field(
        None, description="`jupyter` (default): the app does the hub's OAuth. `gate`: tycho-gate does; "
                          "the app sees no token.")
    volumes: Optional[dict[Label, Optional[Volume]]] = Field(None, description="Volumes, by name.")
    security: Optional[Security] = Field(None, description="The user and groups it runs as.")
    gate: Optional[GateOptions] = Field(None, description="tycho-gate's options (`auth: gate` only).")
    home: Optional[_either(HomeOff, Home)] = Field(
        None, description="Where the user's home is mounted; `false`: none.")
    network: Optional[Network] = Field(None, description="Where its servers may connect.")
    scheduling: Optional[Scheduling] = Field(None, description="Where its pod may run.")




class Entry(_Part):
    """One application of the catalog, under its key (lowercase letters, digits, '-')."""

    display_name: Text = Field(None, description="The name on the form (default: the key).")
    description: Text = Field(None, description="A sentence under the name.")
    category: Text = Field(None, description="The form's heading to list it under.")
    order: Integer = Field(None, description="Position on the form (default 100; then by key).")
    default: Bool = Field(None, description="Pre-selected for a user's first start (one entry at most).")
    disabled: Bool = Field(None, description="Not offered (removes a built-in entry).")
    access: Optional[Access] = Field(None, description="Who may launch it.")
    choices: Optional[dict[Label, Choice]] = Field(None, description="Variants the user picks, by key.")
    system: Optional[System] = Field(None, description="What it launches (required unless disabled).")


# --------------------------------------------------------------------------- validation


def validate(model: type[_Part], data: Any, path: str) -> None:
    """Check ``data`` against ``model``; the first problem raises SpecError at its exact path."""
    try:
        model.model_validate(data)
    except ValidationError as err:
        problem = err.errors(include_url=False)[0]
        where = [part for part in problem["loc"] if part not in _NOT_KEYS]
        ctx = problem.get("ctx") or {}
        if problem["type"] == "unknown_key":
            where.append(ctx["key"])
        raise SpecError(_dotted(path, where), _message(problem)) from None


def _dotted(path: str, parts: list) -> str:
    out = path
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(problem: Mapping) -> str:
    kind, value = problem["type"], problem.get("input")
    ctx = problem.get("ctx") or {}
    if "message" in ctx:
        return ctx["message"]
    if kind == "missing":
        return "is required"
    if kind in ("dict_type", "model_type"):
        return f"expected a mapping (keyed by name), got {type(value).__name__}"
    if kind == "list_type":
        return f"expected a list, got {type(value).__name__}"
    if kind == "string_type":
        return f"expected a string, got {value!r}"
    return problem["msg"]


# --------------------------------------------------------------------------- what is generated


#: The parts of the reference, in the order a reader meets them.
REFERENCE = (Entry, Access, Choice, Option, System, Serve, Container, Limits, Gpus, Probe, EnvRef, EnvFrom,
             Volume, Security, Home, GateOptions, Network, Scheduling)
_TITLES = {Entry: "entry", Access: "access", Choice: "choices.KEY", Option: "options.KEY", System: "system",
           Serve: "system.serve", Container: "system.containers.NAME", Limits: "limits, requests",
           Gpus: "limits.gpus (mapping)", Probe: "readiness", EnvRef: "env.NAME (mapping)", EnvFrom: "env_from[]",
           Volume: "system.volumes.NAME", Security: "system.security", Home: "system.home",
           GateOptions: "system.gate", Network: "system.network", Scheduling: "system.scheduling"}


def _kind(schema: Mapping) -> str:
    """A field's type in a word or two, from its JSON schema."""
    if "$ref" in schema:
        return _ref_title(schema["$ref"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(_kind(s) for s in schema[key] if s.get("type") != "null"))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "object" and "patternProperties" in schema:
        (value,) = schema["patternProperties"].values()
        return f"map of {_kind(value)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_kind(schema['additionalProperties'])}"
    if kind == "array":
        return f"list of {_kind(schema.get('items') or {})}"
    if kind == "integer" and "minimum" in schema:
        return f"integer {schema['minimum']}–{schema['maximum']}"
    return kind or "any"


def _ref_title(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def reference_markdown() -> str:
    """The catalog field reference: one table per part, from the models' help."""
    out = []
    for model in REFERENCE:
        schema = model.model_json_schema()
        out.append(f"**`{_TITLES[model]}`** ({model.__name__}): {' '.join((model.__doc__ or '').split())}\n")
        out.append("| key | type | required | meaning |\n|---|---|---|---|")
        for name, info in model.model_fields.items():
            prop = schema["properties"][name]
            required = "yes" if info.is_required() else ""
            cells = (f"`{name}`", _kind(prop), required, info.description or "")
            out.append("| " + " | ".join(cell.replace("|", "\\|") if i != 1 else cell for i, cell in enumerate(cells)) + " |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _inline(schema: Any, defs: Mapping) -> Any:
    """The schema with every ``$ref`` replaced by what it names (the chart's validator need not
    resolve references; the catalog's structure is not recursive), and keyed maps as
    ``propertyNames`` + ``additionalProperties`` so that a key that is no name is refused."""
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    if not isinstance(schema, Mapping):
        return schema
    if "$ref" in schema:
        return _inline({**defs[_ref_title(schema["$ref"])], **{k: v for k, v in schema.items() if k != "$ref"}}, defs)
    out = {}
    for key, value in schema.items():
        if key in ("$defs", "title", "default"):
            continue
        if key == "description" and isinstance(value, str):
            out[key] = " ".join(value.split())
        elif key == "properties":
            out[key] = {name: _inline(prop, defs) for name, prop in value.items()}
        elif key == "patternProperties" and len(value) == 1:
            ((pattern, item),) = value.items()
            out["propertyNames"] = {"pattern": pattern}
            out["additionalProperties"] = _inline(item, defs)
        else:
            out[key] = _inline(value, defs)
    return out


def _mergeable(schema: Any) -> Any:
    """Values files hold parts of entries merged over the built-in catalog, where `null`
    deletes a key: nothing is required and every object's value may be null."""
    if isinstance(schema, Mapping):
        out = {k: _mergeable(v) for k, v in schema.items() if k != "required"}
        if "properties" in out:
            out["properties"] = {k: _nullable(v) for k, v in out["properties"].items()}
        if isinstance(out.get("additionalProperties"), Mapping):
            out["additionalProperties"] = _nullable(out["additionalProperties"])
        return out
    if isinstance(schema, list):
        return [_mergeable(v) for v in schema]
    return schema


def _nullable(schema: Mapping) -> dict:
    if "anyOf" in schema or "oneOf" in schema:
        key = "anyOf" if "anyOf" in schema else "oneOf"
        options = [s for s in schema[key] if s != {"type": "null"}]
        rest = {k: v for k, v in schema.items() if k != key}
        return {**rest, "anyOf": options + [{"type": "null"}]}
    if "const" in schema or "enum" in schema or "type" not in schema:
        return {"anyOf": [dict(schema), {"type": "null"}]}
    kind = schema["type"]
    kinds = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": kinds + (["null"] if "null" not in kinds else [])}


def chart_catalog_schema() -> dict:
    """The chart's ``values.schema.json`` entry for ``catalog``: entries by key."""
    entry = Entry.model_json_schema()
    inlined = _inline(entry, entry.get("$defs") or {})
    inlined["description"] = " ".join((Entry.__doc__ or "").split())
    return {
        "type": "object",
        "description": "The catalog: applications by key, merged over the built-in catalog "
                       "(null removes a key); the hub checks it fully at start",
        "propertyNames": {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
        "additionalProperties": _nullable(_mergeable(copy.deepcopy(inlined))),
    }


def main() -> None:  # pragma: no cover - exercised by the drift test through its functions
    """Rewrite the chart's catalog schema from this module. (The field reference needs no
    rewriting: the documentation site writes it from :func:`reference_markdown` as it is
    built.)"""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    values = root / "helm" / "tycho-spawner" / "values.schema.json"
    schema = json.loads(values.read_text())
    schema["properties"]["catalog"] = chart_catalog_schema()
    values.write_text(json.dumps(schema, indent=2) + "\n")


if __name__ == "__main__":  # pragma: no cover
    main()
