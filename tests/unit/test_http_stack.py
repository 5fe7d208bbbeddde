"""One write a response: the head waits for its body within the loop's turn, never longer."""

from __future__ import annotations

import asyncio

from fearless.serving.http_stack import HeadJoiningTransport


class RecordingTransport:
    """What reached the socket: one entry a syscall (`writelines` is one writev)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False
        self.paused = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.sent.append(bytes(data))

    def writelines(self, parts) -> None:
        self.write(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True


def test_a_head_and_its_body_go_out_in_one_write_at_the_body():
    async def respond() -> list[bytes]:
        wire = RecordingTransport()
        transport = HeadJoiningTransport(wire, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        assert wire.sent == []  # held: the body comes in the same turn
        transport.write(b"{}")
        assert wire.sent == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]  # at once
        await asyncio.sleep(0)
        return wire.sent

    assert len(asyncio.run(respond())) == 1


def test_a_lone_write_goes_out_at_the_end_of_the_turn_and_before_a_close():
    async def respond() -> tuple[list[bytes], list[bytes], bool]:
        loop = asyncio.get_running_loop()
        wire = RecordingTransport()
        transport = HeadJoiningTransport(wire, loop)
        transport.write(b"head of a stream")
        await asyncio.sleep(0)  # the turn ends: nothing else came
        after_turn = list(wire.sent)
        transport.write(b"last words")
        transport.close()
        return after_turn, wire.sent, wire.closed

    after_turn, sent, closed = asyncio.run(respond())
    assert after_turn == [b"head of a stream"]
    assert sent == [b"head of a stream", b"last words"] and closed


def test_the_rest_of_the_transport_is_the_wrapped_ones():
    async def pause() -> bool:
        wire = RecordingTransport()
        HeadJoiningTransport(wire, asyncio.get_running_loop()).pause_reading()
        return wire.paused

    assert asyncio.run(pause())
