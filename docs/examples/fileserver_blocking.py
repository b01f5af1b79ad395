import json
import os

from txexecnet import blocking

fileserver = """
    for fn in channel:
        with open(fn, "rb") as f:
            channel.send(f.read())
"""

# Any files will do; these two exist wherever Python does.
somefilelist = [os.__file__, json.__file__]

gw = blocking.makegateway("popen")
channel = gw.remote_exec(fileserver)
for fn in somefilelist:
    channel.send(fn)
    content = channel.receive()
    print(fn, len(content))  # content is bytes
channel.close()  # the remote "for fn in channel" loop ends
gw.exit()
