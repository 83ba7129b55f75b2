"""STAND-IN for RStudio Server's ``rserver`` on the tycho test bed. This is not RStudio.

RStudio Server is not packaged for Debian, so the test bed's image table runs this program
where the ``docker.io/rocker/rstudio`` image would run ``/usr/lib/rstudio-server/bin/rserver``.
It proves the pod around RStudio (gate in front, no hub environment in the app, loopback
only, the user's home), and that the command line the catalog gives rserver is one the real
rserver accepts and can start with as a non-root user. No R, no IDE: every page is a small
JSON report naming the stand-in.

Like rserver (open-source edition, 2024-2025 releases; rocker/rstudio:4.5.1 has 2025.05.1),
from its sources (``src/cpp/server/server-options.json``, ``ServerOptions.cpp``,
``ServerMain.cpp``, ``server_core/ServerDatabase.cpp``, ``SecureKeyFile.cpp``):

* the command line is parsed as boost::program_options parses it for rserver: only rserver's
  options (plus ``--www-socket``, new in 2024.10), ``--name=value`` or ``--name value``,
  unambiguous abbreviations, booleans ``1/0 true/false yes/no on/off``; an unknown option, a
  missing or malformed value, a repeated option or a positional argument exits with status 1;
  then ``/etc/rstudio/rserver.conf`` (or ``--config-file``) for options the command line
  does not give, with the same checks;
* ``--server-user`` must be the running user unless root ("Attempt to run server as user ...
  without privilege"); the users are those of the rocker/rstudio image (``IMAGE_USERS``);
* ``--server-data-dir`` is created and made mode 1777; the ``--secure-cookie-key-file`` is read,
  or created with a new key (default for a non-root user: ``/tmp/rstudio-server/...``);
* ``--database-config-file`` (default ``/etc/rstudio/database.conf``; a missing file means all
  defaults) gives ``provider`` and ``directory`` (default ``/var/lib/rstudio-server``, root's in
  the image); the sqlite file ``rstudio.sqlite`` is created there, so a directory the user
  cannot write ends the start, as it ends RStudio's;
* it listens where ``--www-address``/``--www-port`` (or ``--www-socket``) say; with
  ``--auth-none=1`` ``/auth-sign-in`` sets the ``user-id`` and ``csrf-token`` cookies on the
  root path and redirects back to ``appUri``, with the URL built as RStudio builds it (from
  ``X-RStudio-Root-Path`` or ``--www-root-path``, ``X-Forwarded-Proto``/``-Host``/``-Port``,
  ``Forwarded``, ``X-RStudio-Request``); with ``--www-verify-user-agent`` on (the default), a
  client that is not a known browser is sent to ``/unsupported_browser.htm``;
* the R session's working directory is ``session-default-working-dir`` of the
  ``--rsession-config-file`` (default ``~``, the home): each page lists it (``home``).

Refused by the stand-in although rserver itself would start (errors say "stand-in:"):
running as root (rserver would then write to the image's /var/lib/rstudio-server, which is
the host's here), ``--server-daemonize=1`` (the container's process would exit),
``--auth-none=0`` without root (RStudio's PAM sign-in needs root: nobody could sign in), a
database provider other than sqlite (not simulated), and an ``--rsession-config-file`` that
rsession would fail to read at the first session (unreadable, or a key given twice).
Unlike RStudio, the main page is served without first redirecting to ``/auth-sign-in``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import stat
import sys
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from tornado import httpserver, ioloop, netutil, web

INSTALL_PATH = "/usr/lib/rstudio-server"
#: The rocker/rstudio image's /etc/passwd as far as rserver looks at it (rocker removes
#: Ubuntu's uid 1000 user and creates rstudio; the deb creates the system user rstudio-server).
IMAGE_USERS = {
    "root": (0, "/root"),
    "rstudio-server": (999, "/home/rstudio-server"),
    "rstudio": (1000, "/home/rstudio"),
}

BOOL, INT, STR, MULTI, FLAG = "bool", "int", "string", "multitoken", "flag"
#: rserver's options (server-options.json, open-source edition), by group.
OPTIONS: Dict[str, str] = {
    # verify
    "verify-installation": BOOL,
    # server
    "server-working-dir": STR, "server-user": STR, "server-daemonize": BOOL, "server-pid-file": STR,
    "server-app-armor-enabled": BOOL, "server-set-umask": BOOL, "secure-cookie-key-file": STR,
    "server-data-dir": STR, "server-add-header": MULTI,
    # www (www-socket: since 2024.10)
    "www-address": STR, "www-port": STR, "www-socket": STR, "www-root-path": STR, "www-local-path": STR,
    "www-symbol-maps-path": STR, "www-use-emulated-stack": BOOL, "www-thread-pool-size": INT,
    "www-proxy-localhost": BOOL, "www-verify-user-agent": BOOL, "www-same-site": STR,
    "www-frame-origin": STR, "www-enable-origin-check": BOOL, "www-allow-origin": MULTI,
    "session-use-file-storage": BOOL,
    # rsession
    "rsession-which-r": STR, "rsession-path": STR, "rldpath-path": STR, "rsession-ld-library-path": STR,
    "rsession-config-file": STR, "rsession-proxy-max-wait-secs": INT, "rsession-memory-limit-mb": INT,
    "rsession-stack-limit-mb": INT, "rsession-process-limit": INT,
    # database
    "database-config-file": STR, "db-command": STR,
    # auth
    "auth-none": BOOL, "auth-validate-users": BOOL, "auth-stay-signed-in-days": INT,
    "auth-timeout-minutes": INT, "auth-encrypt-password": BOOL, "auth-login-page-html": STR,
    "auth-rdp-login-page-html": STR, "auth-required-user-group": STR, "auth-minimum-user-id": STR,
    "auth-pam-helper-path": STR, "auth-pam-require-password-prompt": BOOL, "auth-pam-requires-priv": BOOL,
    "auth-sign-in-throttle-seconds": INT, "auth-revocation-list-dir": STR, "auth-cookies-force-secure": BOOL,
    # monitor
    "monitor-interval-seconds": INT,
}
#: The general options every RStudio program has (command line only; check-config is the newer
#: name of test-config).
GENERAL = {"help": FLAG, "test-config": FLAG, "check-config": FLAG, "config-file": STR}
COMMAND_LINE = {**OPTIONS, **GENERAL}
#: What the config file (rserver.conf) may hold: everything but verify and the general options.
CONFIG_FILE = {k: v for k, v in OPTIONS.items() if k != "verify-installation"}

TRUE, FALSE = ("", "on", "yes", "1", "true"), ("off", "no", "0", "false")
SUPPORTED_BROWSER = re.compile(r"\b(Chrome|Chromium|Firefox|Edg|Version/[\d.]+ Safari)/?\d*")


class Refused(Exception):
    """Ends the start with an error on stderr and exit status 1, as rserver's errors do."""


