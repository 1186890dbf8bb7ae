"""Where the upstream tests for the ``paused-eof`` fix come from (read by the fetch script)."""

RELEASE = "3.11.11"
"""The first release with upstream's fix (aiohttp#10171): its flow-control tests are the reference."""
SDIST_SHA256 = "bb49c7f1e6ebf3821a42d81d494f538107610c3a705987f53068546b0e90303e"
FILES = ("tests/test_flowcontrol_streams.py", "tests/conftest.py")
"""The test file imports only aiohttp.streams and aiohttp.base_protocol; its `loop` fixture comes through the
conftest (aiohttp's pytest plugin), which also loads on 3.8.0 (trustme is optional there)."""
TESTS = ("test_flowcontrol_streams.py",)
"""What pytest runs, in upstream/."""
DEPS = ("pytest==8.3.3",)
"""3.11.11's pin of pytest (requirements/test.txt); the file needs no other test dependency."""
