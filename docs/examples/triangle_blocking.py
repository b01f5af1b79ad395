import txexecnet.script
from txexecnet import blocking

# A fresh child process...
proxygw = blocking.makegateway("popen//id=proxy")

# ...runs the standalone socket server, shipped as source like any module.
channel = proxygw.remote_exec(txexecnet.script.socketserver)
channel.send(("127.0.0.1", 0))  # where to listen; port 0: any free port
status, port = channel.receive(timeout=10)
assert status == "ok"

# A socket gateway to that server: another fresh interpreter.
gw = blocking.makegateway(f"socket=127.0.0.1:{port}")
remote_pid = gw.remote_exec("import os; channel.send(os.getpid())").receive()
print(remote_pid != proxygw.remoteinfo["pid"])  # True: a third process

gw.exit()
channel.close()  # the socket server stops
proxygw.exit()
