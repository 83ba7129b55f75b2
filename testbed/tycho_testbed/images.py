"""The image table: which local program stands in for which container image.

No image can be pulled on the test bed, so "pulling" an image means finding it in this table.
An image that no pattern matches behaves like an image that does not exist in its registry
(``ErrImagePull``, then ``ImagePullBackOff``), which is how tests exercise that path.

File format (YAML), a list of entries, first match wins::

    - image: "quay.io/jupyter/*"          # fnmatch pattern on the full image reference
      entrypoint: [jupyterhub-singleuser]  # the image's ENTRYPOINT (a container `command` replaces it)
      cmd: []                              # the image's CMD (a container `args` replaces it)
      workingDir: /home/jovyan             # optional; the pod's home directory if unset
      env: {LANG: C.UTF-8}                 # the image's ENV (the container's env wins)
      programs:                            # optional: files the image has, as local commands
        /usr/lib/rstudio-server/bin/rserver: [python3, -m, some.stand_in]

Program names are looked up on the pod's PATH, which holds the directory of the Python that
runs the agent (so `jupyterhub-singleuser` is this environment's) and the usual system dirs.
"""
from __future__ import annotations

import fnmatch
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import yaml

DEFAULT_TABLE = Path(__file__).with_name("default-images.yaml")


def pod_path() -> str:
    """PATH inside pods: this Python's bin dir first, then the usual system directories."""
    return ":".join([str(Path(sys.executable).parent), "/usr/local/sbin", "/usr/local/bin",
                     "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


@dataclass(frozen=True)
class ImageEntry:
    pattern: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: Optional[str] = None
    env: tuple[tuple[str, str], ...] = ()
    programs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def argv(self, command: Sequence[str], args: Sequence[str]) -> list[str]:
        """Kubernetes semantics: `command` replaces ENTRYPOINT (and drops CMD), `args` replaces CMD."""
        if command:
            argv = list(command) + list(args)
        else:
            argv = list(self.entrypoint) + (list(args) if args else list(self.cmd))
        if argv and argv[0] in dict(self.programs):
            argv = list(dict(self.programs)[argv[0]]) + argv[1:]
        return argv


@dataclass(frozen=True)
class ImageTable:
    entries: tuple[ImageEntry, ...] = field(default_factory=tuple)

    def lookup(self, image: str) -> Optional[ImageEntry]:
        for entry in self.entries:
            if fnmatch.fnmatchcase(image, entry.pattern):
                return entry
        return None

    @classmethod
    def from_data(cls, data) -> "ImageTable":
        if not isinstance(data, list):
            raise ValueError("an image table is a list of entries")
        entries = []
        for i, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("image"), str):
                raise ValueError(f"image table entry {i}: needs an 'image' pattern")
            unknown = set(item) - {"image", "entrypoint", "cmd", "workingDir", "env", "programs"}
            if unknown:
                raise ValueError(f"image table entry {i}: unknown keys {sorted(unknown)}")
            entries.append(ImageEntry(
                pattern=item["image"],
                entrypoint=tuple(str(x) for x in item.get("entrypoint") or ()),
                cmd=tuple(str(x) for x in item.get("cmd") or ()),
                working_dir=item.get("workingDir"),
                env=tuple((str(k), str(v)) for k, v in (item.get("env") or {}).items()),
                programs=tuple((str(k), tuple(str(x) for x in v)) for k, v in (item.get("programs") or {}).items()),
            ))
        return cls(tuple(entries))

    @classmethod
    def load(cls, path: Optional[os.PathLike] = None) -> "ImageTable":
        with open(path or DEFAULT_TABLE, encoding="utf-8") as f:
            return cls.from_data(yaml.safe_load(f) or [])


def program_overlays(entry: ImageEntry, stage: Path) -> list[str]:
    """Shell lines that put the image's programs named by absolute path at that path.

    A script of the image may exec ``/usr/lib/rstudio-server/bin/rserver`` by its path, which
    the host does not have: each top directory holding such a program (``/usr``) becomes, in the
    container's mount namespace, a read-only overlay of the host's directory and of one under
    ``stage`` with a script running the program's local command. Nothing is written to the host.
    """
    tops = {}
    for path, argv in entry.programs:
        if not path.startswith("/") or path.count("/") < 2:
            continue
        relative = Path(path).relative_to("/")
        target = stage / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\nexec " + shlex.join(argv) + ' "$@"\n')
        target.chmod(0o755)
        tops[relative.parts[0]] = stage / relative.parts[0]
    for directory in [stage, *stage.rglob("*")] if tops else []:
        if directory.is_dir():
            directory.chmod(0o755)
    return [f"mount -t overlay overlay -o lowerdir={shlex.quote(str(lower))}:/{top} /{top}"
            for top, lower in sorted(tops.items())]
