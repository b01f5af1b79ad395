import os

from txexecnet import blocking

# Three interpreters, started at once; the call returns when all are up.
group = blocking.Group(["popen//id=a", "popen//id=b", "thread//id=c"])

# The same code on each: one channel per gateway, used together.
squares = group.remote_exec("n = channel.receive(); channel.send(n * n)")
squares.send_each(12)
print(squares.receive_each(timeout=10) == [144, 144, 144])  # True

# Items of every channel as they arrive, with the channel that sent them.
queue = group.remote_exec("import os; channel.send(os.getpid())").make_receive_queue()
pids = {queue.get(timeout=10)[1] for _ in group}
print(len(pids) == 3, os.getpid() in pids)  # True True: two children, and this process

group.terminate(timeout=5)
print(len(group) == 0)  # True
