"""Pair checks: broken pairs (size mismatch, non-binary, empty, corrupt, zero-byte) are skipped
with a message naming the file, or refused with --strict; valid mask encodings load; the summary
text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import by_id
from PIL import Image

from lungseg.datasets import Problem, discover
from lungseg.imageio import ImageReadError
from lungseg.pairs import binary_mask, check_pairs, load_pair, summarize

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def broken_root(tmp_path, synth):
    """Combined layout: 2 good pairs and one of each kind of broken pair."""
    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=("CHNCXR_0001_0",))
    img, msk = base / "CXR_png", base / "masks"
    left, right = synth.lung_masks()
    good = (left | right) * 255

    def pair(stem, image=None, mask=None):
        synth.save_png(img / f"{stem}.png", synth.chest_image() if image is None else image)
        synth.save_png(msk / f"{stem}.png", good if mask is None else mask)

    pair("MCUCXR_0010_0", mask=np.zeros((synth.H + 8, synth.W), np.uint8))  # size mismatch
    jpeg_like = good.astype(np.int16)
    jpeg_like[good > 0] -= np.arange(int((good > 0).sum())) % 4  # 255, 254, 253, 252
    jpeg_like[1, 1] = 3  # levels 0, 3, 252..255
    pair("MCUCXR_0011_0", mask=jpeg_like.astype(np.uint8))  # non-binary (JPEG-like levels)
    pair("MCUCXR_0012_0", mask=np.zeros((synth.H, synth.W), np.uint8))  # empty mask
    pair("MCUCXR_0013_0")
    (img / "MCUCXR_0013_0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)  # corrupt
    pair("MCUCXR_0014_0")
    (img / "MCUCXR_0014_0.png").write_bytes(b"")  # zero-byte image
    pair("MCUCXR_0015_0")
    (msk / "MCUCXR_0015_0.png").write_bytes(b"")  # zero-byte mask
    pair("MCUCXR_0016_0", mask=255 - good)  # inverted: lungs black on white
    pair("MCUCXR_0017_0", mask=np.full((synth.H, synth.W), 255, np.uint8))  # all white
    return tmp_path


BROKEN = {
    "MCUCXR_0010_0": "80",  # message gives both sizes
    "MCUCXR_0011_0": "not binary",
    "MCUCXR_0012_0": "empty",
    "MCUCXR_0013_0": "not a readable image",
    "MCUCXR_0014_0": "0 bytes",
    "MCUCXR_0015_0": "mask is not a readable image",
    "MCUCXR_0016_0": "covers all four corners of the image, which lungs never do; is it inverted",
    "MCUCXR_0017_0": "covers all four corners",
}


def test_check_pairs_skips_bad_pairs_and_names_files(broken_root):
    samples, problems = discover(broken_root)
    assert problems == []  # every broken pair still has both files: found, then checked
    assert len(samples) == 2 + len(BROKEN)
    good, bad = check_pairs(samples)
    assert sorted(s.id for s, _, _ in good) == ["CHNCXR_0001_0", "MCUCXR_0001_0"]
    assert len(bad) == len(BROKEN)
    by_stem = {p.path.rsplit("/", 1)[-1].removesuffix(".png"): p for p in bad}
    assert set(by_stem) == set(BROKEN)
    for stem, words in BROKEN.items():
        p = by_stem[stem]
        assert f"{stem}.png" in p.problem, p  # the file is named in the message
        assert words in p.problem, p
        assert p.fix == "skipped"
    mismatch = by_stem["MCUCXR_0010_0"].problem
    assert "64x88" in mismatch and "64x80" in mismatch
    assert "6 gray levels" in by_stem["MCUCXR_0011_0"].problem
    for _, image, mask in good:
        assert image.shape == mask.shape and set(np.unique(mask)) == {0, 1}


@pytest.mark.parametrize("stem", sorted(BROKEN))
def test_load_pair_raises_value_error_naming_file(broken_root, stem):
    samples, _ = discover(broken_root)
    s = by_id(samples)[stem]
    with pytest.raises(ValueError) as e:  # ImageReadError is a ValueError too
        load_pair(s)
    assert f"{stem}.png" in str(e.value)


def test_check_pairs_strict_raises(broken_root):
    samples, _ = discover(broken_root)
    with pytest.raises((ValueError, ImageReadError)):
        check_pairs(samples, strict=True)


def test_load_pair_accepts_0_1_and_one_valued_masks_read_as_lung(tmp_path, synth):
    """0/1 masks load; a file of 255 only reads as all lung (and the pair is then refused as
    no lung mask: `broken_root`'s all-white MCUCXR_0017_0)."""
    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0",), chn=())
    left, right = synth.lung_masks()
    synth.save_png(base / "masks" / "MCUCXR_0001_0.png", (left | right).astype(np.uint8))
    samples, _ = discover(tmp_path)
    _, m1 = load_pair(samples[0])
    np.testing.assert_array_equal(m1, left | right)
    assert binary_mask(np.full((4, 5), 255, np.uint8), Path("full.png")).all()


def test_summarize_text():
    problems = [
        Problem("/d/a.png", "mask is empty", "skipped"),
        Problem("/d/b.png", "no lung mask found", "add it"),
    ]
    text = summarize(7, problems)
    lines = text.splitlines()
    assert lines[0] == "7 pairs used, 2 skipped"
    assert lines[1] == "  /d/a.png: mask is empty -> skipped"
    assert lines[2] == "  /d/b.png: no lung mask found -> add it"
    assert summarize(3, []) == "3 pairs used, 0 skipped"


def test_a_pair_whose_exif_orientations_differ_is_refused(tmp_path, synth):
    """Films and masks are read as displayed. A film turned upside down by its EXIF tag beside
    a mask without one (drawn on the stored pixels, or on the displayed film: no way to tell)
    keeps its size, so only the tags show that one is turned against the other."""
    from PIL import Image

    base = synth.write_combined(tmp_path, mcu=("MCUCXR_0001_0", "MCUCXR_0002_0"), chn=())
    upside_down = Image.Exif()
    upside_down[0x0112] = 3
    for name in ("CXR_png/MCUCXR_0002_0.png", "masks/MCUCXR_0001_0.png"):
        turned = Image.open(base / name)
        turned.save(base / name, exif=upside_down)  # same pixels, now displayed turned
    for name in ("MCUCXR_0001_0", "MCUCXR_0002_0"):  # both ways round
        with pytest.raises(ValueError, match="EXIF orientation .* differs"):
            load_pair(by_id(discover(tmp_path)[0])[name])
    Image.open(base / "masks/MCUCXR_0002_0.png").save(
        base / "masks/MCUCXR_0002_0.png", exif=upside_down
    )
    image, mask = load_pair(by_id(discover(tmp_path)[0])["MCUCXR_0002_0"])  # both turned: fine
    stored = np.asarray(Image.open(base / "masks/MCUCXR_0002_0.png")) > 0
    np.testing.assert_array_equal(mask, np.rot90(stored, 2))


def test_jpeg_masks_are_thresholded_with_one_warning_for_the_folder(tmp_path, synth, caplog):
    """Hospital exports: 0/255 masks saved as JPEG at quality 75 (by OpenCV and by Pillow), whose
    compression smears 0 and 255 into nearby values. They pair, load as the mask drawn, and one
    warning, not one per file, says they were thresholded."""
    import cv2
    from PIL import Image

    from lungseg.imageio import read_mask

    base, h, w = tmp_path / "hospital", 240, 200
    (base / "masks").mkdir(parents=True)
    drawn = {}
    for k, name in enumerate(("p0.jpg", "p1.jpg", "p2_mask.jpeg", "p3.JPG")):
        left, right = synth.lung_masks(h, w, shift=3 * k)
        drawn[f"p{k}"] = left | right
        synth.save_png(base / "images" / f"p{k}.png", synth.chest_image(h, w, k, left | right))
        path = base / "masks" / name
        if k % 2:
            cv2.imwrite(str(path), drawn[f"p{k}"] * 255, [cv2.IMWRITE_JPEG_QUALITY, 75])
        else:
            Image.fromarray(drawn[f"p{k}"] * 255).save(path, quality=75)
        assert len(np.unique(read_mask(path))) > 2  # not 0/255 any more: the strict check refuses
    samples, problems = discover(tmp_path)
    assert problems == [] and [s.masks[0].name for s in samples] == ["p0.jpg", "p1.jpg",
        "p2_mask.jpeg", "p3.JPG"]  # fmt: skip
    with caplog.at_level("WARNING", logger="lungseg"):
        good, bad = check_pairs(samples)
        load_pair(samples[0])  # the folder was warned about already
    assert bad == [] and len(good) == 4
    for s, _, mask in good:
        truth = drawn[s.id].astype(bool)
        assert set(np.unique(mask)) == {0, 1}
        assert (mask.astype(bool) & truth).sum() / (mask.astype(bool) | truth).sum() > 0.98
    said = [r.getMessage() for r in caplog.records if "JPEG" in r.getMessage()]
    assert len(said) == 1 and f"JPEG masks in {base / 'masks'} were thresholded at 128" in said[0]


def test_a_gray_image_saved_as_jpeg_mask_is_still_refused(tmp_path, synth):
    """Only a compressed 0/255 mask is thresholded: a gray gradient (or the film itself) saved as
    a JPEG mask has far more than 1% of its pixels mid-gray and is refused, saying what to do."""
    left, right = synth.lung_masks()
    film = synth.chest_image(mask=left | right)
    gradient = np.tile(np.linspace(0, 255, synth.W).astype(np.uint8), (synth.H, 1))
    for stem, mask in (("gradient", gradient), ("film", film)):
        synth.save_png(tmp_path / "mine" / "images" / f"{stem}.png", film)
        synth.save_png(tmp_path / "mine" / "masks" / f"{stem}.jpg", mask)
    samples, _ = discover(tmp_path)
    good, bad = check_pairs(samples)
    assert good == [] and len(bad) == 2
    for s in samples:
        with pytest.raises(ValueError, match="mask is not binary: .* mid-gray") as e:
            load_pair(s)
        assert f"{s.id}.jpg" in str(e.value) and "Save the lung mask as 0/255 PNG" in str(e.value)


def test_binary_mask_tolerance_and_threshold():
    """JPEG: lung from half the mask's level up (2*raw >= hi, no uint8 overflow); mid-gray pixels
    (hi/4..3*hi/4) at the outline are blur, refused past 1% of the pixels farther than 2 px from
    it; a 0/1 JPEG is named as such. Lossless files keep the strict check (0 and one other)."""
    from lungseg.pairs import binary_mask

    raw = np.zeros((100, 100), np.uint8)
    raw[:, 50:] = 250
    raw[:, 47:50] = (70, 100, 124)  # blur at the outline: 6% of the pixels mid-gray, accepted
    raw[:, 50:53] = (125, 150, 190)
    raw[70:80, 10:20] = 100  # 100 px (1.0%) mid-gray far from the outline: at the limit
    mask = binary_mask(raw, Path("m.jpg"))
    assert mask.dtype == np.uint8 and mask.sum() == 50 * 100 and mask[:, 50:].all()
    raw[80, 10:20] = 100  # 110 px: 1.1%
    with pytest.raises(
        ValueError, match=r"m\.jpeg: mask is not binary: 1\.1% of its pixels are mid-gray "
        r"\(63\.\.187\) away from the mask's outline"
    ):  # fmt: skip
        binary_mask(raw, Path("m.jpeg"))
    red = np.zeros((40, 40), np.uint8)  # a red mask read as gray: 76, threshold 38
    red[:, 20:] = 76
    red[:, 19], red[:, 20] = 37, 38
    np.testing.assert_array_equal(binary_mask(red, Path("m.jpg"))[0], [0] * 20 + [1] * 20)
    for dark in (np.eye(20, dtype=np.uint8) * 2, np.pad(np.full((9, 9), 15, np.uint8), 5)):
        with pytest.raises(ValueError, match=r"at most (2|15) bright \(under 16\): a 0/1 mask"):
            binary_mask(dark, Path("m.jpg"))
    assert binary_mask(np.pad(np.full((9, 9), 16, np.uint8), 5), Path("m.jpg")).sum() == 81
    assert not binary_mask(np.zeros((9, 9), np.uint8), Path("m.jpg")).any()  # empty: load_pair
    with pytest.raises(ValueError, match=r"not binary \(8 gray levels\)"):
        binary_mask(raw, Path("m.png"))
    np.testing.assert_array_equal(binary_mask(np.eye(3, dtype=np.uint8), Path("m.tif")), np.eye(3))


def _jpeg(path: Path, array: np.ndarray, quality: int = 75) -> Path:
    Image.fromarray(array).save(path, quality=quality)
    return path


@pytest.mark.parametrize("color", [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 0, 0), (255,) * 3])
def test_coloured_jpeg_masks_load_as_their_png_does(tmp_path, synth, color):
    """A red/green/blue mask reads as gray 76/150/29 (dark red 38): thresholded at half its own
    level, not at 128, and not refused for the ringing JPEG leaves around it (blue's brightest
    pixel is 42 at quality 75), like the same mask saved as PNG."""
    from lungseg.imageio import read_mask
    from lungseg.pairs import binary_mask

    left, right = synth.lung_masks(256, 200)
    truth = (left | right).astype(bool)
    rgb = np.zeros((*truth.shape, 3), np.uint8)
    rgb[truth] = color
    Image.fromarray(rgb).save(tmp_path / "m.png")
    np.testing.assert_array_equal(binary_mask(read_mask(tmp_path / "m.png"), Path("m.png")), truth)
    for quality in (50, 75, 95):
        path = _jpeg(tmp_path / f"m{quality}.jpg", rgb, quality)
        mask = binary_mask(read_mask(path), path).astype(bool)
        assert (mask & truth).sum() / (mask | truth).sum() > 0.99, quality


