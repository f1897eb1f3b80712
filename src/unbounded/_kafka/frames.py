"""Receiving Kafka response frames with fewer copies than kafka-python's own path.

kafka-python 3.0 reads a socket 4 KiB per ``recv`` and copies each response five times
before the caller sees its record batches: joined chunks, a slice into the frame buffer,
``bytearray`` slice and ``bytes`` of the frame (``KafkaBytes.read``), and the records
field. A 16 MiB Fetch response costs ~4,000 system calls and ~80 MiB of fresh memory;
on the Kafka -> Kafka workload this was about half of each reader thread's time.

Here a plaintext transport receives the rest of a large frame straight into the frame's
buffer (``recv_into``), other bytes up to 1 MiB per call, and its connection's parser hands
the frame to the response decoder as a ``memoryview``; only the records field is still
copied (by kafka-python's generated decoder). TLS transports are kafka-python's, unchanged.

Sending is the mirror image: kafka-python encodes a Produce request by copying every
record batch into its encode buffer and that buffer once more into the bytes it sends.
The same parser encodes a Produce request whose record batches are large with a small
placeholder in each batch's place and sends the request as pieces: the encoded fields
around the batches, and each batch as the caller's own buffer (a view, never copied
before the kernel copies it). The bytes on the wire are the same.
"""

from __future__ import annotations

import os
import socket
import struct
import warnings
from typing import Any

import numpy as np

with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.errors as kafka_errors
    from kafka.net import KafkaConnectionManager
    from kafka.net.transport import KafkaTCPTransport
    from kafka.protocol.parser import KafkaProtocol
    from kafka.protocol.producer import ProduceRequest
    from kafka.protocol.schemas.fields.codecs import Int32

__all__ = ["FrameConnectionManager"]

_RECV_BYTES = 1 << 20
_DIRECT_BYTES = 64 << 10  # a frame's rest this large is received into it directly
_SPLICE_BYTES = 64 << 10  # a record batch this large is sent as its own piece
_MARKER_BYTES = 16


class _Frame:
    """One response's bytes, read as kafka-python reads its ``KafkaBytes`` (``read``,
    ``seek``, ``tell``) but reading the rest is a view, not two copies, and the buffer is
    not zero-filled first (NumPy's ``empty``: every byte is received before it is read)."""

    def __init__(self, size: int) -> None:
        self._view = np.empty(size, dtype=np.uint8).data.cast("B")
        self._at = 0

    def __len__(self) -> int:
        return len(self._view)

    def write(self, data: memoryview | bytes) -> None:
        self._view[self._at : self._at + len(data)] = data
        self._at += len(data)

    def read(self, nbytes: int | None = None) -> bytes | memoryview:
        start = self._at
        end = len(self._view) if nbytes is None else min(start + nbytes, len(self._view))
        self._at = end
        view = self._view[start:end]
        return view if nbytes is None else bytes(view)

    def seek(self, position: int) -> None:
        self._at = position

    def tell(self) -> int:
        return self._at

    def rest(self) -> memoryview:
        """The bytes not yet written or read."""
        return self._view[self._at :]


