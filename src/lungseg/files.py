"""What a file is, by its name and first bytes: a film lungseg reads (image suffixes; DICOM by
suffix, the 'DICM' marker or a bare dataset; JSRT's raw .IMG by its size), or a by-product
never read as one (masks and lungseg's own outputs, mask folders, DICOMDIR, operating-system
leftovers); a film's name for its outputs; and writing an output in one step."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
JSRT_SIDE = 2048  # JSRT's raw .IMG films: 2048 x 2048 x 2 bytes, no header (jsrt.py)
MASK_FOLDERS = {"mask", "masks", "manualmask", "leftmask", "rightmask"}  # see is_byproduct
# what `predict` writes, named <film stem><suffix>.png, and the pages of its check sheet
# (`report.check_sheets`: <SHEET_STEM>01.png, 02, ...); never read as films
MASK, OVERLAY, LABELS, SHEET_STEM = "_mask", "_overlay", "_labels", "check_overlays_"


def output_name(mask_file: str) -> str:
    """A mask `predict` wrote (its file name or path) -> the film's output name (`<name>` of
    `<name>_mask.png`), which its other outputs share."""
    return Path(mask_file).name.removesuffix(f"{MASK}.png")


def replace_file(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` in one step: into a hidden temporary file beside it (`is_leftover`),
    then renamed over it, so that a kill leaves the old file or the new one, never part of one
    (the temporary file is removed when writing it fails, e.g. on a full disk). As writing in
    place would: a link is written through to its file, a read-only file is refused, a file's
    permissions are kept (not its owner, ACLs or other hard links: it is a new file; and the
    folder must be writable)."""
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
    existed = os.path.exists(path)
    if existed and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, "read-only: make it writable first", str(path))
    tmp = path.with_name(_temporary(path.name))
    try:
        tmp.write_bytes(data)
        if existed:
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):  # named by the file it was for, not the temporary one
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


def _temporary(name: str) -> str:
    """The temporary name `replace_file` writes `name` under: `.NAME.tmp`, or for a name too
    long for that (file names: at most 255 bytes) one from its digest."""
    if len(os.fsencode(name)) <= 250:
        return f".{name}.tmp"
    return f".lungseg-{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}.tmp"


LEFT_BEHIND = re.compile(  # `_temporary` names of lungseg's outputs in --out
    rf"\.(.*({MASK}|{OVERLAY}|{LABELS})\.png|{SHEET_STEM}\d+\.png|results\.(csv|json)|run\.json)"
    r"\.tmp|\.lungseg-[0-9a-f]{16}\.tmp",
    re.DOTALL,
)


def file_stamp(path: str | Path) -> str:
    """A file's size and modification time (ns), which `predict` writes into a film's mask:
    `--resume` knows a film replaced since (also by an older file: `cp -p`, `rsync -a`) by it."""
    st = os.stat(path)
    return f"{st.st_size} {st.st_mtime_ns}"


def same_file(stamp: str, now: str) -> bool:
    """Whether two `file_stamp`s are of one file: the same size and modification time, within
    2 s where either time is in whole seconds (tar and zip keep no fraction, zip and FAT round
    to 2 s: a film restored from them is the same film)."""
    if stamp == now:
        return True
    try:
        (size, ns), (size_now, ns_now) = (map(int, s.split()) for s in (stamp, now))
    except ValueError:
        return False
    whole = ns % 10**9 == 0 or ns_now % 10**9 == 0
    return size == size_now and whole and abs(ns - ns_now) < 2 * 10**9


def half_written(name: str) -> bool:
    """True for the name of a temporary file `replace_file` left behind when its process was
    killed while writing one of `predict`'s outputs."""
    return LEFT_BEHIND.fullmatch(name) is not None


# how PNG, JPEG, TIFF, BMP and GIF files start: such a file named .dcm is read as what it is
IMAGE_STARTS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\0", b"MM\0*", b"BM", b"GIF8")


def is_dicom(path: Path) -> bool:
    """The 'DICM' marker after the 128-byte preamble, a bare dataset, or a DICOM suffix on a
    file that does not start as an image format does."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return path.suffix.lower() in DICOM_SUFFIXES
    if head[128:132] == b"DICM" or _bare_dataset(head):
        return True
    return path.suffix.lower() in DICOM_SUFFIXES and not head.startswith(IMAGE_STARTS)


def _bare_dataset(head: bytes) -> bool:
    """A DICOM dataset written without preamble and marker (as ACR-NEMA era and some PACS
    exports are): its first element is a little-endian tag of group 0002 or 0008 followed by
    an explicit VR (two capitals) or a short implicit length. No image format starts so."""
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    return (vr.isalpha() and vr.isupper()) or int.from_bytes(head[4:8], "little") < 1024


def film_stem(path: Path) -> str:
    """A film's name without its suffix, when it has a known image or DICOM one (`a.PNG` -> `a`,
    `x.dcm` -> `x`) or is a JSRT film (`JPCLN001.IMG`); else its whole name: DICOMs named
    without a suffix (`IM0001`) or by their UID (`1.2.840.113619.2.55.3.7`, whose last `.7` is
    no suffix)."""
    if path.suffix.lower() in IMAGE_SUFFIXES | DICOM_SUFFIXES or is_jsrt(path):
        return path.stem
    return path.name


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()


def is_supported(path: Path) -> bool:
    """True for files `read_image` will try: known image suffixes, DICOM suffix or DICM magic,
    JSRT's raw films."""
    suffix = path.suffix.lower()
    return suffix in IMAGE_SUFFIXES | DICOM_SUFFIXES or is_dicom(path) or is_jsrt(path)


def is_jsrt(path: Path) -> bool:
    """A JSRT film as the database distributes it: `.IMG` of exactly 2048 x 2048 x 2 bytes."""
    try:
        return path.suffix.lower() == ".img" and path.stat().st_size == 2 * JSRT_SIDE**2
    except OSError:
        return False


def is_byproduct(path: Path, root: Path | None = None) -> bool:
    """True for files that are not films although they may be images: masks and lungseg's own
    outputs (<stem>_mask/_overlay/_labels, the check_overlays_NN sheets), DICOMDIR indexes,
    `is_leftover` files and, below `root` (a folder being searched), anything in a folder named
    mask, masks, ManualMask, leftMask or rightMask (the public data layouts' mask folders)."""
    if path.name.upper() == "DICOMDIR" or is_leftover(path):
        return True
    stem = path.stem.lower()
    if stem.endswith((MASK, OVERLAY, LABELS)) or re.fullmatch(SHEET_STEM + r"\d+", stem):
        return True
    folders = path.relative_to(root).parts[:-1] if root is not None else ()
    return any(f.lower() in MASK_FOLDERS for f in folders)


def is_leftover(path: Path) -> bool:
    """Operating-system leftovers, never films or masks: hidden files (macOS '._*' and
    .DS_Store), Thumbs.db, desktop.ini, anything under a zip's __MACOSX/."""
    name = path.name.lower()
    return name.startswith(".") or name in ("thumbs.db", "desktop.ini") or "__MACOSX" in path.parts
