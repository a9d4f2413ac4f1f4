"""The audio front half of the agent: sources, resampling, windows, signal quality.

Everything leaving this package is ``float32`` mono at the model's sample rate (see
ARCHITECTURE.md). The microphone source lives in :mod:`edgeasd.audio.microphone` and the
demo source in :mod:`edgeasd.audio.demo`; they are not imported here, so that importing
``edgeasd.audio`` needs neither PortAudio nor the simulator.
"""

from edgeasd.audio.factory import make_source
from edgeasd.audio.io import Audio, iter_audio, list_audio_files, read_audio, write_audio
from edgeasd.audio.quality import Quality, assess
from edgeasd.audio.resample import StreamResampler, resample
from edgeasd.audio.sources import AudioBlock, FileSource, Source
from edgeasd.audio.windower import Window, Windower

__all__ = [
    "Audio",
    "AudioBlock",
    "FileSource",
    "Quality",
    "Source",
    "StreamResampler",
    "Window",
    "Windower",
    "assess",
    "iter_audio",
    "list_audio_files",
    "make_source",
    "read_audio",
    "resample",
    "write_audio",
]
