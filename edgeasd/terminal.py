"""Text that reaches a terminal: strip what could drive it.

Domain tags, file names and error messages can come from other users (through the control
socket) or from files on disk. Printed raw, an escape sequence in them could rewrite the
screen, hide lines or retitle the terminal; a newline could forge a line of output.
:func:`sanitize` is applied wherever the CLI prints such text (``status``, ``tail``,
error messages).
"""

from __future__ import annotations

import re

# C0 controls except tab, DEL, C1 controls (0x80-0x9f: 8-bit CSI among them), and the
# Unicode bidi overrides that can reorder what a line appears to say.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: object, newlines: bool = False) -> str:
    """``text`` as a string with control characters shown as ``\\xNN`` escapes.

    Parameters
    ----------
    text : object
        Converted with ``str()`` first.
    newlines : bool
        Keep ``\\n`` (for multi-line messages the program itself composed).

    Returns
    -------
    str
        Printable text: no ESC, CR, BEL, backspace, C1 or bidi control remains.
    """

    def escape(m: re.Match[str]) -> str:
        ch = m.group()
        if newlines and ch == "\n":
            return ch
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNSAFE.sub(escape, str(text))
