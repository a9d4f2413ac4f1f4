"""Bank generations: a restore drops no version, is undone by ``restore 1``, and ids stay unique."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgeasd.errors import BankError
from edgeasd.scoring import ReferenceBank, generations, load_bank, permute, save_bank, store


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _versions(path: Path) -> list[str | None]:
    """Contents of [bank, bank.1, bank.2, bank.3]."""
    return [_digest(path)] + [_digest(generations.backup_path(path, g)) for g in (1, 2, 3)]


def _saved_history(path: Path, saves: int = 4) -> list[int]:
    """``saves`` saves of a growing bank (2 groups of 3 each time); returns the sizes."""
    rng = np.random.default_rng(0)
    bank = ReferenceBank(16)
    sizes = []
    for i in range(saves):
        bank.enroll(rng.normal(size=(3, 16)), domain=f"cond-{i % 2}", group=f"rec-{i}")
        save_bank(bank, path)
        sizes.append(len(bank))
    return sizes


def test_restore_1_then_restore_2_loses_no_version(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path)  # bank 12, .1 9, .2 6, .3 3
    start = _versions(path)
    assert None not in start
    store.restore(path, 1)
    assert len(load_bank(path)) == 9
    assert _versions(path) == [start[1], start[0], start[2], start[3]]
    store.restore(path, 2)  # "no, restore 2": the listing's generation 2 is still the old one
    assert len(load_bank(path)) == 6
    assert sorted(_versions(path)) == sorted(start)  # the 12-reference bank is still there
    assert _versions(path)[0] == start[2]


def test_restore_is_undone_by_restore_1(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path)
    start = _versions(path)
    store.restore(path, 3)
    assert len(load_bank(path)) == 3
    store.restore(path, 1)
    assert _versions(path)[0] == start[0] and len(load_bank(path)) == 12
    assert sorted(_versions(path)) == sorted(start)
    assert not list(tmp_path.glob("bank.restoring*"))


def test_restore_with_fewer_generations_and_a_missing_bank(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path, saves=2)  # bank 6, .1 3
    start = _versions(path)
    store.restore(path, 1)
    assert _versions(path) == [start[1], start[0], None, None]
    path.unlink()  # the bank itself lost: the backup comes back, no empty generation
    store.restore(path, 1)
    assert _versions(path) == [start[0], None, None, None]
    with pytest.raises(BankError, match="no backup generation 3"):
        store.restore(path, 3)


def test_ids_are_never_reused_after_a_restore(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path)  # ids 0..11 issued
    store.restore(path, 3)  # a bank whose own next id is 3
    bank = load_bank(path)
    assert int(bank.ids_.max()) == 2
    new = bank.enroll(np.random.default_rng(1).normal(size=(2, 16)), group="after")
    assert new.min() >= 12
    save_bank(bank, path)
    store.restore(path, 1)  # back to the 12-reference bank: its ids 3..11 stay its own
    again = load_bank(path).enroll(np.random.default_rng(2).normal(size=(1, 16)), group="x")
    assert again.min() >= 14


def test_ids_high_water_mark_covers_banks_saved_before_it_existed(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path)
    generations.next_id_path(path).unlink()  # as an older edgeasd left it
    store.restore(path, 2)
    assert generations.next_id_floor(path) == 12
    assert load_bank(path).references_.next_id == 12


def test_listing_says_what_each_generation_holds(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path)
    found = store.backups(path)
    assert [g.references for g in found] == [9, 6, 3]
    text = found[0].describe()
    assert "generation 1: saved" in text and "9 references (cond-0 6, cond-1 3)" in text
    assert "last enrollment rec-2 (cond-0, 3 references," in text
    assert "threshold " in text
    assert found[0].contents.threshold == pytest.approx(load_bank(found[0].path).threshold_)


def _bank_and_journal_names(path: Path) -> list[str]:
    return [path.name] + [generations.backup_path(path, g).name for g in (1, 2, 3)]


@pytest.mark.parametrize("direction", ["forward", "back"])
def test_recover_finishes_or_undoes_a_half_done_rearrangement(tmp_path, direction):
    path = tmp_path / "bank"
    _saved_history(path)
    names = _bank_and_journal_names(path)
    before = permute.layout(path, names)
    order = [before[names[2]], before[names[0]], before[names[1]], before[names[3]]]
    after = dict(zip(names, order, strict=True))
    permute.journal_path(path).write_text(json.dumps({"before": before, "after": after}))
    # half done by hand: gen 2 copied aside, gen 1 moved to gen 2
    scratch = path.with_name("bank.restoring-0")
    scratch.write_bytes(generations.backup_path(path, 2).read_bytes())
    generations.backup_path(path, 2).write_bytes(generations.backup_path(path, 1).read_bytes())
    if direction == "forward":  # gen 1 took the bank's copy, then the bank was replaced
        generations.backup_path(path, 1).write_bytes(path.read_bytes())
        path.write_bytes(scratch.read_bytes())
    with store.locked(path):
        done = generations.recover(path)
    want = after if direction == "forward" else before
    assert done == ("finished" if direction == "forward" else "undone")
    assert permute.layout(path, names) == want
    assert not permute.journal_path(path).exists() and not scratch.exists()


def test_a_bank_built_from_scratch_continues_the_ids(tmp_path):
    path = tmp_path / "bank"
    _saved_history(path)  # ids 0..11
    generations.next_id_path(path).unlink()  # saved by an older edgeasd: the bank still says 12
    fresh = store.continue_ids(ReferenceBank(16), path)
    assert fresh.enroll(np.ones((2, 16)), group="rebuilt").tolist() == [12, 13]


def test_restore_without_hard_links_copies_and_loses_nothing(tmp_path, monkeypatch):
    path = tmp_path / "bank"
    _saved_history(path)
    start = _versions(path)

    def no_links(*args, **kwargs):
        raise OSError(1, "hard links not supported here")

    monkeypatch.setattr(permute.os, "link", no_links)
    store.restore(path, 1)
    store.restore(path, 2)
    assert sorted(_versions(path)) == sorted(start) and _versions(path)[0] == start[2]
