"""A site's KubeSpawner settings that catalog entries replace are named, with what replaces them.

The config here is what zero-to-jupyterhub 4.4.0's hub configuration sets from its default
values (singleuser.image, cmd, uid, fsGid, memory.guarantee, allowPrivilegeEscalation...).
"""
from __future__ import annotations

from traitlets.config import Config

from tycho_spawner.site_settings import replaced_settings


def z2jh_defaults() -> Config:
    c = Config()
    c.KubeSpawner.image = "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
    c.KubeSpawner.uid = 1000
    c.KubeSpawner.fs_gid = 100
    c.KubeSpawner.mem_guarantee = "1G"
    c.KubeSpawner.allow_privilege_escalation = False
    c.KubeSpawner.events_enabled = True
    c.Spawner.cmd = "jupyterhub-singleuser"
    return c


def test_zero_to_jupyterhub_defaults_are_each_named_once():
    notes = replaced_settings(z2jh_defaults())
    assert all(n.startswith("TychoSpawner: site setting ") for n in notes)
    text = "\n".join(notes)
    for setting, replacement in [
        ("image = 'quay.io/jupyterhub/k8s-singleuser-sample:4.4.0'", "system.containers.*.image"),
        ("cmd = 'jupyterhub-singleuser'", "system.containers.*.command"),
        ("uid = 1000", "system.security.run_as_user"),
        ("fs_gid = 100", "system.security.fs_group"),
        ("mem_guarantee = '1G'", "for entries that set none"),
    ]:
        (line,) = [n for n in notes if f" {setting} " in n]
        assert replacement in line
    # settings that keep working as they are, or agree with the catalog, are not mentioned
    assert "allow_privilege_escalation" not in text and "events_enabled" not in text
    assert len(notes) == 5


def test_the_most_specific_section_wins_and_unset_means_silent():
    c = Config()
    c.Spawner.default_url = "/tree"
    c.TychoSpawner.default_url = "/lab/tree/README.md"
    c.KubeSpawner.cpu_limit = None
    (note,) = replaced_settings(c)
    assert "default_url = '/lab/tree/README.md'" in note and "JUPYTERHUB_DEFAULT_URL" in note
    assert replaced_settings(Config()) == []


def test_settings_that_would_weaken_the_apps_are_named():
    c = Config()
    c.KubeSpawner.privileged = True
    c.KubeSpawner.allow_privilege_escalation = None
    c.KubeSpawner.container_security_context = {"runAsUser": 0, "readOnlyRootFilesystem": True}
    c.KubeSpawner.profile_list = [{"display_name": "x"}]
    c.JupyterHub.internal_ssl = True  # JupyterHub hands it to every spawner
    text = "\n".join(replaced_settings(c))
    assert "privileged = True is not used" in text
    assert "allow_privilege_escalation = None is not used" in text
    assert "container_security_context keys runAsUser" in text and "readOnlyRootFilesystem" not in text.split("keys")[1].split("are")[0]
    assert "tycho import-profiles" in text
    assert "internal_ssl" in text


def test_a_home_claim_mounted_elsewhere_than_home_mount_path_is_named():
    c = Config()
    c.KubeSpawner.volumes = {"volume-{user_server}": {"name": "volume-{user_server}",
                                                      "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {"volume-{user_server}": {"name": "volume-{user_server}", "mountPath": "/home/user"}}
    (note,) = replaced_settings(c)
    assert "/home/user" in note and "TychoSpawner.home_mount_path" in note
    c.TychoSpawner.home_mount_path = "/home/user"
    assert replaced_settings(c) == []
