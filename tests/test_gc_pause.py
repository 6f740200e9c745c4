"""heldout._gc.paused_gc: no cyclic collection inside, the collector's state restored after."""

from __future__ import annotations

import gc
import threading

import pytest

from heldout._gc import paused_gc


@pytest.fixture(autouse=True)
def _collector_on() -> None:
    gc.enable()
    yield
    gc.enable()


def test_pause_nests_and_restores_even_after_an_error() -> None:
    with paused_gc():
        assert not gc.isenabled()
        with pytest.raises(RuntimeError), paused_gc():
            raise RuntimeError
        assert not gc.isenabled()  # the inner exit does not restart it under the outer block
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    with paused_gc():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_pauses_on_threads_restore_once_all_have_left() -> None:
    inside, release = threading.Barrier(3), threading.Event()

    def work() -> None:
        with paused_gc():
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled()
    release.set()
    for t in threads:
        t.join()
    assert gc.isenabled()


def test_curation_and_validation_run_paused_and_leave_the_collector_as_it_was(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from heldout import curation, validation

    seen = []
    original = validation.validate_frame

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(gc.isenabled())
        return original(*args, **kwargs)

    monkeypatch.setattr(validation, "validate_frame", spy)
    validation.check_obs_var(pd.DataFrame(), pd.DataFrame())
    monkeypatch.setattr(curation, "_curate", lambda name, **kwargs: seen.append(gc.isenabled()) or name)
    assert curation.curate("any", progress=False) == "any"
    assert seen == [False, False, False] and gc.isenabled()
