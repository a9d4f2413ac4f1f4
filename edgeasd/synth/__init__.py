"""Machine-sound simulator writing DCASE-layout datasets.

``render`` synthesizes one clip of a machine type (normal or with a fault, source or
target domain); ``write_dataset`` writes a whole corpus in the exact DCASE 2022--2025
Task 2 layout and naming with a JSON manifest. Each machine type's physics is
documented in its model function (:mod:`edgeasd.synth.rotating`: fan, pump, gearbox,
bearing; :mod:`edgeasd.synth.reciprocating`: valve, slider; :mod:`edgeasd.synth.compressor`;
:mod:`edgeasd.synth.vehicles`: toy_car, toy_train), the shared fault signatures in
:mod:`edgeasd.synth.faults`, the room, microphone and factory background in
:mod:`edgeasd.synth.background`, and the variation between recordings of one condition
(warm-up, wander, background, microphone re-seating; ``render(..., recording=Recording(t))``)
in :mod:`edgeasd.synth.drift`.

Example::

    from edgeasd.synth import render, write_dataset
    x = render("pump", 10.0, 16000, seed=1, anomaly="cavitation", severity=0.5)
    manifest = write_dataset("data/sim", machines=["fan", "valve"], workers=2)
"""

from edgeasd.synth.dataset import write_dataset
from edgeasd.synth.drift import Recording
from edgeasd.synth.machines import MACHINE_TYPES
from edgeasd.synth.render import DEFAULT_SNR_DB, render
from edgeasd.synth.spec import Attribute, MachineSpec

__all__ = [
    "DEFAULT_SNR_DB",
    "MACHINE_TYPES",
    "Attribute",
    "MachineSpec",
    "Recording",
    "render",
    "write_dataset",
]
