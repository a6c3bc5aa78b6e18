"""Every static answer is the file, whatever was asked before it.

Files on both sides of each size line (the compressor's minimum, the fast lane's INLINE_BODY,
the memory cache, in-memory compressed results; MAX_SOURCE in the long form) and of
MIN_SAVING (text, and bytes no coding shrinks), with or without sidecars, asked in any coding
and any order, GET and HEAD, with and without Range, fast lane on and off, on both parser
backends, while the file changes (seen at once, or not yet): the decoded body is one version
of the file, Content-Length is the bytes sent, one ETag always means the same bytes and the
same fields, and a HEAD's fields are its GET's.

The servers live for the whole test and serve every example; each example has a file of its
own, so what one example left cached cannot hide what the next one does.
"""

import gzip
import itertools
import os
import random
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netutil import connect, exchange, head, parse_responses, read_response, read_until_close
from test_static_server import multipart_parts

from reactor.http.response import INLINE_BODY
from reactor.static.codecs import CODECS
from reactor.static.compressed import MAX_IN_MEMORY, MAX_SOURCE, MIN_SAVING
from reactor.static.files import MAX_CACHED_FILE
from reactor.static.handler import MIN_COMPRESS

brotli = pytest.importorskip("brotli")
zstandard = pytest.importorskip("zstandard")

CODINGS = ("br", "zstd", "gzip")
DECODE = {"gzip": gzip.decompress, "br": brotli.decompress,
          "zstd": lambda data: zstandard.ZstdDecompressor().decompress(data)}
# Sidecars are made with other settings than the compressor's, so bytes from one can never
# pass for the other's.
SIDECAR = {"gzip": lambda data: gzip.compress(data, compresslevel=1, mtime=0),
           "br": lambda data: brotli.compress(data, quality=1),
           "zstd": lambda data: zstandard.ZstdCompressor(level=1).compress(data)}
SUFFIX = {"gzip": ".gz", "br": ".br", "zstd": ".zst"}

# (size, text). Text is hex digits, which every coding brings to about 55%; the rest is random
# bytes, which no coding shrinks by a MIN_SAVING-th, so they are never compressed here.
BELOW_MIN_COMPRESS = (300, True)
RESULTS_IN_MEMORY = (110_000, True)     # above the memory cache, every result within MAX_IN_MEMORY
RESULTS_ON_DISK = (140_000, True)       # every result above MAX_IN_MEMORY
FILES = (
    BELOW_MIN_COMPRESS, (MIN_COMPRESS - 1, True), (MIN_COMPRESS, True),
    (INLINE_BODY - 1, True), (INLINE_BODY, True),
    (29_000, True),                     # results on both sides of INLINE_BODY
    (MAX_CACHED_FILE, True), (MAX_CACHED_FILE + 1, True),
    (70_000, True), RESULTS_IN_MEMORY, RESULTS_ON_DISK,
    (1_000, False), (70_000, False),
)

ACCEPTS = (None, "identity", "gzip", "br", "zstd", "br, zstd, gzip", "gzip;q=0.5, br", "*",
           "gzip;q=0, identity", "identity;q=0", "deflate")
# Range values and the (first, last) items they ask for; last None: to the end; first None:
# a suffix of that many bytes. The two items of the multipart one are too far apart to merge.
RANGES = {None: (), "bytes=0-0": ((0, 0),), "bytes=10-99": ((10, 99),),
          "bytes=-100": ((None, 100),), "bytes=100-": ((100, None),),
          "bytes=0-4,200-209": ((0, 4), (200, 209)), "bytes=99999999-": ((99999999, None),)}


def parts_of(value, size: int) -> list:
    """The (start, stop) byte ranges a Range value asks of `size` bytes that exist."""
    parts = []
    for first, last in RANGES[value]:
        if first is None:
            parts.append((max(size - last, 0), size))
        elif first < size:
            parts.append((first, size if last is None else min(last + 1, size)))
    return parts


