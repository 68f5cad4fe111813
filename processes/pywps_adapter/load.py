"""PyWPS processes behind an ``[processing] processes`` import path, and the same ones again on a node.

A job never carries a PyWPS process object (they hold weak references and open templates, and a node's
copy must be the code installed there): it carries the import path and the identifier, and the node
imports the path again, once per Python process.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from processes.model import Process


@dataclass(frozen=True)
class PywpsSettings:
    """What PyWPS processes may read of this service's configuration (``pywps.configuration``)."""

    server_url: str = "http://localhost:5000/wps"


@dataclass(frozen=True)
class Source:
    """Where a PyWPS process comes from: ``module:attribute`` and its identifier there."""

    path: str
    identifier: str


def _pywps_process_class() -> type | None:
    try:
        from pywps import Process as PywpsProcess
    except ImportError:  # the [pywps] extra is not installed: no target can be a PyWPS process
        return None
    return PywpsProcess


def _instances(target: Any, base: type) -> list[Any] | None:
    """The PyWPS processes ``target`` names (an instance, a class, or a sequence of them, beside the
    model's own processes), else None when it names something else."""
    items = list(target) if isinstance(target, list | tuple) else [target]
    found = []
    for item in items:
        if isinstance(item, type) and issubclass(item, base):
            found.append(item())
        elif isinstance(item, base):
            found.append(item)
        elif not isinstance(item, Process):
            return None
    return found


def _resolve(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@cache
def _imported(path: str) -> dict[str, Any]:
    """The PyWPS processes of ``path`` by identifier, imported once per Python process."""
    base = _pywps_process_class()
    found = _instances(_resolve(path), base) if base is not None else None
    if found is None:
        raise TypeError(f"{path!r} names no PyWPS process here")
    return {p.identifier: p for p in found}


def prototype(source: Source) -> Any:
    """The PyWPS process a job of ``source`` runs a copy of (the node imports the path itself)."""
    try:
        return _imported(source.path)[source.identifier]
    except KeyError:
        raise LookupError(f"{source.path} has no PyWPS process {source.identifier!r} here") from None


def adapt(target: Any, path: str, settings: PywpsSettings) -> list[Process] | None:
    """The model of each PyWPS process ``target`` names, or None when it names none."""
    base = _pywps_process_class()
    found = _instances(target, base) if base is not None else None
    if not found:
        return None
    from processes.pywps_adapter.describe import describe
    from processes.pywps_adapter.handler import PywpsHandler

    return [describe(p, PywpsHandler(Source(path, p.identifier), settings)) for p in found]
