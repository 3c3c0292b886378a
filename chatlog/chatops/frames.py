"""The Feishu/Lark long connection's frame: protobuf ``pbbp2.Frame`` (proto2), encoded by hand.

    message Header { required string key = 1; required string value = 2; }
    message Frame  { required uint64 SeqID = 1; required uint64 LogID = 2; required int32 service = 3;
                     required int32 method = 4; repeated Header headers = 5; optional string
                     payload_encoding = 6; optional string payload_type = 7; optional bytes payload = 8;
                     optional string LogIDNew = 9; }

``method`` 0 is a control frame (header ``type`` ``ping``/``pong``), 1 a data frame (``type`` ``event``
or ``card``, with ``message_id``, ``sum``, ``seq``, ``trace_id``); the client answers a data frame by
sending it back with the payload ``{"code": 200}``. Unknown fields are skipped, as protobuf requires.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONTROL = 0
DATA = 1
MAX_FRAME_BYTES = 4 * 1024 * 1024


class FrameError(ValueError):
    """Bytes that are not a Frame."""


@dataclass(slots=True)
class Frame:
    """One long-connection frame."""

    seq_id: int = 0
    log_id: int = 0
    service: int = 0
    method: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: bytes = b""

    def header(self, key: str) -> str:
        """The first header named `key`, or ""."""
        return next((value for name, value in self.headers if name == key), "")


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int32 negatives travel as 64-bit two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def encode(frame: Frame) -> bytes:
    """`frame` as protobuf bytes."""
    parts = [_field(1, frame.seq_id), _field(2, frame.log_id), _field(3, frame.service),
             _field(4, frame.method)]
    for key, value in frame.headers:
        parts.append(_field(5, _field(1, key.encode()) + _field(2, value.encode())))
    if frame.payload:
        parts.append(_field(8, frame.payload))
    return b"".join(parts)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise FrameError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    found: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _read_varint(data, at)
            found.append((number, value))
        elif kind == 2:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise FrameError("truncated field")
            found.append((number, data[at:at + size]))
            at += size
        elif kind in (1, 5):
            at += 8 if kind == 1 else 4
        else:
            raise FrameError(f"unsupported wire type {kind}")
    return found


def decode(data: bytes) -> Frame:
    """A `Frame` from protobuf bytes; `FrameError` for anything else."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError("frame too large")
    frame = Frame()
    for number, value in _fields(data):
        if isinstance(value, int):
            if number in (1, 2, 3, 4):
                setattr(frame, ("seq_id", "log_id", "service", "method")[number - 1], _signed(number, value))
        elif number == 5:
            pairs = dict(_fields(value))
            key, text = pairs.get(1, b""), pairs.get(2, b"")
            if isinstance(key, bytes) and isinstance(text, bytes):
                frame.headers.append((key.decode("utf-8", "replace"), text.decode("utf-8", "replace")))
        elif number == 8:
            frame.payload = value
    return frame


def _signed(number: int, value: int) -> int:
    # service and method are int32: values above 2**63 are negatives.
    return value - (1 << 64) if number in (3, 4) and value >= 1 << 63 else value
