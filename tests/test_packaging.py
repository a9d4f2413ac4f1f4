"""pyproject.toml: SPDX license, the setuptools that reads it, the export toolchain pinned."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    (setuptools,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.fullmatch(r"setuptools>=(\d+)", setuptools)
    assert floor and int(floor[1]) >= 77  # PEP 639 license expressions: setuptools 77


@pytest.mark.parametrize("package", ["onnx", "onnxscript", "onnx-ir"])
def test_the_export_toolchain_is_pinned_to_what_the_tests_run(package):
    pins = {
        re.split(r"[=<>!~ ]", r, maxsplit=1)[0]: r
        for r in PYPROJECT["project"]["optional-dependencies"]["train"]
    }
    pin = pins[package]
    assert re.fullmatch(rf"{re.escape(package)}==[\d.]+", pin), pin
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{package} not installed (the train extra)")
    assert pin == f"{package}=={installed}", "the pin must be the version the tests ran with"
