import json
import os

from twisted.internet import defer, task

import txexecnet


def readfiles(channel, paths):
    # Runs in the child: its source is sent, then it is called with the
    # channel and the keyword arguments given to remote_exec().
    for path in paths:
        with open(path, "rb") as f:
            channel.send((path, f.read()))


async def main(reactor):
    gw = await txexecnet.makegateway("popen")
    channel = gw.remote_exec(readfiles, paths=[os.__file__, json.__file__])
    async for path, content in channel:  # ends when readfiles() returns
        print(path, len(content))
    await gw.exit()


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
