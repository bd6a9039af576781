"""Where the store unpacks and removes layers on disk (docs/runtime.md, "Where layers are
unpacked"): scratch hidden inside layers/, layers/ a top directory for ext4's allocator,
removed layers' files freed at once and their empty directories kept a while."""

from __future__ import annotations

import array
import fcntl
import os
import time

import pytest

from dockweb.runtime import store as store_mod
from dockweb.runtime.digest import sha256_digest
from dockweb.runtime.store import LayerRecord, Store

EXT4_MAGIC = 0xEF53


def _statfs_type(path: str) -> int:
    import ctypes

    buf = ctypes.create_string_buffer(256)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.statfs(path.encode(), buf) == 0
    return int.from_bytes(buf.raw[:8], "little")


def _commit(store: Store, files: int) -> str:
    chain = sha256_digest(os.urandom(16))
    scratch = store.new_layer_dir(chain)
    assert os.path.dirname(scratch) == store.layers_dir
    assert os.path.basename(scratch).startswith(".unpack-")
    for i in range(files):
        sub = os.path.join(scratch, "diff", f"d{i % 3}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i}"), "wb") as f:
            f.write(b"x" * 100)
    os.symlink("d0", os.path.join(scratch, "diff", "link"))
    rec = LayerRecord(chain_id=chain, diff_id=chain, parent="", size=0, link="")
    store.commit_layer(scratch, rec)
    return chain


def test_scratch_is_hidden_in_layers_and_never_listed(tmp_path):
    store = Store(str(tmp_path / "root"))
    chain = sha256_digest(b"x")
    scratch = store.new_layer_dir(chain)
    assert store.layers() == {}
    assert store.scratch_entries() == ["layers/" + os.path.basename(scratch)]
    assert not store.has_layer(chain)


def test_layers_is_a_top_directory_for_ext4(tmp_path):
    store = Store(str(tmp_path / "root"))
    if _statfs_type(store.layers_dir) != EXT4_MAGIC:
        pytest.skip("the T attribute is an ext4 allocator hint; this filesystem has none")
    fd = os.open(store.layers_dir, os.O_RDONLY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, store_mod._FS_IOC_GETFLAGS, flags, True)
    finally:
        os.close(fd)
    assert flags[0] & store_mod._FS_TOPDIR_FL


def test_a_removed_layer_frees_its_files_at_once_and_its_directories_later(tmp_path, monkeypatch):
    store = Store(str(tmp_path / "root"))
    chain = _commit(store, 30)
    before = os.statvfs(store.layers_dir)
    store._delete_layer(chain)
    assert not store.has_layer(chain) and store.layers() == {}
    assert store.scratch_entries() == []
    (skeleton,) = store.skeletons()
    files = [f for _d, _s, fs in os.walk(os.path.join(store.layers_dir, skeleton)) for f in fs]
    dirs = [d for _d, ds, _f in os.walk(os.path.join(store.layers_dir, skeleton)) for d in ds]
    assert files == [] and sorted(dirs) == ["d0", "d1", "d2", "diff"]
    assert os.statvfs(store.layers_dir).f_ffree >= before.f_ffree + 30
    # a later removal drops skeletons past their age, and keeps younger ones
    other = _commit(store, 3)
    monkeypatch.setattr(store_mod, "SKELETON_AGE", 0)
    store._delete_layer(other)
    assert store.skeletons() == []


def test_reconcile_finishes_a_removal_cut_short(tmp_path):
    store = Store(str(tmp_path / "root"))
    chain = _commit(store, 10)
    # what a crash right after the rename leaves: a hidden layer with its files
    hidden = os.path.join(store.layers_dir, ".deleted-0123456789abcdef-00000000")
    os.rename(store.layer_dir(chain), hidden)
    assert store.scratch_entries() == ["layers/.deleted-0123456789abcdef-00000000"]
    assert store.reconcile()["scratch"] == 1
    assert store.scratch_entries() == []
    (skeleton,) = store.skeletons()
    assert int(skeleton.split("-")[1]) <= time.time()
    assert [f for _d, _s, fs in os.walk(os.path.join(store.layers_dir, skeleton)) for f in fs] == []
