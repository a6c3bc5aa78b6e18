"""reactor.static.files: confinement, snapshots, revalidation, sidecars, bounds, listings."""

import os

import pytest

from reactor.static import files as files_module
from reactor.static.files import MAX_CACHED_FILE, Directory, Files, Missing, Snapshot


@pytest.fixture
def root(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.txt").write_bytes(b"hello")
    (site / "sub").mkdir()
    (site / "sub" / "b.txt").write_bytes(b"bee")
    (site / ".secret").write_bytes(b"secret")
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "x.txt").write_bytes(b"x")
    return site


def expire_all(files):
    for node in files._nodes.values():
        node.deadline = 0.0


def test_kinds(root):
    files = Files(str(root))
    snapshot = files.lookup("a.txt")
    assert snapshot.__class__ is Snapshot and snapshot.data == b"hello" and snapshot.size == 5
    assert files.lookup("sub").__class__ is Directory
    assert files.lookup("").__class__ is Directory
    assert files.lookup("nope").__class__ is Missing
    assert files.lookup("a.txt/x").__class__ is Missing


def test_symlinks_are_followed_inside_the_root_only(root, tmp_path):
    os.symlink(tmp_path / "outside.txt", root / "out-link")
    os.symlink(tmp_path / "outdir", root / "out-dir")
    os.symlink("../../outside.txt", root / "sub" / "rel-out")
    os.symlink("a.txt", root / "in-link")
    os.symlink("sub", root / "in-dir")
    files = Files(str(root))
    assert files.lookup("out-link").__class__ is Missing
    assert files.lookup("out-dir").__class__ is Missing
    assert files.lookup("out-dir/x.txt").__class__ is Missing
    assert files.lookup("sub/rel-out").__class__ is Missing
    assert files.lookup("in-link").data == b"hello"
    assert files.lookup("in-dir/b.txt").data == b"bee"


def test_root_given_through_a_symlink(root, tmp_path):
    os.symlink(root, tmp_path / "alias")
    assert Files(str(tmp_path / "alias")).lookup("a.txt").data == b"hello"


def test_symlink_cannot_publish_a_hidden_target(root):
    os.symlink(".secret", root / "public")
    assert Files(str(root)).lookup("public").__class__ is Missing
    assert Files(str(root), hidden=True).lookup("public").data == b"secret"


def test_special_files_are_missing(root):
    os.mkfifo(root / "fifo")
    assert Files(str(root)).lookup("fifo").__class__ is Missing


def test_lookups_within_validity_make_no_system_call(root, monkeypatch):
    files = Files(str(root))
    first = files.lookup("a.txt")

    def refuse(*args, **kwargs):
        raise AssertionError("system call inside the validity window")

    monkeypatch.setattr(os, "stat", refuse)
    monkeypatch.setattr(os, "open", refuse)
    monkeypatch.setattr(os.path, "realpath", refuse)
    assert files.lookup("a.txt") is first


def test_unchanged_file_keeps_its_snapshot_after_revalidation(root, monkeypatch):
    files = Files(str(root))
    first = files.lookup("a.txt")
    first.response = "rendered"
    expire_all(files)
    monkeypatch.setattr(files_module, "_read", lambda *a: pytest.fail("re-read an unchanged file"))
    again = files.lookup("a.txt")
    assert again is first and again.response == "rendered" and again.deadline > 0


def test_changed_file_gets_a_new_snapshot_and_the_old_one_is_retired(root):
    files = Files(str(root))
    first = files.lookup("a.txt")
    (root / "a.txt").write_bytes(b"changed!")
    assert files.lookup("a.txt") is first          # still trusted within VALIDITY
    expire_all(files)
    second = files.lookup("a.txt")
    assert second is not first and second.data == b"changed!" and second.size == 8
    assert first.deadline == 0.0 and first.data is None


def test_deleted_file_becomes_missing(root):
    files = Files(str(root))
    files.lookup("a.txt")
    (root / "a.txt").unlink()
    expire_all(files)
    assert files.lookup("a.txt").__class__ is Missing


def test_small_file_changing_while_read_gives_one_consistent_snapshot(root, monkeypatch):
    real_pread = os.pread
    calls = []

    def pread_then_append(fd, n, offset):
        data = real_pread(fd, n, offset)
        if not calls:
            with open(root / "a.txt", "ab") as f:
                f.write(b" world")
        calls.append(n)
        return data

    monkeypatch.setattr(os, "pread", pread_then_append)
    snapshot = Files(str(root)).lookup("a.txt")
    assert snapshot.data == b"hello world"
    assert snapshot.size == len(snapshot.data) == snapshot.key[2]
    assert len(calls) == 2


