import os
import tempfile

from txexecnet import blocking

work = tempfile.mkdtemp()
source = os.path.join(work, "app")
os.makedirs(os.path.join(source, "lib"))
with open(os.path.join(source, "lib", "tool.py"), "w") as f:
    f.write("print('hello')\n")
os.symlink("lib/tool.py", os.path.join(source, "tool"))

group = blocking.Group(["popen//id=a", "popen//id=b"])
done = []
rsync = blocking.RSync(source, progress=done.append)
for gw in group:
    rsync.add_target(gw, os.path.join(work, "copy-" + gw.id), delete=True)
rsync.send()  # both targets at once
print(done[-1].files_done == done[-1].files_total == 2)  # True: one file, twice
print(os.readlink(os.path.join(work, "copy-b", "tool")) == "lib/tool.py")  # True

# A second send finds nothing changed: no file crosses the wire.
again = []
rsync = blocking.RSync(source, progress=again.append)
for gw in group:
    rsync.add_target(gw, os.path.join(work, "copy-" + gw.id))
rsync.send()
print(again == [])  # True
group.terminate()
