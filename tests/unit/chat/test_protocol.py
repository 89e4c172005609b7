"""The framing: length prefix + UTF-8 JSON object, and the errors a bad frame gives."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from projects.chat.protocol import (
    CLIENT_SCHEMA,
    HEADER,
    FrameDecoder,
    FrameTooLarge,
    MalformedFrame,
    ProtocolError,
    encode,
    recv_frame,
    send_frame,
    validate,
)

pytestmark = pytest.mark.timeout(60)


def raw(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def test_frame_is_big_endian_length_then_utf8_json():
    frame = encode({"type": "say", "room": "lobby", "text": "héllo ✓"})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert json.loads(frame[4:].decode("utf-8"))["text"] == "héllo ✓"


def test_round_trip_survives_any_split_of_the_byte_stream():
    msgs = [{"type": "say", "room": "r", "text": f"message {i} ✓" * i} for i in range(20)]
    stream = b"".join(encode(m) for m in msgs)
    for step in (1, 3, 7, 64, len(stream)):
        dec, out = FrameDecoder(), []
        for i in range(0, len(stream), step):
            out += dec.feed(stream[i : i + step])
        assert out == msgs, step
        assert dec.pending == 0


def test_bad_json_costs_one_frame_and_the_stream_goes_on():
    dec = FrameDecoder()
    out = dec.feed(raw(b"{not json") + encode({"type": "ping"}) + raw(b"\xff\xfe") + raw(b"[1]"))
    assert [type(x) for x in out] == [MalformedFrame, dict, MalformedFrame, MalformedFrame]
    assert [getattr(x, "code", None) for x in out] == ["bad_json", None, "bad_json", "bad_frame"]
    assert out[1] == {"type": "ping"}
    assert not dec.broken


def test_object_without_string_type_is_a_field_error():
    (err,) = FrameDecoder().feed(raw(b'{"type": 5}'))
    assert isinstance(err, ProtocolError) and err.code == "bad_field"


def test_oversized_length_prefix_is_fatal_and_stops_decoding():
    dec = FrameDecoder(max_frame=100)
    out = dec.feed(HEADER.pack(101) + b"x" * 10)
    assert len(out) == 1 and isinstance(out[0], FrameTooLarge) and out[0].fatal
    assert dec.broken
    assert dec.feed(encode({"type": "ping"})) == []


def test_frame_of_exactly_the_limit_is_accepted():
    msg = {"type": "say", "room": "r", "text": ""}
    size = len(encode(msg)) - 4
    msg["text"] = "x" * (100 - size)
    assert FrameDecoder(max_frame=100).feed(encode(msg)) == [msg]


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        ({"type": "shout", "text": "hi"}, "unknown_type"),
        ({"type": "say", "room": "lobby"}, "bad_field"),
        ({"type": "say", "room": 7, "text": "hi"}, "bad_field"),
        ({"type": "history", "room": "lobby", "limit": "10"}, "bad_field"),
        ({"type": "history", "room": "lobby", "limit": True}, "bad_field"),
        ({"type": "hello", "name": ["alice"]}, "bad_field"),
    ],
)
def test_validate_rejects_unknown_types_and_wrong_or_missing_fields(msg, code):
    with pytest.raises(MalformedFrame) as info:
        validate(msg)
    assert info.value.code == code


def test_validate_accepts_every_documented_request_with_its_required_fields():
    samples = {str: "x", int: 1}
    for kind, fields in CLIENT_SCHEMA.items():
        msg = {"type": kind, **{k: samples[t] for k, (t, req) in fields.items() if req}}
        assert validate(msg) is msg


def test_blocking_recv_frame_reads_frames_and_reports_a_peer_gone_mid_frame():
    a, b = socket.socketpair()
    with a, b:
        send_frame(a, {"type": "ping", "token": "1"})
        a.sendall(HEADER.pack(50) + b'{"type"')  # then vanish mid-frame
        a.shutdown(socket.SHUT_WR)
        assert recv_frame(b) == {"type": "ping", "token": "1"}
        with pytest.raises(ConnectionError):
            recv_frame(b)


def test_blocking_recv_frame_returns_none_at_a_clean_end_and_refuses_oversize():
    a, b = socket.socketpair()
    with a, b:
        a.sendall(HEADER.pack(10_000))
        with pytest.raises(FrameTooLarge):
            recv_frame(b, max_frame=1000)
    a, b = socket.socketpair()
    with a, b:
        a.close()
        assert recv_frame(b) is None
