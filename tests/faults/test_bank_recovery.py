"""Fault suite, bank and kept audio (issue 10, items 3 and 6): SIGKILL between the bank save
and the audio write, corrupt sidecars and FLACs, ``bank rebuild`` that never drops a
reference silently, automatic bank generations and ``bank restore``, malformed headers.

Every command runs as a real ``python -m edgeasd`` subprocess on real files.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from e2e.harness import REPO, Setup, make_setup, write_normal
from support.onnx_models import make_test_model

from edgeasd.errors import BankCorruptError
from edgeasd.scoring import ReferenceBank, load_bank, store

FAULT = "EDGEASD_TEST_FAULT"


def _setup(tmp_path: Path, **sections) -> Setup:
    return make_setup(
        tmp_path / "agent", {"kind": "file", "path": str(tmp_path / "none.wav")}, **sections
    )


def _enroll_cmd(setup: Setup, domain: str, f: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "edgeasd",
        "enroll",
        "--config",
        str(setup.config),
        "--domain",
        domain,
        str(f),
    ]


def _enroll(setup: Setup, f: Path, domain: str, fault: str | None = None):
    env = dict(setup.env)
    if fault:
        env[FAULT] = fault
    return subprocess.run(
        _enroll_cmd(setup, domain, f),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def _bank(setup: Setup) -> ReferenceBank:
    return load_bank(setup.state / "bank")


def _groups_of(bank: ReferenceBank, domain: str) -> set[str]:
    return set(bank.groups_[bank.domains_ == domain].tolist())


def test_sigkill_between_bank_save_and_audio_then_rebuild_keeps_every_reference(tmp_path):
    setup = _setup(tmp_path)
    files = [write_normal(tmp_path / f"{n}.wav", 3, seed=i) for i, n in enumerate("abc")]
    assert _enroll(setup, files[0], "a").returncode == 0  # acknowledged
    killed = _enroll(setup, files[1], "b", fault="after-bank-save")
    assert killed.returncode == -signal.SIGKILL  # persisted, never acknowledged
    never = _enroll(setup, files[2], "c", fault="before-bank-save")
    assert never.returncode == -signal.SIGKILL  # audio staged, bank never saved
    bank = _bank(setup)
    assert len(bank) == 6 and sorted(set(bank.domains_.tolist())) == ["a", "b"]
    (ga,), (gb,) = _groups_of(bank, "a"), _groups_of(bank, "b")
    audio = setup.state / "audio"
    # b's audio was settled by c's commit: the bank holds b, so its sidecar got b's ids
    side = json.loads((audio / f"{gb}.json").read_text())
    assert side["pending"] is False and side["ids"] == bank.ids_[bank.domains_ == "b"].tolist()
    (audio / f"{ga}.flac").unlink()  # a's audio lost (disk full, size cap...)

    out = setup.cli("bank", "rebuild")
    assert out.returncode == 0, out.stderr
    after = _bank(setup)
    assert len(after) == 6  # every acknowledged and every persisted reference
    assert _groups_of(after, "a") == {ga} and _groups_of(after, "b") == {gb}
    assert f"kept without audio (stored embeddings carried over): {ga}" in out.stderr
    assert "never saved to the bank" in out.stderr  # c named, not added
    assert "c" not in set(after.domains_.tolist())
    assert "2 groups, 6 before (1 re-embedded, 1 kept without audio, 0 dropped" in out.stdout

    # another model: a's stored embeddings cannot be carried; refused by name, no change
    other = make_test_model(tmp_path / "other.onnx", window_seconds=0.5, dim=12)
    text = setup.config.read_text().replace(str(setup.root / "model.onnx"), str(other))
    setup.config.write_text(text)
    before = store.fingerprint(setup.state / "bank")
    out = setup.cli("bank", "rebuild")
    assert out.returncode == 2 and ga in out.stderr and "--drop-unkept" in out.stderr
    assert store.fingerprint(setup.state / "bank") == before
    out = setup.cli("bank", "rebuild", "--drop-unkept")
    assert out.returncode == 0, out.stderr
    assert f"DROPPED (--drop-unkept): {ga}" in out.stderr
    assert set(_bank(setup).domains_.tolist()) == {"b"} and _bank(setup).dim == 12


def _kill_campaign(tmp_path: Path, trials: int, seed: int) -> dict[str, int]:
    """SIGKILL direct enrollments at random times; returns the campaign's figures."""
    setup = _setup(tmp_path)
    f = write_normal(tmp_path / "n.wav", 4, seed=1)
    t0 = time.monotonic()
    assert _enroll(setup, f, "t0").returncode == 0
    runtime = time.monotonic() - t0
    rng = random.Random(seed)
    acked, killed = {"t0"}, 0
    for i in range(1, trials + 1):
        proc = subprocess.Popen(
            _enroll_cmd(setup, f"t{i}", f),
            env=setup.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            out, _ = proc.communicate(timeout=rng.uniform(0.5, 1.1) * runtime)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate()
        if proc.returncode == 0 and "enrolled 4 references" in out:
            acked.add(f"t{i}")
        elif proc.returncode == -signal.SIGKILL:
            killed += 1
        bank = _bank(setup)  # never garbage
        counts = {d: int((bank.domains_ == d).sum()) for d in set(bank.domains_.tolist())}
        assert all(counts.get(d) == 4 for d in acked), (acked, counts)
        assert set(counts.values()) == {4}  # nothing half enrolled
    persisted = len(_bank(setup))
    out = setup.cli("bank", "rebuild", timeout=300)
    assert out.returncode == 0, out.stderr
    rebuilt = _bank(setup)
    lost = sum(4 - int((rebuilt.domains_ == d).sum()) for d in acked)
    return {
        "trials": trials,
        "killed": killed,
        "acknowledged": len(acked) - 1,
        "persisted_references": persisted,
        "after_rebuild": len(rebuilt),
        "acknowledged_references_lost": lost,
    }


def test_kill_campaign_then_rebuild_loses_nothing(tmp_path):
    figures = _kill_campaign(tmp_path, trials=6, seed=1)
    print("campaign:", figures)
    assert figures["acknowledged_references_lost"] == 0
    assert figures["after_rebuild"] == figures["persisted_references"]


@pytest.mark.slow
def test_kill_campaign_long(tmp_path):
    figures = _kill_campaign(tmp_path, trials=40, seed=2)
    print("campaign:", figures)
    assert figures["acknowledged_references_lost"] == 0
    assert figures["after_rebuild"] == figures["persisted_references"]


def test_corrupt_sidecars_and_truncated_flac_are_skipped_and_named(tmp_path):
    setup = _setup(tmp_path)
    for i in range(4):
        f = write_normal(tmp_path / f"n{i}.wav", 3, seed=i)
        assert _enroll(setup, f, f"d{i}").returncode == 0
    bank = _bank(setup)
    g = [next(iter(_groups_of(bank, f"d{i}"))) for i in range(4)]
    audio = setup.state / "audio"
    (audio / f"{g[0]}.json").write_bytes(b"\x00\xffnot json")
    side = json.loads((audio / f"{g[1]}.json").read_text())
    del side["created"], side["segments"]
    (audio / f"{g[1]}.json").write_text(json.dumps(side))
    flac = audio / f"{g[2]}.flac"
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 2])
    # a later enrollment is persisted and reports success despite the bad sidecars
    out = _enroll(setup, write_normal(tmp_path / "n4.wav", 3, seed=4), "d4")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr

    out = setup.cli("bank", "rebuild")
    assert out.returncode == 0, out.stderr
    assert len(_bank(setup)) == len(bank) + 3  # nothing dropped
    err = out.stderr
    assert f"skipped {g[0]}.json: enrollment sidecar" in err and "unreadable" in err
    assert f"skipped {g[1]}.json: enrollment sidecar" in err and "lacks created, segments" in err
    assert f"kept audio of group {g[2]}:" in err and "truncated" in err
    assert "kept without audio (stored embeddings carried over)" in err
    for name in g[:3]:
        assert name in err
    assert "2 re-embedded, 3 kept without audio, 0 dropped" in out.stdout  # d3, d4 intact


