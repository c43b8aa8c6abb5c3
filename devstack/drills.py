"""Failure drills: deliberately damage an archived slice to rehearse the halt path (never in normal runs)."""

from __future__ import annotations

from include.cosmos_archiver.archive.store import ArchiveStore


def flip_byte(data: bytes, offset: int | None = None) -> bytes:
    """``data`` with one byte inverted (by default in the middle, inside the column data)."""
    if not data:
        raise ValueError("cannot corrupt an empty file")
    at = len(data) // 2 if offset is None else offset
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def corrupt_slice(store: ArchiveStore, slice_id: str) -> str | None:
    """Flip one byte in the slice's first data file; return its path (None for an empty slice)."""
    manifest = store.read_manifest(slice_id)
    if manifest is None or not manifest.files:
        return None
    path = manifest.files[0].path
    store.upload(path, flip_byte(store.download(path)))
    return path