@pytest.mark.parametrize("size", [128, 96, 64])
def test_small_antialiased_jpeg_masks_are_accepted(tmp_path, synth, size):
    """Masks shrunk with area averaging, then JPEG'd: over 1% of their pixels are mid-gray, all
    along the outline (more, the smaller the image); only those farther than 2 px from it
    count, so they load at any size. The same mask as PNG keeps the strict refusal."""
    import cv2

    from lungseg.imageio import read_mask
    from lungseg.pairs import binary_mask

    left, right = synth.lung_masks(512, 512)
    drawn = ((left | right) * 255).astype(np.uint8)
    small = cv2.resize(drawn, (size, size), interpolation=cv2.INTER_AREA)
    truth = cv2.resize(drawn, (size, size), interpolation=cv2.INTER_NEAREST) > 0
    for quality in (75, 95):
        path = _jpeg(tmp_path / f"m{quality}.jpg", small, quality)
        raw = read_mask(path)
        assert np.mean((raw >= 64) & (raw <= 191)) > 0.01  # the old fixed limit refused it
        mask = binary_mask(raw, path).astype(bool)
        assert (mask & truth).sum() / (mask | truth).sum() > 0.9
    synth.save_png(tmp_path / "m.png", small)
    with pytest.raises(ValueError, match="not binary"):
        binary_mask(read_mask(tmp_path / "m.png"), tmp_path / "m.png")


