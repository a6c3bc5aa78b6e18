"""Content-Type for a file name, from reactor's own extension table.

Pure; imports nothing. The table is ours rather than `mimetypes`' because that module reads
/etc/mime.types and the registry on import, so the same file would get a different type on
another machine. Text types carry `charset=utf-8`, as browsers otherwise guess the encoding.
"""

DEFAULT = "application/octet-stream"

_TEXT = {
    "html": "text/html", "htm": "text/html", "css": "text/css", "txt": "text/plain",
    "md": "text/markdown", "csv": "text/csv", "js": "text/javascript", "mjs": "text/javascript",
    "json": "application/json", "map": "application/json",
    "webmanifest": "application/manifest+json", "xml": "application/xml",
    "svg": "image/svg+xml", "ics": "text/calendar", "vtt": "text/vtt",
    "rst": "text/x-rst", "py": "text/x-python", "toml": "text/plain", "yaml": "text/yaml",
    "yml": "text/yaml",
}

_BINARY = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
    "webp": "image/webp", "avif": "image/avif", "ico": "image/vnd.microsoft.icon",
    "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
    "mp4": "video/mp4", "m4v": "video/mp4", "webm": "video/webm", "ogv": "video/ogg",
    "mov": "video/quicktime", "mp3": "audio/mpeg", "m4a": "audio/mp4", "ogg": "audio/ogg",
    "oga": "audio/ogg", "opus": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac",
    "pdf": "application/pdf", "wasm": "application/wasm", "zip": "application/zip",
    "gz": "application/gzip", "tgz": "application/gzip", "tar": "application/x-tar",
    "bz2": "application/x-bzip2", "xz": "application/x-xz", "zst": "application/zstd",
    "7z": "application/x-7z-compressed", "epub": "application/epub+zip",
}

# Types worth compressing on the fly: text and the structured-text families, wasm, icons and
# the font formats that are not compressed inside already (woff and woff2 are).
_COMPRESSIBLE_BINARY = frozenset(("wasm", "ico", "bmp", "ttf", "otf"))
COMPRESSIBLE = frozenset(_TEXT) | _COMPRESSIBLE_BINARY

TYPES = {**{ext: f"{ctype}; charset=utf-8" for ext, ctype in _TEXT.items()}, **_BINARY}


def content_type(name: str) -> str:
    """The Content-Type for `name` (a file name or path): by its last extension, any case."""
    dot = name.rfind(".")
    if dot < 0 or "/" in name[dot:]:
        return DEFAULT
    return TYPES.get(name[dot + 1:].lower(), DEFAULT)


def compressible(name: str) -> bool:
    """Whether a file called `name` is a type that compression makes smaller."""
    dot = name.rfind(".")
    return dot >= 0 and "/" not in name[dot:] and name[dot + 1:].lower() in COMPRESSIBLE
