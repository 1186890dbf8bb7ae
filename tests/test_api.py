"""apply() / revert() / status(): semantics of the public API, in this process.

Every test leaves the patch as it found it (the ``restore`` fixture), so the
other test modules see the state conftest's import activation made.  Checks
that need the patch are skipped where this aiohttp is not affected (3.10.11
and newer) and replaced by the "left alone" checks there.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import deque
from typing import Any, Dict, Iterator

import pytest

import aiohttp_waiterfix  # activation before aiohttp is imported

import aiohttp  # isort: skip
from aiohttp.connector import BaseConnector  # isort: skip

from aiohttp_waiterfix import _patcher
from aiohttp_waiterfix._versions import AFFECTED, classify

VERDICT, _REASON, _RELEASE = classify(aiohttp.__version__)
AFFECTED_RELEASE = VERDICT == AFFECTED
REPLACED = ("connect", "_get", "_available_connections", "_release_waiter", "_release_acquired")
WRAPPED = ("__init__", "_close")
ADDED = "_wait_for_available_connection"

needs_affected = pytest.mark.skipif(not AFFECTED_RELEASE, reason=f"aiohttp {aiohttp.__version__} is not affected")
needs_fixed = pytest.mark.skipif(VERDICT != "fixed", reason=f"aiohttp {aiohttp.__version__} is not fixed upstream")


def class_dict() -> Dict[str, Any]:
    return dict(vars(BaseConnector))


def assert_same_dict(before: Dict[str, Any], after: Dict[str, Any]) -> None:
    assert set(before) == set(after), f"added {set(after) - set(before)}, removed {set(before) - set(after)}"
    changed = [name for name in before if before[name] is not after[name]]
    assert not changed, f"not the very same objects: {changed}"


@pytest.fixture
def restore() -> Iterator[None]:
    """Leave the patch applied or not, exactly as the test found it."""
    was_applied = aiohttp_waiterfix.status().applied
    yield
    if was_applied:
        assert aiohttp_waiterfix.apply().applied
    else:
        aiohttp_waiterfix.revert()


@pytest.fixture
def originals(restore: None) -> Dict[str, Any]:
    """BaseConnector.__dict__ of the unpatched release (the patch reverted)."""
    aiohttp_waiterfix.revert()
    return class_dict()


# --------------------------------------------------------------------- Status


def test_status_is_importable_and_frozen() -> None:
    from aiohttp_waiterfix import Status

    assert aiohttp_waiterfix.Status is Status
    assert "Status" in aiohttp_waiterfix.__all__
    status = aiohttp_waiterfix.status()
    assert isinstance(status, Status)
    assert [f.name for f in dataclasses.fields(Status)] == [
        "aiohttp_version",
        "affected",
        "applied",
        "reason",
        "activated_by",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.applied = not status.applied  # type: ignore[misc]
    assert hash(status) == hash(dataclasses.replace(status))


def test_public_names() -> None:
    for name in aiohttp_waiterfix.__all__:
        assert getattr(aiohttp_waiterfix, name) is not None
    assert issubclass(aiohttp_waiterfix.WaiterfixWarning, RuntimeWarning)
    with pytest.raises(AttributeError):
        aiohttp_waiterfix.no_such_name  # noqa: B018


def test_activate_is_public_and_never_raises(restore: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """activate() is what enable's sitecustomize block calls: public, and it must never raise."""
    from aiohttp_waiterfix import _startup

    assert "activate" in aiohttp_waiterfix.__all__
    assert callable(aiohttp_waiterfix.activate) and aiohttp_waiterfix.activate.__doc__
    before = aiohttp_waiterfix.status()
    assert aiohttp_waiterfix.activate() is None  # aiohttp.connector is loaded: applying again changes nothing
    after = aiohttp_waiterfix.status()
    assert (after.applied, after.affected) == (before.applied, before.affected)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected failure")

    monkeypatch.setenv("AIOHTTP_WAITERFIX", "1")  # also in the unpatched (kill switch) run
    monkeypatch.setattr(_startup, "disabled_reason", _startup.disabled_reason)  # restored afterwards
    for target, name in ((aiohttp_waiterfix, "request_activation"), (_patcher, "apply_to_module")):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, broken)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                aiohttp_waiterfix.activate("sitecustomize")
            ours = [w for w in caught if issubclass(w.category, aiohttp_waiterfix.WaiterfixWarning)]
            assert any("injected failure" in str(w.message) for w in ours), name
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # not even when warnings are errors
                aiohttp_waiterfix.activate("sitecustomize")


