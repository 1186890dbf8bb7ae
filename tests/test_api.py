"""apply() / revert() / status(): semantics of the public API, in this process.

Every test leaves the fixes as it found them (the ``restore`` fixture), so
the other test modules see the state conftest's import activation made.
What a fix changes is read from its declaration (``_registry.FIXES``), never
listed here.  Checks that need a fix are skipped where this aiohttp needs
none, and replaced by the "left alone" checks there.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections import deque
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import aiohttp_waiterfix  # activation before aiohttp is imported

import aiohttp  # isort: skip
from aiohttp.connector import BaseConnector  # isort: skip

from aiohttp_waiterfix import _patcher
from aiohttp_waiterfix._registry import ADD, FIXES, WAITERS, WRAP, Change, Fix, owners
from aiohttp_waiterfix._status import assess

VERSION = aiohttp.__version__
NEEDED = [fix for fix in FIXES if assess(fix, VERSION).affected]
ADDED = "_wait_for_available_connection"

needs_affected = pytest.mark.skipif(not NEEDED, reason=f"aiohttp {VERSION} needs none of our fixes")
needs_waiters = pytest.mark.skipif(WAITERS not in NEEDED, reason=f"aiohttp {VERSION} has upstream's waiter fix")
needs_fixed = pytest.mark.skipif(
    any(assess(fix, VERSION).affected is not False for fix in FIXES),
    reason=f"aiohttp {VERSION} is not fixed upstream for every fix",
)

Owner = Tuple[str, str]


def changes_here() -> List[Change]:
    """What the fixes this release needs change, read from their declarations."""
    out = []
    for fix in NEEDED:
        variant = _patcher.variant_for(fix, VERSION)
        assert variant is not None, fix.id
        out.extend(variant.changes)
    return out


def owner_class(module: str, owner: str) -> type:
    cls: type = getattr(importlib.import_module(module), owner)
    return cls


def class_dicts() -> Dict[Owner, Dict[str, Any]]:
    """``vars()`` of every class any fix touches (on any release)."""
    out = {}
    for module, owner in owners():
        try:
            out[(module, owner)] = dict(vars(owner_class(module, owner)))
        except (ImportError, AttributeError):  # a class this release does not have
            pass
    return out


def assert_same_dicts(before: Dict[Owner, Dict[str, Any]], after: Dict[Owner, Dict[str, Any]]) -> None:
    assert set(before) == set(after)
    for owner in before:
        b, a = before[owner], after[owner]
        assert set(b) == set(a), f"{owner}: added {set(a) - set(b)}, removed {set(b) - set(a)}"
        changed = [name for name in b if b[name] is not a[name]]
        assert not changed, f"{owner}: not the very same objects: {changed}"


@pytest.fixture
def restore() -> Iterator[None]:
    """Leave the fixes applied or not, exactly as the test found them."""
    was_applied = _patcher.applied_fixes()
    yield
    aiohttp_waiterfix.revert()
    if was_applied:
        assert aiohttp_waiterfix.apply().applied


@pytest.fixture
def originals(restore: None) -> Dict[Owner, Dict[str, Any]]:
    """The touched classes' ``__dict__`` on the unpatched release (every fix reverted)."""
    aiohttp_waiterfix.revert()
    return class_dicts()


def our_warnings(caught: List[warnings.WarningMessage]) -> List[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, aiohttp_waiterfix.WaiterfixWarning)]


# --------------------------------------------------------------------- Status


def test_status_is_importable_and_frozen() -> None:
    from aiohttp_waiterfix import FixStatus, Status

    assert aiohttp_waiterfix.Status is Status and aiohttp_waiterfix.FixStatus is FixStatus
    assert {"Status", "FixStatus"} <= set(aiohttp_waiterfix.__all__)
    status = aiohttp_waiterfix.status()
    assert isinstance(status, Status)
    assert [f.name for f in dataclasses.fields(Status)] == [
        "aiohttp_version",
        "affected",
        "applied",
        "reason",
        "activated_by",
        "fixes",
        "watchdog",
    ]
    assert [f.name for f in dataclasses.fields(FixStatus)] == ["id", "affected", "applied", "reason"]
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
    assert status.aiohttp_version == VERSION
    assert isinstance(status.reason, str) and status.reason
    assert [fix.id for fix in status.fixes] == [fix.id for fix in FIXES]
    for fix, fix_status in zip(FIXES, status.fixes):
        assert fix_status.affected == assess(fix, VERSION).affected, fix.id
        assert fix_status.reason
    assert status.applied == (bool(NEEDED) and all(f.applied for f in status.fixes if f.affected))


# ---------------------------------------------------------------- affected