def _parse_value(name: str, kind: str, value: str):
    if kind == BOOL:
        if value.lower() in TRUE:
            return True
        if value.lower() in FALSE:
            return False
        raise Refused(f"the argument ('{value}') for option '--{name}' is invalid. Valid choices are "
                      "'on|off', 'yes|no', '1|0' and 'true|false'")
    if kind == INT:
        if not re.fullmatch(r"[+-]?\d+", value):
            raise Refused(f"the argument ('{value}') for option '--{name}' is invalid")
        return int(value)
    return value


def _resolve(name: str, table: Dict[str, str], shown: str) -> str:
    if name in table:
        return name
    matches = sorted(o for o in table if o.startswith(name)) if name else []
    if len(matches) == 1:
        return matches[0]  # boost's allow_guessing: an unambiguous abbreviation
    if matches:
        raise Refused(f"option '{shown}' is ambiguous and matches " + ", ".join(f"'--{m}'" for m in matches))
    raise Refused(f"unrecognised option '{shown}'")


def parse_command_line(argv: Sequence[str]) -> Dict[str, object]:
    """``--name=value`` / ``--name value`` pairs, typed; errors worded as boost words them."""
    values: Dict[str, object] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-") or token in ("-", "--"):
            raise Refused("too many positional options have been specified on the command line")
        if not token.startswith("--"):
            raise Refused(f"unrecognised option '{token}'")
        body, eq, value = token[2:].partition("=")
        name = _resolve(body, COMMAND_LINE, "--" + body)
        kind = COMMAND_LINE[name]
        if kind == FLAG:
            if eq:
                raise Refused(f"option '--{name}' does not take any arguments")
            parsed: object = True
        else:
            if not eq:
                if i >= len(argv) or argv[i].startswith("-"):
                    raise Refused(f"the required argument for option '--{name}' is missing")
                value = argv[i]
                i += 1
            parsed = _parse_value(name, BOOL if kind == BOOL else INT if kind == INT else STR, value)
        if kind == MULTI:
            values.setdefault(name, []).append(parsed)  # type: ignore[union-attr]
        elif name in values:
            raise Refused(f"option '--{name}' cannot be specified more than once")
        else:
            values[name] = parsed
    return values


