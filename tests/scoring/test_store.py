"""On-disk format: round trip, corruption, locking, transactions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeasd.errors import BankCorruptError, BankError, BankLockedError, InputError
from edgeasd.scoring import ReferenceBank, fileio, load_bank, save_bank, store

from .helpers import MODES, clustered, make_bank


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(1)
    bank = ReferenceBank(6)
    bank.enroll(clustered(rng, 20, 5, 6), group=[i % 3 for i in range(25)], domain="source")
    bank.enroll(clustered(rng, 3, 2, 6), domain="target")
    bank.meta.update({"model_id": "fan-1.0:0123456789abcdef", "notes": ["a", 1]})
    bank.calibrate("quantile", q=0.9)
    path = tmp_path / "bank.edb"
    save_bank(bank, path)
    return bank, path


@pytest.mark.parametrize("mode", MODES[::4])
def test_round_trip_every_mode(tmp_path, mode):
    rng = np.random.default_rng(0)
    bank = make_bank(mode, 5, exclude_same_group=True)
    bank.enroll(clustered(rng, 12, 4, 5), group=[i % 4 for i in range(16)])
    bank.remove(bank.ids_[::5])
    save_bank(bank, tmp_path / "b")
    back = load_bank(tmp_path / "b")
    for attr in (
        "ids_",
        "density_",
        "embeddings_",
        "domains_",
        "groups_",
        "added_at_",
        "neighbour_ids_",
        "loo_scores_",
    ):
        np.testing.assert_array_equal(getattr(back, attr), getattr(bank, attr), err_msg=attr)
    assert back.threshold_ == bank.threshold_ and back.threshold_rule_ == bank.threshold_rule_
    Q = clustered(rng, 3, 3, 5)
    np.testing.assert_array_equal(back.score(Q), bank.score(Q))
    # the loaded bank keeps growing incrementally with fresh ids
    X = clustered(rng, 2, 1, 5)
    np.testing.assert_array_equal(back.enroll(X, group=9), bank.enroll(X, group=9))
    np.testing.assert_array_equal(back.density_, bank.density_)


def test_meta_and_calibration_survive(saved):
    bank, path = saved
    back = load_bank(path)
    assert back.meta == bank.meta
    assert back.threshold_rule_.startswith("0.9-quantile")
    assert back.domains_.tolist() == bank.domains_.tolist()


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty", "append"])
def test_corrupt_files_name_the_file_and_never_load(saved, damage):
    _, path = saved
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    elif damage == "truncate":
        blob = blob[: len(blob) - 100]
    elif damage == "magic":
        blob[:4] = b"PK\x03\x04"
    elif damage == "empty":
        blob = bytearray()
    else:
        blob += b"\x00"
    path.write_bytes(bytes(blob))
    with pytest.raises(BankCorruptError, match=str(path)) as info:
        load_bank(path)
    assert info.value.help


def test_every_truncation_point_is_detected(saved):
    _, path = saved
    blob = path.read_bytes()
    for cut in np.linspace(0, len(blob) - 1, 25).astype(int):
        path.write_bytes(blob[:cut])
        with pytest.raises(BankCorruptError):
            load_bank(path)


def test_other_format_version_is_refused(saved, monkeypatch):
    bank, path = saved
    monkeypatch.setattr(store, "FORMAT_VERSION", 99)
    save_bank(bank, path)
    monkeypatch.undo()
    with pytest.raises(BankCorruptError, match="format 99"):
        load_bank(path)


def test_missing_file_and_unserializable_meta(saved, tmp_path):
    bank, path = saved
    with pytest.raises(BankError, match="no reference bank"):
        load_bank(tmp_path / "nope.edb")
    before = path.read_bytes()
    bank.meta["bad"] = object()
    with pytest.raises(InputError, match="JSON"):
        save_bank(bank, path)
    assert path.read_bytes() == before


def test_failed_rename_leaves_old_file(saved, monkeypatch):
    bank, path = saved
    before = path.read_bytes()
    bank.enroll(np.ones(6))

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(BankError, match="No space left"):
        save_bank(bank, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert not list(path.parent.glob(".bank.edb.*tmp*"))


def test_stale_temp_files_are_cleaned_and_ignored(saved):
    bank, path = saved
    stale = path.parent / ".bank.edb.99999.0badc0de.tmp"
    older = path.parent / ".bank.edb.tmp-99999"  # the name earlier versions used
    for f in (stale, older):
        f.write_bytes(b"half a bank")
    assert len(load_bank(path)) == len(bank)
    save_bank(bank, path)
    assert not stale.exists() and not older.exists()


def test_lock_blocks_other_processes_and_is_reentrant(saved):
    bank, path = saved
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from edgeasd.scoring import store
            with store.locked({str(path)!r}):
                print("locked", flush=True)
                sys.stdin.readline()
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BankLockedError, match="locked by another process") as info:
            with store.locked(path, timeout=0.2):
                pass
        assert info.value.help
        with pytest.raises(BankLockedError):
            save_bank(bank, path, timeout=0.1)
    finally:
        holder.communicate("\n", timeout=20)
    with store.locked(path, timeout=1.0):
        save_bank(bank, path)  # re-entrant: no deadlock with our own lock
        with store.locked(path, timeout=0.1):
            pass


def test_transaction_saves_on_success_only(tmp_path):
    path = tmp_path / "t.edb"
    with pytest.raises(BankError, match="no reference bank"):
        with store.transaction(path):
            pass
    with store.transaction(path, create=lambda: ReferenceBank(3)) as bank:
        bank.enroll(np.eye(3), group="a")
    first = store.fingerprint(path)
    with pytest.raises(RuntimeError):
        with store.transaction(path) as bank:
            bank.enroll(np.ones(3), group="b")
            raise RuntimeError("operator pressed ctrl-c")
    assert len(load_bank(path)) == 3 and store.fingerprint(path) == first
    with store.transaction(path) as bank:
        bank.enroll(np.ones(3), group="b")
    assert len(load_bank(path)) == 4 and store.fingerprint(path) != first


@pytest.mark.parametrize("kw", [{}, {"density": "gwrp", "r": 1.0}, {"k": 3}])
def test_empty_bank_round_trip_then_grows(tmp_path, kw):
    path = tmp_path / "empty.edb"
    save_bank(ReferenceBank(4, **kw), path)
    bank = load_bank(path)
    # auto rule, nothing to calibrate on: uncalibrated (NaN), no longer the constant 3
    assert len(bank) == 0 and np.isnan(bank.threshold_)
    rng = np.random.default_rng(0)
    bank.enroll(rng.normal(size=(30, 4)), group=[i % 3 for i in range(30)])
    fresh = ReferenceBank(4, **kw)
    fresh.enroll(bank.embeddings_ * 1.0, group=bank.groups_.tolist())
    np.testing.assert_allclose(bank.density_, fresh.density_, rtol=1e-6)
