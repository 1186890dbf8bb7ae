"""Where the upstream tests for the ``dns-trace`` fix come from (read by ../fetch_upstream.py and the noxfile)."""

RELEASE = "3.11.14"
"""The first release with upstream's fix (aiohttp#10529, backported as #10559); yanked for an unrelated regression
(aiohttp#10617), its tests are still the reference: 3.11.15 changed nothing of the DNS code."""
SDIST_SHA256 = "d6edc538c7480fa0a3b2bdd705f8010062d74700198da55d16498e1b49549b9c"
FILES = ("tests/test_connector.py", "tests/conftest.py")
"""test_connector.py's only local import is the conftest (its fixtures and the aiohttp pytest plugin)."""
TESTS = ("test_connector.py",)
"""What pytest runs, in upstream/; conftest.py keeps only its DNS tests (selection.py)."""
DEPS = ("pytest==8.3.3", "pytest-mock==3.14.0", "aiohappyeyeballs>=2.4.3", "pytest-timeout==2.3.1")
"""pytest and pytest-mock as pinned by 3.11.14's requirements/test.txt; test_connector.py imports aiohappyeyeballs
itself (aiohttp requires it only from 3.10.0).  pytest-timeout is ours: unpatched, the test of the fix can only hang.
No trustme: upstream's conftest does without it, and no DNS test uses TLS."""
