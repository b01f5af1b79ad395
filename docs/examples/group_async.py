import socket

from twisted.internet import defer, task

import txexecnet


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main(reactor):
    group = txexecnet.Group()
    specs = [f"popen//id=worker{i}" for i in range(6)]
    specs.append(f"socket=127.0.0.1:{unused_port()}//id=nobody")  # refused

    # At most 4 handshakes in flight per host; one result per spec.
    results = await group.makegateways(specs, concurrency=4)
    failed = [r for r in results if isinstance(r, txexecnet.GatewayStartError)]
    print(len(group) == 6, [e.spec for e in failed] == specs[-1:])  # True True

    mch = group.remote_exec("for i in range(3): channel.send(i)")
    total = 0
    async for channel, item in mch:  # until every channel has closed
        total += item
    print(total == 6 * 3)  # True

    await group.terminate(timeout=5)


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
