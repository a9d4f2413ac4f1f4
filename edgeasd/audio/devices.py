"""Finding audio input devices through PortAudio (the ``sounddevice`` package).

``sounddevice`` is imported only inside these functions, so that the rest of edgeasd
works on a machine without the PortAudio system library; its absence becomes a
:class:`~edgeasd.errors.DeviceError` that says how to install it. Devices are chosen by a
stable name (case-insensitive substrings, as sounddevice matches them, e.g.
``"USB Audio"``), never only by an index that changes after a reboot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeasd.errors import DeviceError

_INSTALL_HELP = (
    "install the PortAudio library and the Python binding:\n"
    "  sudo apt-get install libportaudio2   (Debian/Ubuntu/Raspberry Pi OS)\n"
    "  python3 -m pip install sounddevice"
)


def import_sounddevice():
    """Import ``sounddevice``, turning a missing PortAudio into a :class:`DeviceError`.

    Returns
    -------
    module
        The ``sounddevice`` module.
    """
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise DeviceError(f"audio capture is unavailable: {exc}", help=_INSTALL_HELP) from exc
    return sounddevice


@dataclass(frozen=True)
class DeviceInfo:
    """An input device as PortAudio reports it.

    Attributes
    ----------
    name : str
        Device name (match it with a substring in the config's ``device``).
    hostapi : str
        Host API name (``ALSA``...).
    index : int
        PortAudio index in this process (unstable across reboots: not for configs).
    channels : int
        Maximum input channels.
    default_samplerate : float
        The device's default rate in Hz.
    is_default : bool
        Whether it is the default input device.
    """

    name: str
    hostapi: str
    index: int
    channels: int
    default_samplerate: float
    is_default: bool

    def describe(self) -> str:
        """One line for listings."""
        mark = " (default)" if self.is_default else ""
        return (
            f"{self.name!r} [{self.hostapi}] {self.channels} ch, "
            f"{self.default_samplerate:.0f} Hz{mark}"
        )


def _default_input_index(sd) -> int:
    try:
        return int(sd.default.device[0])
    except (TypeError, ValueError, IndexError):
        return -1


def list_devices() -> list[DeviceInfo]:
    """All input devices PortAudio sees, for ``edgeasd devices``.

    Returns
    -------
    list of DeviceInfo
        Possibly empty (no capture hardware).
    """
    sd = import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}", help=_INSTALL_HELP) from exc
    default = _default_input_index(sd)
    return [
        DeviceInfo(
            name=d["name"],
            hostapi=hostapis[d["hostapi"]]["name"],
            index=i,
            channels=int(d["max_input_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            is_default=i == default,
        )
        for i, d in enumerate(devices)
        if d["max_input_channels"] > 0
    ]


def _no_device_error(message: str) -> DeviceError:
    try:
        devices = list_devices()
    except DeviceError:
        devices = []
    if devices:
        listing = "available input devices:\n" + "\n".join(f"  {d.describe()}" for d in devices)
        hint = listing + "\nset source.device to (part of) one of these names"
    else:
        hint = (
            "no input devices are available: plug in the microphone, check `arecord -l`, "
            "and make sure the user is in the 'audio' group"
        )
    return DeviceError(message, help=hint)


def resolve_device(device: str | None) -> DeviceInfo:
    """Find the input device a name designates.

    Parameters
    ----------
    device : str or None
        Case-insensitive substring(s) of the device name (as sounddevice matches them);
        ``None`` for the system's default input.

    Returns
    -------
    DeviceInfo

    Raises
    ------
    DeviceError
        No such device, several ambiguous matches, or no default input; the help lists
        the available input devices.
    """
    if device is not None and not isinstance(device, str):
        raise DeviceError(
            f"device must be a name, not {device!r}",
            help="device indices change after reboots; set source.device to (part of) the "
            "name shown by `edgeasd devices`",
        )
    sd = import_sounddevice()
    if device is None:
        index = _default_input_index(sd)
        if index < 0:
            raise _no_device_error("no default audio input device")
        query: Any = index
    else:
        query = device
    try:
        info = sd.query_devices(query, kind="input")
    except ValueError as exc:  # unknown or ambiguous name
        problem = "matches several devices" if "ultiple" in str(exc) else "not found"
        raise _no_device_error(f"audio input device {device!r} {problem}: {exc}") from exc
    except sd.PortAudioError as exc:  # 'Error querying device -1'
        what = "default audio input device" if device is None else f"device {device!r}"
        raise _no_device_error(f"cannot open the {what}: {exc}") from exc
    return DeviceInfo(
        name=info["name"],
        hostapi=sd.query_hostapis(info["hostapi"])["name"],
        index=int(info["index"]),
        channels=int(info["max_input_channels"]),
        default_samplerate=float(info["default_samplerate"]),
        is_default=int(info["index"]) == _default_input_index(sd),
    )
