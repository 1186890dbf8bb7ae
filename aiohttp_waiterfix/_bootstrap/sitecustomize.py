"""Start-up hook of ``aiohttp-waiterfix-run``: this directory is first on PYTHONPATH.

Activates aiohttp-waiterfix (lazily: aiohttp is patched only when imported),
then runs the ``sitecustomize`` the process would have had without the
wrapper, as ddtrace-run does.  Every Python started under the wrapper reads
this file, whatever its version, so it stays plain: no annotations, no
f-strings, nothing imported but ``os`` and ``sys``.  Errors raised by the
chained sitecustomize propagate, so ``site`` reports them as it would have.
"""

import os
import sys


def _activate():  # type: () -> bool
    try:
        import aiohttp_waiterfix
    except Exception:  # not installed for this interpreter: stay out of its way
        return False
    try:
        aiohttp_waiterfix.activate("run-wrapper")
    except Exception:
        pass
    return True


def _chain():  # type: () -> bool
    """Import the next ``sitecustomize`` on sys.path; return True if there was one."""
    here = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
    positions = [i for i, entry in enumerate(sys.path) if os.path.normcase(os.path.abspath(entry or ".")) == here]
    saved = [sys.path[i] for i in positions]
    for i in reversed(positions):
        del sys.path[i]
    ours = sys.modules.pop("sitecustomize", None)
    found = False
    try:
        import sitecustomize  # type: ignore  # noqa: F401  (the user's, now that we are off sys.path)

        found = True
    except ImportError as exc:
        if getattr(exc, "name", None) != "sitecustomize":
            raise  # raised inside the user's sitecustomize: site reports it as usual
    finally:
        if not found and ours is not None and "sitecustomize" not in sys.modules:
            sys.modules["sitecustomize"] = ours
        for i, entry in zip(positions, saved):
            sys.path.insert(i, entry)
    return found


if _activate():
    if _chain():
        # A chained sitecustomize holding an `enable` block relabels the activation;
        # the wrapper is what the user asked for here.  Cheap: it only sets a label.
        _activate()
else:
    _chain()
