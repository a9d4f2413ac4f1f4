"""The control socket: protocol validation, server/client round trips, permissions."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time

import pytest

from edgeasd.agent.control.client import ControlClient
from edgeasd.agent.control.protocol import DaemonNotRunning, parse_request
from edgeasd.agent.control.server import ControlServer
from edgeasd.agent.control.wire import MAX_LINE_BYTES
from edgeasd.config.paths import Paths
from edgeasd.errors import BankError, ControlError


def socket_path(directory):
    """The control socket of a runtime directory, as the daemon names it."""
    return Paths(directory, directory, directory, directory).control_socket


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"op": "explode"}', "unknown control request op"),
        ('{"op": "enroll_next", "domain": "a"}', "'n' of type int"),
        ('{"op": "enroll_next", "n": "3", "domain": "a"}', "'n' of type int"),
        ('{"op": "enroll_next", "n": true, "domain": "a"}', "'n' of type int"),
        ('{"op": "enroll_next", "n": 0, "domain": "a"}', "n >= 1"),
        ('{"op": "enroll_files", "names": [], "domain": "a"}', "non-empty list"),
        ('{"op": "enroll_files", "names": [1], "domain": "a"}', "non-empty list"),
        ('{"op": "status", "x": 1}', "takes no parameter"),
        ('{"op": "feedback", "alert": "x"}', "'label' of type str"),
        ('{"op": "bank_remove", "ids": 3}', "'ids' of type list"),
        ('{"op": "bank_restore", "generation": "1"}', "'generation' of type int"),
        ('{"op": "bank_restore", "generation": true}', "'generation' of type int"),
        ('{"op": "enroll_next", "n": 1, "domain": "a", "accept_anomalous": 1}', "must be a bool"),
        ('{"op": "reload", "accept_anomalous": true}', "takes no parameter"),
    ],
)
def test_parse_request_refuses_bad_requests(line: str, needle: str) -> None:
    with pytest.raises(ControlError, match=needle):
        parse_request(line)


def test_parse_request_accepts_each_op() -> None:
    assert parse_request(b'{"op": "status"}\n') == {"op": "status"}
    assert parse_request('{"op": "reload"}') == {"op": "reload"}
    req = parse_request('{"op": "enroll_next", "n": 4, "domain": "target"}')
    assert req["n"] == 4 and req["domain"] == "target"
    req = parse_request('{"op": "enroll_files", "names": ["/a.wav"], "domain": "t"}')
    assert req["names"] == ["/a.wav"]
    req = parse_request('{"op": "enroll_next", "n": 4, "domain": "t", "accept_anomalous": true}')
    assert req["accept_anomalous"] is True
    req = parse_request('{"op": "feedback", "alert": "20261207-130501-42", "label": "normal"}')
    assert req["alert"] == "20261207-130501-42"
    assert parse_request('{"op": "bank_remove", "ids": [1, 2]}')["ids"] == [1, 2]
    assert parse_request('{"op": "bank_restore", "generation": 2}')["generation"] == 2


def _handler(request: dict, gone=None) -> dict:
    if request["op"] == "enroll_files" and request["names"] == ["/bad"]:
        raise BankError("the bank refused it", help="do something else")
    if request["op"] == "enroll_next" and request["domain"] == "crash":
        raise RuntimeError("boom")
    return {"echo": request}


@pytest.fixture
def server(tmp_path):
    srv = ControlServer(socket_path(tmp_path), _handler).start()
    yield srv
    srv.close()


def test_round_trip_and_permissions(server) -> None:
    mode = stat.S_IMODE(server.path.stat().st_mode)
    assert mode == 0o660
    assert stat.S_ISSOCK(server.path.stat().st_mode)
    client = ControlClient(server.path)
    assert client.request("status") == {"echo": {"op": "status"}}
    got = client.request("enroll_next", n=3, domain="target")
    assert got == {"echo": {"op": "enroll_next", "n": 3, "domain": "target"}}


def test_handler_errors_keep_message_and_help(server) -> None:
    client = ControlClient(server.path)
    with pytest.raises(ControlError) as info, open(__file__, "rb") as fh:
        client.request("enroll_files", fds=[fh.fileno()], names=["/bad"], domain="x")
    assert info.value.message == "the bank refused it"
    assert info.value.help == "do something else"
    with pytest.raises(ControlError, match=r"internal error.*boom"):
        client.request("enroll_next", n=1, domain="crash")
    # the server survives both
    assert client.request("status")["echo"]["op"] == "status"


def test_accept_error_is_logged_and_the_server_keeps_answering(
    tmp_path, monkeypatch, caplog
) -> None:
    """An unexpected OSError from accept() (EMFILE...) must not kill the accept thread."""
    import errno
    import logging

    real_accept = socket.socket.accept
    failed = threading.Event()

    srv = ControlServer(socket_path(tmp_path), _handler)

    def accept_failing_once(sock):
        if sock is srv._sock and not failed.is_set():
            failed.set()
            raise OSError(errno.EMFILE, "Too many open files")
        return real_accept(sock)

    monkeypatch.setattr(socket.socket, "accept", accept_failing_once)
    with caplog.at_level(logging.ERROR, logger="edgeasd.agent.control.server"):
        srv.start()
        try:
            assert failed.wait(5)
            client = ControlClient(srv.path, timeout=5)
            assert client.request("status") == {"echo": {"op": "status"}}
            assert srv._thread.is_alive()
        finally:
            srv.close()
    assert not srv._thread.is_alive() and not srv.path.exists()  # a clean stop
    (record,) = [r for r in caplog.records if "accepting a connection failed" in r.message]
    assert record.exc_info is not None and "Too many open files" in record.exc_text


def test_client_refuses_bad_request_before_sending(server) -> None:
    with pytest.raises(ControlError, match="n >= 1"):
        ControlClient(server.path).request("enroll_next", n=0, domain="x")


def test_several_requests_on_one_connection_and_bad_lines(server) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(server.path))
        sock.sendall(b'{"op": "status"}\nnonsense\n{"op": "reload"}\n')
        reader = sock.makefile("rb")
        replies = [json.loads(reader.readline()) for _ in range(3)]
    assert replies[0]["ok"] and replies[2]["ok"]
    assert not replies[1]["ok"] and "not valid JSON" in replies[1]["error"]
    assert replies[1]["type"] == "ControlError"


def test_oversized_request_is_refused(server) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(server.path))
        sock.sendall(b"x" * (MAX_LINE_BYTES + 10) + b"\n")
        reply = json.loads(sock.makefile("rb").readline())
    assert not reply["ok"] and "longer than" in reply["error"]


def test_concurrent_clients_each_get_their_answer(tmp_path) -> None:
    release = threading.Event()

    def slow(request: dict, gone) -> dict:
        if request["op"] == "enroll_next":
            release.wait(5)
        return {"op": request["op"]}

    with ControlServer(socket_path(tmp_path), slow) as srv:
        results = {}
        t = threading.Thread(
            target=lambda: results.setdefault(
                "slow", ControlClient(srv.path).request("enroll_next", n=1, domain="d")
            )
        )
        t.start()
        time.sleep(0.1)
        # a blocked request does not block the others
        assert ControlClient(srv.path).request("status") == {"op": "status"}
        release.set()
        t.join(5)
        assert results["slow"] == {"op": "enroll_next"}


def test_missing_socket_means_daemon_not_running(tmp_path) -> None:
    with pytest.raises(DaemonNotRunning, match="no edgeasd daemon") as info:
        ControlClient(tmp_path / "control.sock").request("status")
    assert "edgeasd run" in info.value.help


@pytest.mark.parametrize("answer", [b"garbage\n", b'{"ok": true, "res', b"[1]\n"])
def test_malformed_answer_is_a_control_error(tmp_path, answer) -> None:
    # bug fix: a truncated or non-JSON answer raised JSONDecodeError (a traceback)
    path = socket_path(tmp_path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        srv.bind(str(path))
        srv.listen(1)

        def answer_once() -> None:
            conn, _ = srv.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(answer)

        t = threading.Thread(target=answer_once, daemon=True)
        t.start()
        with pytest.raises(ControlError, match="malformed or truncated") as info:
            ControlClient(path, timeout=5).request("status")
        t.join(5)
    assert "edgeasd status" in info.value.help


def test_stale_socket_is_replaced_live_one_refused(tmp_path) -> None:
    path = socket_path(tmp_path)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound but never listening: what a killed daemon leaves
    stale.close()
    with pytest.raises(DaemonNotRunning):
        ControlClient(path).request("status")
    with ControlServer(path, _handler):
        assert ControlClient(path).request("status")["echo"]["op"] == "status"
        with pytest.raises(ControlError, match="already listens"):
            ControlServer(path, _handler).start()
    assert not path.exists()


def test_timeout_gives_a_clear_error(tmp_path) -> None:
    with ControlServer(socket_path(tmp_path), lambda r, gone: time.sleep(2) or {}) as srv:
        with pytest.raises(ControlError, match=r"did not answer 'status' within 0\.2 s"):
            ControlClient(srv.path, timeout=0.2).request("status")


def test_handler_learns_that_the_client_hung_up(tmp_path) -> None:
    seen = {}
    started = threading.Event()

    def waiting(request: dict, gone) -> dict:
        seen["before"] = gone()
        started.set()
        end = time.monotonic() + 5
        while not gone() and time.monotonic() < end:
            time.sleep(0.01)
        seen["after"] = gone()
        return {}

    with ControlServer(socket_path(tmp_path), waiting) as srv:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(srv.path))
        sock.sendall(b'{"op": "enroll_next", "n": 5, "domain": "d"}\n')
        assert started.wait(5)
        sock.close()  # Ctrl-C
        for _ in range(500):
            if "after" in seen:
                break
            time.sleep(0.01)
    assert seen == {"before": False, "after": True}
