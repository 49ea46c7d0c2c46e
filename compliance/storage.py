"""Files the compliance app hands to people — audit exports, Shopify customer data files — and the one way
they leave: a signed link that lasts 10 minutes, checked against the requester on every download.

Where the files live is configuration (`STORAGES["compliance_files"]`, docs/audit-export.md §7): a local
folder by default, any Storage API backend (object storage) by setting. Code here calls only `save`,
`exists`, `open` and `delete`, which every backend has.

A model opts in with `@downloadable(audit_action=...)`. It must carry `merchant_id` (None: staff only) and a
`stored_file()` that answers the file to serve, or None while there is none (not finished, or deleted by
retention). The link is not a bearer credential: whoever opens it must also be allowed to see the row — staff,
or an owner of its merchant — so a forwarded or leaked link is worth nothing to anyone else.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import models
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.choices import Role
from accounts.models import Membership
from compliance.choices import ActorType

logger = logging.getLogger(__name__)

STORAGE_ALIAS = "compliance_files"
# A salt of its own: no other signed value of the app (sessions, OAuth state) can pass for a download link.
DOWNLOAD_SALT = "compliance.files.download"

FILE_NOT_FOUND = "No such file."
LINK_EXPIRED = "This download link has expired: links last minutes. Go back and ask for the download again."
FILE_GONE = "This file is no longer available; it was deleted after its retention period. Ask for a new export."


@dataclass(frozen=True)
class StoredFile:
    """A file in the compliance storage, as a download serves it."""

    key: str
    name: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class DownloadLink:
    url: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class _Downloadable:
    model: type[models.Model]
    audit_action: str


_DOWNLOADABLES: dict[str, _Downloadable] = {}


def downloadable(*, audit_action: str):
    """Class decorator: the model's files may be downloaded through signed links; each download is audited
    as `audit_action`, with the model's label and the row's id as the target."""

    def register(model: type[models.Model]) -> type[models.Model]:
        _DOWNLOADABLES[model._meta.label_lower] = _Downloadable(model=model, audit_action=audit_action)
        return model

    return register


# --- storing -------------------------------------------------------------------------------------------


def file_storage() -> Storage:
    return storages[STORAGE_ALIAS]


def file_key_make(*, kind: str, name: str, now: dt.datetime | None = None) -> str:
    """`<kind>/<yyyy>/<mm>/<32 random hex>/<name>`: unguessable and never reused, so a key can neither collide
    with another file nor be found by walking a bucket's names."""
    now = now or timezone.now()
    return f"{kind}/{now:%Y/%m}/{secrets.token_hex(16)}/{name}"


def file_save(*, kind: str, name: str, content: File) -> str:
    """Store `content` under a fresh key and answer the key the storage used (it may adjust the name).

    `content` is read in chunks by the storage, so a file on disk of any size costs constant memory. A save
    that fails part-way leaves nothing behind: FileSystemStorage, for one, keeps what it had written."""
    storage = file_storage()
    key = file_key_make(kind=kind, name=name)
    try:
        return storage.save(key, content)
    except BaseException:
        try:
            storage.delete(key)  # the key is fresh, so whatever is there is this save's own part
        except Exception:
            logger.exception("compliance file %s: could not remove what a failed save left", key)
        raise


def file_delete(key: str) -> None:
    """Delete a stored file; a key already gone is not an error (retention and a failed write may race)."""
    if key:
        file_storage().delete(key)


# --- links -----------------------------------------------------------------------------------------------


def download_token_sign(obj: models.Model) -> str:
    """A signed token naming the row and its current file key: if the file is replaced or deleted, older
    links stop working (410) rather than serving a different file."""
    label = obj._meta.label_lower
    if label not in _DOWNLOADABLES:
        raise ValueError(f"{label} is not @downloadable")
    stored = obj.stored_file()
    if stored is None:
        raise ValueError(f"{label} {obj.pk} has no file to download")
    return signing.dumps({"m": label, "pk": obj.pk, "k": stored.key}, salt=DOWNLOAD_SALT, compress=True)


def download_link(obj: models.Model, *, request: HttpRequest | None = None) -> DownloadLink:
    """A fresh link to the row's file (absolute when given the request), valid COMPLIANCE_DOWNLOAD_LINK_SECONDS."""
    path = reverse("compliance:file_download", kwargs={"token": download_token_sign(obj)})
    url = request.build_absolute_uri(path) if request is not None else path
    return DownloadLink(
        url=url, expires_at=timezone.now() + dt.timedelta(seconds=settings.COMPLIANCE_DOWNLOAD_LINK_SECONDS)
    )


# --- downloading -------------------------------------------------------------------------------------------


def download_requester(request: HttpRequest, *, merchant_id: int | None):
    """The Actor allowed to download a file of this merchant, or None: staff see every file; a Clerk user
    sees the files of merchants they own (an active merchant); nobody else sees any. A global file
    (merchant_id None) is staff's alone. The actor is the one whose right was used, for the audit log."""
    from compliance.services import Actor  # see file_download

    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return Actor(type=ActorType.STAFF, id=str(user.pk), label=user.get_username())
    identity = getattr(request, "clerk", None)
    if merchant_id is None or identity is None:
        return None
    owns = Membership.objects.filter(
        clerk_user_id=identity.user_id, merchant_id=merchant_id, role=Role.OWNER, merchant__is_active=True
    ).exists()
    return Actor(type=ActorType.CLERK_USER, id=identity.user_id, label=identity.user_id) if owns else None


def _unavailable(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "compliance/file_unavailable.html", {"message": message}, status=status)


@require_GET
def file_download(request: HttpRequest, token: str) -> HttpResponse:
    """Serve the file a signed link names: 403 expired, 404 bad signature or not the requester's to see (the
    same answer as for nothing there), 410 the file is gone. Streamed from the storage (FileResponse)."""
    # Imported in the functions: compliance.models imports this module (@downloadable), and these import it.
    from compliance.services import audit_event_record, request_context

    try:
        payload = signing.loads(token, salt=DOWNLOAD_SALT, max_age=settings.COMPLIANCE_DOWNLOAD_LINK_SECONDS)
    except signing.SignatureExpired:
        return _unavailable(request, LINK_EXPIRED, 403)
    except signing.BadSignature:
        raise Http404(FILE_NOT_FOUND) from None
    kind = _DOWNLOADABLES.get(payload.get("m"))
    obj = kind.model._default_manager.filter(pk=payload.get("pk")).first() if kind else None
    actor = download_requester(request, merchant_id=obj.merchant_id) if obj is not None else None
    if actor is None:
        raise Http404(FILE_NOT_FOUND)
    stored = obj.stored_file()
    storage = file_storage()
    # exists() first: an object store's open() is lazy, and a missing object would fail mid-response.
    if stored is None or stored.key != payload.get("k") or not storage.exists(stored.key):
        return _unavailable(request, FILE_GONE, 410)
    try:
        handle = storage.open(stored.key, "rb")
    except FileNotFoundError:  # deleted between the two calls
        return _unavailable(request, FILE_GONE, 410)
    audit_event_record(
        action=kind.audit_action,
        actor=actor,
        target_type=payload["m"],
        target_id=obj.pk,
        merchant_id=obj.merchant_id,
        metadata={"file_name": stored.name},
        **request_context(request),
    )
    return FileResponse(handle, as_attachment=True, filename=stored.name, content_type=stored.content_type)
