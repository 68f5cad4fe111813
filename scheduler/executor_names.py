"""Executor names as stored in ``jobs.executor`` and shown in metrics labels and dispatcher heartbeats,
spelled once for every module that picks an executor or tells them apart.

A batch executor is named after its ``[scheduler] system`` (slurm, gridengine, drmaa), as the configuration spells it.
"""

from __future__ import annotations

WEB = "web"  # no executor: a synchronous (or inline asynchronous) job runs in the web worker that took it
LOCAL = "local"
DOCKER = "docker"
