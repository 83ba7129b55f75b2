"""What differs between the JupyterHub and KubeSpawner releases this package supports.

Sites run JupyterHub 5.5 (zero-to-jupyterhub 4.4.0's hub image) as well as 6.x; the spawner
imports from here what one of them lacks, so the rest of the code reads the same for both.
"""
from __future__ import annotations

from tornado import web

try:  # JupyterHub 6.0+
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5.x

    class SpawnException(web.HTTPError):  # type: ignore[no-redef]
        """A failed spawn with a message for the user, as JupyterHub 6's ``SpawnException``.

        JupyterHub 5 shows an exception's ``jupyterhub_message`` to the user instead of the
        generic "Unhandled error"; the other fields match JupyterHub 6's class. The class
        attributes hide tornado's read-only ``log_message`` property, as JupyterHub 6's do.
        """

        reason = ""
        status_code = 400
        message = ""
        message_html = ""
        log_message = ""

        def __init__(self, message, *, reason, log_message="", message_html="", status_code=400):
            self.message = message
            self.reason = reason
            self.log_message = log_message or message
            self.message_html = message_html
            self.status_code = status_code
            self.jupyterhub_message = message
            if message_html:
                self.jupyterhub_html_message = message_html
            super().__init__(status_code, message, reason=reason)

        def get_message(self):
            return self.log_message

        def __str__(self):
            return f"{self.status_code} {type(self).__name__}(reason={self.reason}): {self.log_message}"


__all__ = ["SpawnException"]
