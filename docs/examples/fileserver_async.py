import json
import os

from twisted.internet import defer, task

import txexecnet

fileserver = """
    for fn in channel:
        with open(fn, "rb") as f:
            channel.send(f.read())
"""

somefilelist = [os.__file__, json.__file__]


async def main(reactor):
    gw = await txexecnet.makegateway("popen")
    channel = gw.remote_exec(fileserver)
    for fn in somefilelist:
        await channel.send(fn)
        content = await channel.receive()
        print(fn, len(content))
    channel.close()
    await gw.exit()


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
