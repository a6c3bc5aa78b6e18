"""Byte ranges (RFC 9110 §14): parsing a Range field against a size, Content-Range values, and
the framing of multipart/byteranges.

Pure: imports no I/O and nothing of reactor.

Policy against abusive range sets (§14.1.1 lets a server ignore, coalesce or reject them):
- any syntax error, or a unit other than bytes: the field is ignored and the whole file is
  sent with 200;
- satisfiable ranges are sorted and coalesced when they overlap or lie closer than MERGE_GAP
  bytes apart, so parts come in ascending order, never repeat a byte, and never add up to more
  than the file; one range left means a plain 206;
- however many ranges were asked for, what counts is what is left after merging: up to
  MAX_RANGES parts are served as multipart/byteranges (seventeen adjacent ranges are one part).
  More parts than that are an answer whose framing costs more than its bytes are worth: when
  the parts cover at least half of the file the whole file is sent with 200 (the cost is
  comparable), else 416, so that 17 single bytes of a large file cost a short refusal rather
  than the file;
- no satisfiable range at all: 416 with `Content-Range: bytes */size`. Every range of an empty
  file is unsatisfiable.
"""

import secrets

MAX_RANGES = 16

# About the size of one part's own head: a gap narrower than that costs more as a separate part
# than as bytes sent twice over.
MERGE_GAP = 80

IGNORE = None          # send the whole file with 200
UNSATISFIABLE = ()     # 416

# Random per process, so no file's content can be crafted to contain it.
BOUNDARY = secrets.token_hex(16)
MULTIPART_TYPE = "multipart/byteranges; boundary=" + BOUNDARY


def parse(value: bytes, size: int):
    """IGNORE, UNSATISFIABLE, or a list of (start, stop) with stop exclusive."""
    unit, eq, spec = value.partition(b"=")
    if not eq or unit.strip().lower() != b"bytes":
        return IGNORE
    items = [item.strip() for item in spec.split(b",")]
    items = [item for item in items if item]
    if not items:
        return IGNORE
    ranges = []
    try:
        for item in items:
            first, dash, last = item.partition(b"-")
            first, last = first.strip(), last.strip()
            if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
                return IGNORE
            if first:
                start = int(first)
                if last and int(last) < start:
                    return IGNORE
                stop = min(int(last) + 1, size) if last else size
                if start < size:
                    ranges.append((start, stop))
            elif not last:
                return IGNORE
            elif int(last) > 0 and size > 0:
                ranges.append((max(size - int(last), 0), size))
    except ValueError:   # more digits than int() accepts: no sane client sends that
        return IGNORE
    if not ranges:
        return UNSATISFIABLE
    merged = _coalesce(ranges)
    if len(merged) <= MAX_RANGES:
        return merged
    covered = sum(stop - start for start, stop in merged)
    return IGNORE if 2 * covered >= size else UNSATISFIABLE


def _coalesce(ranges: list) -> list:
    ranges.sort()
    merged = [ranges[0]]
    for start, stop in ranges[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop + MERGE_GAP:
            merged[-1] = (last_start, max(last_stop, stop))
        else:
            merged.append((start, stop))
    return merged


def content_range(start: int, stop: int, size: int) -> str:
    return f"bytes {start}-{stop - 1}/{size}"


def unsatisfied_range(size: int) -> str:
    return f"bytes */{size}"


def multipart_heads(ranges: list, size: int, content_type: str) -> tuple:
    """(the head before each part, the closing delimiter) of a multipart/byteranges body;
    each part's bytes go right after its head."""
    heads = []
    for i, (start, stop) in enumerate(ranges):
        heads.append(("%s--%s\r\nContent-Type: %s\r\nContent-Range: %s\r\n\r\n" % (
            "\r\n" if i else "", BOUNDARY, content_type,
            content_range(start, stop, size))).encode("latin-1"))
    return heads, ("\r\n--%s--\r\n" % BOUNDARY).encode("latin-1")
