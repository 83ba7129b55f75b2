"""Sphinx configuration of the tycho_spawner documentation (built by `bin/stage docs`)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
# This checkout's package first: the cached docs venv's editable install may point at another
# checkout of this machine (CI clones the repository elsewhere), and the reference must be
# written from the code being built.
sys.path.insert(0, str(HERE.parent))

project = "tycho_spawner"
author = "the tycho_spawner developers"
copyright = "the tycho_spawner developers"

extensions = [
    "myst_parser",
    "jupyterhub_sphinx_theme",  # also turns on sphinx-copybutton and sphinxext-opengraph
    "tycho_reference",          # the reference pages, written from the code (docs/_ext)
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "requirements.txt"]

# Headings up to ### get anchors, so pages link to sections: [Orphans](../howto/operate.md#orphans).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

html_theme = "jupyterhub_sphinx_theme"
html_title = "tycho_spawner"
# Our own name in the navigation bar instead of JupyterHub's logo (the theme's default), and no
# favicon fetched from elsewhere.
html_logo = ""
html_favicon = ""
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["tycho.css"]
# sphinxext-opengraph (turned on by the theme): no social-card images (they need matplotlib).
ogp_social_cards = {"enable": False}
