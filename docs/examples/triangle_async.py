from twisted.internet import defer, task

import txexecnet
import txexecnet.script


async def main(reactor):
    proxygw = await txexecnet.makegateway("popen//id=proxy")
    channel = proxygw.remote_exec(txexecnet.script.socketserver)
    await channel.send(("127.0.0.1", 0))
    status, port = await channel.receive(timeout=10)
    assert status == "ok"

    gw = await txexecnet.makegateway(f"socket=127.0.0.1:{port}")
    remote_pid = await gw.remote_exec("import os; channel.send(os.getpid())").receive()
    print(remote_pid != proxygw.remoteinfo["pid"])  # True

    await gw.exit()
    channel.close()
    await proxygw.exit()


task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
