"""tycho-gate says which tornado it needs instead of failing on the first cross-site check.

The spawner runs in hub images (zero-to-jupyterhub 4.4.0's has tornado 6.5.7); the gate runs
in its own image with the `gate` extra. Started where tornado is too old, it exits at once.
"""
from __future__ import annotations

import pytest
import tornado

from tycho_spawner.gate import app


def test_the_gate_refuses_to_start_on_an_older_tornado(monkeypatch, capsys):
    monkeypatch.setattr(tornado, "version_info", (6, 5, 7, 0))
    monkeypatch.setattr(tornado, "version", "6.5.7")
    with pytest.raises(SystemExit) as stop:
        app.main(["--help"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "needs tornado >= 6.6" in err and "6.5.7" in err and "tycho-spawner[gate]" in err
