"""Where a slice's files and manifest live in Blob Storage, and how they are written and read back.

Uploads carry transport checksums: ``validate_content=True`` makes the SDK send an MD5 per request that the
service checks, and the blob's Content-MD5 is set to the whole file's MD5 so any later reader can check it too.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from include.cosmos_archiver.archive.manifest import MANIFEST_NAME, Manifest

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
PARQUET_SUFFIX = ".parquet"


def slice_folder(prefix: str, slice_id: str) -> str:
    """A slice's folder inside the archive container: ``<prefix>/<slice_id>`` (the local copy and ADF both use it)."""
    prefix = prefix.strip("/")
    return f"{prefix}/{slice_id}" if prefix else slice_id


class ArchiveStore:
    def __init__(self, container: ContainerClient, prefix: str) -> None:
        self.container = container
        self.prefix = prefix.strip("/")

    def slice_dir(self, slice_id: str) -> str:
        return slice_folder(self.prefix, slice_id)

    def part_path(self, slice_id: str, index: int) -> str:
        return f"{self.slice_dir(slice_id)}/part-{index:05d}.parquet"

    def manifest_path(self, slice_id: str) -> str:
        return f"{self.slice_dir(slice_id)}/{MANIFEST_NAME}"

    def url(self, path: str) -> str:
        return f"{self.container.url}/{path}"

    def upload(
        self, path: str, data: bytes, content_type: str = PARQUET_CONTENT_TYPE, metadata: dict[str, str] | None = None
    ) -> None:
        self.container.upload_blob(
            path,
            data,
            overwrite=True,
            validate_content=True,
            metadata=metadata,
            content_settings=ContentSettings(content_type=content_type, content_md5=hashlib.md5(data).digest()),
        )

    def download(self, path: str) -> bytes:
        return self.container.download_blob(path).readall()

    def read_manifest(self, slice_id: str) -> Manifest | None:
        try:
            data = self.download(self.manifest_path(slice_id))
        except ResourceNotFoundError:
            return None
        return Manifest.from_json(data)

    def write_manifest(self, manifest: Manifest) -> None:
        # The status is also blob metadata, so planning learns every slice's state from one listing.
        self.upload(self.manifest_path(manifest.slice_id), manifest.to_json(), content_type="application/json",
                    metadata=manifest.blob_metadata())

    def unknown_slice_message(self, slice_id: str, known: Iterable[str] | None = None) -> str:
        """What to say about a slice id with no manifest (a typo, a date that is no slice start): a few archived
        ids (``known``, or one listing) and how to list them all."""
        ids = sorted(self.manifest_metadata() if known is None else known)
        some = (f"archived slices: {', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''} ({len(ids)} in all)"
                if ids else "the archive has no slices yet")
        return (f"unknown slice {slice_id!r}: no manifest at {self.manifest_path(slice_id)}; {some}; "
                "`cosmos-archive summary --all` lists them (ids like 2025/03/01)")

    def manifest_statuses(self, metadata: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
        """slice_id -> manifest status for every slice under this prefix, from a single listing (``metadata``: that
        listing, when the caller has it already)."""
        metadata = self.manifest_metadata() if metadata is None else metadata
        return {slice_id: meta.get("status", "unknown") for slice_id, meta in metadata.items()}

    def manifest_metadata(self) -> dict[str, dict[str, str]]:
        """slice_id -> the manifest's blob metadata (Manifest.blob_metadata) for every slice, from one listing."""
        start = f"{self.prefix}/" if self.prefix else ""
        found = {}
        for blob in self.container.list_blobs(name_starts_with=start, include=["metadata"]):
            if blob.name.endswith("/" + MANIFEST_NAME):
                found[blob.name[len(start): -len(MANIFEST_NAME) - 1]] = dict(blob.metadata or {})
        return found

    def list_parts(self, slice_id: str) -> list[str]:
        """Every Parquet file directly in the slice's folder: our ``part-NNNNN.parquet`` and files an Azure Data
        Factory copy wrote there (e.g. ``adf_00000.parquet``); sub-slice folders are not included."""
        folder = self.slice_dir(slice_id) + "/"
        return sorted(
            b.name
            for b in self.container.list_blobs(name_starts_with=folder)
            if b.name.endswith(PARQUET_SUFFIX) and "/" not in b.name[len(folder):]
        )

    def delete(self, path: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(path)
