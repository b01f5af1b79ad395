"""
A pytest plugin (C{-p txexecnet_upstream_compat}) that registers
txexecnet.compat as C{execnet} when pytest loads it, before any conftest or
test module imports execnet.  upstream/run.py uses it for the execnet suite
with C{--via plugin}; the pytest-xdist suite uses C{-p txexecnet.xdist}.
"""

import txexecnet.compat

txexecnet.compat.install()
