"""The tfycc file format (see docs/bitstream.md), in Python and in TensorFlow ops.

Layout (all integers big-endian):

    offset   size  field
    0        4     magic b"TFYC"
    4        1     format version (1)
    5        1     m = length of the model id (1..255)
    6        m     model id, ASCII
    6+m      2     image height in pixels (1..65535)
    8+m      2     image width in pixels (1..65535)
    10+m     ...   range-coded payload (levels, then kept luma bits, then kept colour bits)
    end-4    4     checksum: first 4 bytes of tf.fingerprint (farmhash64) of all bytes before it

The Python half (``parse_header``) serves ``tfycc info`` and early, friendly
errors; the TensorFlow half is what the model's compress/decompress functions
use, so a SavedModel needs nothing outside itself.
"""
import dataclasses
import struct

import tensorflow as tf

__all__ = [
    "MAGIC",
    "VERSION",
    "CHECKSUM_BYTES",
    "BitstreamError",
    "Header",
    "parse_header",
    "header_size",
    "tf_pack",
    "tf_unpack",
]

MAGIC = b"TFYC"
VERSION = 1
CHECKSUM_BYTES = 4
MAX_SIDE = 65535


class BitstreamError(ValueError):
    """The bytes are not a valid tfycc bitstream (bad magic, version, truncated...)."""


@dataclasses.dataclass(frozen=True)
class Header:
    version: int
    model_id: str
    height: int
    width: int
    size: int  # total file size in bytes

    @property
    def bpp(self):
        return 8.0 * self.size / (self.height * self.width)


def header_size(model_id):
    return 10 + len(model_id.encode("ascii"))


def parse_header(data):
    """bytes -> Header; raises BitstreamError with a one-line reason."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise BitstreamError("not a tfycc file (bad magic bytes)")
    if data[4] != VERSION:
        raise BitstreamError(f"unsupported tfycc format version {data[4]} (this tfycc reads {VERSION})")
    m = data[5]
    if m == 0 or len(data) < 10 + m + CHECKSUM_BYTES:
        raise BitstreamError("truncated tfycc file (header incomplete)")
    try:
        model_id = data[6:6 + m].decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt tfycc header (model id is not ASCII)") from None
    height, width = struct.unpack(">HH", data[6 + m:10 + m])
    if height == 0 or width == 0:
        raise BitstreamError("corrupt tfycc header (zero image size)")
    return Header(data[4], model_id, height, width, len(data))


_BYTE = tf.constant([bytes([i]) for i in range(256)])


def _bytes_of(values):
    """int32 [k] in 0..255 -> one string of k bytes."""
    return tf.strings.reduce_join(tf.gather(_BYTE, values))


def _checksum(data):
    return _bytes_of(tf.cast(tf.fingerprint(tf.reshape(data, [1]))[0, :CHECKSUM_BYTES], tf.int32))


def tf_pack(model_id, height, width, payload):
    """Header + payload + checksum as one scalar string tensor (model_id: Python str)."""
    mid = model_id.encode("ascii")
    if not 0 < len(mid) < 256:
        raise ValueError("model id must be 1..255 ASCII characters")
    size = tf.cast(tf.stack([height // 256, height % 256, width // 256, width % 256]), tf.int32)
    head = tf.constant(MAGIC + bytes([VERSION, len(mid)]) + mid)
    body = tf.strings.join([head, _bytes_of(size), payload])
    return tf.strings.join([body, _checksum(body)])


def _check(condition, message):
    """An assertion whose error names only ``message`` (never the binary data)."""
    return tf.debugging.Assert(condition, [message])


def tf_unpack(data, model_id):
    """Validate a bitstream against the model id; return (height, width, payload).

    Every check raises tf.errors.InvalidArgumentError with a one-line message.
    """
    mid = model_id.encode("ascii")
    head = MAGIC + bytes([VERSION, len(mid)]) + mid
    n = len(head)
    length = tf.strings.length(data)
    with tf.control_dependencies([_check(length >= n + 4 + CHECKSUM_BYTES,
                                         "truncated or not a tfycc file")]):
        checks = [_check(tf.equal(tf.strings.substr(data, 0, 4), MAGIC),
                         "not a tfycc file (bad magic bytes)")]
    with tf.control_dependencies(checks):
        checks = [_check(tf.equal(tf.strings.substr(data, 4, 1), bytes([VERSION])),
                         "unsupported tfycc format version")]
    with tf.control_dependencies(checks):
        checks = [_check(tf.equal(tf.strings.substr(data, 0, n), head),
                         f"the file was made by another model (this model is {model_id})")]
    with tf.control_dependencies(checks):
        body = tf.strings.substr(data, 0, length - CHECKSUM_BYTES)
        checks = [_check(tf.equal(_checksum(body), tf.strings.substr(
            data, length - CHECKSUM_BYTES, CHECKSUM_BYTES)), "corrupt tfycc file (checksum mismatch)")]
    with tf.control_dependencies(checks):
        size = tf.cast(tf.io.decode_raw(tf.strings.substr(data, n, 4), tf.uint8), tf.int32)
        height = size[0] * 256 + size[1]
        width = size[2] * 256 + size[3]
        checks = [_check(height * width > 0, "corrupt tfycc header (zero image size)")]
    with tf.control_dependencies(checks):
        payload = tf.strings.substr(data, n + 4, length - n - 4 - CHECKSUM_BYTES)
        return tf.identity(height), tf.identity(width), payload