def test_large_file_is_opened_per_request_and_described_by_its_fstat(root):
    big = root / "big.bin"
    big.write_bytes(b"x" * (MAX_CACHED_FILE + 1))
    files = Files(str(root))
    snapshot = files.lookup("big.bin")
    assert snapshot.data is None and snapshot.size == MAX_CACHED_FILE + 1
    fd, same = files.open_file(snapshot)
    os.close(fd)
    assert same is snapshot
    big.write_bytes(b"y" * (MAX_CACHED_FILE + 10))
    fd, fresh = files.open_file(snapshot)
    try:
        assert fresh is not snapshot and fresh.size == MAX_CACHED_FILE + 10
        assert fresh.size == os.fstat(fd).st_size
    finally:
        os.close(fd)
    big.unlink()
    assert files.open_file(snapshot) is None


def test_sidecars_newer_or_equal_are_variants(root):
    (root / "app.js").write_bytes(b"js" * 100)
    (root / "app.js.gz").write_bytes(b"gz")
    (root / "app.js.br").write_bytes(b"br")
    stamp = os.stat(root / "app.js").st_mtime_ns
    os.utime(root / "app.js.gz", ns=(stamp, stamp))
    os.utime(root / "app.js.br", ns=(stamp - 10**9, stamp - 10**9))
    snapshot = Files(str(root)).lookup("app.js")
    assert list(snapshot.variants) == ["gzip"]
    assert snapshot.variants["gzip"].data == b"gz"
    assert Files(str(root), precompressed=False).lookup("app.js").variants == {}


def test_symlinked_sidecar_is_ignored(root):
    (root / "app.js").write_bytes(b"js")
    (root / "real.gz").write_bytes(b"gz")
    os.symlink("real.gz", root / "app.js.gz")
    assert Files(str(root)).lookup("app.js").variants == {}


def test_new_sidecar_is_noticed_on_revalidation(root):
    files = Files(str(root))
    first = files.lookup("a.txt")
    (root / "a.txt.br").write_bytes(b"brotli")
    expire_all(files)
    second = files.lookup("a.txt")
    assert second is not first and list(second.variants) == ["br"]


def test_budget_evicts_the_oldest(root, monkeypatch):
    monkeypatch.setattr(files_module, "CACHE_BUDGET", 25)
    for name in "pqr":
        (root / name).write_bytes(name.encode() * 10)
    files = Files(str(root))
    p = files.lookup("p")
    files.lookup("q")
    files.lookup("r")
    assert "p" not in files._nodes and p.deadline == 0.0 and p.data is None
    assert files._bytes <= 25


def test_node_count_is_bounded(root, monkeypatch):
    monkeypatch.setattr(files_module, "MAX_NODES", 3)
    files = Files(str(root))
    for i in range(10):
        files.lookup(f"missing-{i}")
    assert len(files._nodes) == 3


def test_listdir_shows_only_what_can_be_served(root, tmp_path):
    os.symlink(tmp_path / "outside.txt", root / "out-link")
    os.symlink("a.txt", root / "in-link")
    os.mkfifo(root / "fifo")
    (root / os.fsdecode(b"bad-\xff")).write_bytes(b"")
    files = Files(str(root))
    names = {name: (is_dir, size) for name, is_dir, size, _ in files.listdir(files.lookup(""))}
    assert names == {"a.txt": (False, 5), "sub": (True, 0), "in-link": (False, 5)}
    hidden = Files(str(root), hidden=True)
    assert ".secret" in {entry[0] for entry in hidden.listdir(hidden.lookup(""))}


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_large_file_descriptor_is_kept_and_shared_until_retired_and_released(root):
    big = b"B" * (MAX_CACHED_FILE + 1)
    (root / "big.bin").write_bytes(big)
    files = Files(str(root))
    snapshot = files.lookup("big.bin")
    first, second = files.shared_file(snapshot), files.shared_file(snapshot)
    assert first.fd == second.fd and (first.offset, first.count) == (0, len(big))
    assert os.pread(first.fd, 4, len(big) - 4) == b"BBBB"
    first.close()
    snapshot.retire()                 # a newer version was found, say: one slice still sends
    assert is_open(second.fd) and files.shared_file(snapshot) is None
    second.close()
    assert not is_open(second.fd)


def test_large_file_rewritten_in_place_is_not_sent_from_the_kept_descriptor(root):
    big = b"B" * (MAX_CACHED_FILE + 1)
    (root / "big.bin").write_bytes(big)
    files = Files(str(root))
    snapshot = files.lookup("big.bin")
    files.shared_file(snapshot).close()
    (root / "big.bin").write_bytes(big + b"more")   # same inode, another version
    assert files.shared_file(snapshot) is None       # open_file describes what it opens


def test_kept_descriptors_are_bounded(root, monkeypatch):
    monkeypatch.setattr(files_module, "MAX_KEPT", 1)
    for name in ("one.bin", "two.bin"):
        (root / name).write_bytes(b"x" * (MAX_CACHED_FILE + 1))
    files = Files(str(root))
    assert files.shared_file(files.lookup("one.bin")) is not None
    assert files.shared_file(files.lookup("two.bin")) is None
