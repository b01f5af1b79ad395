"""
The metric modules; importing this package registers every metric.

To add metrics, write a module here that calls
L{benchmarks.registry.register} and add its name to MODULES.
"""

import importlib

#: Metric modules, in the order their metrics appear in the table.
MODULES = [
    "start",
    "roundtrip",
    "throughput",
    "stream",
    "output",
    "serializer",
    "channels",
    "concurrent",
    "rsync",
    "ssh",
    "server",
    "xdist",
]

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
