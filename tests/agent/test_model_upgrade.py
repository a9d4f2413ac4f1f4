"""After an upgrade that changes the default model: the old bank keeps its model, or the agent
says exactly what to run (issue 19)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from support.onnx_models import make_test_model

from edgeasd.cli import main
from edgeasd.embedding import models
from edgeasd.scoring import load_bank

from .conftest import wav


@pytest.fixture
def spectral_v1_bank(tmp_path, make_config, capsys):
    """A bank enrolled with the default model, spectral-v1 (2 recordings of 20 s, 2 groups)."""
    cfg = make_config(None, model={"path": None}, scoring={"min_references": 4})
    files = [wav(tmp_path / f"n{i}.wav", [(20, "normal")], seed=10 * i) for i in range(2)]
    assert main(["enroll", "--config", str(cfg), *map(str, files)]) == 0
    capsys.readouterr()
    assert (
        load_bank(tmp_path / "state" / "bank").meta["model_id"].startswith("edgeasd-spectral-v1:")
    )
    return cfg


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_a_v1_bank_keeps_its_model_when_a_release_makes_v2_or_v3_the_default(
    spectral_v1_bank, tmp_path, monkeypatch, capsys, version
):
    """Issue 18: should spectral-v2 or v3 int8 become the default, a v1 bank keeps being scored
    by v1. The note says so and names ``edgeasd bank rebuild``, which moves the bank to it.
    """
    cfg = spectral_v1_bank
    v1_id = load_bank(tmp_path / "state" / "bank").meta["model_id"]
    assert models.default_model_path().name == models.SPECTRAL_MODEL  # this release: v1
    new = {"v2": models.SPECTRAL_V2_MODEL, "v3": models.SPECTRAL_V3_MODEL}[version]
    order = (new, models.SPECTRAL_MODEL, models.DIRECTACT_MODEL)
    monkeypatch.setattr(models, "DEFAULT_ORDER", order)
    assert models.default_model_path().name == new
    probe = wav(tmp_path / "p.wav", [(20, "normal")], seed=99)
    assert main(["score", "--config", str(cfg), str(probe)]) == 0
    err = capsys.readouterr().err
    assert f"note: the bank was built with the shipped model {v1_id}" in err
    assert f"this release's default is edgeasd-spectral-{version}-int8:" in err
    assert "edgeasd bank rebuild" in err
    assert main(["config", "check", "--config", str(cfg)]) == 0
    assert "the bank keeps being scored by the model that built it" in capsys.readouterr().out
    assert main(["bank", "rebuild", "--config", str(cfg)]) == 0
    assert f"rebuilt the bank with edgeasd-spectral-{version}-int8" in capsys.readouterr().out
    assert (
        load_bank(tmp_path / "state" / "bank")
        .meta["model_id"]
        .startswith(f"edgeasd-spectral-{version}-int8:")
    )
    assert main(["score", "--config", str(cfg), str(probe)]) == 0
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_opting_in_to_v2_or_v3_with_a_v1_bank_names_the_rebuild(
    spectral_v1_bank, tmp_path, capsys, version
):
    """``model.path`` naming spectral-v2/v3 int8 over a v1 bank: refused, with the command to run.

    A configured model is always the one used (never silently another); ``edgeasd bank
    rebuild`` under that configuration re-embeds the kept audio with the configured model.
    """
    data = yaml.safe_load(spectral_v1_bank.read_text())
    path = {"v2": models.spectral_v2_model_path(), "v3": models.spectral_v3_model_path()}
    data["model"]["path"] = str(path[version])  # the opt-in line
    cfg = tmp_path / "v2.yaml"
    cfg.write_text(yaml.safe_dump(data))
    probe = wav(tmp_path / "p.wav", [(20, "normal")], seed=99)
    assert main(["score", "--config", str(cfg), str(probe)]) != 0
    err = capsys.readouterr().err
    assert "was embedded with model edgeasd-spectral-v1:" in err
    assert f"the configured model is edgeasd-spectral-{version}-int8:" in err
    assert "edgeasd bank rebuild" in err
    assert main(["bank", "rebuild", "--config", str(cfg)]) == 0
    assert f"rebuilt the bank with edgeasd-spectral-{version}-int8" in capsys.readouterr().out
    assert main(["score", "--config", str(cfg), str(probe)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_an_older_shipped_model_keeps_scoring_the_bank_it_built(
    spectral_v1_bank, tmp_path, monkeypatch, capsys
):
    cfg = spectral_v1_bank
    spectral_id = load_bank(tmp_path / "state" / "bank").meta["model_id"]
    # a later upgrade: a release whose default is the Direct-ACT model, still shipping v1
    monkeypatch.setattr(models, "DEFAULT_ORDER", (models.DIRECTACT_MODEL, models.SPECTRAL_MODEL))
    assert models.default_model_path().name == models.DIRECTACT_MODEL
    probe = wav(tmp_path / "p.wav", [(20, "normal")], seed=99)
    assert main(["score", "--config", str(cfg), str(probe)]) == 0
    err = capsys.readouterr().err
    assert f"note: the bank was built with the shipped model {spectral_id}" in err
    assert "this release's default is edgeasd-directact" in err and "edgeasd bank rebuild" in err
    assert main(["config", "check", "--config", str(cfg)]) == 0
    assert "the bank keeps being scored by the model that built it" in capsys.readouterr().out
    # moving on: rebuild re-embeds the kept audio with the new default
    assert main(["bank", "rebuild", "--config", str(cfg)]) == 0
    rebuilt = capsys.readouterr()
    assert "rebuilt the bank with edgeasd-directact" in rebuilt.out
    assert re.search(r"^group 1 of 2 \(\S+\): re-embedded, 2 references$", rebuilt.err, re.M)
    assert re.search(r"^group 2 of 2 \(\S+\): re-embedded, 2 references$", rebuilt.err, re.M)
    assert load_bank(tmp_path / "state" / "bank").meta["model_id"].startswith("edgeasd-directact")
    assert main(["score", "--config", str(cfg), str(probe)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_a_bank_of_a_model_no_longer_shipped_names_the_commands(tmp_path, make_config, capsys):
    gone = make_test_model(tmp_path / "gone.onnx", window_seconds=1.0)
    old = make_config(None, model={"path": str(gone)})
    files = [wav(tmp_path / f"n{i}.wav", [(12, "normal")], seed=i) for i in range(2)]
    assert main(["enroll", "--config", str(old), *map(str, files)]) == 0
    cfg = tmp_path / "upgraded.yaml"  # the same agent, model.path back to the default
    cfg.write_text(old.read_text().replace(str(gone), "null"))
    run = subprocess.run(
        [sys.executable, "-m", "edgeasd", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "was built with the model test-" in run.stderr
    assert "which this edgeasd does not ship any more" in run.stderr
    assert (
        f"`systemctl stop edgeasd && edgeasd bank rebuild --config {cfg} && "
        "systemctl start edgeasd`" in run.stderr
    )
    assert main(["doctor", "--config", str(cfg)]) == 1
    assert "does not ship any more" in capsys.readouterr().out
    assert main(["bank", "rebuild", "--config", str(cfg)]) == 0  # exactly what it said
    assert main(["config", "check", "--config", str(cfg)]) == 0
