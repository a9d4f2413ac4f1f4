"""sd_notify over $NOTIFY_SOCKET: path and abstract sockets, no-op without systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import pytest

from edgeasd.agent.runloop.notify import Notifier, notify


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    """A datagram socket playing systemd; yields (NOTIFY_SOCKET value, socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        addr = str(tmp_path / "notify.sock")
        sock.bind(addr)
        value = addr
    else:
        name = f"edgeasd-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        value = "@" + name
    sock.settimeout(5)
    yield value, sock
    sock.close()


def _recv(sock):
    return sock.recv(4096).decode().split("\n")


def test_messages(listener):
    value, sock = listener
    with Notifier({"NOTIFY_SOCKET": value}) as n:
        assert n.enabled
        assert n.ready("model loaded")
        assert _recv(sock) == ["READY=1", "STATUS=model loaded"]
        assert n.watchdog()
        assert _recv(sock) == ["WATCHDOG=1"]
        assert n.status("last score 1.23\nthreshold 3.0")
        assert _recv(sock) == ["STATUS=last score 1.23 threshold 3.0"]
        assert n.reloading()
        reload_msg = _recv(sock)
        assert reload_msg[0] == "RELOADING=1" and reload_msg[1].startswith("MONOTONIC_USEC=")
        assert int(reload_msg[1].split("=")[1]) > 0
        assert n.stopping()
        assert _recv(sock) == ["STOPPING=1"]


def test_module_function_reads_the_environment(listener, monkeypatch):
    value, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify(status="hello")
    assert _recv(sock) == ["STATUS=hello"]


def test_from_a_child_process(listener):
    value, sock = listener
    code = (
        "from edgeasd.agent.runloop.notify import Notifier; import sys; "
        "sys.exit(not Notifier().ready())"
    )
    env = {**os.environ, "NOTIFY_SOCKET": value}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert _recv(sock) == ["READY=1"]


def test_no_op_without_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not notify(status="x")
    assert n.watchdog_interval() is None


def test_unreachable_socket_is_not_fatal(tmp_path):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert n.enabled and n.watchdog() is False and n.status("x") is False


def test_watchdog_interval():
    pid = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 30.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}).watchdog_interval() == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_interval() is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval() is None


def test_journal_formatter_prefixes_priorities():
    import logging

    from edgeasd.agent.runloop.notify import JournalFormatter

    fmt = JournalFormatter()

    def line(level, msg):
        return fmt.format(
            logging.LogRecord("edgeasd.agent.runloop.daemon", level, "f", 1, msg, None, None)
        )

    assert (
        line(logging.WARNING, "ALERT score 4") == "<4>edgeasd.agent.runloop.daemon: ALERT score 4"
    )
    assert line(logging.INFO, "a\nb") == "<6>edgeasd.agent.runloop.daemon: a\n<6>b"
    assert line(logging.DEBUG, "x").startswith("<7>")
    assert line(logging.ERROR, "x").startswith("<3>")


def test_under_journal(tmp_path):
    from edgeasd.agent.runloop.notify import under_journal

    st = os.fstat(2)
    assert under_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not under_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
    assert not under_journal({"JOURNAL_STREAM": "junk"}) and not under_journal({})
