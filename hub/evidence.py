"""Evidence endpoints: read a snapshot, clip or quicklook by its hash; upload an inspector's file.

``GET /api/evidence/{sha256}`` serves a file of the content-addressed store
(:mod:`farsight.evidence`) under ``<data_dir>/evidence``. The name is the SHA-256 of the content,
so responses are immutable and cacheable, and the client can check what it received.

``POST /api/evidence`` (an officer's bearer token) stores an uploaded photo, clip or document
(JPEG, PNG, MP4, PDF; the type is checked from the bytes, not trusted from the header), records
who uploaded it for which department (:class:`~farsight.evidence.EvidenceLedger`) and returns its
hash, which the verification step then cites. Every upload is audited.

Who may read a file (:func:`may_read`): a province-wide token any; a department's token the files
uploaded for its department, and files that no other department uploaded (the producers' own
snapshots, clips and quicklooks, or a province-wide upload) when an alert of its department lists
them. Who may cite one in a handling step (:func:`may_cite`): the actor must be able to read it,
and the alert's department must be able to after the step, without a citation ever being what
gives it a foreign department's file. So a file another department uploaded can be neither read
nor cited, whatever alert lists it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as Path_
from fastapi.responses import FileResponse

from farsight.errors import NotFoundError, StoreError
from farsight.evidence import EvidenceStore
from farsight.logs import kv
from hub.access import needs
from hub.auth import Principal, Role
from hub.context import HubContext
from hub.deps import context

log = logging.getLogger(__name__)

router = APIRouter()

MAX_UPLOAD = 50 * 1024 * 1024
MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".mp4": "video/mp4",
    ".pdf": "application/pdf",
    ".geojson": "application/geo+json",
    ".json": "application/json",
}
_SHA_PATTERN = r"^[0-9a-f]{64}$"


def evidence_store(ctx: HubContext) -> EvidenceStore:
    """The store under the hub's data directory."""
    return EvidenceStore(ctx.settings.evidence_dir)


def may_read(ctx: HubContext, department: str | None, sha: str) -> bool:
    """Whether a token of ``department`` (``None``: province-wide) may read the file ``sha``
    (whether it exists aside)."""
    if department is None:
        return True
    owners = ctx.evidence.departments(sha)
    if department in owners:
        return True
    if owners and None not in owners:
        return False  # uploaded for other departments only: never theirs to read
    return ctx.alerts.references_evidence(sha, department)


def may_cite(ctx: HubContext, principal: Principal, alert_department: str, sha: str) -> bool:
    """Whether ``principal`` may cite the file ``sha`` on an alert of ``alert_department``: the
    file exists, the actor may read it, and it is the alert's department's (its own upload, a
    province-wide one, or a producer's file one of its alerts lists already)."""
    if sha not in evidence_store(ctx) or not may_read(ctx, principal.department, sha):
        return False
    owners = ctx.evidence.departments(sha)
    if alert_department in owners or None in owners:
        return True
    return not owners and ctx.alerts.references_evidence(sha, alert_department)


def sniff(data: bytes) -> str | None:
    """The suffix of an accepted upload, from its leading bytes; None when not accepted."""
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"%PDF-"):
        return ".pdf"
    if len(data) >= 12 and data[4:8] == b"ftyp":  # ISO base media (MP4, MOV)
        return ".mp4"
    return None


@router.get(
    "/api/evidence/{sha}",
    tags=["evidence"],
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file; its SHA-256 is the path's hash.",
            "content": {m: {} for m in MEDIA_TYPES.values()},
        },
        401: {"description": "Missing, unknown or revoked token."},
        404: {"description": "No such file, or none that the token's department may read."},
    },
)
def get_evidence(
    sha: Annotated[
        str,
        Path_(pattern=_SHA_PATTERN, description="SHA-256 of the file, 64 lowercase hex digits."),
    ],
    principal: Annotated[Principal, Depends(needs(Role.VIEWER, cookie=True))],
    ctx: Annotated[HubContext, Depends(context)],
) -> FileResponse:
    """A stored evidence file by hash (snapshot, clip, quicklook, inspector's upload)."""
    # A department's token learns nothing about files it may not read: the same 404 as a
    # missing file.
    if not may_read(ctx, principal.department, sha):
        raise HTTPException(404, f"no evidence {sha}")
    try:
        path = evidence_store(ctx).path(sha)
    except NotFoundError:
        raise HTTPException(404, f"no evidence {sha}") from None
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={
            "Cache-Control": "private, max-age=31536000, immutable",
            "ETag": f'"{sha}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
        },
    )


@router.post(
    "/api/evidence",
    tags=["evidence"],
    status_code=201,
    responses={
        401: {"description": "Missing, unknown, expired or revoked bearer token."},
        403: {"description": "The token's role cannot upload evidence (officer and up)."},
        413: {"description": f"Larger than {MAX_UPLOAD // (1024 * 1024)} MiB."},
        415: {"description": "Not a JPEG, PNG, MP4 or PDF file."},
    },
)
async def upload_evidence(
    request: Request,
    principal: Annotated[Principal, Depends(needs(Role.OFFICER))],
    ctx: Annotated[HubContext, Depends(context)],
) -> dict[str, Any]:
    """Store the request body (a JPEG, PNG, MP4 or PDF file) as evidence; returns its hash.

    Cite the hash in the verification step (``POST /api/alerts/{id}/verify``, ``evidence``).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise HTTPException(413, f"evidence files are limited to {MAX_UPLOAD // (1024 * 1024)} MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD:
            raise HTTPException(
                413, f"evidence files are limited to {MAX_UPLOAD // (1024 * 1024)} MiB"
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    suffix = sniff(data)
    if suffix is None:
        raise HTTPException(
            415, "evidence must be a JPEG, PNG, MP4 or PDF file (checked from its content)"
        )
    try:
        sha = evidence_store(ctx).put(data, suffix)
    except StoreError as exc:
        log.error("evidence upload failed", extra=kv(user=principal.user, error=str(exc)))
        raise HTTPException(503, "the evidence store cannot be written now; try again") from None
    ctx.evidence.record(sha, principal.department, principal.user, MEDIA_TYPES[suffix], size)
    ctx.alerts.audit.append(
        principal.user,
        "evidence.upload",
        f"evidence:{sha}",
        {"size": size, "type": MEDIA_TYPES[suffix], "department": principal.department},
    )
    return {"sha256": sha, "size": size, "media_type": MEDIA_TYPES[suffix]}
