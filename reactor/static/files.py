"""The disk, as the static handler sees it: with `compressed` (which makes and keeps encoded
variants on its own threads), the only module of reactor.static that makes system calls.
Imports nothing of reactor beyond the pure static modules, and nothing of HTTP.

What it guarantees:
- Confinement: a path is resolved with realpath and used only if the result lies inside the
  root, so symlinks are followed while their target stays in the tree and refused (as missing)
  when it leaves it. Without `hidden`, a target whose real path passes through a dot-name is
  refused too, so a symlink cannot publish `.git`. With `symlinks` off, a path with a symlink
  anywhere below the root is missing, wherever it points (nginx's `disable_symlinks on`; the
  root itself may be a link). Only regular files and directories exist
  here: devices, FIFOs and sockets are missing. A sidecar (name.br, .zst, .gz) counts only when
  it is a regular file beside its file, not a symlink, and not older than the file.
- One snapshot: a Snapshot's stat fields and bytes come from one open file, checked before and
  after reading; a file that keeps changing while read is not cached in memory at all. Large
  files are sent from a descriptor kept with their snapshot (shared_file) only while its fstat
  is the snapshot's version, else opened (open_file) and described by that descriptor's own.
- Revalidation: a lookup is trusted for VALIDITY seconds, then resolved and stat'ed again; an
  unchanged file keeps its Snapshot (and whatever the handler cached on it), a changed one gets
  a new Snapshot and the old one is retired (deadline 0, content dropped).
- Bounds: at most MAX_NODES lookups and CACHE_BUDGET bytes of content are held; beyond either,
  the oldest entries go first.
"""

import os
import stat
import time

from ..http.response import FileSlice
from .encoding import CODINGS

# Seconds a lookup is trusted; the same trade as nginx's open_file_cache_valid, shorter because
# people edit files under a development server and expect to see the change.
VALIDITY = 1.0

# Files up to this size are held in memory and sent from there; larger ones go out with
# sendfile. 64 KiB covers the HTML, CSS, JS and icons that make up most requests.
MAX_CACHED_FILE = 64 * 1024

# Content bytes held by the whole cache: a small part of the memory target for a worker.
CACHE_BUDGET = 8 * 1024 * 1024

# Lookups remembered (files, directories, misses), whatever their size.
MAX_NODES = 4096

# Descriptors kept open at once for large files (nginx's open_file_cache keeps 1,000 too): the
# rest are opened per response, so the connections' share of the descriptor limit stays.
MAX_KEPT = 1000

# Tries at reading a small file whose stat changes while it is read.
_READ_TRIES = 3

# Paths opened here are real paths, or a sidecar beside one, so their last component is no
# symlink: one that has become a symlink since it was checked is refused rather than followed.
# O_NONBLOCK: a path swapped for a FIFO must not block the loop in open().
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW


