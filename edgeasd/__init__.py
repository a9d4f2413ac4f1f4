"""edgeasd: an edge agent for acoustic machine condition monitoring.

Data flows one way::

    source -> windower -> embedder -> scorer (bank) -> detector -> sinks

Each stage lives in the module its name suggests; see ``ARCHITECTURE.md``.
"""

from edgeasd import jitcache as _jitcache

__version__ = "0.1.0"

# Before anything imports numba: its JIT cache goes to the configured cache folder, never
# into the installed package (see edgeasd/jitcache.py).
_jitcache.apply()
