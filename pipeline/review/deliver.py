"""``aihd deliver``: approved photos written for an MLS into ``delivery/<listing>/``, as a
profile says (size, shape, watermark on altered photos, originals beside them), with a
disclosure per listing saying what AI altered in each photo (disclosure.py).

Which photos, in which order, and why the others are left out is delivery_plan.py's. A listing
is delivered whole: only once every completed photo of it is decided (unless ``--partial``). It
is written into a hidden folder and swapped into place, so it never holds a photo that was
rejected since, nor half of a delivery; where it goes, and what happens to the folder it
replaces, is delivery_folder.py's (deliver deletes only files it wrote).

A file is encoded again only when what it is made from changed: its source's content, the
photo's original (EXIF), the profile's pixel settings, the watermark, the encoder. The ledger
keeps, for each file deliver wrote, a key of those (``made_from``); a re-delivery copies the
listing's last file of the same key instead of encoding it.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from pipeline.errors import PhotoError
from pipeline.files import open_regular
from pipeline.ledger import Ledger, PhotoRow, State
from pipeline.manifest.folders import relative
from pipeline.manifest.listings import listings
from pipeline.manifest.loader import Manifest
from pipeline.manifest.profiles import DeliveryProfile
from pipeline.review.decisions import manifest_rows
from pipeline.review.delivery_folder import (
    STAGE_PREFIX,
    aside_folder,
    clear_folder,
    our_files,
    refuse_output,
    sort_out,
    stale_folders,
    swap_in,
    swap_out,
)
from pipeline.review.delivery_plan import (
    LeftOut,
    ListingPlan,
    Planned,
    check_folders_apart,
    file_name,
    listing_label,
    plan_listing,
    select_listings,
)
from pipeline.review.delivery_report import DeliveryReport, ListingReport
from pipeline.review.disclosure import (
    DISCLOSURE_COLUMNS,
    DISCLOSURE_NAME,
    REMARKS_NAME,
    Disclosed,
    disclosure_bytes,
    remarks_bytes,
)
from pipeline.review.imaging import upright_size
from pipeline.review.mls import ENCODER, check_shape, render_for_mls

__all__ = [
    "DISCLOSURE_COLUMNS",
    "DeliveryReport",
    "ListingReport",
    "deliver",
    "listing_label",
]

_READ_BYTES = 1 << 20


def deliver(
    manifest: Manifest,
    ledger: Ledger,
    profile: DeliveryProfile,
    folder: Path,
    *,
    partial: bool = False,
    dry_run: bool = False,
    where: str = "-o",
    only: Sequence[str] = (),
) -> DeliveryReport:
    """Write each listing whose completed photos are all decided (any, with ``partial``) into
    ``folder/<listing>/``; one with no approved photo now is taken away. ``only``: globs of
    the listings to deliver (``--listing``). Refuses (UsageError, nothing written) a folder
    that is, holds or lies in a photo or results folder, and a glob that matches no listing."""
    root = folder.resolve()
    every = listings(manifest)
    check_folders_apart(manifest, every, root)
    chosen = select_listings(manifest, every, only)
    rows = manifest_rows(manifest, ledger)
    completed = [r for r in rows if r.state is State.COMPLETED and r.output_paths]
    refuse_output(root, manifest, ledger, [Path(r.output_paths[0]) for r in completed], where)
    reviews = ledger.reviews()
    spelled = ledger.titles()
    report = DeliveryReport(root, dry_run=dry_run)
    if not dry_run:
        for stale in stale_folders(root):
            clear_folder(stale, aside_folder(root, "interrupted-delivery"), ledger, report.clearing)
    for listing in chosen:
        plan = plan_listing(listing, manifest, rows, reviews, profile, spelled, root)
        if plan.undecided and not partial:
            report.undecided.append((plan.label, plan.undecided, plan.completed))
            continue
        report.not_approved += plan.rejected
        if plan.photos:
            _Delivery(plan, profile, ledger, report, dry_run).run()
        elif sort_out(plan.target, ledger)[0]:
            # An earlier delivery of ours whose photos have all been rejected since.
            report.withdrawn.append(listing.name)
            if dry_run:
                _plan_clearing(plan.target, ledger, report)
            else:
                replaced = swap_out(plan.target)
                aside = aside_folder(root, plan.target.name)
                clear_folder(replaced, aside, ledger, report.clearing, was=plan.target)
    return report


@dataclass(frozen=True, slots=True)
class _Made:
    """One file of the delivery: its bytes (None in a dry run) and what it is made from."""

    data: bytes | None
    made_from: str
    encoded: bool
    width: int = 0
    height: int = 0
    source_size: tuple[int, int] = (0, 0)


class _Delivery:
    """One listing written into a stage folder beside its place, then swapped in whole (or,
    in a dry run, said). Each file's content is recorded in the ledger before it is written,
    so a stage a kill left behind is recognised as ours."""

    def __init__(
        self,
        plan: ListingPlan,
        profile: DeliveryProfile,
        ledger: Ledger,
        report: DeliveryReport,
        dry_run: bool,
    ) -> None:
        self.plan, self.profile, self.ledger, self.dry_run = plan, profile, ledger, dry_run
        self.report = report
        self.listing = ListingReport(plan.label, str(plan.target), left_out=list(plan.left_out))
        self.rows: list[Disclosed] = []
        self.reusable = self._reusable()
        self.stage = plan.target.with_name(
            f"{STAGE_PREFIX}{plan.target.name}-{secrets.token_hex(4)}"
        )

    def run(self) -> None:
        target = self.plan.target
        if self.dry_run:
            self.report.planned.append(f"would write {target}/:")
            at = len(self.report.planned) - 1
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.stage.mkdir()  # with the user's umask, as the folder it becomes
        for planned in self.plan.photos:
            self._deliver_photo(planned)
        self.report.listings.append(self.listing)
        if self.dry_run:
            extra = ", remarks.txt" if self._remarks() is not None else ""
            self.report.planned[at] = (
                f"would write {target}/: {self.listing.photos} photos and {DISCLOSURE_NAME}{extra}"
                if self.listing.photos
                else f"would leave {target}/ as it is: not one photo of it could be made"
            )
            self.report.planned += [f"  left out: {o.path}: {o.why}" for o in self.listing.left_out]
            if self.listing.photos:
                self.report.delivered[str(target)] = self.listing.photos
                _plan_clearing(target, self.ledger, self.report)
            return
        if not self.rows:
            # Not one photo could be made: the listing's last delivery stays as it was.
            aside = aside_folder(target.parent, target.name)
            clear_folder(self.stage, aside, self.ledger, self.report.clearing)
            return
        self._write(DISCLOSURE_NAME, disclosure_bytes(self.rows, self.profile), "")
        remarks = self._remarks()
        if remarks is not None:
            self._write(REMARKS_NAME, remarks, "")
        replaced = swap_in(self.stage, target)
        if replaced is not None:
            aside = aside_folder(target.parent, target.name)
            clear_folder(replaced, aside, self.ledger, self.report.clearing, was=target)
        self.report.delivered[str(target)] = self.listing.photos

    def _deliver_photo(self, planned: Planned) -> None:
        """The photo, and its original where the profile places it: both or neither."""
        files = planned.files(self.profile)
        limit = self.profile.max_photos
        if limit and self.listing.photos + len(files) > limit:
            what = "with its original " if len(files) > 1 else ""
            why = f"{what}over profile {self.profile.name}'s {limit}-photo limit"
            self._leave_out(planned, why, over_limit=True)
            return
        try:
            made = [self._make(planned, role, source) for role, source in files]
        except PhotoError as exc:
            self.report.failed.append(str(exc))
            self._leave_out(planned, f"cannot be made: {exc.reason}")
            return
        first = self.listing.photos + 1
        names = {
            role: file_name(self.profile, first + n, planned.original, self.plan.listing.name, role)
            for n, (role, _source) in enumerate(files)
        }
        for n, ((role, source), file) in enumerate(zip(files, made, strict=True)):
            self._put(planned, role, source, file, names, first + n)

    def _put(
        self,
        planned: Planned,
        role: str,
        source: Path,
        file: _Made,
        names: dict[str, str],
        order: int,
    ) -> None:
        name = names[role]
        self.listing.photos += 1
        self.listing.originals += role == "original"
        self.listing.altered += role == "photo" and planned.words.alters
        self.listing.encoded += file.encoded
        self.listing.reused += not file.encoded
        if self.dry_run:
            how = "encode" if file.encoded else "unchanged: copied from the last delivery"
            what = "the original" if role == "original" else "from"
            if role == "photo" and planned.words.alters:
                how += ", altered" + (": watermarked" if self.profile.stamps else "")
            self.report.planned.append(f"  {name}  {what} {source} ({how})")
            return
        assert file.data is not None
        self._write(name, file.data, file.made_from)
        self.rows.append(
            Disclosed(
                order=order,
                file=name,
                role="original" if role == "original" else "photo",
                words=planned.words,
                width=file.width,
                height=file.height,
                source_size=file.source_size,
                original_file=names.get("original", "") if role == "photo" else "",
                of_file=names["photo"] if role == "original" else "",
            )
        )

    def _make(self, planned: Planned, role: str, source: Path) -> _Made:
        """The file's bytes: copied from the last delivery when nothing it is made from
        changed, else encoded (in a dry run: only its shape checked)."""
        content = _content_hash(source)
        photo = planned.photo
        if role == "original" and photo.sha256 and content != photo.sha256:
            raise PhotoError(
                source,
                "changed since it was enhanced: it is no longer the original of its result; "
                "put the original back, or deliver with a profile whose originals: none",
            )
        stamped = role == "photo" and planned.words.alters and self.profile.stamps
        key = self._made_from(photo, role, content, stamped)
        last = self.reusable.get(key)
        if last is not None:
            data = _read(last[0])
            if data is not None and hashlib.sha256(data).hexdigest() == last[1]:
                if self.dry_run:
                    return _Made(None, key, encoded=False)
                with Image.open(io.BytesIO(data)) as image:
                    width, height = image.size
                return _Made(data, key, False, width, height, upright_size(source))
        if self.dry_run:
            check_shape(source, self.profile)
            return _Made(None, key, encoded=True)
        exif_from = planned.original if role == "photo" else None
        jpeg = render_for_mls(source, self.profile, exif_from, stamped=stamped)
        return _Made(jpeg.data, key, True, jpeg.width, jpeg.height, jpeg.source_size)

    def _made_from(self, photo: PhotoRow, role: str, content: str, stamped: bool) -> str:
        """The key of everything a file's bytes depend on (see the module's docstring)."""
        profile = self.profile
        parts = [
            ENCODER,
            role,
            content,
            photo.sha256 if role == "photo" and profile.exif == "keep" else "",
            list(profile.pixels()),
            [profile.watermark_text, profile.watermark_corner] if stamped else None,
        ]
        return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()

    def _reusable(self) -> dict[str, tuple[Path, str]]:
        """The listing's last delivered files, by what each was made from: (path, sha256)."""
        if self.plan.target.is_symlink():
            return {}
        files = our_files(self.plan.target, self.ledger)
        made = self.ledger.delivered_made_from(list(files))
        return {key: (files[sha], sha) for sha, key in made.items()}

    def _remarks(self) -> bytes | None:
        if self.dry_run:
            altered = any(p.words.alters for p in self.plan.photos)
            prefix = self.profile.remarks_prefix
            return (prefix + "\n").encode() if prefix and altered else None
        return remarks_bytes(self.rows, self.profile)

    def _write(self, name: str, data: bytes, made_from: str) -> None:
        sha = hashlib.sha256(data).hexdigest()
        final = self.plan.target / name
        self.ledger.record_delivered([(sha, str(final))], {sha: made_from} if made_from else None)
        (self.stage / name).write_bytes(data)

    def _leave_out(self, planned: Planned, why: str, *, over_limit: bool = False) -> None:
        shown = relative(planned.original, self.plan.base)
        self.listing.left_out.append(LeftOut(shown, why, over_limit))


def _plan_clearing(target: Path, ledger: Ledger, report: DeliveryReport) -> None:
    ours, others = sort_out(target, ledger)
    if ours:
        report.planned.append(
            f"would remove {len(ours)} files an earlier delivery wrote in {target}/"
        )
    aside = aside_folder(target.parent, target.name)
    for path in others:
        report.planned.append(f"would move {path} aside into {aside}/ (not written by aihd)")


def _content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        # A FIFO swapped in for a result or an original is refused, never waited on.
        with open_regular(path) as stream:
            while chunk := stream.read(_READ_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise PhotoError(path, f"cannot read it ({exc.strerror})") from None
    return digest.hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        with open_regular(path) as stream:
            return stream.read()
    except OSError:
        return None
