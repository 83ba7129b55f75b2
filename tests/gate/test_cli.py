"""tycho-gate's command line: clear refusals, documented options."""
import os
import shutil
import subprocess

import pytest

GATE = shutil.which("tycho-gate")
HUB_ENV = {
    "JUPYTERHUB_API_TOKEN": "t",
    "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
    "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
    "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:0/user/alice/",
    "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
}


def run(*args, env=None, timeout=30):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    clean.update(env or {})
    return subprocess.run([GATE, *args], env=clean, capture_output=True, text=True, timeout=timeout)


def test_help_documents_every_option():
    out = run("--help").stdout
    for option in ("--upstream", "--keep-prefix", "--ip", "--port", "--activity-interval", "--ready-timeout"):
        assert option in out


def test_without_the_hub_environment_it_says_what_is_missing():
    r = run("--upstream", "http://127.0.0.1:1")
    assert r.returncode == 2
    assert "JUPYTERHUB_API_TOKEN, JUPYTERHUB_CLIENT_ID, JUPYTERHUB_SERVICE_PREFIX not set" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "--upstream is required"),
        (("--upstream", "https://127.0.0.1:1"), "use http://HOST:PORT or unix:"),
        (("--upstream", "http://127.0.0.1:1/app", "--keep-prefix"), "drop the path from --upstream"),
    ],
)
def test_bad_options_are_refused(args, message):
    r = run(*args, env=HUB_ENV)
    assert r.returncode == 2 and message in r.stderr


def test_an_app_that_never_answers_fails_after_the_ready_timeout():
    r = run("--upstream", "http://127.0.0.1:9", "--ready-timeout", "1", env=HUB_ENV)
    assert r.returncode == 1
    assert "did not answer within 1 s" in r.stderr
