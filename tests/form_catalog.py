"""A catalog of many entries, as a site that outgrew one screen has: the spawn form's tests
(tests/unit/test_form.py and the Chromium one, tests/spawner/test_form_browser.py) use it.

Every entry serves a plain HTTP app of the test bed's `python:*` image (no home, so a start is
quick), under one of a few categories or none, with a size choice; some have a GPU choice too.
"""
from __future__ import annotations

CATEGORIES = ("Notebooks", "Statistics", "Web apps", "Databases")
#: Every sixth entry has no category: they are listed last, under form.UNCATEGORIZED.
SIZES = {
    "small": {"display_name": "Small", "limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
    "medium": {"display_name": "Medium", "limits": {"cpu": "2", "memory": "4Gi"}, "requests": {"cpu": "1", "memory": "2Gi"}},
    "large": {"display_name": "Large", "limits": {"cpu": "4", "memory": "16Gi"}, "requests": {"cpu": "2", "memory": "8Gi"}},
}
SMALL_TEXT = "up to 0.5 CPU · 1 GiB memory, guaranteed 0.1 CPU · 256 MiB memory"
MEDIUM_TEXT = "up to 2 CPU · 4 GiB memory, guaranteed 1 CPU · 2 GiB memory"
LARGE_TEXT = "up to 4 CPU · 16 GiB memory, guaranteed 2 CPU · 8 GiB memory"

_SERVER = "import http.server\nhttp.server.HTTPServer(('', 8888), http.server.SimpleHTTPRequestHandler).serve_forever()\n"


def entry_key(i: int) -> str:
    return f"app-{i:02d}"


def category_of(i: int) -> str:
    return "" if i % 6 == 5 else CATEGORIES[i % len(CATEGORIES)]


def many_entries(count: int = 30) -> dict:
    """``count`` catalog entries (``app-00``...), to merge over no built-in catalog."""
    catalog = {}
    for i in range(count):
        choices = {
            "size": {
                "display_name": "Size",
                "default": "small",
                "options": {
                    key: {"display_name": size["display_name"],
                          "set": {"containers.app.limits": size["limits"], "containers.app.requests": size["requests"]}}
                    for key, size in SIZES.items()
                },
            }
        }
        if i % 10 == 3:
            choices["gpu"] = {
                "display_name": "GPU",
                "options": {
                    "none": {"display_name": "No GPU"},
                    "one": {"display_name": "One GPU", "set": {"containers.app.limits.gpus": 1}},
                },
            }
        catalog[entry_key(i)] = {
            "display_name": f"Application {i:02d}" + (" Spark" if i % 7 == 2 else ""),
            "description": f"Test application number {i} of a large catalog." + (" Has a GPU option." if "gpu" in choices else ""),
            "category": category_of(i),
            "order": i,
            "choices": choices,
            "system": {
                "serve": {"container": "app", "port": 8888},
                "home": False,
                "containers": {
                    "app": {
                        "image": "python:3.11",
                        "command": ["python3", "-c"],
                        "args": [_SERVER],
                        "ports": {"http": 8888},
                        "readiness": {"tcp": True},
                    }
                },
            },
        }
    return catalog
