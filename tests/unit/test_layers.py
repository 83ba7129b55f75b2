"""The pure core stays pure: import-linter's contracts in `.importlinter` hold.

`lint-imports` (import-linter, a test dependency) runs in a subprocess against the repository's
`.importlinter`, exactly as a developer or CI runs it. Forbidden contracts can only list what
is forbidden, so a second check (grimp, import-linter's own graph library) states the rule
positively: everything the core modules import, directly or indirectly, is the standard library
or an allowed module, so a new sibling module or a new dependency cannot slip in unnoticed.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"

CONTRACTS = [
    "tycho_spawner.model imports only schema, checks, errors and the stdlib",
    "tycho_spawner.profiles imports only model, schema, checks and errors",
    "tycho_spawner.render imports only model, profiles, errors, jinja2 and yaml",
    "tycho_spawner.podstatus imports no hub, spawner or Kubernetes client",
    "The pure core is layered: render above profiles above model above errors",
    "tycho-gate's header, path and cookie rules import no network or hub code",
    "import_profiles imports only profiles, model, errors and slugify",
    "tycho_spawner.site_settings imports nothing but the standard library",
    "The catalog's definition (schema, checks) stands on errors alone",
    "tycho_spawner.catalog_images imports only profiles, model and errors",
]

#: What each core module may import (besides the standard library), directly or not.
#: The catalog's definition (schema: pydantic models) and the single-value checks it shares
#: with the model: below the model in the layers.
_SCHEMA = {"tycho_spawner.schema", "tycho_spawner.checks", "pydantic", "pydantic_core"}
ALLOWED = {
    "tycho_spawner.errors": set(),
    "tycho_spawner.checks": {"tycho_spawner.errors"},
    "tycho_spawner.schema": {"tycho_spawner.checks", "tycho_spawner.errors", "pydantic", "pydantic_core"},
    "tycho_spawner.model": {"tycho_spawner.errors"} | _SCHEMA,
    "tycho_spawner.profiles": {"tycho_spawner.model", "tycho_spawner.errors"} | _SCHEMA,
    "tycho_spawner.render": {
        "tycho_spawner.model",
        "tycho_spawner.profiles",
        "tycho_spawner.errors",
        "jinja2",
        "yaml",
    } | _SCHEMA,
    "tycho_spawner.podstatus": set(),
    "tycho_spawner.import_profiles": {
        "tycho_spawner.profiles",
        "tycho_spawner.model",
        "tycho_spawner.errors",
        "slugify",
    } | _SCHEMA,
    "tycho_spawner.site_settings": set(),
    "tycho_spawner.catalog_images": {"tycho_spawner.profiles", "tycho_spawner.model", "tycho_spawner.errors"} | _SCHEMA,
}
HUB_AND_CLUSTER = {"jupyterhub", "kubespawner", "kubernetes_asyncio", "kubernetes", "tornado", "traitlets"}


def test_lint_imports_passes():
    lint = shutil.which("lint-imports")
    assert lint, "lint-imports is not installed (pip install import-linter==2.16)"
    assert CONFIG.exists()
    result = subprocess.run(
        [lint, "--config", str(CONFIG), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in output
    # every contract this test knows about is in the file and kept (none silently dropped);
    # long names are printed without a space before KEPT, so compare without spaces
    squashed = output.replace(" ", "")
    for name in CONTRACTS:
        assert (name + "KEPT").replace(" ", "") in squashed, name


@lru_cache(maxsize=1)
def graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("tycho_spawner", include_external_packages=True, cache_dir=None)


def top_level(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_core_modules_import_only_the_stdlib_and_what_is_allowed(module):
    upstream = graph().find_upstream_modules(module)
    stdlib = set(sys.stdlib_module_names)
    unexpected = sorted(
        m
        for m in upstream
        if m not in ALLOWED[module] and top_level(m) not in stdlib and m != "tycho_spawner"
    )
    assert unexpected == [], f"{module} imports {unexpected}"


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_core_modules_do_not_reach_the_hub_or_the_cluster(module):
    reached = {top_level(m) for m in graph().find_upstream_modules(module)}
    assert not reached & HUB_AND_CLUSTER


def test_core_modules_import_without_the_hub():
    """Importing the core (and the `tycho` command's module) loads no hub or cluster client."""
    code = (
        "import sys\n"
        "import tycho_spawner.model, tycho_spawner.profiles, tycho_spawner.render, "
        "tycho_spawner.podstatus, tycho_spawner.form, tycho_spawner.cli\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HUB_AND_CLUSTER)!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
