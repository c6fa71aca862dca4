"""Photo evidence: decode and clean the upload, store it once per case, notice when another
customer's case carries the same picture, and let the case react (photo count, back to review).

Blobs are written before the row and deleted again if the row can't be written, so no row ever
points at nothing; a crash in between leaves at worst an unreferenced blob."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import msgspec
import structlog

from domain.cases import Actor, Case, CaseState
from domain.errors import InvalidRequest, InvalidTransition
from domain.photos import SAME_PHOTO_MAX_DISTANCE
from service.actions import Audience
from service.cases import CaseService, case_for
from service.dto import PhotoView
from service.ids import new_id
from service.ports import (
    BlobStore,
    Database,
    ImageProcessor,
    NotFound,
    Photo,
    PhotoMatch,
    Principal,
    ProcessedImage,
    Repositories,
)
from service.views import photo_view

log = structlog.get_logger()

_CLOSED = {CaseState.CLOSED, CaseState.CANCELLED, CaseState.REJECTED}


class PhotoService:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        processor: ImageProcessor,
        cases: CaseService,
        clock: Callable[[], datetime],
        *,
        per_case: int = 10,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.processor = processor
        self.cases = cases
        self.clock = clock
        self.per_case = per_case

    async def upload(self, principal: Principal, case_id: str, data: bytes) -> tuple[PhotoView, bool]:
        """The photo as the storefront or customer who sent it reads it, and whether it is new
        (False: this case already had the same file)."""
        merchant_id = principal.merchant_id
        async with self.db.transaction() as repos:
            case = await case_for(repos, principal, case_id)
            self._check_room(case, await repos.count_case_photos(merchant_id, case_id))
        processed = await asyncio.to_thread(self.processor.process, data)  # ImageRejected: 415 / 422
        async with self.db.transaction() as repos:
            earlier = await repos.find_photo_by_sha(merchant_id, case_id, processed.original_sha256)
        if earlier is not None:
            return photo_view(earlier, Audience.STOREFRONT), False

        photo_id = new_id("ph")
        photo = Photo(
            id=photo_id,
            case_id=case_id,
            customer_id=case.customer_id,
            original_sha256=processed.original_sha256,
            detected_format=processed.detected_format,
            content_type=processed.content_type,
            width=processed.width,
            height=processed.height,
            size_bytes=len(processed.image),
            phash=processed.perceptual_hash,
            image_key=f"{merchant_id}/{case_id}/{photo_id}",
            thumbnail_key=f"{merchant_id}/{case_id}/{photo_id}.thumb",
            created_at=self.clock(),
        )
        await self._store_blobs(photo, processed)
        try:
            stored = await self._record(principal, photo)
        except BaseException:
            await self._forget_blobs(photo)
            raise
        if stored.id != photo.id:  # the same file won a race from another request
            await self._forget_blobs(photo)
            return photo_view(stored, Audience.STOREFRONT), False
        return photo_view(stored, Audience.STOREFRONT), True

    def _check_room(self, case: Case, count: int) -> None:
        if case.state in _CLOSED:
            raise InvalidTransition("case", str(case.state), "add_photo")
        if count >= self.per_case:
            raise InvalidRequest(
                f"a case takes at most {self.per_case} photos", [{"field": "file", "message": "no room for more photos"}]
            )

    async def _store_blobs(self, photo: Photo, processed: ProcessedImage) -> None:
        await self.blobs.put(photo.image_key, processed.image, processed.content_type)
        try:
            await self.blobs.put(photo.thumbnail_key, processed.thumbnail, processed.thumbnail_content_type)
        except BaseException:
            await self._forget_blobs(photo)
            raise

    async def _forget_blobs(self, photo: Photo) -> None:
        for key in (photo.image_key, photo.thumbnail_key):
            try:
                await self.blobs.delete(key)
            except Exception:
                log.warning("blob_delete_failed", key=key)

    async def _record(self, principal: Principal, photo: Photo) -> Photo:
        """Insert the row and let the case react, in one transaction; the existing row when the
        case got the same file meanwhile."""

        async def add(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            self._check_room(case, await repos.count_case_photos(case.merchant_id, case.id))
            match = await repos.similar_photo_elsewhere(case.merchant_id, case.customer_id, photo.phash, SAME_PHOTO_MAX_DISTANCE)
            candidate = photo if match is None else _with_match(photo, match)
            inserted = await repos.add_photo(case.merchant_id, candidate)
            if inserted is None:
                raise _AlreadyThere
            stored_photo.append(inserted)
            await self.cases.evidence_added(repos, case, actor, at, match)
            case.record(
                "photo_added",
                actor,
                at,
                {
                    "photo_id": inserted.id,
                    "sha256": inserted.original_sha256,
                    "matches": {"case_id": match.case_id, "photo_id": match.photo_id} if match else None,
                },
            )

        stored_photo: list[Photo] = []
        try:
            await self.cases.change(principal, photo.case_id, None, add)
        except _AlreadyThere:
            async with self.db.transaction() as repos:
                existing = await repos.find_photo_by_sha(principal.merchant_id, photo.case_id, photo.original_sha256)
            assert existing is not None
            return existing
        return stored_photo[-1]

    async def image(self, principal: Principal, case_id: str, photo_id: str, thumbnail: bool) -> tuple[bytes, str]:
        async with self.db.transaction() as repos:
            await case_for(repos, principal, case_id)  # 404 for another merchant's (or order's) case
            photo = await repos.get_photo(principal.merchant_id, case_id, photo_id)
        if photo is None:
            raise NotFound(f"no photo {photo_id} on case {case_id}")
        key = photo.thumbnail_key if thumbnail else photo.image_key
        return await self.blobs.get(key), "image/jpeg" if thumbnail else photo.content_type


class _AlreadyThere(Exception):
    """The case got the same file from a concurrent upload."""


def _with_match(photo: Photo, match: PhotoMatch) -> Photo:
    return msgspec.structs.replace(photo, matches_case_id=match.case_id, matches_photo_id=match.photo_id)