class _FrameParser(KafkaProtocol):  # type: ignore[misc]
    """kafka-python's parser, filling each frame from views of the received chunk.

    Receiving differs only in :meth:`receive_bytes` (the framing, 4-byte size then the
    payload, and the response handling, ``_process_response``, are kafka-python's);
    sending only in how a Produce request with large record batches is queued.
    """

    bytes_to_send: list[Any]  # kafka-python's queue; here also holds _Pieces

    def receive_bytes(self, data: bytes) -> list[tuple[int, Any]]:
        """Responses completed by ``data`` (or, when empty, by :meth:`received`)."""
        view = memoryview(data)
        responses: list[tuple[int, Any]] = []
        while view or self._receiving:
            if not self._receiving:
                view = self._take_size(view)
                if not self._receiving:
                    break
            frame = self._rbuffer
            take = min(len(frame) - frame.tell(), len(view))
            if take:
                frame.write(view[:take])
                view = view[take:]
            if frame.tell() < len(frame):
                break
            frame.seek(0)
            responses.append(self._process_response(frame))
            self._reset_buffer()
        return responses

    def send_request(self, request: Any, correlation_id: int | None = None) -> int:
        """kafka-python's, but a Produce request's large record batches are not copied:
        the request is queued as :class:`_Pieces` (see the module docstring)."""
        batches = _large_batches(request)
        if not batches:
            return int(super().send_request(request, correlation_id))
        markers = [os.urandom(_MARKER_BYTES) for _ in batches]
        for (part, _), marker in zip(batches, markers, strict=True):
            part.records = marker
        try:
            correlation = int(super().send_request(request, correlation_id))
        finally:
            for part, records in batches:
                part.records = records
        encoded = self.bytes_to_send.pop()
        flexible = bool(request.flexible_version_q(request.API_VERSION))
        pieces = _splice(encoded, markers, [r for _, r in batches], flexible)
        # a placeholder found other than once: the ordinary encoding, copies and all
        self.bytes_to_send.append(
            pieces if pieces is not None else request.encode(framed=True, header=True))
        return correlation

    def send_bytes(self) -> Any:
        """The queued requests' bytes: kafka-python's bytes, or a list of pieces when a
        request was queued as :class:`_Pieces`."""
        if not any(isinstance(item, _Pieces) for item in self.bytes_to_send):
            return super().send_bytes()
        pieces: list[Any] = []
        for item in self.bytes_to_send:
            if isinstance(item, _Pieces):
                pieces.extend(item)
            else:
                pieces.append(item)
        self.bytes_to_send = []
        return pieces

    @property
    def between_frames(self) -> bool:
        """No byte of the next frame (not even of its size) has been received."""
        return not self._receiving and self._header.tell() == 0

    def room(self) -> memoryview | None:
        """The unfilled rest of the frame being received, when large enough to receive
        into directly (saving a copy of its bytes); None otherwise."""
        if not self._receiving or len(self._rbuffer) - self._rbuffer.tell() < _DIRECT_BYTES:
            return None
        frame: _Frame = self._rbuffer
        return frame.rest()

    def received(self, nbytes: int) -> None:
        """``nbytes`` were written into :meth:`room`; :meth:`receive_bytes` of nothing
        then hands on the frame if it is complete."""
        self._rbuffer.seek(self._rbuffer.tell() + nbytes)

    def _take_size(self, view: memoryview) -> memoryview:
        """Read (part of) the 4-byte frame size; start the frame once it is whole."""
        take = min(4 - self._header.tell(), len(view))
        self._header.write(view[:take])
        if self._header.tell() == 4:
            self._header.seek(0)
            size = Int32.decode(self._header)
            self._validate_frame_size(size)
            self._rbuffer = _Frame(size)
            self._receiving = True
        return view[take:]


class _Pieces(list[Any]):
    """One request's bytes as consecutive pieces (bytes and views), sent in order."""


def _large_batches(request: Any) -> list[tuple[Any, Any]]:
    """(partition data, record batch) of a Produce request's batches large enough to send
    as pieces of their own; none for any other request."""
    if not isinstance(request, ProduceRequest):
        return []
    return [(part, part.records) for topic in request.topic_data for part in topic.partition_data
            if part.records is not None and len(part.records) >= _SPLICE_BYTES]


