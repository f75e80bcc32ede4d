"""A busy port no process listens on is reported with the sockets that keep it (a CI run once
reported a port "already in use" with no owner after a leftover emulator was stopped)."""

from __future__ import annotations

import socket

import pytest

from emulators._errors import PortBusyError
from emulators._ports import ensure_free, port_is_free, sockets_on, wait_free


def test_a_port_kept_by_a_connection_names_its_sockets_and_frees_once_it_closes() -> None:
    listener = socket.socket()  # no SO_REUSEADDR: the accepted socket keeps the port exclusive
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    listener.close()  # nothing listens any more; the accepted connection still holds the port
    try:
        assert not port_is_free(port)
        with pytest.raises(PortBusyError) as err:
            ensure_free(port, "the Firestore emulator", "firestore")
        assert "no process; sockets on it: ESTABLISHED x1" in str(err.value)
        assert not wait_free(port, timeout=0.2)
    finally:
        client.close()
        accepted.close()
    assert wait_free(port, timeout=5.0)  # the server side closed last: TIME_WAIT does not count
    assert sockets_on(port) in (None, "no process; sockets on it: TIME_WAIT x1")
