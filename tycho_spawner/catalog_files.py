"""Reading the catalog's sources (the packaged built-in file, admin YAML files, config).

The I/O edge of the profiles layer: everything here reads files; :mod:`tycho_spawner.profiles`
does the merging rules and the validation.

The admin's ``catalog_files`` are watched, so that a catalog change (a ConfigMap mounted as a
directory, an edited file) reaches the form and the REST API without a hub restart: see
:class:`CatalogWatch`.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import yaml

from .errors import CatalogError, SpecError
from .profiles import Catalog, merge, parse_catalog

BUILTIN_CATALOG = Path(__file__).parent / "catalog" / "builtin.yaml"


#: Deeper than any catalog or values file has a reason to be; PyYAML and the merge recurse per
#: level, so a hostile file of thousands of nested brackets would otherwise end in a
#: RecursionError traceback.
MAX_YAML_DEPTH = 50
_TOO_DEEP = f"is nested too deeply (at most {MAX_YAML_DEPTH} levels)"


class YamlProblem(ValueError):
    """Why a YAML source cannot be used, in one line (the caller names the source)."""


def _one_line(err: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines with a source excerpt; keep the problem and where."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit`` (iteratively: no recursion to exhaust)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_yaml(text: str | bytes) -> Any:
    """One YAML document with safe types only (no ``!!python`` tags), nested at most
    ``MAX_YAML_DEPTH`` levels; anything else is a YamlProblem saying why in one line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            line = text.count(b"\n", 0, err.start) + 1
            raise YamlProblem(f"is not UTF-8 text (line {line}, byte {err.start + 1})") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise YamlProblem(_TOO_DEEP) from None
    except yaml.YAMLError as err:
        raise YamlProblem(f"is not valid YAML: {_one_line(err)}") from None
    if _depth_exceeds(data, MAX_YAML_DEPTH):
        raise YamlProblem(_TOO_DEEP)
    return data


def read_yaml_file(path: str | Path) -> Any:
    """The YAML document in the file at ``path`` (see :func:`parse_yaml`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise YamlProblem(f"cannot be read: {err.strerror}") from None
    return parse_yaml(raw)


def read_catalog_file(path: str | Path) -> dict:
    """The ``catalog`` map of a YAML file (a file may hold the map itself or ``catalog: {...}``)."""
    try:
        data = read_yaml_file(path)
    except YamlProblem as err:
        raise CatalogError(str(path), str(err)) from None
    return _catalog_map(path, data)


def _catalog_map(path: str | Path, data: Any) -> dict:
    """The catalog map in a catalog file's parsed YAML ``data`` (see :func:`read_catalog_file`)."""
    if data is None:
        return {}
    if isinstance(data, Mapping) and "catalog" in data:
        data = data["catalog"]
    if not isinstance(data, Mapping):
        raise CatalogError(str(path), "must hold a mapping of profiles (optionally under a 'catalog' key)")
    return dict(data)


def catalog_data(builtin: bool, files: Sequence[str], overrides: Mapping[str, Any]) -> dict:
    """The merged catalog map: built-in, then each file, then the config's own map."""
    data: dict = read_catalog_file(BUILTIN_CATALOG) if builtin else {}
    for path in files:
        data = merge(data, read_catalog_file(path))
    return merge(data, dict(overrides))


# ------------------------------------------------------------------------------ watched catalog

#: A logger or the adapter a traitlets application may use as its ``log``.
Logger = Union[logging.Logger, logging.LoggerAdapter]

#: How often, at most, one configuration's files are looked at (one ``stat`` each): the form,
#: its post and each start ask for the catalog, and a burst of starts must not stat the files
#: once per request. A change is seen within this long.
CHECK_INTERVAL = 1.0

#: A file modified less than this long before it was read could change again without its
#: ``stat`` changing (file system timestamps are coarser than nanoseconds, and an editor may
#: rewrite a file in place with the same size): it is read again at the next check and its
#: bytes compared, until it is older than this.
RACY_NS = 2_000_000_000

