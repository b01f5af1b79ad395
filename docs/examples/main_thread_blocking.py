from txexecnet import RemoteError, blocking

gw = blocking.makegateway("popen//execmodel=main_thread_only")

# Code that must run in the main thread: here, installing a signal handler.
ch = gw.remote_exec("""
    import signal, threading
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    channel.send(threading.current_thread() is threading.main_thread())
""")
print(ch.receive(timeout=10))  # True
ch.waitclose(timeout=10)

status = gw.remote_status()
print(status.execmodel == "main_thread_only", status.numexecuting == 0)  # True True

# One remote_exec at a time: a second one while the first runs fails.
first = gw.remote_exec("channel.receive()")
second = gw.remote_exec("pass")
try:
    second.waitclose(timeout=10)
except RemoteError as error:
    print("concurrent remote_exec" in str(error))  # True
first.send("done")
first.waitclose(timeout=10)
gw.exit()