@needs_affected
def test_apply_changes_exactly_what_the_declarations_say(originals: Dict[Owner, Dict[str, Any]]) -> None:
    import wrapt

    status = aiohttp_waiterfix.apply()
    assert status.applied and status.affected is True, status
    assert status.aiohttp_version == VERSION
    assert status.activated_by == "apply()"
    assert VERSION in status.reason
    assert {fix.id for fix in status.fixes if fix.applied} == {fix.id for fix in NEEDED}
    patched = class_dicts()
    expected = {(c.module, c.owner, c.name): c for c in changes_here()}
    for owner, before in originals.items():
        after = patched[owner]
        added = {(*owner, name) for name in set(after) - set(before)}
        changed = {(*owner, name) for name in before if after[name] is not before[name]}
        assert added == {key for key in expected if key[:2] == owner and expected[key].kind == ADD}
        assert changed == {key for key in expected if key[:2] == owner and expected[key].kind != ADD}
    for (module, owner, name), change in expected.items():
        new = patched[(module, owner)][name]
        if change.kind == WRAP:
            original = originals[(module, owner)][name]
            assert isinstance(new, wrapt.FunctionWrapper)
            assert new.__wrapped__ is original, f"{name}: more than one layer"
        else:
            assert new is getattr(
                importlib.import_module(f"aiohttp_waiterfix.fixes.{_module_of(change)}"), change.using
            )


def _module_of(change: Change) -> str:
    return _fix_of(change).module


def _fix_of(change: Change) -> Fix:
    """The fix declaring ``change`` in any variant (``Fix.changes()`` keeps one change per attribute: two variants
    can replace one attribute with different functions)."""
    return next(fix for fix in FIXES if any(change in variant.changes for variant in fix.variants))


@needs_affected
def test_apply_is_idempotent(originals: Dict[Owner, Dict[str, Any]]) -> None:
    first = aiohttp_waiterfix.apply()
    patched = class_dicts()
    again = aiohttp_waiterfix.apply()
    assert again == first
    assert_same_dicts(patched, class_dicts())


@needs_affected
def test_revert_restores_the_very_same_objects(originals: Dict[Owner, Dict[str, Any]]) -> None:
    aiohttp_waiterfix.apply()
    status = aiohttp_waiterfix.revert()
    assert not status.applied
    assert status.affected is True
    assert "revert" in status.reason
    assert not any(fix.applied for fix in status.fixes)
    assert_same_dicts(originals, class_dicts())
    assert aiohttp_waiterfix.status() == status


@needs_affected
def test_revert_is_idempotent(originals: Dict[Owner, Dict[str, Any]]) -> None:
    first = aiohttp_waiterfix.revert()
    second = aiohttp_waiterfix.revert()
    assert first == second
    assert not second.applied
    assert_same_dicts(originals, class_dicts())


@needs_affected
def test_apply_revert_apply(originals: Dict[Owner, Dict[str, Any]]) -> None:
    aiohttp_waiterfix.apply()
    first = class_dicts()
    aiohttp_waiterfix.revert()
    assert aiohttp_waiterfix.apply().applied
    second = class_dicts()
    for change in changes_here():
        a, b = first[(change.module, change.owner)][change.name], second[(change.module, change.owner)][change.name]
        if change.kind == WRAP:  # a new wrapper around the very same original
            assert b.__wrapped__ is originals[(change.module, change.owner)][change.name]
        else:  # module-level objects: the same ones again
            assert a is b, change.target


@needs_affected
@pytest.mark.parametrize("fix_id", [fix.id for fix in NEEDED])
def test_each_fix_can_be_skipped_alone(originals: Dict[Owner, Dict[str, Any]], fix_id: str) -> None:
    status = aiohttp_waiterfix.apply(skip=[fix_id])
    by_id = {fix.id: fix for fix in status.fixes}
    assert not by_id[fix_id].applied and "skipped" in by_id[fix_id].reason
    assert all(fix.applied for fix in status.fixes if fix.affected and fix.id != fix_id)
    assert not status.applied and fix_id in status.reason
    skipped = [c for c in changes_here() if _fix_of(c).id == fix_id]
    patched = class_dicts()
    for change in skipped:
        owner = (change.module, change.owner)
        assert patched[owner].get(change.name) is originals[owner].get(change.name), change.target