def test_status_describes_this_process() -> None:
    status = aiohttp_waiterfix.status()
    assert status.aiohttp_version == aiohttp.__version__
    assert isinstance(status.reason, str) and status.reason
    if status.applied:
        assert status.affected is True
        assert ADDED in vars(BaseConnector)


# ---------------------------------------------------------------- affected


@needs_affected
def test_apply_replaces_exactly_the_documented_methods(originals: Dict[str, Any]) -> None:
    import wrapt

    status = aiohttp_waiterfix.apply()
    assert status.applied and status.affected is True
    assert status.aiohttp_version == aiohttp.__version__
    assert status.activated_by == "apply()"
    assert aiohttp.__version__ in status.reason
    patched = class_dict()
    assert set(patched) - set(originals) == {ADDED}
    changed = {name for name in originals if patched[name] is not originals[name]}
    assert changed == set(REPLACED) | set(WRAPPED)
    for name in WRAPPED:
        wrapper = patched[name]
        assert isinstance(wrapper, wrapt.FunctionWrapper)
        assert wrapper.__wrapped__ is originals[name], f"{name}: more than one layer"


@needs_affected
def test_apply_is_idempotent(originals: Dict[str, Any]) -> None:
    first = aiohttp_waiterfix.apply()
    patched = class_dict()
    again = aiohttp_waiterfix.apply()
    assert again == first
    assert_same_dict(patched, class_dict())


@needs_affected
def test_revert_restores_the_very_same_objects(originals: Dict[str, Any]) -> None:
    aiohttp_waiterfix.apply()
    status = aiohttp_waiterfix.revert()
    assert not status.applied
    assert status.affected is True
    assert "revert" in status.reason
    assert ADDED not in vars(BaseConnector)
    assert_same_dict(originals, class_dict())
    assert aiohttp_waiterfix.status() == status


@needs_affected
def test_revert_is_idempotent(originals: Dict[str, Any]) -> None:
    first = aiohttp_waiterfix.revert()
    second = aiohttp_waiterfix.revert()
    assert first == second
    assert not second.applied
    assert_same_dict(originals, class_dict())


@needs_affected
def test_apply_revert_apply(originals: Dict[str, Any]) -> None:
    aiohttp_waiterfix.apply()
    first = class_dict()
    aiohttp_waiterfix.revert()
    assert aiohttp_waiterfix.apply().applied
    second = class_dict()
    assert set(first) == set(second)
    # The replacement functions are module-level objects: the same ones again.
    for name in (*REPLACED[2:], "connect", ADDED):
        assert first[name] is second[name], name
    for name in WRAPPED:
        assert second[name].__wrapped__ is originals[name]


@needs_affected
def test_waiter_queues_follow_the_patch(restore: None) -> None:
    import asyncio

    async def make() -> Any:
        connector = aiohttp.BaseConnector()
        waiters = connector._waiters
        await connector.close()
        return waiters

    aiohttp_waiterfix.revert()
    assert asyncio.run(make()).default_factory is deque
    aiohttp_waiterfix.apply()
    assert asyncio.run(make()).default_factory is not deque