def read_settings(path: str) -> List[tuple]:
    """``key=value`` lines (``#`` comments, blank lines skipped), as RStudio's config files."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def read_config_file(path: str, values: Dict[str, object]) -> None:
    """rserver.conf: options the command line did not give (the command line wins)."""
    try:
        pairs = read_settings(path)
    except OSError as err:
        raise Refused(f"system error {err.errno} ({err.strerror}) [path: {path}]; "
                      f"description: Unable to open config file: {path}")
    seen = set()
    for key, value in pairs:
        if key not in CONFIG_FILE:
            raise Refused(f"unrecognised option '{key}' in config file {path}")
        kind = CONFIG_FILE[key]
        if kind != MULTI and key in seen:
            raise Refused(f"option '{key}' cannot be specified more than once in config file {path}")
        seen.add(key)
        parsed = _parse_value(key, BOOL if kind == BOOL else INT if kind == INT else STR, value)
        if kind == MULTI:
            values.setdefault(key, []).append(parsed)  # type: ignore[union-attr]
        else:
            values.setdefault(key, parsed)


def _system_error(err: OSError, path: str) -> Refused:
    return Refused(f"system error {err.errno} ({err.strerror}) [path: {path}]")


def _user_name(uid: int) -> str:
    return next((name for name, (u, _) in IMAGE_USERS.items() if u == uid), f"uid {uid}")


def _complete(path: str) -> str:
    """Relative paths are relative to the installation, as rserver resolves them."""
    return path if path.startswith("/") else os.path.join(INSTALL_PATH, path)


@dataclass
class Server:
    """What the running stand-in knows: the options, the key, the session's directory."""

    user: str
    uid: int
    www_root_path: str = "/"
    verify_user_agent: bool = True
    frame_origin: str = "none"
    auth_none: bool = True
    cookie_key: str = ""
    working_dir: str = "~"
    database: str = ""

    def sign(self, value: str) -> str:
        return hmac.new(self.cookie_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def check_and_prepare(values: Dict[str, object]) -> Server:
    """The start-up checks and files of rserver's ServerOptions::read and main(), in order."""
    euid = os.geteuid()
    if euid == 0:
        raise Refused("stand-in: rserver as root (it would switch to --server-user and write to the "
                      "image's /var/lib/rstudio-server, the host's here) is not simulated; run as a user")
    same_site = values.get("www-same-site", "")
    if same_site not in ("", "none", "lax"):
        raise Refused(f"Invalid SameSite option: {same_site}")

    server_user = str(values.get("server-user", "rstudio-server"))
    if server_user not in IMAGE_USERS:
        raise Refused(f"Could not find details for server user '{server_user}'")
    uid = IMAGE_USERS[server_user][0]
    if uid != euid:
        raise Refused(f"Attempt to run server as user '{server_user}' (uid {uid}) from account "
                      f"'{_user_name(euid)}' (uid {euid}) without privilege, which is required "
                      "to run as a different uid")
    if values.get("server-daemonize", False):
        raise Refused("stand-in: --server-daemonize=1 refused: rserver would fork into the background "
                      "and the container's main process would exit; use --server-daemonize=0")
    auth_none = bool(values.get("auth-none", True))
    if not auth_none:
        raise Refused("stand-in: --auth-none=0 refused: RStudio's PAM sign-in needs root, so nobody "
                      "could sign in; behind tycho-gate use --auth-none=1")

    working = str(values.get("server-working-dir", "/"))
    try:
        os.chdir(working)
    except OSError as err:
        raise _system_error(err, working)

    data_dir = str(values.get("server-data-dir", "/var/run/rstudio-server"))
    try:
        os.makedirs(data_dir, exist_ok=True)
        mode = stat.S_IMODE(os.stat(data_dir).st_mode)
        if mode & 0o1777 != 0o1777:
            os.chmod(data_dir, 0o1777)
    except OSError as err:
        raise Refused(f"{_system_error(err, data_dir)}; the 'server-data-dir' directory must be writeable "
                      "by all users and have the sticky bit set")

    key_file = str(values.get("secure-cookie-key-file") or "/tmp/rstudio-server/secure-cookie-key")
    try:
        if os.path.exists(key_file):
            with open(key_file, encoding="utf-8") as f:
                key = f.read().strip()
            if not key:
                raise Refused(f"system error 2 (No such file or directory) [path: {key_file}]")
        else:
            key = str(uuid.uuid4())
            os.makedirs(os.path.dirname(key_file) or ".", exist_ok=True)
            with open(key_file, "w", encoding="utf-8") as f:
                f.write(key)
            os.chmod(key_file, 0o600)
    except OSError as err:
        raise _system_error(err, key_file)

    database = open_database(str(values.get("database-config-file", "")))

    session_dir = "~"
    rsession_config = values.get("rsession-config-file")
    if rsession_config:
        path = _complete(str(rsession_config))
        try:
            pairs = read_settings(path)
        except OSError as err:
            raise Refused(f"stand-in: rsession could not read its config file: {_system_error(err, path)}")
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise Refused(f"stand-in: rsession would refuse {path}: option '{twice[0]}' cannot be "
                          "specified more than once")
        session_dir = dict(pairs).get("session-default-working-dir", "~") or "~"

    return Server(
        user=_user_name(euid), uid=euid,
        www_root_path=str(values.get("www-root-path", "/")),
        verify_user_agent=bool(values.get("www-verify-user-agent", True)),
        frame_origin=str(values.get("www-frame-origin", "none")),
        auth_none=auth_none, cookie_key=key, working_dir=session_dir, database=database,
    )


def open_database(config_file: str) -> str:
    """server_core::database::initialize for sqlite: the file rstudio.sqlite, created if missing."""
    path = config_file or "/etc/rstudio/database.conf"
    note = ""
    try:
        settings = dict(read_settings(path))
    except FileNotFoundError:
        settings = {}  # RStudio takes a missing file for "all defaults"
        note = f" (no {path}: the default database directory)"
    except OSError as err:
        raise _system_error(err, path)
    provider = settings.get("provider", "sqlite")
    if provider.lower() == "postgresql":
        raise Refused(f"stand-in: database provider postgresql ({path}) is not simulated")
    if provider.lower() != "sqlite":
        raise Refused(f"Invalid database provider specified in {path}: {provider}")
    directory = settings.get("directory", "/var/lib/rstudio-server")
    database = os.path.join(directory, "rstudio.sqlite")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(database, "a"):
            pass
        db = sqlite3.connect(database)
        try:  # the schema migrations write to it
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (current_version TEXT, release_name TEXT)")
        finally:
            db.close()
    except OSError as err:
        failed = _system_error(err, database if os.path.isdir(directory) else directory)
        raise Refused(f"{failed}{note}")
    except sqlite3.Error as err:
        raise Refused(f"Could not update database to latest schema: {err} [path: {database}]")
    return database


class Handler(web.RequestHandler):
    @property
    def server(self) -> Server:
        return self.settings["rserver"]

    def compute_etag(self):
        return None

    def set_default_headers(self) -> None:
        origin = self.settings["rserver"].frame_origin
        if origin == "none":
            self.set_header("X-Frame-Options", "DENY")
        elif origin == "same":
            self.set_header("X-Frame-Options", "SAMEORIGIN")

    # -- RStudio's view of its public URL (core/http/Request.cpp) --
    def root_path(self) -> str:
        root = self.request.headers.get("X-RStudio-Root-Path") or self.server.www_root_path or "/"
        root = root if root.startswith("/") else "/" + root
        return root.rstrip("/") or "/"

    def public_origin(self) -> str:
        """Scheme and host of proxiedUri(): Forwarded, then X-Forwarded-*, then Host."""
        headers = self.request.headers
        forwarded = headers.get("Forwarded")
        if forwarded:
            host = re.search(r"host=([\w.:]+);?", forwarded)
            proto = re.search(r"proto=([\w.:]+);?", forwarded)
            return f"{proto.group(1) if proto else 'http'}://{host.group(1) if host else ''}"
        proto = headers.get("X-Forwarded-Proto") or "http"
        host = headers.get("X-Forwarded-Host")
        if host:
            port = headers.get("X-Forwarded-Port")
            if port:
                host = (host.split(":", 1)[0] if ":" in host else host) + ":" + port
            return f"{proto}://{host}"
        return f"{proto}://{self.request.host}"

    def redirect_in_app(self, app_path: str) -> None:
        override = self.request.headers.get("X-RStudio-Request")
        if override:
            base = re.match(r"[^:/]+://[^/]+", override)
            origin = base.group(0) if base else override
        else:
            origin = self.public_origin()
        root = self.root_path()
        self.redirect(origin + (root if root != "/" else "") + app_path)

    def unsupported_browser(self) -> bool:
        if not self.server.verify_user_agent or self.request.path == "/unsupported_browser.htm":
            return False
        return not SUPPORTED_BROWSER.search(self.request.headers.get("User-Agent", ""))

    def get(self, path: str) -> None:
        if self.unsupported_browser():
            self.redirect("/unsupported_browser.htm")
            return
        if path == "unsupported_browser.htm":
            self.write("<!doctype html><title>RStudio stand-in</title><p>RStudio Server stand-in: "
                       "this browser is not supported (--www-verify-user-agent)</p>")
            return
        if path == "auth-sign-in" and self.server.auth_none:
            self.sign_in()
            return
        self.page(path)

    def sign_in(self) -> None:
        """auth-none: sign the running user in, cookies on the root path, back to appUri."""
        user = self.server.user
        secure = self.public_origin().startswith("https://")
        root = self.root_path()
        self.set_cookie("user-id", f"{user}|{self.server.sign(user)}", path=root, httponly=True, secure=secure)
        self.set_cookie("csrf-token", secrets.token_hex(16), path=root, secure=secure)
        app_uri = self.get_query_argument("appUri", "/")
        self.redirect_in_app(app_uri if app_uri.startswith("/") else "/" + app_uri)

    def signed_in(self) -> bool:
        value = self.get_cookie("user-id", "")
        user, _, signature = value.partition("|")
        return bool(user) and hmac.compare_digest(signature, self.server.sign(user))

    def home(self) -> dict:
        """The R session's working directory and what is in it."""
        home = os.environ.get("R_USER") or os.environ.get("HOME") or IMAGE_USERS.get(self.server.user, (0, "/"))[1]
        directory = self.server.working_dir
        if directory == "~" or directory.startswith("~/"):
            directory = home + directory[1:]
        if not os.path.isdir(directory):
            directory = home
        try:
            return {"home_dir": directory, "home": sorted(os.listdir(directory))}
        except OSError as err:
            return {"home_dir": directory, "home": None, "home_error": f"{err.strerror}"}

    def page(self, path: str) -> None:
        info = {
            "standin": "rserver (RStudio Server stand-in of the tycho test bed)",
            "path": "/" + path,
            "uid": os.getuid(),
            "jupyterhub_env": sorted(k for k in os.environ if k.startswith("JUPYTERHUB_")),
            "user": os.environ.get("USER", ""),
            "cookies": sorted(self.request.cookies),
            "signed_in": self.signed_in(),
            "root_path_header": self.request.headers.get("X-RStudio-Root-Path", ""),
            **self.home(),
        }
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.write("<!doctype html><title>RStudio stand-in</title>"
                   f"<pre id='rserver'>{web.escape.xhtml_escape(json.dumps(info))}</pre>")


def usage() -> str:
    lines = ["rserver (RStudio Server stand-in of the tycho test bed)", "", "command-line options:"]
    for name, kind in sorted(COMMAND_LINE.items()):
        lines.append(f"  --{name}" + ("" if kind == FLAG else f" arg ({kind})"))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        values = parse_command_line(argv)
    except Refused as err:
        print(f"[rserver] ERROR {err} on command line", file=sys.stderr, flush=True)
        return 1
    if values.get("help"):
        print(usage())
        return 0
    try:
        config = str(values.get("config-file", ""))
        if not config and os.path.exists("/etc/rstudio/rserver.conf"):
            config = "/etc/rstudio/rserver.conf"  # the image's (rocker writes rsession-which-r there)
        if config and config != "none":
            read_config_file(config, values)
        if values.get("test-config") or values.get("check-config"):
            return 0
        server = check_and_prepare(values)
        app = web.Application([(r"/(.*)", Handler)], rserver=server)
        http = httpserver.HTTPServer(app)
        socket_path = values.get("www-socket")
        if socket_path:
            http.add_socket(netutil.bind_unix_socket(str(socket_path)))
            where = f"unix:{socket_path}"
        else:
            port_text = str(values.get("www-port", "")) or "80"
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise Refused(f"Invalid www-port: {port_text}")
            address = str(values.get("www-address", "0.0.0.0"))
            try:
                http.listen(int(port_text), address)
            except OSError as err:
                raise Refused(f"system error {err.errno} ({err.strerror}) binding {address}:{port_text}")
            where = f"{address}:{port_text}"
    except Refused as err:
        print(f"[rserver] ERROR {err}", file=sys.stderr, flush=True)
        return 1
    print(f"rserver stand-in listening on {where} as {server.user} (uid {server.uid}); database "
          f"{server.database}; R sessions in {server.working_dir}", file=sys.stderr, flush=True)
    ioloop.IOLoop.current().start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
