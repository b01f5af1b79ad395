"""
Fuzz the serializers, txexecnet's and execnet's format: loads() of any
bytes returns an item or raises LoadError; what it returns, dumps() and
loads() bring back unchanged.

    python fuzz/serializer.py -max_total_time=60 -rss_limit_mb=512
"""

import sys

import atheris

with atheris.instrument_imports():
    from txexecnet._remote import (
        DumpError,
        LoadError,
        dumps,
        execnet_dumps,
        execnet_loads,
        loads,
    )


def test_one_input(data: bytes) -> None:
    check(data, dumps, loads)
    check(data, execnet_dumps, execnet_loads)


def check(data: bytes, dumps, loads) -> None:
    try:
        item = loads(data)
    except LoadError:
        return
    try:
        again = dumps(item)
    except DumpError:
        return  # e.g. nesting that loads accepts at its limit
    # A NaN is not equal to itself, and puts a set in another order; a
    # signalling Decimal NaN refuses to be compared at all.
    if "nan" not in repr(item).lower() and loads(again) != item:
        raise AssertionError(f"{data!r} loads to {item!r}, which does not come back")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
