"""Which images containers may run: the administrator's allow-list, optionally pinned by digest.

An entry is ``name:tag``, ``name@sha256:DIGEST`` (or ``name:tag@sha256:DIGEST``), or a prefix ending in
``*``. A process's image must match an entry by name; when the entry or the process's own reference
carries a digest, the local image's id or one of its repository digests must equal it. The container
is then created from the image id that was checked, so a tag moved in between cannot slip through.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class ImageRefused(Exception):
    """An image the allow-list does not admit, or whose digest differs from the pinned one."""


@dataclass(frozen=True)
class Reference:
    name: str  # repository, with its tag if one was given
    digest: str | None  # sha256:...

    @property
    def repository(self) -> str:
        """The name without its tag (a colon after the last slash starts a tag, not a port)."""
        head, _, last = self.name.rpartition("/")
        repo = last.split(":", 1)[0]
        return f"{head}/{repo}" if head else repo

    @property
    def tagged(self) -> str:
        """The name with an explicit tag (``latest`` when none was given)."""
        return self.name if self.name != self.repository else f"{self.name}:latest"


def parse_reference(ref: str) -> Reference:
    ref = ref.strip()
    name, at, digest = ref.partition("@")
    if not name or any(c.isspace() for c in ref):
        raise ImageRefused(f"{ref!r} is not an image reference")
    if at and not _DIGEST.fullmatch(digest):
        raise ImageRefused(f"{ref!r}: the digest must be sha256: and 64 hex digits")
    return Reference(name, digest or None)


def _name_matches(entry: str, ref: Reference) -> bool:
    if entry.endswith("*"):
        return ref.name.startswith(entry[:-1])
    return parse_reference(entry).tagged == ref.tagged


def admitted(image: str, allowed: Sequence[str]) -> tuple[Reference, tuple[str, ...]]:
    """The parsed reference and the digests the local image must have (none: any); raises ImageRefused."""
    ref = parse_reference(image)
    for entry in (e.strip() for e in allowed):
        if entry and _name_matches(entry, ref):
            pinned = None if entry.endswith("*") else parse_reference(entry).digest
            digests = tuple(d for d in (pinned, ref.digest) if d)
            if len(set(digests)) > 1:
                raise ImageRefused(f"image {image}: its digest differs from the one [docker] images pins ({pinned})")
            return ref, digests[:1]
    raise ImageRefused(f"image {image} is not among the images [docker] images allows")


def digest_matches(expected: Sequence[str], image_id: str, repo_digests: Sequence[str]) -> bool:
    """True when the local image (its id and ``name@sha256:...`` repository digests) has every expected digest."""
    have = {image_id, *(d.rpartition("@")[2] for d in repo_digests)}
    return all(d in have for d in expected)