#: Configurations watched at once (one per distinct builtin/files/overrides; a hub has one).
MAX_CONFIGURATIONS = 16


def hub_log() -> Logger:
    """The logger JupyterHub logs to when this runs in a hub, else this module's.

    JupyterHub's log handlers sit on its application's own logger (named after its class,
    ``JupyterHub``; ``MockHub`` in tests), which does not propagate to the root logger: a plain
    module logger's records would never reach the hub's log. The application's logger is what
    a spawner's ``self.log`` is (traitlets' ``get_logger``); it is looked up without importing
    traitlets, so the command-line tools do not pay for it.
    """
    application = sys.modules.get("traitlets.config.application")
    app_class = getattr(application, "Application", None)
    if app_class is not None and app_class.initialized():
        return app_class.instance().log
    return logging.getLogger(__name__)


def _signature(st: os.stat_result) -> Optional[tuple]:
    """What tells a file's versions apart without reading it, or None when it was modified so
    recently that its next version might carry the same stat (see :data:`RACY_NS`).

    ``os.stat`` follows symlinks: a ConfigMap volume's file is a link through ``..data`` to a
    timestamped directory, and the kubelet's update swaps ``..data`` to a new directory, so the
    resolved file (device, inode, times) differs after each update.
    """
    if time.time_ns() - st.st_mtime_ns < RACY_NS:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_file(path: str) -> tuple[bytes, Optional[tuple]]:
    """A file's bytes and the signature of exactly the version read (``fstat`` of the open file,
    so a swap between a ``stat`` and the read is seen again at the next check)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        raw = f.read()
    return raw, _signature(st)


def _entries_changed(old: Catalog, new: Catalog) -> str:
    """What a reload changed, by entry key, for the one log line an admin reads."""
    before = {p.key: p for p in old.profiles}
    after = {p.key: p for p in new.profiles}
    changes = (
        ("added", sorted(after.keys() - before.keys())),
        ("removed", sorted(before.keys() - after.keys())),
        ("changed", sorted(k for k in after.keys() & before.keys() if after[k] != before[k])),
    )
    return "; ".join(f"{label} {', '.join(keys)}" for label, keys in changes if keys) or "no entry changed"


class CatalogWatch:
    """One catalog configuration (built-in or not, the files, the config's map), parsed, with
    its files re-read when they change: the catalog changes without a hub restart.

    The first load raises :class:`CatalogError` (a broken catalog stops the hub at start). After
    that, :meth:`catalog` looks at the files at most once per ``interval`` (one ``stat`` each,
    following symlinks), reads only the files whose stat changed, and parses again only if
    their bytes did. A new version that is invalid, or a file that cannot be read any more, is
    logged once and the last good catalog stays: users keep a working form, and ``tycho
    validate`` tells the admin the same error. The built-in catalog is part of the installed
    code: it is read once.
    """

    def __init__(
        self,
        builtin: bool,
        files: Sequence[str],
        overrides: Mapping[str, Any],
        *,
        interval: float = CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.files: tuple[str, ...] = tuple(str(f) for f in files)
        self.interval = interval
        self._clock = clock
        self._builtin: dict = read_catalog_file(BUILTIN_CATALOG) if builtin else {}
        self._overrides = copy.deepcopy(dict(overrides))
        self._raw: dict[str, bytes] = {}
        self._signatures: dict[str, Optional[tuple]] = {}
        for path in self.files:
            try:
                self._raw[path], self._signatures[path] = _read_file(path)
            except OSError as err:
                raise CatalogError(path, f"cannot be read: {err.strerror}") from None
        self._catalog = self._build()
        #: Files read since the last catalog was built (a new build is due once all are readable).
        self._pending: list[str] = []
        #: The last problem logged (so that each is logged once, not at every call).
        self._reported: Optional[tuple] = None
        self._lock = threading.Lock()
        self._next_check = clock() + interval

    @property
    def current(self) -> Catalog:
        """The catalog in use, without looking at the files."""
        return self._catalog

    def catalog(self, log: Optional[Logger] = None) -> Catalog:
        """The catalog, from the files as they are now (looked at once per ``interval`` at most).

        ``log`` is where a reload or a refused version is told (the spawner's ``self.log``);
        by default the hub's log (:func:`hub_log`).
        """
        if not self.files or self._clock() < self._next_check:
            return self._catalog
        with self._lock:
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + self.interval
                self._refresh(log if log is not None else hub_log())
        return self._catalog

    def _build(self) -> Catalog:
        data = self._builtin
        for path in self.files:
            try:
                parsed = parse_yaml(self._raw[path])
            except YamlProblem as err:
                raise CatalogError(path, str(err)) from None
            data = merge(data, _catalog_map(path, parsed))
        return parse_catalog(merge(data, self._overrides))

    def _report(self, key: tuple, log: Logger, level: int, message: str, *args: Any) -> None:
        if key != self._reported:
            self._reported = key
            log.log(level, message, *args)

    def _refresh(self, log: Logger) -> None:
        unreadable = []
        for path in self.files:
            try:
                if self._signatures[path] is not None and _signature(os.stat(path)) == self._signatures[path]:
                    continue
                raw, self._signatures[path] = _read_file(path)
            except OSError as err:
                self._signatures[path] = None  # read it again when it is back
                unreadable.append((path, err.strerror or str(err)))
                continue
            if raw != self._raw[path]:
                self._raw[path] = raw
                if path not in self._pending:
                    self._pending.append(path)
        if unreadable:
            self._report(
                ("unreadable", tuple(unreadable)), log, logging.WARNING,
                "catalog file %s; the last good catalog stays in use",
                "; ".join(f"{path} cannot be read ({why})" for path, why in unreadable),
            )
            return
        if not self._pending:
            if self._reported and self._reported[0] == "unreadable":
                self._reported = None
                log.info("catalog files readable again, their content unchanged: %s", ", ".join(self.files))
            return
        changed = ", ".join(self._pending)
        try:
            catalog = self._build()
        except SpecError as err:
            self._pending = []  # these bytes stay broken: parse again only when a file changes
            version = hashlib.sha256(b"\0".join(self._raw[p] for p in self.files)).hexdigest()
            self._report(
                ("invalid", version), log, logging.ERROR,
                "catalog not reloaded: %s changed and is invalid: %s; the last good catalog stays "
                "in use (`tycho validate` checks the files)",
                changed, err,
            )
            return
        except Exception as err:  # anything unforeseen: keep serving the last good catalog
            self._pending = []
            self._report(
                ("failed", type(err).__name__, str(err)), log, logging.ERROR,
                "catalog not reloaded: %s changed and reading it failed: %r; the last good "
                "catalog stays in use", changed, err,
            )
            return
        self._pending = []
        self._reported = None
        old, self._catalog = self._catalog, catalog
        log.info("catalog reloaded from %s: %s", changed, _entries_changed(old, catalog))


_WATCHES: "OrderedDict[tuple, CatalogWatch]" = OrderedDict()
_WATCHES_LOCK = threading.Lock()


def load_catalog(
    builtin: bool, files: Sequence[str], overrides: Mapping[str, Any], log: Optional[Logger] = None
) -> Catalog:
    """The catalog of one configuration, parsed once and then followed as its files change.

    The first call for a configuration reads and parses everything, raising
    :class:`CatalogError` for a broken catalog (nothing is kept, the next call tries again).
    Later calls return the same catalog until a file changes (see :class:`CatalogWatch`): a
    valid new version replaces it, an invalid one is logged to ``log`` (by default the hub's
    log) and the last good catalog stays.
    """
    key = (bool(builtin), tuple(str(f) for f in files), json.dumps(overrides))
    with _WATCHES_LOCK:
        watch = _WATCHES.get(key)
        if watch is not None:
            _WATCHES.move_to_end(key)
    if watch is not None:
        return watch.catalog(log)
    watch = CatalogWatch(key[0], key[1], json.loads(key[2]))
    with _WATCHES_LOCK:
        _WATCHES[key] = watch
        while len(_WATCHES) > MAX_CONFIGURATIONS:
            _WATCHES.popitem(last=False)
    return watch.current
