"""Protocol members with a default, which plugin objects may leave out."""

from __future__ import annotations


def has_default(method):
    """Marks a protocol method whose body is its default: an object that does not define it
    still follows the protocol, and the plugin loader gives it this default (as it gives
    class attributes with a value). Methods without the mark must be defined."""
    method.__mer_bench_default__ = True
    return method
