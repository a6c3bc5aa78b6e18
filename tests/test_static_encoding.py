"""reactor.static.encoding: Accept-Encoding with q-values."""

import pytest

from reactor.static.encoding import negotiate, parse_accept

BOTH = ("br", "gzip")


@pytest.mark.parametrize("accept,available,expected", [
    (b"gzip, deflate, br", BOTH, "br"),            # equal weights: the server's order
    (b"gzip, deflate, br", ("gzip",), "gzip"),
    (b"gzip", BOTH, "gzip"),
    (b"br;q=0.5, gzip;q=0.8", BOTH, "gzip"),
    (b"br;q=0.8, gzip;q=0.5", BOTH, "br"),
    (b"br;q=0, gzip", BOTH, "gzip"),
    (b"br;q=0", ("br",), None),
    (b"gzip;q=0.000", ("gzip",), None),
    (b"*", BOTH, "br"),
    (b"*;q=0.1, br;q=0", BOTH, "gzip"),
    (b"*;q=0", BOTH, None),
    (b"identity", BOTH, None),
    (b"", BOTH, None),
    (b"deflate", BOTH, None),
    (b"x-gzip", ("gzip",), "gzip"),
    (b"GZIP", ("gzip",), "gzip"),
    (b"gzip;q=0.5, identity", BOTH, None),         # identity named with a higher weight
    (b"gzip;q=0.5, identity;q=0.5", BOTH, "gzip"),
    (b"gzip;q=bogus, br", BOTH, "br"),
    (b"gzip;q=2", ("gzip",), None),                 # out of range counts as refused
    (b"gzip ; q=0.3 ,br;Q=0.2", BOTH, "gzip"),
])
def test_negotiate(accept, available, expected):
    assert negotiate(accept, available) == expected


def test_parse_accept():
    assert parse_accept(b"br;q=0.5, gzip, *;q=0") == {"br": 0.5, "gzip": 1.0, "*": 0.0}
