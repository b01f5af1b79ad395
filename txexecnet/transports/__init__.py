"""
The transports that carry a gateway's frames, one module per kind of
gateway (see L{txexecnet.transports.registry}, which imports each only when
a gateway of its kind is made):

  - L{popen<txexecnet.transports.popen>}: a child Python on this machine;
  - L{thread<txexecnet.transports.thread>}: threads of this very process;
  - L{ssh<txexecnet.transports.ssh>}: a Python on a host reached over SSH;
  - L{socket<txexecnet.transports.socket>}: a Python started by a socket
    server;
  - L{via<txexecnet.transports.via>}: a Python started by another gateway's.

L{command<txexecnet.transports.command>} is what runs a command line whose
stdio reaches a Python (popen, the OpenSSH client).
"""
