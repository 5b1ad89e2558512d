"""A value store named by value_store= belongs to one journal: a second journal naming it is refused, and
`zart gc` of a journal never visits a folder another journal claimed."""
from __future__ import annotations

import numpy as np
import pytest

import zart_nb as zart
from zart_nb import _stores


@zart.step("big")
def big() -> np.ndarray:
    return np.arange(300_000, dtype=np.float64)  # 2.4 MB: above the default threshold, stored


@zart.workflow("claimed")
def claimed(_: object) -> float:
    return float(big().sum())


def test_a_value_store_folder_belongs_to_the_first_journal_that_names_it(tmp_path):
    store = tmp_path / "shared-store"
    first, second = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    total = float(np.arange(300_000, dtype=np.float64).sum())
    assert zart.run(claimed, None, execution_id="x", journal=first, value_store=str(store),
                    workers=1, display=False) == total
    marker = store / _stores.MARKER
    assert marker.stat().st_mode & 0o777 == 0o600
    assert len(list(store.iterdir())) >= 2  # the marker and the stored array
    with pytest.raises(zart.ConfigurationError, match="another journal"):
        zart.run(claimed, None, execution_id="y", journal=second, value_store=str(store), workers=1,
                 display=False)
    # the refused journal's gc would otherwise see the first journal's array as an orphan
    before = sorted(path.name for path in store.iterdir())
    zart.garbage_collect(second, keep=0, min_age=0)
    assert sorted(path.name for path in store.iterdir()) == before
    assert zart.load("x", "big#0", journal=first).sum() == total
