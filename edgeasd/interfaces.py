"""Typed boundaries between the pipeline's stages.

::

    Source --blocks--> windower/quality --windows--> Embedder --(n, dim)--> Scorer (bank)
        --scores--> Detector --events--> Sink (logs, MQTT, metrics)

Each boundary is a :class:`typing.Protocol`: a stage depends on what it receives, never on
the concrete class that produces it. The protocols are ``runtime_checkable`` so tests can
check that each concrete class satisfies them (``tests/test_interfaces.py``). This
module imports no stage at run time (only for type checking), so any stage may import it
without a cycle.

Concrete implementations:

* :class:`Source`: :mod:`edgeasd.audio.sources` (file, ALSA/PortAudio, stdin, ...).
* :class:`Embedder`: :class:`edgeasd.embedding.onnx.Embedder` (one ONNX model) and
  :class:`edgeasd.embedding.ensemble.EnsembleEmbedder` (several, cosine distances averaged).
* :class:`Scorer`: :class:`edgeasd.scoring.ReferenceBank`.
* :class:`Detector`: :class:`edgeasd.agent.alerts.detector.Detector` (k-of-n debounce of the
  scores).
* :class:`Sink`: :class:`edgeasd.agent.alerts.sinks.EventSinks` and its logs
  (:class:`edgeasd.agent.alerts.event_log.JsonlLog`), and the fleet observers
  :class:`edgeasd.fleet.mqtt.MqttSink` and :class:`edgeasd.fleet.metrics.Metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgeasd.audio.sources import Source
from edgeasd.events import Record

if TYPE_CHECKING:
    import numpy as np

    from edgeasd.agent.alerts.detector import Event
    from edgeasd.embedding.onnx import ModelInfo

__all__ = ["Detector", "Embedder", "Record", "Scorer", "Sink", "Source"]


@runtime_checkable
class Embedder(Protocol):
    """Turns fixed-length audio windows into embeddings.

    Attributes
    ----------
    info : edgeasd.embedding.onnx.ModelInfo
        What the model declares (sample rate, window length, dimension, metric, id).
    """

    info: ModelInfo

    @property
    def window_samples(self) -> int:
        """Samples per input window (``info.window_samples``)."""
        ...

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Embed a batch of windows.

        Parameters
        ----------
        windows : (n, window_samples) float32 array

        Returns
        -------
        (n, info.dim) float32 array
        """
        ...


@runtime_checkable
class Scorer(Protocol):
    """Scores query embeddings against the reference bank (higher = more anomalous)."""

    def score(
        self, Q: np.ndarray, return_nearest: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Anomaly scores of ``Q``.

        Parameters
        ----------
        Q : (m, dim) or (dim,) array of float
        return_nearest : bool
            Also return the id of the nearest reference of each query.

        Returns
        -------
        scores : (m,) float array
        nearest : (m,) int64 array
            Only with ``return_nearest``.
        """
        ...


@runtime_checkable
class Detector(Protocol):
    """Turns a stream of window scores into alert, reminder and recovered events."""

    alerting: bool

    def update(
        self,
        score: float | None,
        time: float,
        window_index: int,
        flags: dict[str, Any] | None = None,
    ) -> list[Event]:
        """Feed one window's score (``None``: skipped for its signal quality); the events."""
        ...

    def reset(self) -> None:
        """Forget the history (a new bank or threshold)."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Takes every record and event the daemon produces."""

    def emit(self, event: Record) -> None:
        """Take one record; must not raise for a full disk or a lost broker."""
        ...

    def close(self) -> None:
        """Flush and release files and connections; safe to call twice."""
        ...
