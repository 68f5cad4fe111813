"""The processes a service offers: the built-in demos and any named by configuration."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator

from processes.model import Process
from processes.pywps_adapter import PywpsSettings, adapt


class RegistryError(ValueError):
    pass


class Registry:
    """Processes by identifier, in the order they were declared; aliases resolve but are not listed."""

    def __init__(self, processes: Iterable[Process]) -> None:
        self._by_id: dict[str, Process] = {}
        self._aliases: dict[str, Process] = {}
        for process in processes:
            if process.identifier in self._by_id:
                raise RegistryError(f"two processes have the identifier {process.identifier!r}")
            self._by_id[process.identifier] = process
            for alias in process.aliases:
                self._aliases[alias] = process

    def __iter__(self) -> Iterator[Process]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, identifier: str) -> Process | None:
        return self._by_id.get(identifier) or self._aliases.get(identifier)


def _items(target: object) -> list[object]:
    return list(target) if isinstance(target, Iterable) and not isinstance(target, str | bytes) else [target]


def import_processes(path: str, pywps: PywpsSettings | None = None) -> list[Process]:
    """``module:attribute`` naming a Process, a PyWPS process (an instance or a class), or a
    sequence of them; PyWPS processes are mapped into the model here, once."""
    module_name, _, attribute = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"cannot import process {path!r}: {exc}") from None
    items = _items(target)
    found = [p for p in items if isinstance(p, Process)]
    others = [p for p in items if not isinstance(p, Process)]
    adapted = adapt(others, path, pywps or PywpsSettings()) if others else []
    if adapted is None:
        raise RegistryError(f"{path!r} is neither a Process, a PyWPS process nor a sequence of them")
    return found + adapted


def build_registry(
    demo: bool, paths: Iterable[str], extra: Iterable[Process] = (), pywps: PywpsSettings | None = None
) -> Registry:
    """The demos, the processes named by import paths, then ``extra`` (the container processes of the
    ``[docker] processes`` file) unless an import path already brought the very same objects.
    ``pywps``: what PyWPS processes among them read of the configuration."""
    processes: list[Process] = []
    if demo:
        from processes.builtin import BUILTIN_PROCESSES

        processes.extend(BUILTIN_PROCESSES)
    for path in paths:
        processes.extend(import_processes(path, pywps))
    processes.extend(p for p in extra if not any(p is q for q in processes))
    return Registry(processes)
