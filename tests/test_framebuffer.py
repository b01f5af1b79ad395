"""
The receive buffer both ends of a gateway read frames into: frames come out
whole however the reads split them, and the room offered for each read
follows the frames' size.
"""

import random

from txexecnet._remote import CHANNEL_DATA, DEFAULT_MAX_FRAME_SIZE, HEADER, FrameBuffer


def frame(cid, payload):
    return HEADER.pack(CHANNEL_DATA, cid, len(payload)) + payload


class Frames:
    """A FrameBuffer and what it delivered, with reads of chosen sizes."""

    def __init__(self):
        self.delivered = []
        self.buffer = FrameBuffer(DEFAULT_MAX_FRAME_SIZE, self.deliver)

    def deliver(self, msgtype, cid, payload):
        self.delivered.append((msgtype, cid, bytes(payload)))
        return False

    def read(self, data):
        """Feed C{data} as reads of at most the room offered; return the rooms' sizes."""
        offered = []
        while data:
            room = self.buffer.room()
            offered.append(len(room))
            n = min(len(room), len(data))
            room[:n] = data[:n]
            self.buffer.filled(n)
            data = data[n:]
        return offered


def test_frames_split_at_random_points_come_out_whole():
    rng = random.Random(5)
    payloads = [bytes([i % 256]) * rng.choice([0, 1, 9, 1000, 70000, 300000]) for i in range(60)]
    stream = b"".join(frame(i, p) for i, p in enumerate(payloads))
    frames = Frames()
    pos = 0
    while pos < len(stream):
        room = frames.buffer.room()
        n = min(len(room), rng.randint(1, 100000), len(stream) - pos)
        room[:n] = stream[pos : pos + n]
        frames.buffer.filled(n)
        pos += n
    assert frames.delivered == [(CHANNEL_DATA, i, p) for i, p in enumerate(payloads)]
    assert frames.buffer.pending() == 0


def test_small_frames_are_read_at_most_64_kib_at_a_time():
    frames = Frames()
    offered = frames.read(b"".join(frame(1, b"x" * 20) for _ in range(50000)))
    assert len(frames.delivered) == 50000
    assert max(offered) <= 65536 + HEADER.size + 20


def test_after_a_large_frame_a_read_is_offered_room_for_a_whole_one():
    size = 1 << 20
    frames = Frames()
    frames.read(frame(1, b"a" * size))
    assert len(frames.buffer.room()) >= HEADER.size + size
