"""Hypothesis strategies the serializer tests share."""

from hypothesis import strategies as st


def containers(leaves, hashable, max_size, max_leaves):
    """Lists, tuples, dicts, sets and frozensets, nested, of C{leaves}; C{hashable} as keys and members."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=max_size)
            | st.tuples(children, children)
            | st.dictionaries(hashable, children, max_size=max_size)
            | st.sets(hashable, max_size=max_size)
            | st.frozensets(hashable, max_size=max_size)
        ),
        max_leaves=max_leaves,
    )
