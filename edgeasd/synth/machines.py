"""The registry of simulated machine types (:data:`MACHINE_TYPES`)."""

from __future__ import annotations

from edgeasd.synth import compressor, reciprocating, rotating, vehicles
from edgeasd.synth.spec import MachineSpec

#: Machine type name -> spec (attributes with source/target values, anomaly kinds, model).
MACHINE_TYPES: dict[str, MachineSpec] = {
    spec.name: spec
    for spec in (*rotating.SPECS, *reciprocating.SPECS, *compressor.SPECS, *vehicles.SPECS)
}
