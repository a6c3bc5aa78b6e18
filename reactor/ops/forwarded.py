"""Who the client is behind HTTP proxies: `Forwarded` (RFC 7239), or `X-Forwarded-For` and
`X-Forwarded-Proto`, believed only from a trusted peer.

The addresses are read right to left, the nearest proxy's entry first: trusted ones are
skipped and the first untrusted one is the client (the leftmost entries are whatever the
client wrote, so they are never taken on trust). Repeated fields are one list. A value that
is not an address ends the walk at the last trusted hop. The scheme is taken from the same
hop when the lists line up, else from the nearest, and only `http` or `https`.

Pure: a function of the request and the trusted networks; imports nothing of the server.
"""

import ipaddress

_SCHEMES = {"http": "http", "https": "https"}


class ForwardedRules:
    def __init__(self, trusted):
        self.trusted = trusted    # a proxy.Networks

    def apply(self, request):
        """Set request.client and request.scheme from the forwarding fields, if the peer is
        trusted and sent any."""
        peer = request.client
        if peer is None or peer not in self.trusted:
            return
        forwarded = request.header_values(b"forwarded")
        if forwarded:
            hops, schemes = _parse_forwarded(forwarded)
        else:
            hops = _list(request.header_values(b"x-forwarded-for"))
            schemes = _list(request.header_values(b"x-forwarded-proto"))
        chosen = None
        for index in range(len(hops) - 1, -1, -1):
            address = _address(hops[index])
            if address is None:
                break
            chosen = index
            request.client = address
            if not self.trusted.trusts(address[0]):
                break
        if schemes:
            scheme = schemes[chosen] if chosen is not None and len(schemes) == len(hops) \
                else schemes[-1]
            request.scheme = _SCHEMES.get(scheme.lower(), request.scheme)


def _list(values) -> list:
    return [item.strip() for value in values
            for item in value.decode("latin-1").split(",") if item.strip()]


def _parse_forwarded(values):
    """(for= values, proto= values) of the elements of Forwarded fields, in order."""
    hops, schemes = [], []
    for element in _list(values):
        pairs = {}
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            pairs[name.strip().lower()] = value.strip().strip('"')
        if "for" in pairs:
            hops.append(pairs["for"])
        if "proto" in pairs:
            schemes.append(pairs["proto"])
    return hops, schemes


def _address(text: str):
    """(host, port) of `1.2.3.4`, `1.2.3.4:80`, `[::1]:80` or `::1`; None if it is none."""
    port = 0
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = int(rest) if rest.isdigit() else 0
    else:
        host = text
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return None
