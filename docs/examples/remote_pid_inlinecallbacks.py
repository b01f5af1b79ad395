import os

from twisted.internet import defer, task

import txexecnet


@defer.inlineCallbacks
def main(reactor):
    gw = yield txexecnet.makegateway("popen")
    channel = gw.remote_exec("""
        import os
        channel.send(os.getpid())
    """)
    remote_pid = yield channel.receive()
    print(remote_pid != os.getpid())  # True
    yield gw.exit()


task.react(main)
