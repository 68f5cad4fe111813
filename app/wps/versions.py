"""Which WPS version a request speaks: negotiated for GetCapabilities, checked for the others."""

from __future__ import annotations

from app.wps.errors import OWSException
from app.wps.requests import SUPPORTED_VERSIONS


def negotiate(accept_versions: tuple[str, ...]) -> str:
    if not accept_versions:
        return "1.0.0"
    for version in accept_versions:
        if version in SUPPORTED_VERSIONS:
            return version
    raise OWSException(
        "VersionNegotiationFailed",
        f"none of {', '.join(accept_versions)} is supported; this service speaks {', '.join(SUPPORTED_VERSIONS)}",
        "AcceptVersions",
    )


def check_version(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise OWSException("InvalidParameterValue", f"version {version} is not supported", "version")
