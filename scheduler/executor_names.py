"""The names jobs record in their ``executor`` column, and the metrics and /health show.

``web`` is not an executor class: it marks a job a web worker runs itself (a synchronous Execute, or
an asynchronous one of an ``inline_async`` process).
"""

WEB = "web"
LOCAL = "local"
DOCKER = "docker"
