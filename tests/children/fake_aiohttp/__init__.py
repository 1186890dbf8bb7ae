"""A fake aiohttp for tests/test_startup.py, copied to ``<tmp>/aiohttp`` and put first on ``PYTHONPATH``.

``FAKE_AIOHTTP_VERSION`` is its ``__version__`` (unset: it has none).  Like the
real one, it sets ``__version__`` first, then imports what loads the connector.
"""

import os

if "FAKE_AIOHTTP_VERSION" in os.environ:
    __version__ = os.environ["FAKE_AIOHTTP_VERSION"]

from . import connector  # noqa: F401
