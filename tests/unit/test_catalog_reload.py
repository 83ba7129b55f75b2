"""Catalog changes without a hub restart: `catalog_files` are followed as they change.

What an admin sees: an edited catalog file is what the next form and start use; a broken edit
is refused with one log line naming the key, and users keep the last good catalog; a fixed edit
is used again; a file that disappears leaves the last good catalog in use. Files are looked at
once per interval at most, so a burst of starts costs no more than one stat per file.

Real files in a temporary directory, and the kubelet's ConfigMap volume layout written by the
test bed's own atomic writer (the one its node agent mounts ConfigMaps with). The clock is the
one thing passed in, so that "a second later" needs no sleeping.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from tycho_testbed.volumes import write_atomic_payload

from tycho_spawner import catalog_files
from tycho_spawner.catalog_files import CatalogWatch, hub_log, load_catalog
from tycho_spawner.errors import CatalogError

LOGGER = "test_catalog_reload"


def entry(name: str, memory: str = "1Gi") -> str:
    """One catalog entry in YAML, a small web app (what an admin adds to the built-in ones)."""
    return (
        f"{name}:\n"
        f"  display_name: {name.title()} app\n"
        "  system:\n"
        "    serve: {container: app, port: 8080}\n"
        "    home: false\n"
        "    containers:\n"
        "      app:\n"
        "        image: docker.io/library/nginx:1.28.0\n"
        "        ports: {http: 8080}\n"
        f"        limits: {{memory: {memory}}}\n"
    )


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 1.0) -> None:
        self.now += seconds


def keys(catalog) -> set[str]:
    return {p.key for p in catalog.profiles}


def messages(caplog) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    return logging.getLogger(LOGGER)


@pytest.fixture
def clock():
    return Clock()


def test_an_edited_file_is_the_next_catalog_and_the_change_is_logged_once(tmp_path, clock, log, caplog):
    path = tmp_path / "catalog.yaml"
    path.write_text(entry("web"))
    watch = CatalogWatch(True, [str(path)], {}, clock=clock)
    assert "web" in keys(watch.catalog(log)) and "shop" not in keys(watch.catalog(log))

    path.write_text(entry("shop") + entry("web", memory="2Gi"))
    clock.advance()
    catalog = watch.catalog(log)
    assert {"web", "shop"} <= keys(catalog)
    assert catalog.get("shop").display_name == "Shop app"
    assert catalog.get("web").system({}).served.limits.memory == "2Gi"
    assert messages(caplog) == [(logging.INFO, f"catalog reloaded from {path}: added shop; changed web")]

    # Nothing changed since: no re-parse, no new line, the same catalog object.
    for _ in range(3):
        clock.advance()
        assert watch.catalog(log) is catalog
    assert len(messages(caplog)) == 1

    path.write_text(entry("shop"))
    clock.advance()
    assert "web" not in keys(watch.catalog(log))
    assert messages(caplog)[-1] == (logging.INFO, f"catalog reloaded from {path}: removed web")


def age(path: Path, seconds: float = 10.0) -> None:
    """Date a file's modification back, as for a file written a while ago (one written just now
    is read again at the next check whatever its stat says: its timestamp may not move on the
    next write)."""
    then = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(then, then))


def test_files_are_looked_at_once_per_interval_however_many_calls(tmp_path, clock, log, monkeypatch):
    files = [tmp_path / f"c{i}.yaml" for i in range(3)]
    for i, path in enumerate(files):
        path.write_text(entry(f"app{i}"))
        age(path)
    watch = CatalogWatch(True, [str(p) for p in files], {}, clock=clock)
    stats, reads = [], []
    real_stat, real_read = os.stat, catalog_files._read_file
    monkeypatch.setattr(catalog_files.os, "stat", lambda p, *a, **k: stats.append(p) or real_stat(p, *a, **k))
    monkeypatch.setattr(catalog_files, "_read_file", lambda p: reads.append(p) or real_read(p))

    files[0].write_text(entry("app9"))
    age(files[0], 5)
    for _ in range(50):  # a burst of 50 form views and starts within one interval
        assert "app9" not in keys(watch.catalog(log))
    assert stats == reads == []
    clock.advance(0.99)
    watch.catalog(log)
    assert stats == reads == []
    clock.advance(0.01)
    for _ in range(50):
        assert "app9" in keys(watch.catalog(log))
    # one stat per file for the 50 calls, and only the changed file read
    assert sorted(stats) == sorted(str(p) for p in files)
    assert reads == [str(files[0])]
    clock.advance()
    watch.catalog(log)
    assert len(stats) == 6 and len(reads) == 1


def test_a_broken_edit_keeps_the_last_good_catalog_and_is_logged_once_naming_the_key(tmp_path, clock, log, caplog):
    path = tmp_path / "catalog.yaml"
    path.write_text(entry("web"))
    watch = CatalogWatch(True, [str(path)], {}, clock=clock)
    good = watch.catalog(log)

    path.write_text(entry("web") + entry("shop", memory="2GG"))
    for _ in range(5):
        clock.advance()
        assert watch.catalog(log) is good
    logged = messages(caplog)
    assert len(logged) == 1, logged
    level, text = logged[0]
    assert level == logging.ERROR
    assert f"catalog not reloaded: {path} changed and is invalid: catalog.shop.system.containers.app.limits.memory:" in text
    assert "'2GG'" in text and "the last good catalog stays in use" in text

    # Another broken version is a new line; the same one again is not.
    path.write_text(entry("web") + entry("shop", memory="3GG"))
    clock.advance()
    assert watch.catalog(log) is good
    path.write_text(entry("web") + entry("shop", memory="3GG"))
    clock.advance()
    watch.catalog(log)
    assert [t for _, t in messages(caplog)][1:] == [messages(caplog)[1][1]]
    assert "'3GG'" in messages(caplog)[1][1]

    # Not YAML at all: named by file, as `tycho validate` names it.
    path.write_text("web: [unclosed\n")
    clock.advance()
    assert watch.catalog(log) is good
    assert messages(caplog)[-1][1].startswith(f"catalog not reloaded: {path} changed and is invalid: {path}: is not valid YAML")

    # Fixed: used at once, and the reload says what differs from the last good catalog.
    path.write_text(entry("web") + entry("shop"))
    clock.advance()
    assert "shop" in keys(watch.catalog(log))
    assert messages(caplog)[-1] == (logging.INFO, f"catalog reloaded from {path}: added shop")
    assert len(messages(caplog)) == 4


def test_a_file_that_disappears_keeps_the_last_good_catalog(tmp_path, clock, log, caplog):
    path = tmp_path / "catalog.yaml"
    path.write_text(entry("web"))
    watch = CatalogWatch(True, [str(path)], {}, clock=clock)
    good = watch.catalog(log)

    path.unlink()
    for _ in range(3):
        clock.advance()
        assert watch.catalog(log) is good
    assert messages(caplog) == [
        (logging.WARNING, f"catalog file {path} cannot be read (No such file or directory); "
                          "the last good catalog stays in use")
    ]
    path.write_text(entry("web"))
    clock.advance()
    assert watch.catalog(log) is good
    assert messages(caplog)[-1] == (logging.INFO, f"catalog files readable again, their content unchanged: {path}")

    path.unlink()
    clock.advance()
    watch.catalog(log)
    path.write_text(entry("web") + entry("shop"))
    clock.advance()
    assert "shop" in keys(watch.catalog(log))
    assert messages(caplog)[-1] == (logging.INFO, f"catalog reloaded from {path}: added shop")


def test_a_configmap_volume_update_is_followed(tmp_path, clock, log, caplog):
    """The kubelet updates a ConfigMap volume by writing a new timestamped directory and
    swapping the ``..data`` link; the file a hub is configured with is a link through it."""
    volume = tmp_path / "catalog"
    volume.mkdir()
    write_atomic_payload(volume, {"catalog.yaml": (entry("web").encode(), 0o644)})
    path = volume / "catalog.yaml"
    assert path.is_symlink()
    watch = CatalogWatch(False, [str(path)], {}, clock=clock)
    assert keys(watch.catalog(log)) == {"web"}

    # Same size, same second: only the swapped link tells the versions apart.
    write_atomic_payload(volume, {"catalog.yaml": (entry("bee").encode(), 0o644)})
    clock.advance()
    assert keys(watch.catalog(log)) == {"bee"}
    assert messages(caplog) == [(logging.INFO, f"catalog reloaded from {path}: added bee; removed web")]


def test_the_config_map_and_file_order_still_apply_on_reload(tmp_path, clock, log):
    first = tmp_path / "first.yaml"
    second = tmp_path / "second.yaml"
    first.write_text(entry("web"))
    second.write_text("web: {description: From second}\n")
    watch = CatalogWatch(True, [str(first), str(second)], {"web": {"display_name": "Config"}}, clock=clock)
    first.write_text(entry("web") + "  description: From first\n" + entry("shop"))
    clock.advance()
    catalog = watch.catalog(log)
    web = catalog.get("web")
    assert (web.display_name, web.description) == ("Config", "From second")
    assert catalog.get("shop") is not None and catalog.get("scipy") is not None


def test_the_first_load_of_a_broken_catalog_still_raises(tmp_path):
    """At hub start a broken catalog stops the hub: there is no last good catalog to keep."""
    path = tmp_path / "catalog.yaml"
    path.write_text(entry("web", memory="2GG"))
    with pytest.raises(CatalogError) as info:
        load_catalog(True, [str(path)], {})
    assert info.value.path == "catalog.web.system.containers.app.limits.memory"
    with pytest.raises(CatalogError) as info:
        load_catalog(True, [str(tmp_path / "missing.yaml")], {})
    assert "cannot be read" in str(info.value)
    path.write_text(entry("web"))  # nothing broken was kept: the next call loads it
    assert "web" in keys(load_catalog(True, [str(path)], {}))


def test_load_catalog_follows_the_files_of_its_configuration(tmp_path, log, caplog):
    path = tmp_path / "catalog.yaml"
    path.write_text(entry("web"))
    first = load_catalog(True, [str(path)], {}, log=log)
    assert load_catalog(True, [str(path)], {}, log=log) is first
    path.write_text(entry("web") + entry("shop"))
    time.sleep(catalog_files.CHECK_INTERVAL)
    assert "shop" in keys(load_catalog(True, [str(path)], {}, log=log))
    assert messages(caplog) == [(logging.INFO, f"catalog reloaded from {path}: added shop")]


def test_without_a_logger_the_reload_is_told_to_the_running_applications_log(tmp_path, clock, caplog):
    """In a hub, JupyterHub's log is its application's logger (which does not propagate to a
    module logger's handlers): that is where a reload is told when no logger is passed.

    A session that runs the hub tests first has their MockHub as the application: it is used
    as it is; otherwise this test makes one."""
    from traitlets.config import Application

    class Hub(Application):
        pass

    existing = Application.initialized()
    app = Application.instance() if existing else Hub.instance()
    propagate = app.log.propagate
    try:
        app.log.propagate = True  # so that pytest sees it
        caplog.set_level(logging.INFO, logger=app.log.name)
        assert hub_log() is app.log
        path = tmp_path / "catalog.yaml"
        path.write_text(entry("web"))
        watch = CatalogWatch(True, [str(path)], {}, clock=clock)
        path.write_text(entry("web") + entry("shop"))
        clock.advance()
        watch.catalog()
        assert [(r.name, r.getMessage()) for r in caplog.records if r.getMessage().startswith("catalog ")] == [
            (app.log.name, f"catalog reloaded from {path}: added shop")
        ]
    finally:
        app.log.propagate = propagate
        if not existing:
            Hub.clear_instance()
    if not existing:
        assert hub_log() is logging.getLogger("tycho_spawner.catalog_files")
