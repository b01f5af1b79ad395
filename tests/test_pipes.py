"""
The pipe transport of popen gateways, over real pipes and the real reactor:
when its writes reach the pipe, and in what order; how much one reactor turn
reads.
"""

import os
import threading

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from zope.interface import implementer

from txexecnet.interfaces import IBufferedReceiver
from txexecnet.transports._pipes import READS_PER_TURN, CORK_LIMIT, PipeTransport, makePipe


class Collector:
    """A protocol that keeps what it is given."""

    def __init__(self):
        self.data = []

    def dataReceived(self, data):
        self.data.append(data)


@pytest.fixture
def pipes():
    """
    A PipeTransport writing into a pipe this test reads (without blocking),
    and reading from a pipe this test writes; all fds closed afterwards.
    """
    inRead, inWrite = os.pipe()
    outRead, outWrite = makePipe()  # room for more than CORK_LIMIT
    os.set_blocking(outRead, False)
    transport = PipeTransport(reactor, inRead, outWrite, Collector(), lambda: None)

    def written():
        try:
            return os.read(outRead, 1 << 20)
        except BlockingIOError:
            return b""

    yield transport, written
    transport.loseConnection()
    for fd in (inWrite, outRead):
        os.close(fd)


async def writtenByTurnEnd(written):
    """What reached the pipe once the current reactor turn has ended."""
    await task.deferLater(reactor, 0, lambda: None)
    return written()


@pytest_twisted.ensureDeferred
async def test_first_write_of_a_turn_goes_at_once_later_ones_at_its_end(pipes):
    transport, written = pipes
    transport.write(b"reply")
    assert written() == b"reply"
    transport.write(b"a")
    transport.writeSequence([b"b", b"c"])
    assert written() == b""
    assert await writtenByTurnEnd(written) == b"abc"


@pytest_twisted.ensureDeferred
async def test_a_burst_reaching_the_cork_limit_is_written_without_waiting(pipes):
    transport, written = pipes
    transport.write(b"first")
    chunk = b"x" * 1024
    for _ in range(CORK_LIMIT // len(chunk)):
        transport.write(chunk)
    assert written() == b"first" + chunk * (CORK_LIMIT // len(chunk))
    assert await writtenByTurnEnd(written) == b""


@pytest_twisted.ensureDeferred
async def test_a_write_from_another_thread_keeps_the_order(pipes):
    # Frames the reactor gathered must not be overtaken by a frame another
    # thread (the blocking facade) writes during the same turn.
    transport, written = pipes
    transport.write(b"1")
    transport.write(b"2")
    other = threading.Thread(target=transport.write, args=(b"3",))
    other.start()
    other.join(10)
    assert written() == b"123"
    assert await writtenByTurnEnd(written) == b""


@pytest_twisted.ensureDeferred
async def test_closing_the_write_side_sends_gathered_writes_first(pipes):
    transport, written = pipes
    transport.write(b"1")
    transport.write(b"2")
    transport.loseWriteConnection()
    transport.write(b"too late")
    assert await writtenByTurnEnd(written) == b"12"
    assert transport._writeFd == -1


@implementer(IBufferedReceiver)
class SmallRooms:
    """A protocol offering a read buffer of C{size} bytes at a time, as FrameProtocol does."""

    def __init__(self, size):
        self.room = bytearray(size)
        self.reads = []

    def getReadBuffer(self):
        return memoryview(self.room)

    def bufferFilled(self, n):
        self.reads.append(bytes(self.room[:n]))


def test_one_turn_reads_again_while_reads_fill_the_room():
    readEnd, writeEnd = makePipe()
    protocol = SmallRooms(1000)
    transport = PipeTransport(reactor, readEnd, os.dup(writeEnd), protocol, lambda: None)
    try:
        data = os.urandom(1000 * (READS_PER_TURN + 3) + 10)
        os.write(writeEnd, data)
        transport.doRead()
        assert protocol.reads == [data[i : i + 1000] for i in range(0, 1000 * READS_PER_TURN, 1000)]
        transport.doRead()
        transport.doRead()
        assert b"".join(protocol.reads) == data
        assert len(protocol.reads[-1]) == 10
    finally:
        transport.loseConnection()
        os.close(writeEnd)
