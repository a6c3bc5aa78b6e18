"""Accept-Encoding negotiation (RFC 9110 §12.5.3) among sidecar files and on-the-fly codings.

Pure: imports no I/O and nothing of reactor. Which sidecars exist is the file layer's business
and which codecs exist is codecs'; this module only picks among the codings it is told are
available.

Rule: the available coding with the highest q-value wins, ties going to the order `available`
is given in (the server's preference: CODINGS's order, brotli first as the smallest for the
same content, then zstd, then gzip); q=0 means "not this one"; `*` weighs every coding the
field does not name. The winner is served unless the client named `identity` with a
strictly higher weight. A field that refuses everything, identity included, still gets the
identity bytes: a 406 for a static file helps nobody.
"""

from functools import lru_cache

# (content-coding, sidecar suffix), in order of preference.
CODINGS = (("br", ".br"), ("zstd", ".zst"), ("gzip", ".gz"))

ORDER = tuple(coding for coding, _ in CODINGS)

_ALIASES = {"x-gzip": "gzip"}


def _qvalue(text: bytes) -> float:
    try:
        q = float(text)
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0


def parse_accept(value: bytes) -> dict:
    """{coding: weight} for an Accept-Encoding value; `*` is kept as a key. Media types of
    an Accept value come out the same way ({"text/html": 1.0, ...})."""
    weights = {}
    for item in value.split(b","):
        name, _, params = item.partition(b";")
        name = name.strip().lower().decode("latin-1")
        if not name:
            continue
        q = 1.0
        for param in params.split(b";"):
            key, _, text = param.partition(b"=")
            if key.strip().lower() == b"q":
                q = _qvalue(text.strip())
        weights[_ALIASES.get(name, name)] = q
    return weights


@lru_cache(maxsize=256)
def negotiate(accept: bytes, available: tuple):
    """The coding from `available` (in CODINGS order) to send, or None for identity."""
    weights = parse_accept(accept)
    star = weights.get("*", 0.0)
    best, best_q = None, 0.0
    for coding in available:
        q = weights.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    if best is not None and weights.get("identity", 0.0) > best_q:
        return None
    return best
