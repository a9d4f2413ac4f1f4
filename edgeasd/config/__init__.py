"""The agent's configuration.

:mod:`~edgeasd.config.sections` holds the sections (one frozen dataclass per YAML section),
their cross-key checks and the YAML loading; :mod:`~edgeasd.config.schema` the generic
field-spec machinery; :mod:`~edgeasd.config.fleet` the ``mqtt`` and ``metrics`` sections.
"""

from edgeasd.config.sections import Config, config_from_dict, load_config

__all__ = ["Config", "config_from_dict", "load_config"]
