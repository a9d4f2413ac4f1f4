"""edgeasd: an edge agent for acoustic machine condition monitoring.

Data flows one way::

    source -> windower -> embedder -> scorer (bank) -> detector -> sinks

Each stage lives in the module its name suggests; see ``ARCHITECTURE.md``.
"""

__version__ = "0.1.0"
