import os

from txexecnet import blocking

gw = blocking.makegateway("popen")
channel = gw.remote_exec("""
    import os
    channel.send(os.getpid())
""")
remote_pid = channel.receive()
print(remote_pid != os.getpid())  # True: the code ran in another process
gw.exit()
