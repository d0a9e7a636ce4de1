"""The WebSocket fast path (ws.py): data frames cut out of TCP reads in order, however the bytes
are split; control frames, fragments and over-cap frames still handled by `websockets`.

A raw asyncio server on loopback plays the venue, so every byte boundary is under the test's
control (no Redis or Postgres needed).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from livermore_common.exchanges import AdapterOptions, FeedGap
from livermore_common.exchanges.ws import FeedBase, ObservedConnection, open_socket

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, *, opcode: int = 1, fin: bool = True) -> bytes:
    """A server frame (unmasked)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes((first, n))
    elif n < 65536:
        head = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + n.to_bytes(8, "big")
    return head + payload


def unmask(data: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one short masked client frame."""
    n = data[1] & 0x7F
    mask, body = data[2:6], data[6 : 6 + n]
    return data[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], "asyncio.Future[None]"]


class Venue:
    """Answers the handshake, then runs `script(reader, writer, response)`."""

    def __init__(self, script: Callable[..., object]) -> None:
        self.script = script
        self.client_frames: list[tuple[int, bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        response = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        try:
            await self.script(self, reader, writer, response)  # type: ignore[misc]
        finally:
            writer.close()

    async def answer_close(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Wait for the client's close frame and answer it (a clean closing handshake)."""
        while (await self.read_client_frame(reader))[0] != 0x8:
            pass
        writer.write(frame(b"\x03\xe8", opcode=8))
        await writer.drain()

    async def read_client_frame(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readexactly(2)
        body = await reader.readexactly(4 + (head[1] & 0x7F))
        got = unmask(head + body)
        self.client_frames.append(got)
        return got


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Venue], asyncio.Future[str]]]:
    servers: list[asyncio.Server] = []

    async def start(venue: Venue) -> str:
        server = await asyncio.start_server(venue.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/stream"

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


PAYLOADS = [b'{"n":%d}' % i for i in range(50)] + [b"x" * 300, b"y" * 70_000, b"z"]


async def collect(conn: ObservedConnection, got: list[bytes], count: int) -> None:
    for _ in range(2000):
        if len(got) >= count:
            return
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("chunk", [1, 3, 7, 100, 4096, 1 << 20])
async def test_frames_arrive_whole_and_in_order_however_the_bytes_are_split(
    serve: Callable[[Venue], asyncio.Future[str]], chunk: int
) -> None:
    async def script(venue: Venue, reader, writer, response) -> None:  # type: ignore[no-untyped-def]
        # The handshake answer and the first frames share reads: the split must be exact.
        data = response + b"".join(frame(p) for p in PAYLOADS)
        # Separate reads of `chunk` bytes through the handshake, the small frames and the big
        # frame's header; its body in larger pieces.
        cuts = [*range(0, 1500, chunk), *range(1500, len(data), 1 << 16), len(data)]
        for start, stop in itertools.pairwise(cuts):
            writer.write(data[start:stop])
            await writer.drain()
            await asyncio.sleep(0)
        await venue.answer_close(reader, writer)

    url = await serve(Venue(script))
    got: list[bytes] = []
    conn = await open_socket(url, AdapterOptions(), on_frame=lambda _c, ps: got.extend(ps))
    await collect(conn, got, len(PAYLOADS))
    assert got == PAYLOADS
    await conn.close()


async def test_pings_are_answered_and_reported_between_fast_frames(
    serve: Callable[[Venue], asyncio.Future[str]],
) -> None:
    async def script(venue: Venue, reader, writer, response) -> None:  # type: ignore[no-untyped-def]
        writer.write(response + frame(b"a") + frame(b"1234", opcode=9) + frame(b"b"))
        await writer.drain()
        await venue.read_client_frame(reader)  # the pong
        writer.write(frame(b"c") + frame(b"\x03\xe8", opcode=8))  # then a normal close
        await writer.drain()
        await venue.read_client_frame(reader)  # the client's close answer

    venue = Venue(script)
    url = await serve(venue)
    got: list[bytes] = []
    pings: list[int] = []
    conn = await open_socket(url, AdapterOptions(), on_frame=lambda _c, ps: got.extend(ps))
    conn.on_ping = lambda: pings.append(1)
    await conn.wait_closed()
    assert got == [b"a", b"b", b"c"]
    assert venue.client_frames == [(0xA, b"1234"), (0x8, b"\x03\xe8")]
    assert conn.close_code == 1000


async def test_a_fragmented_message_hands_the_rest_of_the_connection_to_websockets(
    serve: Callable[[Venue], asyncio.Future[str]],
) -> None:
    async def script(venue: Venue, reader, writer, response) -> None:  # type: ignore[no-untyped-def]
        writer.write(response + frame(b"first"))
        writer.write(frame(b"he", fin=False) + frame(b"llo", opcode=0) + frame(b"after"))
        await writer.drain()
        await venue.answer_close(reader, writer)

    url = await serve(Venue(script))
    got: list[bytes] = []
    conn = await open_socket(url, AdapterOptions(), on_frame=lambda _c, ps: got.extend(ps))
    rest = [await asyncio.wait_for(conn.recv(), 5), await asyncio.wait_for(conn.recv(), 5)]
    assert got == [b"first"]
    assert rest == ["hello", "after"]
    await conn.close()


async def test_a_frame_above_the_hard_cap_fails_the_connection_as_before(
    serve: Callable[[Venue], asyncio.Future[str]],
) -> None:
    async def script(venue: Venue, reader, writer, response) -> None:  # type: ignore[no-untyped-def]
        writer.write(response + frame(b"ok") + frame(b"x" * 5000))
        await writer.drain()
        await venue.read_client_frame(reader)  # the client's close (1009)

    venue = Venue(script)
    url = await serve(venue)
    got: list[bytes] = []
    options = AdapterOptions(hard_max_frame_bytes=4096, max_frame_bytes=1024)
    conn = await open_socket(url, options, on_frame=lambda _c, ps: got.extend(ps))
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert got == [b"ok"]
    assert venue.client_frames[0][0] == 0x8
    assert int.from_bytes(venue.client_frames[0][1][:2], "big") == 1009


class _Feed(FeedBase):
    """The smallest feed: one FeedGap per frame, carrying the payload (order is checkable)."""

    async def _close_sockets(self) -> None:
        return None


async def test_a_full_feed_queue_pauses_the_socket_and_nothing_is_lost(
    serve: Callable[[Venue], asyncio.Future[str]],
) -> None:
    # ~1.5 MB: many socket reads (asyncio reads at most 256 KiB at a time)
    payloads = [b"%d:" % i + b"x" * 300 for i in range(5000)]

    async def script(venue: Venue, reader, writer, response) -> None:  # type: ignore[no-untyped-def]
        writer.write(response + b"".join(frame(p) for p in payloads))
        await writer.drain()
        await venue.answer_close(reader, writer)

    url = await serve(Venue(script))
    feed = _Feed(venue="test", options=AdapterOptions(queue_size=20))
    sink = feed.frame_sink(lambda _c, p: [FeedGap(reason=bytes(p).decode())])
    conn = await open_socket(url, feed.options, on_frame=sink)
    await asyncio.sleep(0.2)  # the reader fills the queue and must stop there
    assert not conn.transport.is_reading()
    # bounded by pausing (at most one read's worth past the limit), not by what was sent
    assert 20 <= feed._queue.qsize() < len(payloads) // 2
    got: list[str] = []
    async for event in feed:
        assert isinstance(event, FeedGap)
        got.append(event.reason)
        if len(got) == len(payloads):
            break
    assert got == [p.decode() for p in payloads]
    assert conn.transport.is_reading()
    await conn.close()
    await feed.aclose()
