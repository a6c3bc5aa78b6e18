"""reactor.static.ranges: Range parsing at the edges, the abuse rule, multipart framing."""

import email.parser
import email.policy

import pytest

from reactor.static.ranges import (
    IGNORE,
    MAX_RANGES,
    MERGE_GAP,
    MULTIPART_TYPE,
    UNSATISFIABLE,
    content_range,
    multipart_heads,
    parse,
    unsatisfied_range,
)


@pytest.mark.parametrize("value,size,expected", [
    (b"bytes=0-0", 10, [(0, 1)]),
    (b"bytes=0-9", 10, [(0, 10)]),
    (b"bytes=0-99", 10, [(0, 10)]),          # end past the end is clamped
    (b"bytes=9-9", 10, [(9, 10)]),           # the last byte
    (b"bytes=9-", 10, [(9, 10)]),
    (b"bytes=3-", 10, [(3, 10)]),
    (b"bytes=-1", 10, [(9, 10)]),
    (b"bytes=-10", 10, [(0, 10)]),
    (b"bytes=-100", 10, [(0, 10)]),          # suffix longer than the file: all of it
    (b"Bytes = 2-3", 10, [(2, 4)]),
    (b"bytes=2-3,", 10, [(2, 4)]),           # empty list elements are allowed
    (b"bytes=10-", 10, UNSATISFIABLE),       # first byte past the end
    (b"bytes=10-20", 10, UNSATISFIABLE),
    (b"bytes=-0", 10, UNSATISFIABLE),
    (b"bytes=0-0", 0, UNSATISFIABLE),        # empty file: nothing is satisfiable
    (b"bytes=-5", 0, UNSATISFIABLE),
    (b"bytes=0-", 0, UNSATISFIABLE),
    (b"bytes=20-30,40-50", 10, UNSATISFIABLE),
    (b"bytes=20-30,5-6", 10, [(5, 7)]),      # unsatisfiable members are dropped
    (b"items=0-1", 10, IGNORE),
    (b"bytes", 10, IGNORE),
    (b"bytes=", 10, IGNORE),
    (b"bytes=5-2", 10, IGNORE),
    (b"bytes=a-b", 10, IGNORE),
    (b"bytes=1", 10, IGNORE),
    (b"bytes=-", 10, IGNORE),
    (b"bytes=+1-2", 10, IGNORE),
    (b"bytes=1-2-3", 10, IGNORE),
    (b"bytes=0-" + b"9" * 5000, 10, IGNORE),
])
def test_parse(value, size, expected):
    assert parse(value, size) == expected


def test_far_apart_ranges_stay_separate_in_ascending_order():
    size = 10_000
    assert parse(b"bytes=5000-5009,0-9", size) == [(0, 10), (5000, 5010)]


def test_overlapping_and_near_ranges_are_coalesced():
    assert parse(b"bytes=0-99,50-149,0-10", 1000) == [(0, 150)]
    near = b"bytes=0-9,%d-%d" % (10 + MERGE_GAP, 20 + MERGE_GAP)
    assert parse(near, 1000) == [(0, 21 + MERGE_GAP)]


def test_overlap_attack_never_exceeds_the_file():
    header = b"bytes=" + b",".join(b"0-" for _ in range(MAX_RANGES))
    assert parse(header, 1000) == [(0, 1000)]


def test_many_ranges_count_after_merging():
    adjacent = b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(100))
    assert parse(adjacent, 10**9) == [(0, 100)]
    exactly = b"bytes=" + b",".join(b"%d-%d" % (i * 1000, i * 1000) for i in range(MAX_RANGES))
    assert len(parse(exactly, 10**9)) == MAX_RANGES


def test_too_many_parts_cost_a_refusal_unless_they_cover_most_of_the_file():
    scattered = b"bytes=" + b",".join(b"%d-%d" % (i * 1000, i * 1000)
                                      for i in range(MAX_RANGES + 1))
    assert parse(scattered, 10**9) is UNSATISFIABLE
    dense = b"bytes=" + b",".join(b"%d-%d" % (i * 1000, i * 1000 + 899)
                                  for i in range(MAX_RANGES + 1))
    assert parse(dense, (MAX_RANGES + 1) * 1000) is IGNORE


def test_content_range_values():
    assert content_range(0, 10, 10) == "bytes 0-9/10"
    assert unsatisfied_range(10) == "bytes */10"


def test_multipart_parses_back_byte_for_byte():
    data = bytes(range(256)) * 40
    chosen = parse(b"bytes=0-9,1000-1099,-5", len(data))
    heads, closing = multipart_heads(chosen, len(data), "application/octet-stream")
    body = b"".join(head + data[start:stop] for head, (start, stop) in zip(heads, chosen)) + closing
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + MULTIPART_TYPE.encode() + b"\r\n\r\n" + body)
    parts = list(message.iter_parts())
    assert len(parts) == 3
    for part, (start, stop) in zip(parts, chosen):
        assert part["Content-Range"] == content_range(start, stop, len(data))
        assert part["Content-Type"] == "application/octet-stream"
        assert part.get_payload(decode=True) == data[start:stop]