@needs_affected
def test_refused_when_someone_else_added_the_method(originals: Dict[str, Any]) -> None:
    def foreign(self: Any) -> None:  # pragma: no cover - never called
        pass

    BaseConnector._wait_for_available_connection = foreign  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = aiohttp_waiterfix.apply()
            again = aiohttp_waiterfix.apply()
        assert not status.applied and status.affected is True
        assert "refused" in status.reason and ADDED in status.reason
        assert again == status
        ours = [w for w in caught if issubclass(w.category, aiohttp_waiterfix.WaiterfixWarning)]
        assert len(ours) <= 1  # once per reason per process (another test may have seen it first)
        assert vars(BaseConnector)[ADDED] is foreign
        assert_same_dict({**originals, ADDED: foreign}, class_dict())
    finally:
        del BaseConnector._wait_for_available_connection  # type: ignore[attr-defined]
    assert aiohttp_waiterfix.apply().applied


@needs_affected
def test_refused_when_a_method_was_replaced(originals: Dict[str, Any]) -> None:
    def changed(self: Any) -> None:  # pragma: no cover - never called
        return originals["_release_waiter"](self)

    BaseConnector._release_waiter = changed  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", aiohttp_waiterfix.WaiterfixWarning)
            status = aiohttp_waiterfix.apply()
        assert not status.applied and status.affected is True
        assert "_release_waiter" in status.reason
        assert vars(BaseConnector)["_release_waiter"] is changed
        assert ADDED not in vars(BaseConnector)
    finally:
        BaseConnector._release_waiter = originals["_release_waiter"]  # type: ignore[method-assign]
    assert aiohttp_waiterfix.apply().applied
    assert vars(BaseConnector)["_release_waiter"] is not originals["_release_waiter"]


@needs_affected
def test_a_failure_half_way_restores_everything(originals: Dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import wrapt

    real = wrapt.wrap_function_wrapper

    def fail_on_close(module: Any, name: str, wrapper: Any) -> Any:
        if name == "_close":
            raise RuntimeError("injected failure")
        return real(module, name, wrapper)

    monkeypatch.setattr(wrapt, "wrap_function_wrapper", fail_on_close)
    with pytest.raises(RuntimeError, match="injected"):
        # apply_to_module lets internal errors out; the import hook catches them.
        _patcher.apply_to_module(__import__("aiohttp.connector").connector, "test")
    assert not aiohttp_waiterfix.status().applied
    assert_same_dict(originals, class_dict())
    monkeypatch.undo()
    assert aiohttp_waiterfix.apply().applied


# ------------------------------------------------------------------- fixed


@needs_fixed
def test_fixed_release_is_left_alone(restore: None) -> None:
    before = class_dict()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = aiohttp_waiterfix.apply()
        reverted = aiohttp_waiterfix.revert()
    assert not status.applied
    assert status.affected is False
    assert "fixed upstream" in status.reason
    assert status.aiohttp_version == aiohttp.__version__
    assert not reverted.applied and reverted.affected is False
    assert_same_dict(before, class_dict())
    assert not [w for w in caught if issubclass(w.category, aiohttp_waiterfix.WaiterfixWarning)]


@needs_affected
def test_revert_refuses_to_drop_a_wrapper_added_after_ours(originals: Dict[str, Any]) -> None:
    """Someone (a tracer) wrapped connect after the patch: revert must not silently remove them."""
    status = aiohttp_waiterfix.apply()
    ours = vars(BaseConnector)["connect"]

    async def traced_connect(self: Any, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        return await ours(self, *args, **kwargs)

    BaseConnector.connect = traced_connect  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            refused = aiohttp_waiterfix.revert()
        assert refused.applied and refused == status
        assert vars(BaseConnector)["connect"] is traced_connect
        assert ADDED in vars(BaseConnector)
        assert [w for w in caught if issubclass(w.category, aiohttp_waiterfix.WaiterfixWarning)]
    finally:
        BaseConnector.connect = ours  # type: ignore[method-assign]
    assert not aiohttp_waiterfix.revert().applied
    assert_same_dict(originals, class_dict())