def file_key(st) -> tuple:
    """What identifies one version of a file: if any of it changes, the content may have."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Snapshot:
    """One version of one regular file.

    `rel` is the root-relative path it was looked up by and `name` that path's last segment (a
    symlink's own name, not its target's). `data` holds its bytes when it is small and was
    read consistently, else None.
    `variants` maps a content-coding to the Snapshot of its sidecar; `encoded` (None until
    used) is the compressor's, for the codings it makes itself; `codings` (None until the
    handler asks) the handler's, all the codings it may send. `response`, `fields` and
    `not_modified` belong to the handler, which renders them once per snapshot. `deadline`
    (monotonic) is when the lookup that found it must be checked again.
    `fd` is a descriptor of this version kept for sending it (Files.shared_file), `users` the
    slices of it not yet sent; it is closed once the snapshot is retired and none is left.

    Made from a file's stat (`Snapshot.of(path, st, data)`), or from what the compressor made
    of one: `key` then says which version and coding, and `mtime_ns` is the source's.
    """

    __slots__ = ("path", "rel", "name", "key", "size", "mtime_ns", "data", "variants", "encoded",
                 "codings", "signature", "deadline", "response", "fields", "not_modified", "fd",
                 "users", "kept", "retired")

    def __init__(self, path: str, key: tuple, size: int, mtime_ns: int, data):
        self.path = path
        self.name = os.path.basename(path)
        self.rel = self.name
        self.key = key
        self.size = size
        self.mtime_ns = mtime_ns
        self.data = data
        self.variants = {}
        self.encoded = self.codings = None
        self.signature = (key,)
        self.deadline = 0.0
        self.response = self.fields = self.not_modified = None
        self.fd = None
        self.users = 0
        self.kept = None      # the Files' count of kept descriptors, while this one is kept
        self.retired = False

    @classmethod
    def of(cls, path: str, st, data):
        """The Snapshot of the file at `path` whose fstat is `st` (`data`: its bytes or None)."""
        return cls(path, file_key(st), st.st_size, st.st_mtime_ns, data)

    def release(self, fd: int):
        """A slice of the kept descriptor is sent or abandoned."""
        self.users -= 1
        if self.retired and not self.users:
            self._close_kept()

    def _close_kept(self):
        fd, self.fd = self.fd, None
        if fd is not None:
            self.kept[0] -= 1
            os.close(fd)

    @property
    def weight(self) -> int:
        own = len(self.data) if self.data is not None else 0
        return own + sum(variant.weight for variant in self.variants.values())

    def retire(self):
        self.deadline = 0.0
        self.data = self.response = self.fields = self.not_modified = None
        self.retired = True
        if not self.users:
            self._close_kept()
        for variant in self.variants.values():
            variant.retire()
        encoded, self.encoded = self.encoded, None
        for variant in (encoded or {}).values():
            if variant.__class__ is Snapshot:
                variant.retire()


class Directory:
    """A directory inside the root; `listing` belongs to the handler."""

    __slots__ = ("path", "deadline", "listing")

    def __init__(self, path: str):
        self.path = path
        self.deadline = 0.0
        self.listing = None

    weight = 0

    def retire(self):
        self.deadline = 0.0
        self.listing = None


class Missing:
    """Nothing servable at that path (absent, outside the root, hidden, or not a regular file)."""

    __slots__ = ("deadline",)

    def __init__(self):
        self.deadline = 0.0

    weight = 0

    def retire(self):
        self.deadline = 0.0


def _read_all(fd: int, size: int):
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            return None
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _open_regular(path: str):
    """(fd, its fstat) for the regular file at `path`, or None; the caller closes fd."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


def read_version(path: str, key: tuple):
    """The bytes of the file at `path` if it is still the version `key` describes, else None
    (for reading a large file off the loop, as the compressor does)."""
    opened = _open_regular(path)
    if opened is None:
        return None
    fd, st = opened
    try:
        if file_key(st) != key:
            return None
        data = _read_all(fd, st.st_size)
        return data if data is not None and file_key(os.fstat(fd)) == key else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _read(path: str):
    """A Snapshot of the regular file at `path`, or None."""
    opened = _open_regular(path)
    if opened is None:
        return None
    fd, st = opened
    try:
        if st.st_size > MAX_CACHED_FILE:
            return Snapshot.of(path, st, None)
        for _ in range(_READ_TRIES):
            data = _read_all(fd, st.st_size)
            after = os.fstat(fd)
            if data is not None and file_key(after) == file_key(st):
                return Snapshot.of(path, st, data)
            st = after
        return Snapshot.of(path, st, None)
    except OSError:
        return None
    finally:
        os.close(fd)


