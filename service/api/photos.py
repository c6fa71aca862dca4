"""Photo evidence over HTTP: a multipart upload (field ``file``) read as a stream with a hard
size limit, and the cleaned image or its thumbnail for the case's own merchant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, RequestBody, Schema
from multipart import (
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
    parse_options_header,
)

from domain.errors import InvalidRequest
from service.api.auth import roles
from service.api.http import BINARY, PathId, contents, documented, principal_of
from service.container import Services
from service.dto import PhotoView

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the file
# What a photo is served as: what adapters/images.py stores it as (HEIC becomes JPEG), thumbnails as JPEG
SERVED_TYPES = ("image/jpeg", "image/png", "image/webp")
UPLOAD_FORM = Schema(
    type=OpenAPIType.OBJECT,
    required=["file"],
    properties={"file": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description="JPEG, PNG, WebP or HEIC")},
)


class PayloadTooLarge(HTTPException):
    status_code = 413


class UnsupportedMediaType(HTTPException):
    status_code = 415


class PhotoController(Controller):
    path = "/v1/cases/{case_id:str}/photos"
    tags = ["photos"]

    @post(
        "/",
        operation_id="uploadPhoto",
        guards=[roles("storefront")],
        opt={"customer": True},
        request_max_body_size=None,  # enforced while streaming, from the configured limit
        status_code=201,
        responses={200: ResponseSpec(PhotoView, description="The case already had this very file: that photo")},
        operation_class=documented(RequestBody(content=contents({"multipart/form-data": UPLOAD_FORM}), required=True)),
    )
    async def upload(self, request: Request[Any, Any, Any], services: Services, case_id: PathId) -> Response[PhotoView]:
        """Multipart form with the photo in field ``file``: JPEG, PNG, WebP or HEIC (decided by
        decoding it). 201 with the photo; 200 when the case already had this very file."""
        limit = services.settings.photo_max_bytes
        data = await _file_field(request, limit)
        view, created = await services.photos.upload(principal_of(request), case_id, data)
        return Response(view, status_code=201 if created else 200)

    @get(
        "/{photo_id:str}",
        operation_id="getPhoto",
        guards=[roles("storefront", "agent")],
        opt={"customer": True},
        media_type="image/*",
        operation_class=documented(answers={"200": dict.fromkeys(SERVED_TYPES, BINARY)}),
    )
    async def image(
        self,
        request: Request[Any, Any, Any],
        services: Services,
        case_id: PathId,
        photo_id: PathId,
        size: Literal["full", "thumb"] = "full",
    ) -> Response[bytes]:
        """The cleaned image (no metadata), or ``?size=thumb`` for a JPEG thumbnail."""
        data, content_type = await services.photos.image(principal_of(request), case_id, photo_id, size == "thumb")
        return Response(data, media_type=content_type, headers={"Cache-Control": "private, max-age=3600"})


async def _file_field(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The bytes of field ``file``, read part by part; refused with 413 as soon as the body
    goes past the limit (at once when Content-Length says so), never read in whole first."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data" or "boundary" not in options:
        raise UnsupportedMediaType("send the photo as multipart/form-data with the file in field 'file'")
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(f"a photo may be at most {limit} bytes")
    found: bytearray | None = None
    current: bytearray | None = None
    try:
        with PushMultipartParser(options["boundary"], max_segment_count=10) as parser:
            async for chunk in _limited(request.stream(), limit + FORM_OVERHEAD):
                for part in parser.parse(chunk):
                    if isinstance(part, MultipartSegment):
                        current = bytearray() if part.name == "file" and found is None else None
                    elif part is None:  # the end of a part
                        if current is not None:
                            found, current = current, None
                    elif current is not None:
                        current += part
                        if len(current) > limit:
                            raise PayloadTooLarge(f"a photo may be at most {limit} bytes")
    except MultipartError as exc:
        raise InvalidRequest("the multipart body is malformed", [{"field": "body", "message": str(exc)}]) from exc
    if not found:
        raise InvalidRequest("no photo in the form", [{"field": "file", "message": "send the photo in field 'file'"}])
    return bytes(found)


async def _limited(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"the upload is larger than the {limit} bytes allowed")
        yield chunk
