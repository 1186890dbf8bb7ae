"""The aiohttp releases we know, and how a version string compares with a fix's range."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from packaging.version import InvalidVersion, Version

RELEASES: Tuple[str, ...] = (
    "3.8.0", "3.8.1", "3.8.2", "3.8.3", "3.8.4", "3.8.5", "3.8.6",
    "3.9.0", "3.9.1", "3.9.2", "3.9.3", "3.9.4", "3.9.5",
    "3.10.0", "3.10.1", "3.10.2", "3.10.3", "3.10.4", "3.10.5",
    "3.10.6", "3.10.7", "3.10.8", "3.10.9", "3.10.10", "3.10.11",
    "3.11.0", "3.11.1", "3.11.2", "3.11.3", "3.11.4", "3.11.5", "3.11.6",
    "3.11.7", "3.11.8", "3.11.9", "3.11.10", "3.11.11", "3.11.12", "3.11.13",
    "3.11.14", "3.11.15", "3.11.16", "3.11.17", "3.11.18",
    "3.12.0", "3.12.1", "3.12.2", "3.12.3", "3.12.4", "3.12.6", "3.12.7",
    "3.12.8", "3.12.9", "3.12.10", "3.12.11", "3.12.12", "3.12.13", "3.12.14", "3.12.15",
    "3.13.0", "3.13.1", "3.13.2", "3.13.3", "3.13.4", "3.13.5",
    "3.14.0", "3.14.1", "3.14.2", "3.14.3", "3.14.4", "3.14.5",
)  # fmt: skip
"""Every final aiohttp release from the oldest we support to the newest we checked, oldest first.

Yanked releases (3.8.2, 3.11.13, 3.11.14, 3.11.17, 3.12.1) are here too: applications pin them.
Fingerprint ranges are read in this order.
"""

RELEASE_INDEX: Dict[str, int] = {release: i for i, release in enumerate(RELEASES)}


def release_range(first: str, last: str) -> Tuple[str, ...]:
    """The known releases from ``first`` to ``last``, both included."""
    return RELEASES[RELEASE_INDEX[first] : RELEASE_INDEX[last] + 1]


def installed_aiohttp_version() -> Optional[str]:
    """The installed aiohttp's version, read without importing it."""
    try:
        from importlib.metadata import version

        return version("aiohttp")
    except Exception:
        return None


def classify(version: Optional[str], first_affected: str, fixed_in: str) -> Tuple[Optional[bool], str]:
    """Is aiohttp ``version`` affected by a bug present from ``first_affected`` until ``fixed_in``?

    Returns ``(affected, reason)``: True, False, or None when we cannot tell.
    Pre-releases, local builds (``3.10.5+vendor``) and releases we have not
    checked are None: we refuse to guess whether their code is the code we know.
    """
    if version is None:
        return None, "aiohttp has no __version__"
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None, f"aiohttp version {version!r} is not a valid version"
    if parsed.local is not None:
        return None, f"aiohttp {version} is a local build; its code may differ from the release"
    if parsed >= Version(fixed_in):
        return False, f"fixed upstream in aiohttp {fixed_in}"
    if parsed.is_prerelease or parsed.is_devrelease or parsed.is_postrelease:
        return None, f"aiohttp {version} is not a final release we know"
    if parsed < Version(RELEASES[0]):
        return None, f"aiohttp {version} is older than the oldest supported release {RELEASES[0]}"
    if parsed < Version(first_affected):
        return False, f"aiohttp {version} predates the bug (introduced in {first_affected})"
    if str(parsed) not in RELEASE_INDEX:
        return None, f"aiohttp {version} is not a release we know"
    return True, f"aiohttp {version} has the bug"
