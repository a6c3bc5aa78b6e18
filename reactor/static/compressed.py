"""Compression on the fly: each version of a file compressed once per coding, and kept.

With files, the only module of reactor.static that makes system calls: it reads sources and
writes its disk cache, always on its own threads. Knows Snapshots and codecs, not HTTP.

- Work runs on a small thread pool (the codecs release the GIL). Results are installed on the
  caller's thread, the next time the handler asks for them, so the caches below are touched
  by the loop's thread only. Until then the handler serves another coding or identity.
- A result up to MAX_IN_MEMORY bytes is kept in memory (MEMORY_BUDGET in all) and goes out
  like a small cached file; a larger one is a file in the cache directory (DISK_BUDGET in
  all) and goes out with sendfile like a large file. Either way it is a Snapshot with its own
  size, so Range, validators and HEAD work on it as on any file. Oldest results go first.
- The cache directory is the one given (its files are named after the source's path, version
  and coding, so a later run reuses them), else a private temporary one made on first use and
  removed by close().
- A source that changed since its Snapshot was taken is not compressed (its next lookup makes
  a new Snapshot); a result that saves less than a sixteenth is remembered as not worth it.
"""

import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

from .codecs import CODECS
from .encoding import CODINGS, ORDER
from .files import MAX_CACHED_FILE, Snapshot, file_key, read_version

log = logging.getLogger("reactor")

# Results this small stay in memory; the same line as the file cache's.
MAX_IN_MEMORY = MAX_CACHED_FILE

# Bytes of results in memory and on disk. Memory: a few times the file cache, as compressed
# text is a third of its size or less. Disk: room for the assets of a large site.
MEMORY_BUDGET = 16 * 1024 * 1024
DISK_BUDGET = 512 * 1024 * 1024

# Sources larger than this are sent as they are: compressing them would hold this much in
# memory on a worker thread (and they are rarely text).
MAX_SOURCE = 16 * 1024 * 1024

# Threads compressing at once, and jobs queued before new ones are declined (served identity
# and asked again by a later request).
THREADS = 2
MAX_PENDING = 64

# A result must be at least this fraction smaller than its source to be worth sending.
MIN_SAVING = 16

_SUFFIX = dict(CODINGS)
_ABSENT = object()


