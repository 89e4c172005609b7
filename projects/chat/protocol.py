"""The wire format: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (one object).

Both the server (non-blocking, fed by `FrameDecoder`) and the clients (blocking, `recv_frame`)
speak it, and so do two peers on their direct connection. Every message is an object with a
`type`; `CLIENT_SCHEMA` lists what a client may send and the fields each type needs, so the
server rejects a malformed request with an error reply instead of failing on it later.
The README documents every message type in both directions.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Mapping
from typing import Any

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 64 * 1024


class ProtocolError(Exception):
    """A frame the receiver cannot use; `code` goes into the error reply.

    `fatal` errors (an oversized length prefix) leave the byte stream unreadable, so the
    connection must close; the others consume exactly one frame and the stream goes on.
    """

    code = "bad_frame"
    fatal = False

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class FrameTooLarge(ProtocolError):
    code = "too_large"
    fatal = True


class MalformedFrame(ProtocolError):
    code = "bad_frame"


# type -> {field: (python type, required)}; bool is rejected where int is asked for.
CLIENT_SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "hello": {"name": (str, True), "p2p_port": (int, False), "secret": (str, False)},
    "join": {"room": (str, True)},
    "leave": {"room": (str, True)},
    "list": {},
    "who": {"room": (str, True)},
    "say": {"room": (str, True), "text": (str, True)},
    "pm": {"to": (str, True), "text": (str, True)},
    "history": {"room": (str, True), "before": (int, False), "limit": (int, False)},
    "p2p_lookup": {"user": (str, True)},
    "ping": {"token": (str, False)},
}

# What one peer sends another on their direct connection.
PEER_SCHEMA: dict[str, dict[str, tuple[type, bool]]] = {
    "p2p_hello": {"from": (str, True), "token": (str, True)},
    "dm": {"from": (str, True), "text": (str, True), "ts": (float, False)},
}


def encode(msg: Mapping[str, Any]) -> bytes:
    """One frame: length prefix + compact UTF-8 JSON."""
    payload = json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    """The JSON object in one frame's payload, or MalformedFrame saying what is wrong."""
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedFrame(f"payload is not UTF-8 JSON: {exc}", "bad_json") from None
    if not isinstance(msg, dict):
        raise MalformedFrame(f"a frame must hold a JSON object, got {type(msg).__name__}")
    if not isinstance(msg.get("type"), str):
        raise MalformedFrame("missing string field 'type'", "bad_field")
    return msg


def validate(
    msg: dict[str, Any], schema: Mapping[str, Mapping[str, tuple[type, bool]]] = CLIENT_SCHEMA
) -> dict[str, Any]:
    """`msg` unchanged if its type is known and its fields have the right types."""
    kind = msg.get("type")
    fields = schema.get(kind)  # type: ignore[arg-type]
    if fields is None:
        raise MalformedFrame(f"unknown message type {kind!r}", "unknown_type")
    for name, (want, required) in fields.items():
        if name not in msg:
            if required:
                raise MalformedFrame(f"{kind}: missing field '{name}'", "bad_field")
            continue
        value = msg[name]
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise MalformedFrame(
                f"{kind}: field '{name}' must be {want.__name__}, got {type(value).__name__}",
                "bad_field",
            )
    return msg


class FrameDecoder:
    """Turns a byte stream, fed in arbitrary pieces, into messages and per-frame errors.

    `feed` returns the complete frames found so far, in order: a dict per good frame and a
    ProtocolError per bad one. After a FrameTooLarge it stops decoding for good (`broken`),
    since the stream cannot be resynchronised without reading the oversized body.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.broken = False
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any] | ProtocolError]:
        if self.broken:
            return []
        self._buf += data
        out: list[dict[str, Any] | ProtocolError] = []
        while len(self._buf) >= HEADER.size:
            (length,) = HEADER.unpack_from(self._buf)
            if length > self.max_frame:
                self.broken = True
                self._buf.clear()
                out.append(
                    FrameTooLarge(f"frame of {length} bytes over the {self.max_frame} limit")
                )
                break
            end = HEADER.size + length
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[HEADER.size : end])
            del self._buf[:end]
            try:
                out.append(decode_payload(payload))
            except ProtocolError as exc:
                out.append(exc)
        return out


def send_frame(sock: socket.socket, msg: Mapping[str, Any]) -> None:
    """Blocking send of one frame."""
    sock.sendall(encode(msg))


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    """Exactly `n` bytes; None on a clean end of stream before the first byte.

    An end of stream after some bytes means the peer vanished mid-frame: ConnectionError.
    """
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 16))
        if not chunk:
            if got == 0:
                return None
            raise ConnectionError(f"connection closed after {got} of {n} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME) -> dict[str, Any] | None:
    """Blocking read of one frame; None at a clean end of stream; ProtocolError if bad."""
    header = recv_exact(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > max_frame:
        raise FrameTooLarge(f"frame of {length} bytes over the {max_frame} limit")
    payload = recv_exact(sock, length) if length else b""
    if payload is None:
        raise ConnectionError("connection closed between header and payload")
    return decode_payload(payload)
