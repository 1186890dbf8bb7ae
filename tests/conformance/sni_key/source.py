"""Where the upstream tests for the ``sni-key`` fix come from (read by ../fetch_upstream.py and ./conftest.py)."""

RELEASE = "3.14.1"
"""The first release with upstream's fix (aiohttp#12835): its two tests of it are the reference."""
SDIST_SHA256 = "307f2cff90a764d329e77040603fa032db89c5c24fdad50c4c15334cba744035"
FILES = ("tests/test_client_request.py", "tests/test_client_functional.py")
TESTS = ("test_client_request.py", "test_client_functional.py")
"""What pytest runs, in upstream/; conftest.py collects only the definitions in EXTRACT from them."""
EXTRACT = {
    "test_client_request.py": ("make_request", "test_connection_key_includes_server_hostname"),
    "test_client_functional.py": ("test_server_hostname_override_not_reused",),
}
"""The top-level definitions taken, unmodified, from each file: the two tests of #12835 and the one fixture of the
file they use (``make_request``).  The whole files import names older releases lack (the zlib backends of 3.12,
``DEFAULT_CHUNK_SIZE`` of 3.14, ...), and test much else besides."""
DEPS = ("pytest==9.0.3", "trustme==1.2.1")
"""As pinned by 3.14.1's requirements/test-common.txt; ``aiohttp_server`` and ``loop`` come from the installed
release's own ``aiohttp.pytest_plugin``."""
