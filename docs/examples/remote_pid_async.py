import os

from twisted.internet import defer, task

import txexecnet


async def main(reactor):
    gw = await txexecnet.makegateway("popen")
    channel = gw.remote_exec("""
        import os
        channel.send(os.getpid())
    """)
    remote_pid = await channel.receive()
    print(remote_pid != os.getpid())  # True
    await gw.exit()


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
