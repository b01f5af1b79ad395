from txexecnet import blocking

# The gateway to start others through. Here a popen gateway; in practice
# often one reached over SSH or a socket.
proxy = blocking.makegateway("popen//id=proxy")

# Started by the proxy's interpreter, which relays its stdin and stdout.
worker = blocking.makegateway("popen//via=proxy//id=worker")
parent_pid = worker.remote_exec("import os; channel.send(os.getppid())").receive()
print(parent_pid == proxy.remoteinfo["pid"])  # True: the proxy is its parent

worker.exit()
proxy.exit()