def content(size: int, text: bool, seed: int) -> bytes:
    rng = random.Random(seed)
    return rng.randbytes(size // 2 + 1).hex()[:size].encode() if text else rng.randbytes(size)


class Version:
    """One content of an example's file and the sidecars written beside it."""

    def __init__(self, data: bytes, sidecars: set):
        self.data = data
        self.sidecars = {coding: SIDECAR[coding](data) for coding in sidecars}
        self._compressed = {}

    def representation(self, coding) -> bytes:
        """The bytes the server sends in `coding`: the sidecar's, else the compressor's (its
        output depends on the input alone, as a strong ETag needs)."""
        if coding is None:
            return self.data
        if coding in self.sidecars:
            return self.sidecars[coding]
        if coding not in self._compressed:
            self._compressed[coding] = CODECS[coding](self.data)
        return self._compressed[coding]

    def obtainable(self, coding) -> bool:
        """Whether the server sends this version in `coding` once it has had time to."""
        size = len(self.data)
        return coding in self.sidecars or (
            coding in CODECS and MIN_COMPRESS <= size <= MAX_SOURCE
            and len(self.representation(coding)) <= size - size // MIN_SAVING)


class Example:
    """One file on one server, the versions it may be served in, and what was seen of it."""

    def __init__(self, server, root, name: str, sidecars: set):
        self.server = server
        self.root = root
        self.name = name
        self.target = b"/" + name.encode()
        self.sidecars = sidecars
        self.versions = []
        self.mtime_ns = time.time_ns() // 10**9 * 10**9
        self.seen = {}        # ETag -> (fields, bytes) of its whole GET
        self.heads = []       # (ETag, fields) of HEAD answers

    def write(self, size: int, text: bool, seen_at_once: bool):
        # New bytes and a new modification time for each version: no two share an ETag.
        self.mtime_ns += 10**9
        version = Version(content(size, text, self.mtime_ns), self.sidecars)
        path = os.path.join(self.root, self.name)
        for name, data in [(path, version.data)] + [
                (path + SUFFIX[coding], side) for coding, side in version.sidecars.items()]:
            with open(name, "wb") as out:
                out.write(data)
            os.utime(name, ns=(self.mtime_ns, self.mtime_ns))
        if seen_at_once:
            self.server.revalidate()
            self.versions = [version]
        else:
            self.versions.append(version)

    def ask(self, requests, one_by_one: bool) -> list:
        """Send (method, accept, range) requests on one connection, pipelined or each after
        the previous answer; check and return the answers."""
        heads = [head(self.target, *([b"Accept-Encoding: " + accept.encode()] if accept else []),
                      *([b"Range: " + value.encode()] if value else []), method=method.encode())
                 for method, accept, value in requests]
        methods = [method for method, _, _ in requests]
        if one_by_one:
            answers = []
            with connect(self.server.port) as sock:
                for data, method in zip(heads, methods):
                    sock.sendall(data)
                    answers += parse_responses(read_response(sock, method.encode()), [method])
                sock.shutdown(socket.SHUT_WR)
                assert read_until_close(sock, reset_ok=False) == b""
        else:
            # Room for every answer whole (a sidecar of bytes that no coding shrinks is a little
            # longer than they are), so that no answer is cut short here.
            limit = 2 * len(requests) * max(len(version.data) for version in self.versions)
            limit += 2**20
            answers = parse_responses(exchange(self.server.port, b"".join(heads), limit=limit),
                                      methods)
        assert len(answers) == len(requests)
        for answer, (method, _, value) in zip(answers, requests):
            self.check(answer, method, value)
        return answers

    def settle(self, coding):
        """Ask in `coding` until it is what comes back (the compressor works meanwhile)."""
        deadline = time.monotonic() + 10
        while self.ask([("GET", coding, None)], False)[0].getheader("Content-Encoding") != coding:
            assert time.monotonic() < deadline, f"{self.name} never came in {coding}"
            time.sleep(0.005)

    def check(self, answer, method: str, value):
        """The invariants for one answer to `method` with the Range `value`."""
        assert answer.status in (200, 206, 416), (method, value, answer.status, answer.body)
        fields = sorted((name, text) for name, text in answer.getheaders() if name != "Date")
        if answer.status == 416:
            total = int(answer.getheader("Content-Range").removeprefix("bytes */"))
            assert method == "GET" and any(
                len(representation) == total and not parts_of(value, total)
                for representation in self.representations(None, *CODINGS))
            return
        coding = answer.getheader("Content-Encoding")
        etag = answer.getheader("ETag")
        length = int(answer.getheader("Content-Length"))
        candidates = self.representations(coding)
        if method == "HEAD":
            assert answer.status == 200 and answer.body == b""
            assert length in {len(representation) for representation in candidates}
            self.heads.append((etag, fields))
            return
        body = answer.body
        assert length == len(body)
        if answer.status == 200:
            decoded = DECODE[coding](body) if coding else body
            assert decoded in {version.data for version in self.versions}
            assert body in candidates
            # Range is honoured, except that several parts of an encoded body come whole.
            assert value is None or (coding and len(parts_of(value, len(body))) > 1)
            assert self.seen.setdefault(etag, (fields, body)) == (fields, body)
            return
        assert answer.status == 206 and value is not None
        if answer.getheader("Content-Type").startswith("multipart/byteranges"):
            assert coding is None
            got = multipart_parts(answer, body)
        else:
            got = [(answer.getheader("Content-Range"), body)]
        total = int(got[0][0].rpartition("/")[2])
        whole = [representation for representation in candidates if len(representation) == total]
        if etag in self.seen:
            whole = [self.seen[etag][1]]
        assert any(got == [(f"bytes {start}-{stop - 1}/{total}", representation[start:stop])
                           for start, stop in parts_of(value, total)]
                   for representation in whole)

    def representations(self, *codings) -> list:
        """The bytes of each version the file may be served in, in each of `codings`."""
        return [version.representation(coding) for version in self.versions
                for coding in codings]

    def finish(self):
        """With the latest version seen and every coding it can have made: HEAD and GET alike
        for each Accept-Encoding; then every HEAD seen agrees with the GET of its ETag."""
        if len(self.versions) > 1:
            self.server.revalidate()
            del self.versions[:-1]
        for coding in CODINGS:
            if self.versions[0].obtainable(coding):
                self.settle(coding)
        requests = [(method, accept, None) for accept in ACCEPTS for method in ("HEAD", "GET")]
        answers = self.ask(requests, False)
        for head_answer, get_answer in zip(answers[::2], answers[1::2]):
            assert [item for item in head_answer.getheaders() if item[0] != "Date"] == [
                item for item in get_answer.getheaders() if item[0] != "Date"]
        for etag, fields in self.heads:
            if etag in self.seen:
                assert fields == self.seen[etag][0]


@pytest.fixture
def servers(tmp_path, server_factory, backend):
    """{fast lane on?: server} over one root, parsing with `backend`."""
    root = tmp_path / "site"
    root.mkdir()
    return root, {lane: server_factory(root=str(root), fast_lane=lane, backend=backend)
                  for lane in (True, False)}


def scenario(files) -> dict:
    """What one example draws: its file's first (size, text), sidecars, which server, whether
    requests are pipelined, and the steps: requests, waits for a coding, changes."""
    request = st.tuples(st.just("request"), st.sampled_from(("GET", "HEAD")),
                        st.sampled_from(ACCEPTS), st.sampled_from(tuple(RANGES)))
    settle = st.tuples(st.just("settle"), st.sampled_from(CODINGS))
    change = st.tuples(st.just("change"), st.sampled_from(files), st.booleans())
    return dict(file=st.sampled_from(files), sidecars=st.sets(st.sampled_from(CODINGS)),
                lane=st.booleans(), one_by_one=st.booleans(),
                steps=st.lists(st.one_of(request, request, request, settle, change),
                               min_size=1, max_size=10))


_names = itertools.count()


def play(servers, file, sidecars, lane, one_by_one, steps):
    root, by_lane = servers
    example = Example(by_lane[lane], root, f"f{next(_names)}.js", sidecars)
    example.write(*file, seen_at_once=True)
    batch = []
    for step in steps + [("end",)]:
        if step[0] == "request":
            batch.append(step[1:])
            continue
        if batch:
            example.ask(batch, one_by_one)
            batch = []
        if step[0] == "settle":
            # Only while one version is served: until an unseen change is seen, the version
            # served may be one that cannot be had in that coding.
            if len(example.versions) == 1 and example.versions[0].obtainable(step[1]):
                example.settle(step[1])
        elif step[0] == "change":
            example.write(*step[1], seen_at_once=step[2])
    example.finish()


UNCHECKED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=UNCHECKED)
@given(**scenario(FILES))
def test_every_answer_is_the_file(servers, **drawn):
    play(servers, **drawn)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=UNCHECKED)
@given(**scenario(FILES + ((MAX_SOURCE, True), (MAX_SOURCE + 1, True))))
def test_every_answer_is_the_file_at_length(servers, **drawn):
    """The long form: new examples each run, and sources on both sides of MAX_SOURCE."""
    play(servers, **drawn)


def test_the_sizes_straddle_the_lines():
    """What the sizes above claim of the codecs here, so the test keeps testing that."""
    for coding in CODINGS:
        if coding not in CODECS:
            continue
        small = Version(content(*BELOW_MIN_COMPRESS, 1), set())
        assert not small.obtainable(coding)
        kept = Version(content(*RESULTS_IN_MEMORY, 1), set())
        assert MAX_CACHED_FILE < len(kept.data)
        assert len(kept.representation(coding)) <= MAX_IN_MEMORY and kept.obtainable(coding)
        stored = Version(content(*RESULTS_ON_DISK, 1), set())
        assert len(stored.representation(coding)) > MAX_IN_MEMORY and stored.obtainable(coding)
        assert not Version(content(70_000, False, 1), set()).obtainable(coding)