class Compressor:
    """The encoded variants of Snapshots, made on demand: compressor.variant(source, coding)."""

    def __init__(self, codecs=None, directory=None):
        self.codecs = CODECS if codecs is None else codecs
        self.codings = tuple(coding for coding in ORDER if coding in self.codecs)
        self.directory = directory
        self._temporary = None
        self._lock = threading.Lock()   # the cache directory, between threads and close()
        self._pool = None
        self._pending = set()   # futures submitted, whether or not anyone installs them
        self._closed = False
        self._memory = _Budget(MEMORY_BUDGET)
        self._disk = _Budget(DISK_BUDGET)

    def variant(self, source: Snapshot, coding: str):
        """The encoded Snapshot of `source` in `coding` when it is ready, else None (being
        made, not worth it, or failed). The first call for a version starts the work."""
        encoded = source.encoded
        if encoded is None:
            encoded = source.encoded = {}
        entry = encoded.get(coding, _ABSENT)
        if entry.__class__ is Future:
            if not entry.done():
                return None
            return self._install(source, coding, entry)
        if entry is _ABSENT:
            self._start(source, coding, encoded)
            return None
        return entry

    def forget(self, source: Snapshot, coding: str):
        """Drop a result that can no longer be sent (its cache file went away)."""
        if source.encoded:
            source.encoded.pop(coding, None)

    def close(self):
        with self._lock:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            if self._temporary is not None:
                shutil.rmtree(self._temporary, ignore_errors=True)

    # -- the loop's side -------------------------------------------------------------------

    def _start(self, source, coding, encoded):
        pending = self._pending
        if len(pending) >= MAX_PENDING:
            # A result whose source changed meanwhile is never installed: count only the
            # work still under way.
            pending.difference_update([future for future in pending if future.done()])
        if self._closed or len(pending) >= MAX_PENDING:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="reactor-compress")
        future = encoded[coding] = self._pool.submit(self._make, source.path, source.key,
                                                     source.mtime_ns, source.data, coding)
        pending.add(future)

    def _install(self, source, coding, future):
        self._pending.discard(future)
        try:
            made = future.result()
        except Exception:
            log.exception("compressing %s with %s failed", source.path, coding)
            made = None
        if made is None:
            source.encoded[coding] = None
            return None
        data, path, st = made
        if data is not None:
            variant = Snapshot(source.path, (source.key, coding), len(data), source.mtime_ns, data)
        else:
            variant = Snapshot(path, file_key(st), st.st_size, source.mtime_ns, None)
        variant.rel, variant.name = source.rel, source.name
        source.encoded[coding] = variant
        budget = self._memory if data is not None else self._disk
        for old_source, old_coding, old in budget.add(source, coding, variant):
            if old_source.encoded and old_source.encoded.get(old_coding) is old:
                del old_source.encoded[old_coding]
            if old.data is None and self._pool is not None:
                self._pool.submit(_unlink, old.path)
            old.retire()
        return variant

    # -- the threads' side -----------------------------------------------------------------

    def _make(self, path, key, mtime_ns, data, coding):
        """(bytes, None, None) or (None, cache path, its stat) of the encoded source, or None."""
        name = hashlib.sha256(repr((path, key, coding)).encode()).hexdigest()[:40]
        name += _SUFFIX[coding]
        if self.directory is not None:
            try:
                st = os.stat(os.path.join(self.directory, name))
                if stat.S_ISREG(st.st_mode) and st.st_mtime_ns == mtime_ns and st.st_size:
                    return None, os.path.join(self.directory, name), st   # an earlier run's
            except OSError:
                pass
        if data is None:
            data = read_version(path, key)
            if data is None:
                return None
        encoded = self.codecs[coding](data)
        if len(encoded) > len(data) - len(data) // MIN_SAVING:
            return None
        if len(encoded) <= MAX_IN_MEMORY:
            return encoded, None, None
        stored = self._store(name, mtime_ns, encoded)
        return None if stored is None else (None, *stored)

    def _store(self, name, mtime_ns, encoded):
        with self._lock:
            directory = self._cache_directory()
            if directory is None:
                return None
            final = os.path.join(directory, name)
            try:
                fd, temporary = tempfile.mkstemp(dir=directory, prefix=".part-")
            except OSError as error:
                log.warning("cannot write the compression cache in %s: %s", directory,
                            error.strerror)
                return None
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(encoded)
                    out.flush()
                    # The source's mtime, so the result's Last-Modified is the source's.
                    os.utime(out.fileno(), ns=(mtime_ns, mtime_ns))
                os.replace(temporary, final)
                st = os.stat(final)   # after the rename, which changes the ctime
            except OSError:
                _unlink(temporary)
                return None
        return final, st

    def _cache_directory(self):
        if self._closed:
            return None
        if self.directory is not None:
            return self.directory
        if self._temporary is None:
            self._temporary = tempfile.mkdtemp(prefix="reactor-compressed-")
        return self._temporary


class _Budget:
    """Results in the order they were made, with their total size."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self._entries = OrderedDict()

    def add(self, source, coding, variant) -> list:
        """Record `variant`; returns the (source, coding, variant) entries pushed out."""
        entries = self._entries
        entries[id(variant)] = (source, coding, variant)
        self.size += variant.size
        evicted = []
        while self.size > self.limit and len(entries) > 1:
            _, entry = entries.popitem(last=False)
            self.size -= entry[2].size
            evicted.append(entry)
        return evicted


def _unlink(path: str):
    try:
        os.unlink(path)
    except OSError:
        pass
