"""Fix ``paused-eof``: resume a paused connection at end of body (aiohttp#10169), for 3.8.0-3.11.10.

``StreamReader.feed_data()`` pauses the protocol once more than twice
``read_bufsize`` is buffered, and only reading the buffer resumes it.  When
the read that pauses it also carries the end of the body, ``feed_eof()`` runs
the EOF callbacks with the protocol still paused, and one of them returns the
connection to the pool.  The next request on that connection then never gets
its response (the transport does not read), or, if the body is read later,
that read resumes the protocol and re-arms the old ``sock_read`` timer on the
idle pooled connection, which fires and poisons it.

aiohttp 3.11.11 (PR #10171) resumes in ``feed_eof()`` before the callbacks.
We wrap ``feed_eof()`` instead of copying it: resuming and then running the
original is the same order, because waking its waiters only schedules them and
no transport delivers data from inside ``resume_reading()``.  The order
matters: ``ResponseHandler.resume_reading()`` re-arms ``sock_read``, and only
the ``_drop_timeout`` EOF callback that runs afterwards cancels it.

The same wrapper fixes the server side (``aiohttp.web`` pauses its
``RequestHandler`` the same way).  This module is imported only once
``aiohttp.streams`` has been imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Tuple

if TYPE_CHECKING:
    from aiohttp.streams import StreamReader


def wrap_feed_eof(
    wrapped: Callable[..., None], instance: StreamReader, args: Tuple[Any, ...], kwargs: Dict[str, Any]
) -> None:
    """Resume the protocol this stream paused, then mark the end of the body as aiohttp does."""
    protocol = instance._protocol
    # getattr: feed_data() reads the flag only past the high-water mark, so a
    # protocol without it (a test double, a third-party protocol) could always
    # reach feed_eof(); it must not start raising here.
    if not getattr(protocol, "_reading_paused", False):
        wrapped(*args, **kwargs)
        return
    try:
        # The protocol's own method: ResponseHandler's also re-arms sock_read,
        # which the original's _drop_timeout EOF callback then cancels.
        protocol.resume_reading()
    finally:
        wrapped(*args, **kwargs)  # a failing resume must not lose the end of the body
