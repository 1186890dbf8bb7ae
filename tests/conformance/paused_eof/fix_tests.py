"""The upstream 3.11.11 tests that cover the ``paused-eof`` fix.

Unpatched (``AIOHTTP_WAITERFIX=0``), exactly these fail on the affected
releases (checked on 3.8.0, 3.10.10 and 3.11.10, C and pure-Python parser);
patched, and on 3.11.11, every test of the file passes.  Both only count
``resume_reading()`` calls: they cannot tell resuming before the EOF callbacks
from resuming after them, which tests/test_fix_paused_eof.py does.
"""

from __future__ import annotations

FIX_TESTS = frozenset(
    {
        # a mock protocol marked paused gets one resume_reading() at feed_eof()
        "test_resumed_on_eof[pyloop]",
        # a real BaseProtocol paused by a full buffer is not paused after feed_eof()
        "test_stream_reader_eof_when_full",
    }
)
