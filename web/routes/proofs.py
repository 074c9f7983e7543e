"""Proof photos behind signed, expiring links (`core.tracking.links`): for dispatchers in chat
and for API clients, with no login."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from core.drivers import proofs
from core.storage import StorageError
from core.texts import t
from core.tracking import links

router = APIRouter(include_in_schema=False)


@router.get("/proofs/{proof_id}")
async def proof_photo(
    request: Request,
    proof_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(max_length=64)],
) -> Response:
    return await _serve(request, proof_id, expires, signature, svg=False)


@router.get("/proofs/{proof_id}/signature.svg")
async def proof_signature_svg(
    request: Request,
    proof_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(max_length=64)],
) -> Response:
    return await _serve(request, proof_id, expires, signature, svg=True)


async def _serve(
    request: Request, proof_id: int, expires: int, signature: str, *, svg: bool
) -> Response:
    services = request.app.state.services
    now = services.clock()
    try:
        services.signer.check_proof(proof_id, expires, signature, now, svg=svg)
    except links.LinkExpired as exc:
        raise HTTPException(410, exc.message()) from None
    except links.BadLink as exc:
        raise HTTPException(403, exc.message()) from None
    proof = await proofs.stored_photo(services.db, proof_id)
    try:  # read through the storage (this instance's folder, or the shared object store)
        content = await proofs.stored_file(services.files, proof, svg=svg)
    except StorageError as exc:
        raise HTTPException(503, t("link.store_down"), headers={"Retry-After": "30"}) from exc
    if proof is None or content is None:
        raise HTTPException(404, t("link.no_photo"))
    max_age = max(int(expires - now.timestamp()), 0)
    return Response(
        content,
        media_type="image/svg+xml" if svg else proof.content_type,
        headers={
            "Cache-Control": f"private, max-age={max_age}",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )
