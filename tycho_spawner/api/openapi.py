"""The API's OpenAPI 3.1 document, as data (pure). Served at ``/services/tycho/openapi.json``;
tests/api validates it with openapi-spec-validator and runs schemathesis against the service
with it, so every answer the service gives is one this document describes."""
from __future__ import annotations

import copy
from typing import Any

#: Server names this API accepts for a new app (JupyterHub's own rule is looser; these are the
#: names that stay readable in URLs and pod names).
SERVER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
MAX_TAIL = 10000


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_NULLABLE_STRING = {"type": ["string", "null"]}
_QUANTITIES = {"type": "object", "additionalProperties": {"type": "string"}}

_SERVER = {
    "name": "server", "in": "path", "required": True,
    "description": "The app's server name; `~` is the user's default server.",
    "schema": {"type": "string", "minLength": 1},
}
_USER = {
    "name": "user", "in": "query", "required": False,
    "description": "Whose app: by default the caller's. Another user's apps answer only to admins and "
                   "holders of `admin:servers` (or `servers`) for that user; to anyone else they do not exist (404).",
    "schema": {"type": "string", "minLength": 1},
}

_COMMON_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthenticated"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "503": {"$ref": "#/components/responses/Unavailable"},
    "502": {"$ref": "#/components/responses/BadGateway"},
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every error the API answers, whatever its status.",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "message": {"type": "string", "description": "What went wrong, in a sentence."},
                },
            }
        },
    },
    "Gives": {
        "type": "object",
        "required": ["resources", "image"],
        "properties": {
            "resources": {"type": "string", "description": "Limits, requests and GPUs of the app's served container."},
            "image": _NULLABLE_STRING,
        },
    },
    "Option": {
        "type": "object",
        "required": ["key", "display_name", "description", "gives"],
        "properties": {
            "key": {"type": "string"},
            "display_name": {"type": "string"},
            "description": {"type": "string"},
            "gives": _ref("Gives"),
        },
    },
    "Choice": {
        "type": "object",
        "required": ["key", "display_name", "kind", "default", "options"],
        "properties": {
            "key": {"type": "string"},
            "display_name": {"type": "string"},
            "kind": {"type": "string", "enum": ["options", "image"]},
            "default": {"type": "string"},
            "pattern": {"type": ["string", "null"], "description": "For kind `image`: what a typed image must match in full."},
            "options": {"type": "array", "items": _ref("Option")},
        },
    },
    "Entry": {
        "type": "object",
        "required": ["key", "display_name", "description", "category", "default", "resources", "image", "choices"],
        "properties": {
            "key": {"type": "string", "description": "What `profile` names in a launch."},
            "display_name": {"type": "string"},
            "description": {"type": "string"},
            "category": {"type": "string"},
            "default": {"type": "boolean", "description": "Launched when a launch names no entry."},
            "resources": {"type": "string"},
            "image": _NULLABLE_STRING,
            "choices": {"type": "array", "items": _ref("Choice")},
        },
    },
    "Catalog": {
        "type": "object",
        "required": ["entries"],
        "properties": {"entries": {"type": "array", "items": _ref("Entry")}},
    },
    "Container": {
        "type": "object",
        "required": ["name", "image", "state", "reason", "ready", "restarts", "requests", "limits"],
        "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "state": {"type": "string", "enum": ["running", "waiting", "terminated", "unknown"]},
            "reason": _NULLABLE_STRING,
            "ready": {"type": "boolean"},
            "restarts": {"type": "integer", "minimum": 0},
            "requests": _QUANTITIES,
            "limits": _QUANTITIES,
        },
    },
    "Pod": {
        "type": ["object", "null"],
        "required": ["name", "phase", "node", "kubernetes_state"],
        "properties": {
            "name": {"type": "string"},
            "phase": _NULLABLE_STRING,
            "node": _NULLABLE_STRING,
            "kubernetes_state": {"type": "string", "enum": ["pending", "ready", "failed", "missing"]},
        },
    },
    "App": {
        "type": "object",
        "required": ["id", "user", "name", "profile", "choices", "url", "state", "ready", "started",
                     "last_activity", "age_seconds", "pod", "containers", "message"],
        "properties": {
            "id": {"type": "string", "description": "The path segment of the app: its name, or `~` for the default server."},
            "user": {"type": "string"},
            "name": {"type": "string", "description": "The hub's server name (\"\" for the default server)."},
            "profile": _NULLABLE_STRING,
            "choices": {"type": "object", "additionalProperties": {"type": "string"}},
            "url": _NULLABLE_STRING,
            "state": {"type": "string", "enum": ["starting", "ready", "stopping", "stopped"]},
            "ready": {"type": "boolean"},
            "started": _NULLABLE_STRING,
            "last_activity": _NULLABLE_STRING,
            "age_seconds": {"type": ["number", "null"], "description": "Seconds since the pod was created."},
            "pod": _ref("Pod"),
            "containers": {"type": "array", "items": _ref("Container")},
            "message": {"type": ["string", "null"], "description": "Why it is not ready, or why Kubernetes could not be asked."},
        },
    },
    "AppList": {
        "type": "object",
        "required": ["apps"],
        "properties": {"apps": {"type": "array", "items": _ref("App")}},
    },
    "Launch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": "The server name; absent or \"\": the default server.",
                     "anyOf": [{"const": ""}, {"pattern": SERVER_NAME_PATTERN}]},
            "profile": {"type": "string", "description": "A catalog entry's key; absent: the default entry."},
            "choices": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Update": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "profile": {"type": "string", "description": "Another entry (absent: the running one)."},
            "choices": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "Merged over the running choices (a new entry starts from its defaults)."},
        },
    },
    "Stopped": {
        "type": "object",
        "required": ["id", "user", "name", "state"],
        "properties": {
            "id": {"type": "string"},
            "user": {"type": "string"},
            "name": {"type": "string"},
            "state": {"type": "string", "enum": ["stopping", "stopped"]},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Tycho API",
        "version": "1",
        "description": (
            "Launch, list, monitor, update and stop the apps of the hub's catalog (Jupyter stacks, RStudio, "
            "any web app) and see what Kubernetes says about them. Authenticate with a hub token "
            "(`Authorization: token ...`, made on the hub's Token page or by `tycho login`) or, in a browser, "
            "by logging in to the hub. You act where your hub permissions let you: on your own apps, and on "
            "everyone's if you are an admin or hold `admin:servers`."
        ),
    },
    "servers": [{"url": "/services/tycho"}],
    "security": [{"token": []}, {"hubLogin": []}],
    "paths": {
        "/catalog": {
            "get": {
                "operationId": "getCatalog",
                "summary": "What you may launch: entries, their choices, and what each option gives",
                "responses": {"200": _json("The entries you may launch.", _ref("Catalog")), **_COMMON_ERRORS},
            }
        },
        "/apps": {
            "get": {
                "operationId": "listApps",
                "summary": "Your running apps (everyone's with all=true, for admins)",
                "parameters": [
                    _USER,
                    {"name": "all", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
                     "description": "Every app you may see (for admins: every user's)."},
                ],
                "responses": {"200": _json("The apps.", _ref("AppList")), "404": {"$ref": "#/components/responses/NotFound"},
                              "400": {"$ref": "#/components/responses/BadRequest"}, **_COMMON_ERRORS},
            },
            "post": {
                "operationId": "launchApp",
                "summary": "Launch an app (checked as the spawn form checks it; nothing is created if refused)",
                "parameters": [_USER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Launch")}}},
                "responses": {
                    "202": _json("Starting (or already ready): follow /apps/{server}/events.", _ref("App")),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    "409": _error("That server is already running."),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/apps/{server}": {
            "parameters": [_SERVER, _USER],
            "get": {
                "operationId": "getApp",
                "summary": "One app: entry, choices, URL, state, containers, restarts, node, resources, age",
                "responses": {"200": _json("The app.", _ref("App")), "404": {"$ref": "#/components/responses/NotFound"},
                              **_COMMON_ERRORS},
            },
            "patch": {
                "operationId": "updateApp",
                "summary": "Change a running app's choices (for example its size): it restarts with the same name and home",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Update")}}},
                "responses": {
                    "202": _json("Restarting with the new choices.", _ref("App")),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_COMMON_ERRORS,
                },
            },
            "delete": {
                "operationId": "stopApp",
                "summary": "Stop an app (its home stays)",
                "responses": {"202": _json("Stopping, or stopped.", _ref("Stopped")),
                              "404": {"$ref": "#/components/responses/NotFound"}, **_COMMON_ERRORS},
            },
        },
        "/apps/{server}/logs": {
            "parameters": [_SERVER, _USER],
            "get": {
                "operationId": "getAppLogs",
                "summary": "The app's logs (one container's: by default the one serving it)",
                "parameters": [
                    {"name": "container", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "The container whose logs to read (one of the App's `containers[].name`); "
                                    "by default the one serving the app, not its gate."},
                    {"name": "tail", "in": "query", "required": False,
                     "description": "How many of the last lines to return.",
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_TAIL, "default": 100}},
                ],
                "responses": {
                    "200": {"description": "The last lines.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_COMMON_ERRORS,
                },
            },
        },
        "/apps/{server}/events": {
            "parameters": [_SERVER, _USER],
            "get": {
                "operationId": "watchApp",
                "summary": "Monitor: a server-sent events stream of the app's state and its Kubernetes events",
                "description": (
                    "`event: state` carries the App each time it changes (first at once); `event: kubernetes` one "
                    "Kubernetes event about its pod ({type, reason, message, count, time}); the stream ends after "
                    "`event: state` with state `stopped`, or after max_seconds."
                ),
                "parameters": [
                    {"name": "max_seconds", "in": "query", "required": False,
                     "description": "End the stream after this many seconds even if the app still runs "
                                    "(a client reconnects to go on watching).",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 3600}},
                ],
                "responses": {
                    "200": {"description": "The stream.", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"},
                    **_COMMON_ERRORS,
                },
            },
        },
    },
    "components": {
        "schemas": _SCHEMAS,
        "responses": {
            "BadRequest": _error("The request is not one the API accepts; the message names what."),
            "Unauthenticated": _error("No hub login or token, or the token is not valid for this service."),
            "Forbidden": _error("The hub refused the request (for a browser: a missing XSRF token)."),
            "NotFound": _error("No such app or user that you may see (another user's apps do not exist for you)."),
            "BadGateway": _error("The hub or Kubernetes refused the service's request."),
            "Unavailable": _error("The hub's API or the cluster cannot be reached now."),
        },
        "securitySchemes": {
            "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                      "description": "`token <your hub token>`"},
            "hubLogin": {"type": "apiKey", "in": "cookie", "name": "service-tycho",
                         "description": "Set by logging in to the hub in a browser (OAuth)."},
        },
    },
}


def document() -> dict:
    """A copy of the document, safe for a caller to change."""
    return copy.deepcopy(DOCUMENT)
