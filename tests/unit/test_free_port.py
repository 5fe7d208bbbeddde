"""Ports for local servers come from below the kernel's ephemeral range, where no outgoing
connection can take them between the check and the server's own bind."""

from __future__ import annotations

import socket

from fearless.platform import processes


def test_a_free_port_lies_below_the_ephemeral_range_and_can_be_bound(tmp_path):
    (tmp_path / "range").write_text("32768\t60999\n")
    low = processes._ephemeral_low(tmp_path / "range")
    assert low == 32768
    ports = {processes.free_port() for _ in range(20)}
    assert all(processes.PORT_FLOOR <= p < processes._ephemeral_low() for p in ports)
    assert len(ports) > 1  # chosen at random, so two servers rarely race for one
    port = ports.pop()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not processes.port_free(port)
    assert processes.port_free(port)


def test_without_room_below_the_range_the_kernel_chooses(tmp_path, monkeypatch):
    monkeypatch.setattr(processes, "_ephemeral_low", lambda: processes.PORT_FLOOR + 10)
    port = processes.free_port()
    assert processes.port_free(port)
    assert not processes.PORT_FLOOR <= port < processes.PORT_FLOOR + 10


def test_an_unreadable_range_falls_back_to_the_iana_dynamic_range(tmp_path):
    assert processes._ephemeral_low(tmp_path / "missing") == 49152
    (tmp_path / "bad").write_text("not a number")
    assert processes._ephemeral_low(tmp_path / "bad") == 49152