class Files:
    """Lookups of root-relative paths ('a/b.txt', '' for the root itself)."""

    def __init__(self, root: str, *, hidden: bool = False, precompressed: bool = True,
                 symlinks: bool = True):
        self.root = os.path.realpath(root)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self.hidden = hidden
        self.symlinks = symlinks
        self.precompressed = precompressed
        self._nodes = {}
        self._bytes = 0
        self._kept = [0]   # descriptors kept by snapshots (shared_file)

    def lookup(self, rel: str):
        """The Snapshot, Directory or Missing at `rel`, checked within the last VALIDITY s."""
        now = time.monotonic()
        node = self._nodes.get(rel)
        if node is not None and node.deadline > now:
            return node
        fresh = self._load(rel, node)
        if fresh is not node:
            self._replace(rel, node, fresh)
        fresh.deadline = now + VALIDITY
        return fresh

    def expire(self, node):
        """Make the next lookup of `node`'s path check the disk again."""
        node.deadline = 0.0

    def open_file(self, snapshot: Snapshot):
        """(fd, the Snapshot that describes it) for sending `snapshot`'s file, or None when it
        is gone. When the file changed since the snapshot, the second item is a new Snapshot
        made from the descriptor's own fstat, so headers always match the bytes sent."""
        opened = _open_regular(snapshot.path)
        if opened is None:
            return None
        fd, st = opened
        if file_key(st) == snapshot.key:
            return fd, snapshot
        fresh = Snapshot.of(snapshot.path, st, None)
        fresh.rel, fresh.name = snapshot.rel, snapshot.name
        return fd, fresh

    def shared_file(self, snapshot: Snapshot):
        """A FileSlice of all of `snapshot`'s file, from a descriptor kept with the snapshot
        (sendfile at an explicit offset moves no shared file position, so any number of
        connections can send from it at once); or None when the file is no longer that
        version, the snapshot is retired, or too many are kept (open_file then).
        The descriptor is checked on every call: a file rewritten in place keeps its inode,
        and the headers must still describe the bytes sent."""
        if snapshot.retired:
            return None
        fd = snapshot.fd
        if fd is not None:
            try:
                if file_key(os.fstat(fd)) != snapshot.key:
                    return None
            except OSError:
                return None
        else:
            if self._kept[0] >= MAX_KEPT:
                return None
            opened = _open_regular(snapshot.path)
            if opened is None:
                return None
            fd, st = opened
            if file_key(st) != snapshot.key:
                os.close(fd)
                return None
            snapshot.fd = fd
            snapshot.kept = self._kept
            self._kept[0] += 1
        snapshot.users += 1
        return FileSlice(fd, 0, snapshot.size, snapshot.release)

    def listdir(self, directory: Directory) -> list:
        """(name, is_dir, size, mtime) for what the directory may show: no dotfiles unless
        hidden files are served, no symlinks leaving the root, no names that are not UTF-8
        (no URL could reach them), only files and directories."""
        entries = []
        try:
            scan = os.scandir(directory.path)
        except OSError:
            return entries
        with scan:
            for entry in scan:
                name = entry.name
                if name[0] == "." and not self.hidden:
                    continue
                try:
                    name.encode("utf-8")
                    if entry.is_symlink() and not (self.symlinks and self._inside(
                            os.path.realpath(entry.path))):
                        continue
                    st = entry.stat()
                except (OSError, UnicodeEncodeError):
                    continue
                if stat.S_ISDIR(st.st_mode):
                    entries.append((name, True, 0, st.st_mtime))
                elif stat.S_ISREG(st.st_mode):
                    entries.append((name, False, st.st_size, st.st_mtime))
        return entries

    def _inside(self, real: str) -> bool:
        if real == self.root:
            return True
        if not real.startswith(self._prefix):
            return False
        return self.hidden or "/." not in real[len(self._prefix) - 1:]

    def _load(self, rel: str, old):
        real = os.path.realpath(os.path.join(self.root, rel)) if rel else self.root
        if not self._inside(real):
            return Missing()
        if not self.symlinks and rel and real != self._prefix + rel:
            # `rel` has no dot segments, so a real path that differs went through a link.
            return Missing()
        try:
            st = os.stat(real)
        except OSError:
            return Missing()
        if stat.S_ISDIR(st.st_mode):
            return Directory(real)
        if not stat.S_ISREG(st.st_mode):
            return Missing()
        if (old.__class__ is Snapshot and old.path == real
                and old.signature == self._signature(real, st)):
            return old
        return self._load_file(real, rel)

    def _signature(self, real: str, st) -> tuple:
        """What _load_file would record for this file, from stat calls alone."""
        parts = [file_key(st)]
        if self.precompressed:
            for coding, suffix in CODINGS:
                try:
                    side = os.lstat(real + suffix)
                except OSError:
                    continue
                if stat.S_ISREG(side.st_mode) and side.st_mtime_ns >= st.st_mtime_ns:
                    parts.append((coding, file_key(side)))
        return tuple(parts)

    def _load_file(self, real: str, rel: str):
        base = _read(real)
        if base is None:
            return Missing()
        base.rel, base.name = rel, rel.rpartition("/")[2]
        if self.precompressed:
            signature = [base.key]
            for coding, suffix in CODINGS:
                side = _read(real + suffix)
                if side is not None and side.mtime_ns >= base.mtime_ns:
                    base.variants[coding] = side
                    signature.append((coding, side.key))
            base.signature = tuple(signature)
        return base

    def _replace(self, rel: str, old, fresh):
        nodes = self._nodes
        if old is not None:
            del nodes[rel]
            self._bytes -= old.weight
            old.retire()
        nodes[rel] = fresh
        self._bytes += fresh.weight
        while self._bytes > CACHE_BUDGET or len(nodes) > MAX_NODES:
            oldest = next(iter(nodes))
            node = nodes.pop(oldest)
            self._bytes -= node.weight
            node.retire()
