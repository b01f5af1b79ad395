"""
The C{twistd execnet-server} plugin.  Nothing is imported until it is used:
the options and the service live in L{txexecnet.tap}.
"""

from twisted.application.service import ServiceMaker

execnetServer = ServiceMaker(
    "txexecnet socket server",
    "txexecnet.tap",
    "Serve txexecnet socket gateways: a fresh child Python for every connection.",
    "execnet-server",
)