def _length_prefix(size: int, flexible: bool) -> bytes:
    """A records field's length as the request version encodes it: compact (unsigned
    varint of length + 1) or Int32."""
    if not flexible:
        return struct.pack(">i", size)
    value, out = size + 1, bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _splice(encoded: bytes, markers: list[bytes], batches: list[Any],
            flexible: bool) -> _Pieces | None:
    """``encoded`` (a framed request holding each marker as a records field) as pieces
    with each marker's field replaced by its batch; None when a marker is not found
    exactly once behind its length prefix."""
    placeholder = _length_prefix(_MARKER_BYTES, flexible)
    pieces, at, grown = _Pieces(), 0, 0
    for marker, batch in zip(markers, batches, strict=True):
        field = placeholder + marker
        where = encoded.find(field, at)
        if where < 0 or encoded.count(marker) != 1:
            return None
        prefix = _length_prefix(len(batch), flexible)
        pieces += [encoded[at:where], prefix, batch]
        grown += len(prefix) + len(batch) - len(field)
        at = where + len(field)
    pieces.append(encoded[at:])
    size = struct.unpack_from(">i", encoded)[0] + grown
    pieces[0] = struct.pack(">i", size) + pieces[0][4:]
    return _Pieces(piece for piece in pieces if len(piece))


class _FrameTransport(KafkaTCPTransport):  # type: ignore[misc]
    """A plaintext transport reading up to 1 MiB per call, whose connection parses with
    :class:`_FrameParser`."""

    def write(self, data: Any) -> None:
        """Queue bytes, or the pieces of :meth:`_FrameParser.send_bytes`, for sending."""
        if isinstance(data, list):
            self.writelines(data)
        else:
            super().write(data)

    def _sock_recv(self) -> tuple[bytes, Exception | None]:
        parser = self._adopt_parser()
        if parser is not None:
            if parser.between_frames and self._large_frame_next():
                parser.receive_bytes(self._sock.recv(4))  # its size: starts the frame
            room = parser.room()
            if room is not None:
                return self._recv_into(parser, room)
        chunks: list[bytes] = []
        while True:
            try:
                data = self._sock.recv(_RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except Exception as exc:  # kafka-python's: the transport aborts with it
                return b"", kafka_errors.KafkaConnectionError(exc)
            if not data:
                return b"".join(chunks), kafka_errors.KafkaConnectionError(
                    "socket disconnected")
            chunks.append(data)
            if len(data) < _RECV_BYTES:
                break
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), None

    def _large_frame_next(self) -> bool:
        """Whether the size at the head of the socket's bytes is one to receive directly
        (peeked, not consumed)."""
        try:
            head = self._sock.recv(4, socket.MSG_PEEK)
        except OSError:  # nothing yet, or a failure the normal read reports
            return False
        return len(head) == 4 and int.from_bytes(head, "big", signed=True) >= _DIRECT_BYTES

    def _recv_into(self, parser: _FrameParser, room: memoryview) -> tuple[bytes, Exception | None]:
        """Receive straight into the frame; the parser is told how much arrived, and the
        transport passes it no bytes (it then hands on the frame if complete)."""
        got, error = 0, None
        while got < len(room):
            try:
                count = self._sock.recv_into(room[got:])
            except (BlockingIOError, InterruptedError):
                break
            except Exception as exc:  # kafka-python's: the transport aborts with it
                error = kafka_errors.KafkaConnectionError(exc)
                break
            if not count:
                error = kafka_errors.KafkaConnectionError("socket disconnected")
                break
            got += count
        room.release()
        parser.received(got)
        return b"", error

    def _adopt_parser(self) -> _FrameParser | None:
        # The connection builds its parser in connection_made, before the first read;
        # the class is swapped in place so its state (in-flight requests) carries over.
        parser = getattr(self._protocol, "parser", None)
        if type(parser) is KafkaProtocol:
            parser.__class__ = _FrameParser
        return parser if isinstance(parser, _FrameParser) else None


class FrameConnectionManager(KafkaConnectionManager):  # type: ignore[misc]
    """kafka-python's connection manager whose plaintext connections use
    :class:`_FrameTransport`."""

    async def _build_transport(self, node: Any, timeout_at: float | None = None) -> Any:
        transport = await super()._build_transport(node, timeout_at)
        if type(transport) is KafkaTCPTransport:
            transport.__class__ = _FrameTransport
        return transport
