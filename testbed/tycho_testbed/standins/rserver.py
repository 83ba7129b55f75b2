"""Stand-in for RStudio Server's ``rserver`` (not packaged for Debian, so not on the test bed).

It accepts rserver's command-line options, refuses the ones RStudio would refuse for this
setup (it must run with ``--auth-none=1`` as a non-root user, in the foreground), listens only
where ``--www-address``/``--www-port`` say, and answers every request with a page that names
itself, the path it was asked for and whether any JupyterHub variable reached it. That is what
the gated RStudio profile needs proven on the test bed; RStudio itself is not simulated.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from tornado import ioloop, web


class Page(web.RequestHandler):
    def get(self, path: str) -> None:
        info = {
            "standin": "rserver (RStudio Server stand-in of the tycho test bed)",
            "path": "/" + path,
            "uid": os.getuid(),
            "jupyterhub_env": sorted(k for k in os.environ if k.startswith("JUPYTERHUB_")),
            "user": os.environ.get("USER", ""),
            "cookies": sorted(self.request.cookies),
            "root_path_header": self.request.headers.get("X-RStudio-Root-Path", ""),
        }
        self.write("<!doctype html><title>RStudio stand-in</title>"
                   f"<pre id='rserver'>{web.escape.xhtml_escape(json.dumps(info))}</pre>")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rserver", description=__doc__)
    parser.add_argument("--www-address", default="0.0.0.0")
    parser.add_argument("--www-port", type=int, default=8787)
    parser.add_argument("--server-daemonize", default="1")
    parser.add_argument("--auth-none", default="0")
    parser.add_argument("--www-root-path", default="/")
    # Accepted and ignored, as the real rserver would use them for files.
    for option in ("--server-user", "--server-data-dir", "--secure-cookie-key-file"):
        parser.add_argument(option)
    args = parser.parse_args(argv)
    if args.server_daemonize != "0":
        parser.error("--server-daemonize=0 is required in a container")
    if args.auth_none != "1" and os.getuid() != 0:
        parser.error("RStudio's PAM sign-in needs root; behind tycho-gate use --auth-none=1")
    app = web.Application([(r"/(.*)", Page)])
    app.listen(args.www_port, args.www_address)
    print(f"rserver stand-in listening on {args.www_address}:{args.www_port}", file=sys.stderr, flush=True)
    ioloop.IOLoop.current().start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