def _real_film() -> np.ndarray:
    films = sorted((SHARED / "chest-xray-masks" / "CXR_png").glob("*.png"))
    if not films:
        pytest.skip("../shared/data not present")
    return np.asarray(Image.open(films[0]).convert("L"))


@pytest.mark.parametrize("what", ["film", "film128", "gradient", "gradient64", "probability"])
def test_films_gradients_and_probability_maps_saved_as_jpeg_masks_are_refused(
    tmp_path, synth, what
):
    """Gray inside, not only at an outline: a real film (full size and shrunk to 128 px), a
    smooth gradient, a probability map (a mask blurred over ~20 px) saved as JPEG masks."""
    import cv2

    from lungseg.imageio import read_mask
    from lungseg.pairs import binary_mask

    if what.startswith("film"):
        gray = _real_film()
        if what == "film128":
            gray = cv2.resize(gray, (128, 128), interpolation=cv2.INTER_AREA)
    elif what.startswith("gradient"):
        n = 64 if what == "gradient64" else 256
        gray = np.tile(np.linspace(0, 255, n).astype(np.uint8), (n, 1))
    else:
        left, right = synth.lung_masks(256, 256)
        prob = cv2.GaussianBlur((left | right).astype(np.float32), (0, 0), 8)
        gray = (prob * 255).astype(np.uint8)
    path = _jpeg(tmp_path / "m.jpg", gray)
    with pytest.raises(ValueError, match=r"mask is not binary: .* mid-gray .* a film or a prob"):
        binary_mask(read_mask(path), path)


@pytest.mark.parametrize("orient", [["L", "H"], ["R", "F"], ["R", "H"]])
def test_a_dicom_displayed_turned_is_paired_upright_as_predict_segments_it(tmp_path, orient):
    """A film stored upside down and/or mirrored, its header saying so (PatientOrientation), with
    its mask drawn as the film is displayed: train and evaluate get both turned upright, the
    grid predict runs the model on (`preprocess.upright`)."""
    from dicomfiles import write_dicom

    from lungseg.datasets import Sample
    from lungseg.phantom import make_phantom

    ph = make_phantom(96, 0)
    rows, cols = -1 if orient[1] == "H" else 1, -1 if orient[0] == "R" else 1
    upright = np.round(ph.image * 4095)
    film = write_dicom(tmp_path / "f.dcm", upright[::rows, ::cols], PatientOrientation=orient)
    Image.fromarray(ph.lungs[::rows, ::cols] * 255).save(tmp_path / "f_mask.png")
    image, mask = load_pair(Sample("x", "f", film, [tmp_path / "f_mask.png"]))
    np.testing.assert_array_equal(mask, ph.lungs)
    np.testing.assert_allclose(image, (upright - upright.min()) / np.ptp(upright), atol=1e-6)