@needs_affected
def test_skip_from_the_environment_and_unknown_ids_warn(
    originals: Dict[Owner, Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped = NEEDED[0].id
    monkeypatch.setenv("AIOHTTP_WAITERFIX_SKIP", f" {skipped.upper()} ,, no-such-fix")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = aiohttp_waiterfix.apply()
    by_id = {fix.id: fix for fix in status.fixes}
    assert by_id[skipped].reason == "skipped by AIOHTTP_WAITERFIX_SKIP"
    assert any("no-such-fix" in str(w.message) for w in our_warnings(caught))


@needs_waiters
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


@needs_waiters
def test_refused_when_someone_else_added_the_method(originals: Dict[Owner, Dict[str, Any]]) -> None:
    def foreign(self: Any) -> None:  # pragma: no cover - never called
        pass

    BaseConnector._wait_for_available_connection = foreign  # type: ignore[attr-defined]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = aiohttp_waiterfix.apply()
            again = aiohttp_waiterfix.apply()
        waiters = next(fix for fix in status.fixes if fix.id == "waiters")
        assert not status.applied and status.affected is True
        assert not waiters.applied and "refused" in waiters.reason and ADDED in waiters.reason
        assert all(fix.applied for fix in status.fixes if fix.affected and fix.id != "waiters"), "others still apply"
        assert again == status
        assert len(our_warnings(caught)) <= 1  # once per reason per process (another test may have seen it first)
        expected = class_dicts()
        assert vars(BaseConnector)[ADDED] is foreign
        assert expected[("aiohttp.connector", "BaseConnector")] == {
            **originals[("aiohttp.connector", "BaseConnector")],
            ADDED: foreign,
        }
    finally:
        del BaseConnector._wait_for_available_connection  # type: ignore[attr-defined]
        aiohttp_waiterfix.revert()
    assert aiohttp_waiterfix.apply().applied


@needs_waiters
def test_refused_when_a_method_was_replaced(originals: Dict[Owner, Dict[str, Any]]) -> None:
    original = originals[("aiohttp.connector", "BaseConnector")]["_release_waiter"]

    def changed(self: Any) -> None:  # pragma: no cover - never called
        return original(self)  # type: ignore[no-any-return]

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
        BaseConnector._release_waiter = original  # type: ignore[method-assign]
        aiohttp_waiterfix.revert()
    assert aiohttp_waiterfix.apply().applied
    assert vars(BaseConnector)["_release_waiter"] is not original


@needs_affected
def test_a_failure_half_way_restores_that_fix(
    originals: Dict[Owner, Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import wrapt

    # A wrapped method if any (it comes after replaced ones), else a replaced one: some releases need only REPLACEs.
    victim = next(c for c in sorted(changes_here(), key=lambda c: c.kind != WRAP) if c.kind != ADD)
    installer = "wrap_function_wrapper" if victim.kind == WRAP else "apply_patch"
    real = getattr(wrapt, installer)

    def fail_on_victim(owner: Any, name: str, new: Any) -> Any:
        if owner.__name__ == victim.owner and name == victim.name:
            raise RuntimeError("injected failure")
        return real(owner, name, new)

    monkeypatch.setattr(wrapt, installer, fail_on_victim)
    status = aiohttp_waiterfix.apply()
    failed = next(fix for fix in status.fixes if fix.affected and not fix.applied)
    assert "injected" in failed.reason and "refused" in failed.reason
    monkeypatch.undo()
    by_fix = {c for fix in FIXES if fix.id == failed.id for c in fix.changes()}
    now = class_dicts()
    for owner, before in originals.items():
        for name in set(before) | set(now[owner]):
            if any((c.module, c.owner, c.name) == (*owner, name) for c in by_fix):
                assert now[owner].get(name) is before.get(name), f"{name} of the failed fix was not put back"
    aiohttp_waiterfix.revert()
    assert aiohttp_waiterfix.apply().applied


@needs_waiters
def test_revert_refuses_to_drop_a_wrapper_added_after_ours(originals: Dict[Owner, Dict[str, Any]]) -> None:
    """Someone (a tracer) wrapped connect after the patch: revert must not silently remove them."""
    aiohttp_waiterfix.apply()
    ours = vars(BaseConnector)["connect"]

    async def traced_connect(self: Any, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        return await ours(self, *args, **kwargs)

    BaseConnector.connect = traced_connect  # type: ignore[method-assign]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            refused = aiohttp_waiterfix.revert()
        waiters = next(fix for fix in refused.fixes if fix.id == "waiters")
        assert waiters.applied and not any(fix.applied for fix in refused.fixes if fix.id != "waiters")
        assert vars(BaseConnector)["connect"] is traced_connect
        assert ADDED in vars(BaseConnector)
        assert our_warnings(caught)
    finally:
        BaseConnector.connect = ours  # type: ignore[method-assign]
    assert not aiohttp_waiterfix.revert().applied
    assert_same_dicts(originals, class_dicts())


# ------------------------------------------------------------------- fixed


@needs_fixed
def test_fixed_release_is_left_alone(restore: None) -> None:
    before = class_dicts()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = aiohttp_waiterfix.apply()
        reverted = aiohttp_waiterfix.revert()
    assert not status.applied
    assert status.affected is False
    assert "fixed upstream" in status.reason
    assert all(fix.affected is False and not fix.applied for fix in status.fixes)
    assert status.aiohttp_version == VERSION
    assert not reverted.applied and reverted.affected is False
    assert_same_dicts(before, class_dicts())
    assert not our_warnings(caught)
