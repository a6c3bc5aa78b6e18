"""The content-codings reactor can produce itself, and their levels.

gzip comes from the standard library. brotli (Google's `brotli` package) and zstd (the
`zstandard` package, else Python 3.14's `compression.zstd`) are used when installed: the
`compress` extra installs both. Every codec here releases the GIL while it works, so the
static handler runs them on threads beside the loop. Imports nothing of reactor.

Levels: a file is compressed once per version and then served from the result many times,
but its first requests get the identity body until the result is ready, so the levels are
the usual "fast but good" ones rather than the slowest and smallest:
- gzip 6 (zlib's default): about 25 MB/s on minified JavaScript, within 1% of level 9.
- brotli 5: about 30 MB/s, a few percent smaller than gzip 6; 11 would be 100 times slower.
- zstd 6: about 70 MB/s with gzip 6's ratio. Its window stays zstd's own for the level
  (at most 2 MiB below level 16), well within the 8 MiB that RFC 9659 lets clients refuse.
"""

import threading
import zlib

GZIP_LEVEL = 6
BROTLI_QUALITY = 5
ZSTD_LEVEL = 6


def _gzip(data: bytes) -> bytes:
    # wbits 31: a gzip member with a zero mtime, so the same input always gives the same bytes
    # (a strong ETag promises that).
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _brotli():
    try:
        import brotli
    except ImportError:
        return None
    mode = brotli.MODE_TEXT

    def compress(data: bytes) -> bytes:
        return brotli.compress(data, mode=mode, quality=BROTLI_QUALITY)
    return compress


def _zstd():
    try:
        import zstandard
    except ImportError:
        try:
            from compression import zstd  # Python 3.14+
        except ImportError:
            return None
        return lambda data: zstd.compress(data, level=ZSTD_LEVEL)
    # A ZstdCompressor must not be shared between threads: one per thread.
    local = threading.local()

    def compress(data: bytes) -> bytes:
        compressor = getattr(local, "compressor", None)
        if compressor is None:
            compressor = local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        return compressor.compress(data)
    return compress


def available() -> dict:
    """{content-coding: compress(bytes) -> bytes} for the codecs this Python has."""
    found = {"br": _brotli(), "zstd": _zstd(), "gzip": _gzip}
    return {coding: compress for coding, compress in found.items() if compress is not None}


CODECS = available()
