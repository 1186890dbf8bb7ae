"""Which aiohttp releases have the waiter bug, and which already carry the fix."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from packaging.version import InvalidVersion, Version

AFFECTED_RELEASES: Tuple[str, ...] = (
    "3.8.0", "3.8.1", "3.8.2", "3.8.3", "3.8.4", "3.8.5", "3.8.6",
    "3.9.0", "3.9.1", "3.9.2", "3.9.3", "3.9.4", "3.9.5",
    "3.10.0", "3.10.1", "3.10.2", "3.10.3", "3.10.4", "3.10.5",
    "3.10.6", "3.10.7", "3.10.8", "3.10.9", "3.10.10",
)  # fmt: skip
"""Every release we patch, oldest first (fingerprints use this order)."""

FIXED_IN = Version("3.10.11")
"""First release with aiohttp PR #9671 (cancellation-safe waiters)."""

RELEASE_INDEX: Dict[str, int] = {release: i for i, release in enumerate(AFFECTED_RELEASES)}

AFFECTED = "affected"
FIXED = "fixed"
UNKNOWN = "unknown"


def affected(verdict: str) -> Optional[bool]:
    """The ``Status.affected`` value for a verdict: True, False, or None when unknown."""
    return {AFFECTED: True, FIXED: False}.get(verdict)


def classify(version: Optional[str]) -> Tuple[str, str, Optional[str]]:
    """Return ``(verdict, reason, release)`` for an aiohttp version string.

    ``release`` is the canonical affected release (``"3.10.10"``) when the
    verdict is ``affected``.  Pre-releases, local builds (``3.10.5+vendor``) and
    releases older than we support are ``unknown``: we refuse to guess.
    """
    if version is None:
        return UNKNOWN, "aiohttp has no __version__", None
    try:
        parsed = Version(version)
    except InvalidVersion:
        return UNKNOWN, f"aiohttp version {version!r} is not a valid version", None
    if parsed.local is not None:
        return UNKNOWN, f"aiohttp {version} is a local build; its code may differ from the release", None
    if parsed >= FIXED_IN:
        return FIXED, f"aiohttp {version} is fixed upstream (since {FIXED_IN}); nothing to do", None
    if parsed.is_prerelease or parsed.is_devrelease or parsed.is_postrelease:
        return UNKNOWN, f"aiohttp {version} is not a final release we know", None
    release = str(parsed)
    if release in RELEASE_INDEX:
        return AFFECTED, f"aiohttp {version} has the waiter bug (aiohttp#9670)", release
    oldest = AFFECTED_RELEASES[0]
    if parsed < Version(oldest):
        return UNKNOWN, f"aiohttp {version} is older than the oldest supported release {oldest}", None
    return UNKNOWN, f"aiohttp {version} is not a release we know", None
