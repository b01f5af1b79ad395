"""
Fuzz the receiving end of a gateway: the frame parser, and the serializer
behind it, which both sides use.  Any input must end in frames, a
ProtocolError or a LoadError; anything else is a bug (and so is an
allocation beyond -rss_limit_mb, which run.sh sets).

    python fuzz/frames.py -max_total_time=60 -rss_limit_mb=512
"""

import sys

import atheris

with atheris.instrument_imports():
    from txexecnet._remote import (
        CHANNEL_CLOSE_ERROR,
        CHANNEL_DATA,
        HELLO,
        FrameBuffer,
        LoadError,
        ProtocolError,
        loads,
    )

#: Small enough that claims beyond it are refused, large enough for real frames.
MAX_FRAME = 1024 * 1024


def deliver(msgtype, channel_id, payload):
    if msgtype in (CHANNEL_DATA, CHANNEL_CLOSE_ERROR, HELLO):
        try:
            loads(payload, lambda cid: ("channel", cid))
        except LoadError:
            pass
    return False


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    step = fdp.ConsumeIntInRange(1, 4096)
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    buffer = FrameBuffer(MAX_FRAME, deliver, expect_first=HELLO if step % 2 else None)
    try:
        while stream:
            room = buffer.room()
            n = min(len(room), len(stream), step)
            room[:n] = stream[:n]
            stream = stream[n:]
            buffer.filled(n)
    except ProtocolError:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
