"""Configuration schema: defaults, the shipped YAML, validation messages."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.config import Config, config_from_dict, load_config
from edgeasd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "edgeasd.yaml"


def test_shipped_yaml_equals_defaults():
    assert yaml.safe_load(SHIPPED.read_text()) == Config().to_dict()
    assert load_config(SHIPPED) == Config()


def test_every_shipped_key_is_commented():
    lines = SHIPPED.read_text().splitlines()
    sections = [ln.rstrip(":") for ln in lines if ln and not ln.startswith((" ", "#"))]
    assert sections == list(Config().to_dict())
    for i, line in enumerate(lines):
        if line.startswith("  ") and not line.lstrip().startswith("#"):
            # each key is preceded by a comment block, or shares one with the key above
            j = i - 1
            while lines[j].startswith("  ") and not lines[j].lstrip().startswith("#"):
                j -= 1
            assert lines[j].lstrip().startswith("#"), f"uncommented key: {line}"


def test_defaults_match_the_scoring_engine():
    from edgeasd.scoring import calibrate
    from edgeasd.scoring.bank import ReferenceBank

    cfg = Config()
    assert cfg.threshold.rule == calibrate.DEFAULT_RULE
    assert cfg.threshold.q == calibrate.DEFAULT_Q
    rules = Config.__dataclass_fields__["threshold"].default_factory.__dataclass_fields__
    assert rules["rule"].metadata["spec"]["choices"] == calibrate.RULES
    bank_defaults = inspect.signature(ReferenceBank).parameters
    for key in ("density", "k", "r", "norm", "exclude_same_group"):
        assert getattr(cfg.scoring, key) == bank_defaults[key].default, key
    # the estimator keeps the paper's exact rule by default; the agent finishes densities
    # per condition (edgeasd.scoring.density_rules, measured there)
    from edgeasd.scoring.density_rules import DEFAULT_DENSITY_CAP, DEFAULT_DENSITY_RULE, RULES

    assert bank_defaults["density_cap"].default is None
    assert bank_defaults["density_rule"].default is None
    assert ReferenceBank(4).density_rule == "paper"
    assert cfg.scoring.density_cap == DEFAULT_DENSITY_CAP
    assert cfg.scoring.density_rule == DEFAULT_DENSITY_RULE
    fields = Config.__dataclass_fields__["scoring"].default_factory.__dataclass_fields__
    assert fields["density_rule"].metadata["spec"]["choices"] == RULES


def test_defaults_match_quality_assess():
    from edgeasd.agent.runloop.stages import quality_options
    from edgeasd.audio.quality import assess

    params = inspect.signature(assess).parameters
    quality = quality_options(Config())  # the section less the daemon's no-signal alert
    assert set(Config().to_dict()["quality"]) - set(quality) == {"no_signal_alert_seconds"}
    assert set(quality) == {p for p in params if params[p].kind == params[p].KEYWORD_ONLY}
    for key, value in quality.items():
        assert value == params[key].default, key


def test_none_and_empty_file_give_defaults(tmp_path):
    assert load_config(None) == Config()
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set\n")
    assert load_config(empty) == Config()


def test_partial_file_and_relative_paths(tmp_path):
    path = tmp_path / "conf" / "a.yaml"
    path.parent.mkdir()
    path.write_text(
        "model: {path: m.onnx, threads: 2}\n"
        "source: {kind: file, path: ../clips, channels: 1, realtime: false}\n"
        "detector: {k: 2, n: 3}\n"
        "window: {seconds: 2}\n"
        "paths: {state_dir: /var/x}\n"
    )
    cfg = load_config(path)
    assert cfg.model.path == str(tmp_path / "conf" / "m.onnx")
    assert Path(cfg.source.path).resolve() == tmp_path / "clips"
    assert cfg.source.channels == 1 and cfg.source.realtime is False
    assert (cfg.detector.k, cfg.detector.n) == (2, 3)
    assert cfg.window.seconds == 2.0 and isinstance(cfg.window.seconds, float)
    assert cfg.paths.state_dir == "/var/x"
    assert cfg.scoring == Config().scoring
    assert cfg.origin == str(path)


def test_model_path_list_form(tmp_path):
    """``model.path`` as a list: an ensemble; each entry resolved like the single path."""
    path = tmp_path / "conf" / "a.yaml"
    path.parent.mkdir()
    path.write_text("model:\n  path:\n    - m1.onnx\n    - ../m2.onnx\n    - /abs/m3.onnx\n")
    cfg = load_config(path)
    want = (str(tmp_path / "conf" / "m1.onnx"), str(tmp_path / "conf" / "../m2.onnx"))
    assert cfg.model.path == (*want, "/abs/m3.onnx") == cfg.model.paths
    d = cfg.to_dict()
    assert d["model"]["path"] == [*want, "/abs/m3.onnx"]  # a list: YAML- and JSON-safe
    assert yaml.safe_load(yaml.safe_dump(d)) == d and config_from_dict(d) == cfg
    assert cfg.replace(model={"threads": 2}).model.path == cfg.model.path
    one = config_from_dict({"model": {"path": ["~/m.onnx"]}})
    assert one.model.paths == (str(Path("~/m.onnx").expanduser()),)
    assert Config().model.paths == ()
    assert config_from_dict({"model": {"path": "m.onnx"}}).model.paths == ("m.onnx",)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"detectr": {}}, "unknown key 'detectr'; did you mean 'detector'?"),
        ({"detector": {"kk": 1}}, "unknown key 'detector.kk'; did you mean 'detector.k'?"),
        ({"detector": {"k": 0}}, "'detector.k' is 0, out of range; allowed: an integer >= 1"),
        ({"detector": {"k": 3, "n": 2}}, "'detector.k' (3) is larger than 'detector.n' (2)"),
        ({"detector": {"k": 1.5}}, "'detector.k' is a float (1.5)"),
        ({"detector": {"k": True}}, "'detector.k' is True"),
        ({"detector": 5}, "'detector' must be a mapping"),
        ({"model": {"threads": "2"}}, "'model.threads' is the string '2'"),
        ({"source": {"kind": "microphon"}}, "(did you mean 'microphone'?)"),
        ({"source": {"kind": "file"}}, "'source.path' is required"),
        ({"source": {"channels": "left"}}, "'source.channels' is 'left'"),
        ({"source": {"channels": -1}}, "'source.channels' is -1, out of range"),
        ({"source": {"realtime": "yes please"}}, "'source.realtime' is the string"),
        ({"source": {"device": ""}}, "'source.device' is an empty string"),
        ({"source": {"capture_channels": 0}}, "'source.capture_channels' is 0, out of range"),
        ({"source": {"capture_channels": "2"}}, "'source.capture_channels' is the string"),
        (
            {"window": {"seconds": 0}},
            "'window.seconds' is 0.0, out of range; allowed: a number > 0",
        ),
        ({"window": {"seconds": float("nan")}}, "'window.seconds' is nan"),
        ({"scoring": {"density": "gwrp"}}, "'scoring.r' is required"),
        ({"scoring": {"r": 0.5}}, "'scoring.r' is only used with"),
        ({"scoring": {"density": "gwrp", "r": 1.5}}, "'scoring.r' is 1.5, out of range"),
        (
            {"threshold": {"q": 1}},
            "'threshold.q' is 1.0, out of range; allowed: a number > 0 and < 1",
        ),
        ({"threshold": {"rule": "gama"}}, "(did you mean 'gamma'?)"),
        (
            {"threshold": {"rule": "fixed"}, "scoring": {"norm": "none"}},
            "'threshold.value' is required",
        ),
        ({"logs": {"max_bytes": 10}}, "'logs.max_bytes' is 10, out of range"),
        ({"model": {"threads": None}}, "'model.threads' must not be null"),
        ({"model": {"path": []}}, "'model.path' is an empty list; allowed: a string, or a"),
        ({"model": {"path": ["a", 3]}}, "'model.path[1]' is a int (3); allowed: a string"),
        ({"model": {"path": ["a", ["b"]]}}, "'model.path[1]' is a list (['b'])"),
        ({"model": {"path": [{"b": 1}]}}, "'model.path[0]' is a mapping"),
        ({"model": {"path": ["a", None]}}, "'model.path[1]' must not be null"),
        ({"model": {"path": ["a", " "]}}, "'model.path[1]' is an empty string"),
        ({"model": {"path": ["/m/a", "/m/b", "/m/a"]}}, "'model.path' lists /m/a more than"),
        ({"source": {"path": ["a"]}}, "'source.path' is a list (['a'])"),
        ({"model": {"threads": [1]}}, "'model.threads' is a list ([1])"),
        (["model"], "must be a mapping of sections"),
    ],
)
def test_invalid_values_name_the_key(data, needle):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert needle in info.value.message
    assert info.value.help


def test_errors_in_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  threads: 1\ndetector:\n  k: 1: 2\n  n: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert str(bad) in info.value.message and "line 4" in info.value.message
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("detector:\n  n: 0\n")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: 'detector\.n' is 0"):
        load_config(wrong)
    dup = tmp_path / "dup.yaml"
    dup.write_text("detector:\n  k: 1\nmodel: {threads: 2}\ndetector:\n  n: 2\n")
    with pytest.raises(
        ConfigError, match="line 4, column 1: invalid YAML: duplicate key 'detector'"
    ):
        load_config(dup)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(binary)


def test_to_dict_round_trip_and_replace():
    cfg = config_from_dict({"detector": {"k": 2, "n": 4}, "source": {"kind": "demo"}})
    assert config_from_dict(cfg.to_dict()) == cfg
    assert yaml.safe_load(yaml.safe_dump(cfg.to_dict())) == cfg.to_dict()
    changed = cfg.replace(detector={"n": 2})
    assert (changed.detector.k, changed.detector.n, cfg.detector.n) == (2, 2, 4)
    with pytest.raises(ConfigError, match=r"'detector\.k' \(2\) is larger"):
        cfg.replace(detector={"n": 1})
    with pytest.raises(ConfigError, match="did you mean 'detector'"):
        cfg.replace(detectors={"n": 1})
    with pytest.raises(AttributeError):
        cfg.detector.k = 5  # frozen


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["mix", "file", "demo", "knn", "gwrp", "ratio", "fixed", "auto", "", " "]),
    st.text(max_size=8),
)
_keys = st.sampled_from(
    [k for section in Config().to_dict().values() for k in section] + ["bogus", "K"]
)
_sections = st.sampled_from([*Config().to_dict(), "nonsense"])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        _sections,
        st.one_of(_scalars, st.dictionaries(_keys, _scalars, max_size=4), st.lists(_scalars)),
        max_size=4,
    )
)
def test_any_input_gives_a_config_or_a_config_error(data):
    try:
        cfg = config_from_dict(data)
    except ConfigError as exc:
        assert exc.message and exc.help
        return
    # accepted: every given value survived validation unchanged (ints widened to floats)
    assert config_from_dict(cfg.to_dict()) == cfg
    for name, values in data.items():
        for key, value in (values or {}).items():
            if not (isinstance(value, str) and value.startswith("~")):  # paths: expanded
                assert cfg.to_dict()[name][key] == value


def test_capture_channels_reaches_the_microphone_source(monkeypatch):
    """``source.capture_channels`` (null = automatic) is passed to ``MicrophoneSource``."""
    from edgeasd.agent.runloop.stages import source_options
    from edgeasd.audio import microphone
    from edgeasd.audio.factory import make_source

    params = inspect.signature(microphone.MicrophoneSource.__init__).parameters
    assert "capture_channels" in params
    seen = []
    monkeypatch.setattr(microphone, "MicrophoneSource", lambda **kw: seen.append(kw) or kw)
    assert config_from_dict({}).source.capture_channels is None
    for value in (None, 2):
        config = config_from_dict({"source": {"kind": "microphone", "capture_channels": value}})
        kind, options = source_options(config)
        assert options["capture_channels"] == value
        make_source(kind, options, 16000)
    assert "capture_channels" not in seen[0]  # null: MicrophoneSource's automatic choice
    assert seen[1]["capture_channels"] == 2


def test_max_references_is_a_cap_above_min_references():
    from edgeasd.config import config_from_dict

    assert Config().scoring.max_references == 10000
    assert config_from_dict({"scoring": {"max_references": None}}).scoring.max_references is None
    with pytest.raises(ConfigError, match=r"max_references.*out of range"):
        config_from_dict({"scoring": {"max_references": 5}})
    with pytest.raises(ConfigError, match=r"below .scoring\.min_references."):
        config_from_dict({"scoring": {"max_references": 100, "min_references": 200}})
