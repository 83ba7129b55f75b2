"""The `tycho` command, both through the installed entry point (subprocess) and `cli.main`.

Only the subprocess tests prove the console script is installed and wired; the in-process tests
cover the same behaviour quickly and report exact exit codes and streams.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from tycho_spawner import cli
from tycho_spawner.catalog_files import catalog_data
from tycho_spawner.profiles import parse_catalog

GOLDEN_DIR = Path(__file__).parent / "golden"
# The `tycho` of the environment running the tests (beside its interpreter), not whichever
# comes first on PATH: CI runs this file in two environments.
TYCHO = shutil.which("tycho", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))

GOOD = textwrap.dedent(
    """\
    catalog:
      scipy:
        display_name: SciPy (site build)
      nginx:
        disabled: true
      whoami:
        display_name: Who am I
        description: A tiny HTTP echo service.
        system:
          auth: gate
          serve: {container: whoami, port: 8000}
          containers:
            whoami:
              image: docker.io/traefik/whoami:v1.10.3
              args: ["--port", "8000"]
              ports: {http: 8000}
              limits: {cpu: 100m, memory: 64Mi}
    """
)

BAD = textwrap.dedent(
    """\
    catalog:
      scipy:
        system:
          containers:
            notebook:
              limits: {memory: 2GG}
    """
)

BAD_KEY = "catalog.scipy.system.containers.notebook.limits.memory"


@lru_cache(maxsize=1)
def builtin_keys() -> list[str]:
    return [p.key for p in parse_catalog(catalog_data(True, [], {})).profiles]


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def good_file(tmp_path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    return path


@pytest.fixture
def bad_file(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def notebook_resources(docs: list[dict]) -> dict:
    (notebook,) = [c for c in docs[0]["spec"]["containers"] if c["name"] == "notebook"]
    return notebook["resources"]


# --------------------------------------------------------------------------- through the entry point

ENTRY_POINT_RUNS = {
    "catalog": ("catalog",),
    "scipy-large": ("render", "scipy", "--set", "size=large"),
    "rstudio-alice": ("render", "rstudio", "--user", "alice"),
    "unknown-profile": ("render", "nope"),
    "unknown-option": ("render", "scipy", "--set", "size=huge"),
    "unknown-choice": ("render", "scipy", "--set", "colour=red"),
    "validate-good": ("validate", "{good}"),
    "validate-bad": ("validate", "{bad}"),
}


@pytest.fixture(scope="module")
def entry_point(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every `tycho ...` command of this module at once (each start imports KubeSpawner)."""
    assert TYCHO, "the `tycho` console script is not on PATH (pip install -e .)"
    directory = tmp_path_factory.mktemp("entry-point")
    files = {"good": directory / "good.yaml", "bad": directory / "bad.yaml"}
    files["good"].write_text(GOOD)
    files["bad"].write_text(BAD)
    procs = {
        name: subprocess.Popen(
            [TYCHO, *(arg.format(**files) for arg in args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in ENTRY_POINT_RUNS.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    results["files"] = files  # type: ignore[assignment]
    return results


def test_entry_point_catalog_lists_every_profile(entry_point):
    result = entry_point["catalog"]
    assert result.returncode == 0, result.stderr
    listed = [line.split(":")[0].split(" ")[0] for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert listed == builtin_keys()
    assert "base (default): Jupyter Base" in result.stdout
    assert "    size: small*, medium, large" in result.stdout


def test_entry_point_render_scipy_large(entry_point):
    result = entry_point["scipy-large"]
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["Pod", "NetworkPolicy"]
    assert result.stdout.count("\n---\n") == 1 and result.stdout.startswith("---\n")
    assert notebook_resources(docs)["limits"] == {"cpu": "4", "memory": "16Gi"}
    assert docs[0]["metadata"]["name"] == "jupyter-jovyan"


def test_entry_point_render_matches_the_golden_file(entry_point):
    result = entry_point["rstudio-alice"]
    assert result.returncode == 0, result.stderr
    assert result.stdout == (GOLDEN_DIR / "rstudio.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "run, message",
    [
        ("unknown-profile", "unknown application 'nope'"),
        ("unknown-option", "'huge' is not offered for Size of Jupyter SciPy"),
        ("unknown-choice", "has no choice 'colour'"),
    ],
)
def test_entry_point_render_errors(entry_point, run, message):
    result = entry_point[run]
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("tycho: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_entry_point_validate(entry_point):
    good_file, bad_file = entry_point["files"]["good"], entry_point["files"]["bad"]
    good = entry_point["validate-good"]
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == f"{good_file}: ok ({len(builtin_keys())} applications)"
    bad = entry_point["validate-bad"]
    assert bad.returncode == 1
    assert f"{bad_file}: invalid: {BAD_KEY}: '2GG' is not a Kubernetes quantity" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_module_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "-m", "tycho_spawner.cli", "catalog", "--no-builtin", "--catalog", "/nonexistent.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "/nonexistent.yaml: cannot be read" in result.stderr


# --------------------------------------------------------------------------- in process


def test_catalog_lists_every_profile_and_choice(capsys):
    code, out, err = run_main(capsys, "catalog")
    assert code == 0 and err == ""
    for key in builtin_keys():
        assert any(line.startswith(f"{key}") for line in out.splitlines()), key
    assert out.count("    ui: lab*, classic") == 6
    assert "rstudio: RStudio" in out and "nginx: nginx" in out


def test_catalog_with_an_admin_file(capsys, good_file):
    code, out, _ = run_main(capsys, "catalog", "--catalog", str(good_file))
    assert code == 0
    assert "whoami: Who am I - A tiny HTTP echo service." in out
    assert "scipy: SciPy (site build)" in out
    assert not any(line.startswith("nginx") for line in out.splitlines())
    code, out, _ = run_main(capsys, "catalog", "--no-builtin", "--catalog", str(good_file))
    assert code == 1, "scipy alone (a display name) is not a profile"


def test_render_scipy_large(capsys):
    code, out, err = run_main(capsys, "render", "scipy", "--set", "size=large")
    assert code == 0 and err == ""
    docs = list(yaml.safe_load_all(out))
    assert len(docs) == 2
    assert notebook_resources(docs) == {
        "limits": {"cpu": "4", "memory": "16Gi"},
        "requests": {"cpu": "1", "memory": "8Gi"},
    }


@pytest.mark.parametrize("key", ["base", "minimal", "scipy", "datascience", "r", "pyspark", "rstudio", "nginx"])
def test_render_every_builtin_profile(capsys, key):
    code, out, err = run_main(capsys, "render", key, "--user", "alice")
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Pod", "NetworkPolicy"]
    assert docs[0]["metadata"]["labels"]["tycho-spawner/profile"] == key


def test_render_every_profile_of_the_catalog_command(capsys):
    for key in builtin_keys():
        assert run_main(capsys, "render", key)[0] == 0, key


def test_render_named_server_namespace_and_user(capsys):
    code, out, _ = run_main(capsys, "render", "rstudio", "--user", "Alice", "--server", "my-r", "--namespace", "jhub")
    assert code == 0
    pod, policy = yaml.safe_load_all(out)
    assert pod["metadata"]["name"].startswith("jupyter-alice---") and pod["metadata"]["name"].endswith("--my-r")
    assert {o["metadata"]["namespace"] for o in (pod, policy)} == {"jhub"}
    assert pod["metadata"]["annotations"] == {"hub.jupyter.org/username": "Alice", "hub.jupyter.org/servername": "my-r"}


def test_render_dotted_set_overrides_the_catalog_entry(capsys):
    code, out, _ = run_main(
        capsys,
        "render", "scipy",
        "--set", "system.containers.notebook.image=registry.local/scipy:1",
        "--set", "system.containers.notebook.env.EXTRA=42",
        "--set", "size=medium",
    )
    assert code == 0
    (notebook,) = next(yaml.safe_load_all(out))["spec"]["containers"]
    assert notebook["image"] == "registry.local/scipy:1"
    assert {"name": "EXTRA", "value": "42"} in notebook["env"]
    assert notebook["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}


def test_render_with_an_admin_catalog_and_templates(capsys, good_file, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "networkpolicy.yaml.j2").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: {{ server.name }}, labels: {site: custom}}\n"
        "spec: {podSelector: {matchLabels: {{ selector }}}, ingress: [{ports: [{port: {{ port }}}]}]}\n"
    )
    code, out, err = run_main(capsys, "render", "whoami", "--catalog", str(good_file), "--templates", str(templates))
    assert code == 0, err
    pod, policy = yaml.safe_load_all(out)
    assert policy["metadata"]["labels"] == {"site": "custom"}
    assert [c["name"] for c in pod["spec"]["containers"]] == ["gate", "whoami"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("render", "nope"), "tycho: unknown application 'nope'; offered: base, minimal"),
        (("render", "Scipy"), "unknown application 'Scipy'"),
        (("render", "scipy", "--set", "size=huge"), "'huge' is not offered for Size of Jupyter SciPy (offered: small, medium, large)"),
        (("render", "nginx", "--set", "size=large"), "nginx has no choice 'size' (choices: none)"),
        (("render", "scipy", "--set", "size"), "--set 'size': expected KEY=VALUE"),
        (("render", "scipy", "--set", "=x"), "expected KEY=VALUE"),
        (("render", "scipy", "--set", "system.containers.notebook.limits.memory=2GG"), "'2GG' is not a Kubernetes quantity"),
    ],
)
def test_render_errors_exit_1_with_a_message_on_stderr(capsys, args, message):
    code, out, err = run_main(capsys, *args)
    assert code == 1
    assert out == ""
    assert message in err


def test_render_template_error_exits_1(capsys, tmp_path):
    (tmp_path / "pod.yaml.j2").write_text("containers: {{ missing_value }}\n")
    code, out, err = run_main(capsys, "render", "base", "--templates", str(tmp_path))
    assert code == 1 and out == ""
    assert "missing_value" in err


def test_validate_good_and_bad(capsys, good_file, bad_file):
    code, out, err = run_main(capsys, "validate", str(good_file))
    assert (code, err) == (0, "")
    assert out == f"{good_file}: ok ({len(builtin_keys())} applications)\n"
    code, out, err = run_main(capsys, "validate", str(bad_file))
    assert code == 1 and out == ""
    assert err == f"{bad_file}: invalid: {BAD_KEY}: '2GG' is not a Kubernetes quantity\n"


def test_validate_several_files_reports_each(capsys, good_file, bad_file):
    code, out, err = run_main(capsys, "validate", str(good_file), str(bad_file))
    assert code == 1
    assert f"{good_file}: ok" in out
    assert f"{bad_file}: invalid: {BAD_KEY}" in err


def test_validate_alone_checks_the_file_by_itself(capsys, good_file, tmp_path):
    code, _, err = run_main(capsys, "validate", "--alone", str(good_file))
    assert code == 1
    assert "catalog.scipy.system: is required" in err
    alone = tmp_path / "alone.yaml"
    alone.write_text(GOOD.replace("  scipy:\n    display_name: SciPy (site build)\n", ""))
    code, out, _ = run_main(capsys, "validate", "--alone", str(alone))
    assert code == 0 and "ok (1 applications)" in out


@pytest.mark.parametrize(
    "text, key",
    [
        ("scipy:\n  displayname: typo\n", "catalog.scipy.displayname: unknown key"),
        ("scipy:\n  choices:\n    size:\n      default: huge\n", "catalog.scipy.choices.size.default: 'huge' is not one of the options"),
        ("base:\n  default: true\nscipy:\n  default: true\n", "more than one profile is marked default: base, scipy"),
        ("Bad_Key:\n  system: {}\n", "catalog.Bad_Key:"),
        ("scipy:\n  system:\n    security: {run_as_user: 0}\n", "catalog.scipy.system.security.run_as_user: apps run as non-root"),
        ("scipy: [unclosed\n", "is not valid YAML"),
        # issue 13's fields: each error names its exact key
        ("scipy:\n  access: {group: [staff]}\n", "catalog.scipy.access.group: unknown key (expected one of: groups, users)"),
        ("scipy:\n  access: {groups: staff}\n", "catalog.scipy.access.groups: expected a list, got str"),
        ("scipy:\n  choices:\n    image: {kind: image, pattern: '(', default: x}\n",
         "catalog.scipy.choices.image.pattern: '(' is not a regular expression"),
        ("scipy:\n  choices:\n    image: {kind: image, pattern: 'quay.io/.*', default: 'docker.io/x:1'}\n",
         "catalog.scipy.choices.image.default: 'docker.io/x:1' does not match the pattern"),
        ("scipy:\n  system:\n    scheduling: {tolerations: [{key: gpu, operator: Sometimes}]}\n",
         "catalog.scipy.system.scheduling.tolerations[0].operator: 'Sometimes' is not one of: Exists, Equal"),
        ("scipy:\n  system:\n    scheduling: {priority_class: High}\n",
         "catalog.scipy.system.scheduling.priority_class: 'High' is not a priority class name"),
        ("scipy:\n  system:\n    containers:\n      notebook:\n        limits: {gpus: {count: 1, resource: gpu}}\n",
         "catalog.scipy.system.containers.notebook.limits.gpus.resource: 'gpu' is not an extended resource name"),
        ("scipy:\n  system:\n    containers:\n      notebook:\n        env: {DB: {secret: db}}\n",
         "catalog.scipy.system.containers.notebook.env.DB.key: is required"),
        ("scipy:\n  system:\n    volumes: {data: {claim: Shared_Data}}\n",
         "catalog.scipy.system.volumes.data.claim: 'Shared_Data' is not a claim name"),
        ("- a list\n", "must hold a mapping of profiles"),
    ],
)
def test_validate_names_the_bad_key(capsys, tmp_path, text, key):
    path = tmp_path / "admin.yaml"
    path.write_text(text)
    code, out, err = run_main(capsys, "validate", str(path))
    assert code == 1 and out == ""
    assert key in err


def test_validate_missing_file(capsys, tmp_path):
    code, _, err = run_main(capsys, "validate", str(tmp_path / "missing.yaml"))
    assert code == 1 and "cannot be read" in err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[" * 5000, "is nested too deeply (at most 50 levels)"),
        (b"[" * 60 + b"]" * 60, "is nested too deeply (at most 50 levels)"),
        (b"scipy:\n  display_name: \xff\n", "is not UTF-8 text (line 2, byte 24)"),
        (b"scipy: !!python/object/apply:os.getcwd []\n", "could not determine a constructor for the tag"),
    ],
)
def test_validate_refuses_hostile_files_in_one_line(capsys, tmp_path, content, message):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    code, out, err = run_main(capsys, "validate", str(path))
    assert code == 1 and out == ""
    assert err == f"{path}: invalid: {err.split(': invalid: ', 1)[1]}"
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and len(err) < 300


def test_import_profiles_refuses_hostile_files_in_one_line(capsys, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_bytes(b"[" * 5000)
    code, out, err = run_main(capsys, "import-profiles", str(path))
    assert (code, out) == (1, "")
    assert "is nested too deeply" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "value, message",
    [
        ("!!python/object/apply:os.getcwd []", "--set system.containers.nginx.image: the value is not valid YAML: "
                                               "could not determine a constructor for the tag"),
        ("[" * 5000, "--set system.containers.nginx.image: the value is nested too deeply"),
        ("[unclosed", "--set system.containers.nginx.image: the value is not valid YAML"),
    ],
)
def test_render_set_values_are_safe_yaml_or_a_message(capsys, value, message):
    code, out, err = run_main(capsys, "render", "nginx", "--set", f"system.containers.nginx.image={value}")
    assert (code, out) == (1, "")
    assert err.startswith(f"tycho: {message}") and len(err.splitlines()) == 1


def test_validate_yaml_date_value_names_the_key(capsys, tmp_path):
    path = tmp_path / "dated.yaml"
    path.write_text("scipy:\n  system:\n    containers:\n      notebook:\n        env: {RELEASED: 2024-01-01}\n")
    code, _, err = run_main(capsys, "validate", str(path))
    assert code == 1
    assert "catalog.scipy.system.containers.notebook.env.RELEASED" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["render"])
    assert info.value.code == 2


# --- the API client's kept login (tycho login; the commands against a hub: tests/api/test_cli.py)


def test_a_kept_login_is_owner_only_under_xdg_config_home_and_the_environment_overrides_it(tmp_path):
    import stat

    from tycho_spawner.api.client import ClientError, Login, load_login, save_login

    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    with pytest.raises(ClientError, match="tycho login --hub"):
        load_login(env)
    path = save_login(Login("https://hub.example.org", "secret"), env)
    assert path == tmp_path / "xdg" / "tycho" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_login(env) == Login("https://hub.example.org", "secret")
    assert load_login({**env, "TYCHO_TOKEN": "other", "TYCHO_HUB": "http://127.0.0.1:8000/hub/"}) == \
        Login("http://127.0.0.1:8000", "other")
    # Without XDG_CONFIG_HOME: ~/.config/tycho.
    from tycho_spawner.api.client import config_dir

    assert config_dir({}) == Path(os.path.expanduser("~")) / ".config" / "tycho"


def test_a_launch_takes_choices_only_and_a_bad_hub_address_is_named(capsys):
    assert cli.main(["launch", "echo", "--set", "system.containers.app.image=x"]) == 1
    assert "CHOICE=OPTION only" in capsys.readouterr().err
    assert cli.main(["login", "--hub", "hub.example.org", "--token", "t"]) == 1
    assert "--hub 'hub.example.org'" in capsys.readouterr().err


def test_validate_files_have_help():
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices["validate"]
    (files,) = [a for a in sub._actions if a.dest == "files"]
    assert "merged in order over the built-in catalog" in files.help
