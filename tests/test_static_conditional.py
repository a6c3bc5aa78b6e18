"""reactor.static.conditional: validators, the RFC 9110 §13.2.2 order, and If-Range."""

import pytest

from reactor.static.conditional import (
    NOT_MODIFIED,
    PRECONDITION_FAILED,
    PROCEED,
    evaluate,
    http_date,
    if_range_holds,
    make_etag,
    parse_http_date,
)

ETAG = make_etag(1_700_000_000_123_456_789, 1024)
OTHER = b'"other"'
LAST = 1_700_000_000
BEFORE = http_date(LAST - 10).encode()
AT = http_date(LAST).encode()
AFTER = http_date(LAST + 10).encode()


def test_etag_is_strong_and_differs_per_coding():
    assert ETAG.startswith(b'"') and ETAG.endswith(b'"')
    assert make_etag(1, 2, "br") != make_etag(1, 2, "gzip") != make_etag(1, 2)
    assert make_etag(1, 2) != make_etag(1, 3) != make_etag(2, 3)


@pytest.mark.parametrize("text", [
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "Sun Nov  6 08:49:37 1994",
])
def test_three_date_forms(text):
    assert parse_http_date(text.encode()) == 784111777


@pytest.mark.parametrize("text", [b"", b"yesterday", b"Sun, 06 Nov 1994", b"\xff\xfe", b"0"])
def test_malformed_dates_are_none(text):
    assert parse_http_date(text) is None


# (headers, expected outcome for GET)
MATRIX = [
    ({}, PROCEED),
    # If-Match: strong comparison, lists, *
    ({"if_match": ETAG}, PROCEED),
    ({"if_match": b"*"}, PROCEED),
    ({"if_match": OTHER + b", " + ETAG}, PROCEED),
    ({"if_match": OTHER}, PRECONDITION_FAILED),
    ({"if_match": b"W/" + ETAG}, PRECONDITION_FAILED),
    # If-Unmodified-Since, only without If-Match
    ({"if_unmodified_since": AT}, PROCEED),
    ({"if_unmodified_since": AFTER}, PROCEED),
    ({"if_unmodified_since": BEFORE}, PRECONDITION_FAILED),
    ({"if_unmodified_since": b"garbage"}, PROCEED),
    ({"if_match": ETAG, "if_unmodified_since": BEFORE}, PROCEED),
    # If-None-Match: weak comparison, lists, *
    ({"if_none_match": ETAG}, NOT_MODIFIED),
    ({"if_none_match": b"W/" + ETAG}, NOT_MODIFIED),
    ({"if_none_match": b"*"}, NOT_MODIFIED),
    ({"if_none_match": OTHER + b",W/" + ETAG}, NOT_MODIFIED),
    ({"if_none_match": b'"a,b", ' + ETAG}, NOT_MODIFIED),
    ({"if_none_match": OTHER}, PROCEED),
    ({"if_none_match": b"garbage"}, PROCEED),
    # If-Modified-Since, ignored when If-None-Match is present
    ({"if_modified_since": AT}, NOT_MODIFIED),
    ({"if_modified_since": AFTER}, NOT_MODIFIED),
    ({"if_modified_since": BEFORE}, PROCEED),
    ({"if_modified_since": b"not a date"}, PROCEED),
    ({"if_none_match": OTHER, "if_modified_since": AFTER}, PROCEED),
    ({"if_none_match": ETAG, "if_modified_since": BEFORE}, NOT_MODIFIED),
    # 412 from the first step wins over a 304 from the second
    ({"if_match": OTHER, "if_none_match": ETAG}, PRECONDITION_FAILED),
    ({"if_unmodified_since": BEFORE, "if_modified_since": AFTER}, PRECONDITION_FAILED),
]


@pytest.mark.parametrize("headers,expected", MATRIX)
def test_precondition_matrix(headers, expected):
    assert evaluate("GET", ETAG, LAST, **headers) == expected
    assert evaluate("HEAD", ETAG, LAST, **headers) == expected


def test_unsafe_methods_get_412_for_none_match_and_ignore_modified_since():
    assert evaluate("DELETE", ETAG, LAST, if_none_match=ETAG) == PRECONDITION_FAILED
    assert evaluate("DELETE", ETAG, LAST, if_modified_since=AFTER) == PROCEED


def test_if_range():
    assert if_range_holds(ETAG, ETAG, LAST)
    assert not if_range_holds(OTHER, ETAG, LAST)
    assert not if_range_holds(b"W/" + ETAG, ETAG, LAST)
    assert if_range_holds(AT, ETAG, LAST)
    assert not if_range_holds(AFTER, ETAG, LAST)
    assert not if_range_holds(BEFORE, ETAG, LAST)
    assert not if_range_holds(b"garbage", ETAG, LAST)
