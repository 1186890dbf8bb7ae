"""Where the upstream tests for the ``waiters`` fix come from (read by ../fetch_upstream.py)."""

RELEASE = "3.10.11"
"""The first release with upstream's fix (aiohttp#9671): its connector tests are the reference."""
SDIST_SHA256 = "9dc2b8f3dcab2e39e0fa309c8da50c3b55e6f34ab25f1a71d3288f24924d33a7"
FILES = ("tests/test_connector.py", "tests/conftest.py")
"""test_connector.py's only local import is the conftest (its fixtures and the aiohttp pytest plugin)."""
TESTS = ("test_connector.py",)
"""What pytest runs, in upstream/."""
DEPS = ("pytest==8.3.2", "pytest-mock==3.14.0", "trustme==1.1.0", "aiohappyeyeballs>=2.3.4")
"""As pinned by 3.10.11's requirements/test.txt (its conftest uses trustme when present); test_connector.py imports
aiohappyeyeballs itself, which aiohttp requires only from 3.10.0."""