def test_generations_restore_and_the_corruption_hint(tmp_path):
    setup = _setup(tmp_path)
    for i in range(4):
        f = write_normal(tmp_path / f"n{i}.wav", 2, seed=i)
        assert _enroll(setup, f, f"d{i}").returncode == 0  # 2 references each
    bank_file = setup.state / "bank"
    assert [
        len(load_bank(store.lock_path(bank_file).with_name(f"bank.{g}"))) for g in (1, 2, 3)
    ] == [6, 4, 2]
    out = setup.cli("bank", "restore", check=True)
    assert "generation 1: saved" in out.stdout and "6 references" in out.stdout
    assert "generation 3:" in out.stdout and "2 references" in out.stdout

    def corrupt(path: Path) -> None:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))

    corrupt(bank_file)
    out = setup.cli("bank", "summary")
    assert out.returncode == 2 and "checksum mismatch" in out.stderr
    assert "edgeasd bank restore 1" in out.stderr and "6 references" in out.stderr
    corrupt(setup.state / "bank.1")
    out = setup.cli("bank", "summary")
    assert "edgeasd bank restore 2" in out.stderr and "4 references" in out.stderr
    assert setup.cli("bank", "restore", "1").returncode == 2  # refuses a corrupt backup
    out = setup.cli("bank", "restore", "2", check=True)
    assert "restored generation 2" in out.stdout
    assert len(_bank(setup)) == 4
    assert "the replaced bank is now generation 1" in out.stdout
    listing = setup.cli("bank", "restore", check=True).stdout
    assert "generation 1:" in listing and "unusable: bank file" in listing  # the corrupt one
    assert setup.cli("bank", "restore", "7").returncode == 2


def _blob(header: object, payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode()
    body = store.MAGIC + len(head).to_bytes(8, "little") + head + payload
    return body + hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ([1, 2], "malformed header (a JSON list"),
        ({"format": 1}, "malformed header (KeyError: 'arrays')"),
        ({"format": 1, "arrays": [{"name": "x"}]}, "malformed header: array entry"),
        (
            {
                "format": 1,
                "arrays": [{"name": "x", "dtype": "<f4", "shape": "ab", "offset": 0, "nbytes": 4}],
            },
            "malformed header (ValueError",
        ),
        ({"format": 1, "arrays": []}, "is inconsistent"),
    ],
)
def test_valid_checksum_malformed_header_is_named(tmp_path, header, why):
    path = tmp_path / "bank"
    path.write_bytes(_blob(header, b"\0" * 4))
    with pytest.raises(BankCorruptError) as info:
        load_bank(path)
    assert why in info.value.message and str(path) in info.value.message


def test_malformed_header_through_the_cli(tmp_path):
    setup = _setup(tmp_path)
    setup.state.mkdir(parents=True)
    (setup.state / "bank").write_bytes(_blob({"format": 1, "arrays": "x"}))
    out = setup.cli("bank", "summary")
    assert out.returncode == 2 and "malformed header" in out.stderr
    assert "Traceback" not in out.stderr
    assert "no good automatic backup" in out.stderr
