"""The fake's ``aiohttp.connector``; ``FAKE_AIOHTTP_CONNECTOR`` says how its import goes.

* ``plain`` (unset): a ``BaseConnector`` whose code is not aiohttp's;
* ``raise:ImportError``, ``raise:RuntimeError``: the import raises that (the
  application must see it unchanged);
* ``fail-once``: the first import raises ImportError, the next one is ``plain``
  (an optional dependency that was missing, then installed).
"""

import os

MODE = os.environ.get("FAKE_AIOHTTP_CONNECTOR", "plain")

if MODE == "fail-once":
    os.environ["FAKE_AIOHTTP_CONNECTOR"] = "plain"
    raise ImportError("first import fails")
if MODE.startswith("raise:"):
    error = {"ImportError": ImportError, "RuntimeError": RuntimeError}[MODE.split(":", 1)[1]]
    raise error("the application sees this: from aiohttp.connector")


class BaseConnector:
    def connect(self, req: object, traces: object, timeout: object) -> None:
        return None
