"""Hostile files (generated here, see tests/hostile.py), each read in a subprocess with a memory watchdog.

Each case runs in a fresh Python with an address-space rlimit (a runaway decode
fails fast instead of taking the machine) and reports its peak RSS
(VmHWM); the test asserts a typed error, or a correct result, within a
memory bound well under the issue's 2.5 GB. Time is bounded by the subprocess
timeout only (speed belongs in benchmarks).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import hostile
import numpy as np
import pytest

from nervseg.evaluate import batch
from nervseg.io.readers import InputError, Limits, load_image, load_mask

ROOT = Path(__file__).resolve().parent.parent
AS_LIMIT = 4 << 30  # address space of the child; numpy + PIL + cv2 imports need well under 1 GB
# glibc raises its mmap threshold after large frees, so freed arrays stay in the heap and RSS
# keeps the high-water mark; a fixed threshold makes the peak follow the live arrays.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, ({as_limit}, {as_limit}))

    def hwm():  # this process's own peak RSS in kB (ru_maxrss would carry the parent's over exec)
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])

    sys.path.insert(0, {root!r})
    import numpy as np, PIL.Image, cv2, pydicom  # imported before the baseline is taken
    from nervseg.evaluate import batch
    from nervseg.io import readers as nio
    from nervseg.io.readers import InputError
    data = open({path!r}, "rb").read()
    base = hwm()
    t0 = time.perf_counter()
    out = {{"error": None, "message": "", "result": None}}
    try:
        out["result"] = repr({call})[:200]
    except Exception as e:
        out["error"], out["message"] = type(e).__name__, str(e)
    out["seconds"] = time.perf_counter() - t0
    peak = hwm()
    out["peak_mb"], out["added_mb"] = peak / 1024, (peak - base) / 1024
    print(json.dumps(out))
""")


def run_hostile(tmp_path: Path, data: bytes, call: str, timeout: float = 60) -> dict:
    """Run `call` (an expression using `data`, `nio`, `batch`) on `data` in a watched subprocess."""
    path = tmp_path / "hostile.bin"
    path.write_bytes(data)
    code = CHILD.format(as_limit=AS_LIMIT, root=str(ROOT), path=str(path), call=call)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", **MALLOC})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{call[:60]}: {out['error']} peak {out['peak_mb']:.0f} MB (+{out['added_mb']:.0f}) {out['seconds']:.2f} s")
    return out


def assert_refused(out: dict, pattern: str, added_mb: float = 300) -> None:
    assert out["error"] == "InputError", out
    assert pattern in out["message"], out["message"]
    assert out["added_mb"] < added_mb, out


# ---------------------------------------------------------------- DICOM


@pytest.fixture(scope="module")
def deflate_bomb() -> bytes:
    data = hostile.deflate_dicom(1000, 1000, 2100)  # inflates to 2.1 GB
    assert len(data) < 3 * hostile.MIB
    return data


@pytest.mark.parametrize("call", ["nio.load_image(data, 'bomb.dcm')", "nio.load_frames(data, 'bomb.dcm')",
                                  "nio.image_size(data, 'bomb.dcm')"])
def test_deflate_dicom_bomb_refused_before_inflating(tmp_path, deflate_bomb, call):
    out = run_hostile(tmp_path, deflate_bomb, call)
    if call.startswith("nio.image_size"):  # the header alone, read from the first inflated MB
        assert out["error"] is None and out["result"] == "(1000, 1000, 2100)" and out["added_mb"] < 50, out
    else:
        assert_refused(out, "bomb.dcm: ", added_mb=50)
        assert "expand" in out["message"] or "too large" in out["message"]


def test_deflate_dicom_holding_more_than_its_header_says(tmp_path):
    data = hostile.deflate_dicom_lying((100, 100, 1), 1 << 30)
    assert_refused(run_hostile(tmp_path, data, "nio.load_image(data, 'lie.dcm')"), "expands beyond", added_mb=50)


@pytest.mark.parametrize("call,pattern", [("nio.load_frames(data, 'h.dcm')", "damaged"),
                                          ("nio.load_image(data, 'h.dcm')", "damaged")])
def test_dicom_header_claiming_gigabytes_refused(tmp_path, call, pattern):
    data = hostile.header_only_dicom(6000, 6000, 60)  # claims 4.3 GB of 16-bit pixels in 1 kB
    assert_refused(run_hostile(tmp_path, data, call), pattern, added_mb=50)


@pytest.mark.parametrize("loader", ["load_image", "load_image_data", "load_frames"])
def test_dicom_declaring_more_frames_than_it_holds_is_refused_as_damaged(tmp_path, loader):
    """A header declaring 100,000 frames over one frame of pixel data: every loader says damaged."""
    import pydicom
    from test_io import _dicom

    from nervseg import io as nio

    p = tmp_path / "short.dcm"
    _dicom(p, (np.arange(20 * 30).reshape(1, 20, 30) % 200).astype(np.uint8))
    ds = pydicom.dcmread(p)
    ds.NumberOfFrames = 100_000
    ds.save_as(p)
    with pytest.raises(nio.InputError, match="damaged.*100000 frame.*holds 1"):
        getattr(nio, loader)(p.read_bytes(), "short.dcm")


def test_small_deflated_dicom_still_reads(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian
    from test_io import _dicom

    frames = (np.arange(3 * 20 * 30).reshape(3, 20, 30) % 200).astype(np.uint8)
    p = tmp_path / "deflated.dcm"
    _dicom(p, frames, frame_time_ms=40)
    import pydicom

    ds = pydicom.dcmread(p)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(p, enforce_file_format=True)
    assert b"1.2.840.10008.1.2.1.99" in p.read_bytes()[:400]
    from nervseg.io.readers import load_frames

    clip = load_frames(p)
    np.testing.assert_array_equal(clip.frames, frames)
    np.testing.assert_array_equal(load_image(p), frames[0])


# ---------------------------------------------------------------- zips


def test_zip_member_lying_about_its_size_stops_at_the_declared_size(tmp_path):
    data = hostile.zip_lying_member(declared=hostile.MIB, inflated=1 << 30)  # 1 MB declared, 1 GiB inside
    assert len(data) < 2 * hostile.MIB
    out = run_hostile(tmp_path, data, "[len(b) for _, b in batch.read_zip(data, 'lie.zip')]")
    assert out["error"] is None and out["result"] == f"[{hostile.MIB}]" and out["added_mb"] < 50, out
    out = run_hostile(tmp_path, data, "batch.pair_zip(data, 'lie.zip')")
    assert_refused(out, "lie.zip: no image has a matching mask", added_mb=50)


def test_zip_overlapping_entries_refused(tmp_path):
    data = hostile.zip_overlapping(copies=20, inflated=50 * hostile.MIB)
    out = run_hostile(tmp_path, data, "batch.read_zip(data, 'overlap.zip')")
    assert_refused(out, "overlap", added_mb=20)


def test_zip_declaring_too_much_refused():
    data = hostile.zip_lying_member(declared=600 * hostile.MIB, inflated=hostile.MIB)
    with pytest.raises(InputError, match="too large once unpacked"):
        batch.read_zip(data, "huge.zip")


def test_many_large_pairs_refused_from_their_headers(tmp_path):
    data = hostile.big_pairs_zip(n=12, side=1500)  # 27 Mpx of images, a few kB zipped
    limits = "batch.ZipLimits(max_batch_pixels=10_000_000)"
    out = run_hostile(tmp_path, data, f"batch.pair_zip(data, 'pairs.zip', {limits})")
    assert_refused(out, "the batch is too large", added_mb=60)
    assert len(batch.pair_zip(data, "pairs.zip").pairs) == 12  # the default limit takes it


def test_batch_scoring_decodes_one_pair_at_a_time(tmp_path):
    """Eight large pairs cost about what one does: each is decoded, scored and dropped in turn."""
    call = ("batch.score_batch(lambda m, p, img: __import__('types').SimpleNamespace(mask=(img > 1000).astype("
            "np.uint8), seconds=0.0), ['m'], batch.pair_zip(data, 'pairs.zip').pairs, "
            "lambda m: ['background', 'nerve'])[0][-1]['dice']")
    added = {}
    for n in (1, 8):
        out = run_hostile(tmp_path, hostile.big_pairs_zip(n=n, side=3000), call)  # 18 MB per pair decoded
        assert out["error"] is None and out["result"] == "0.0", out
        added[n] = out["added_mb"]
    assert added[8] < added[1] * 1.3 + 30, added  # all eight decoded first would add 7 x 18 MB more


# ---------------------------------------------------------------- images


def test_rgb_png_near_the_pixel_limit_decodes_without_float_copies(tmp_path):
    data = hostile.rgb_png(6300, 6300)  # 39.7 Mpx, under the 40 Mpx limit
    out = run_hostile(tmp_path, data, "nio.load_image(data, 'rgb.png').shape")
    assert out["error"] is None and out["result"] == "(6300, 6300)", out
    assert out["added_mb"] < 600, out  # the float64 path took about 2 GB


def test_float_tiff_with_nan_and_inf_is_windowed_on_its_finite_values():
    values = np.linspace(-1.0, 1.0, 40 * 50).reshape(40, 50)
    values[0, :5], values[1, :5], values[2, :5] = np.nan, np.inf, -np.inf
    out = load_image(hostile.float_tiff(values), "float.tif")
    finite = np.isfinite(values)
    assert out[finite].min() == 0 and out[finite].max() == 255  # not a black image
    assert (out[0, :5] == 0).all() and (out[1, :5] == 255).all() and (out[2, :5] == 0).all()
    with pytest.raises(InputError, match="nan.tif.*no finite pixel values"):
        load_image(hostile.float_tiff(np.full((8, 8), np.nan)), "nan.tif")


def test_cmyk_jpeg_mask_is_read_by_its_grey_level():
    """A CMYK JPEG mask used to read as all zeros (the cyan channel); now its grey level counts."""
    try:
        mask = load_mask(hostile.cmyk_jpeg_mask(), "mask.jpg")
    except InputError as e:  # blurred edges are refused by name, never read as an empty mask
        assert "mask.jpg" in str(e) and "JPEG" in str(e)
    else:
        expected = np.zeros((32, 32), np.uint8)
        expected[8:24, 8:24] = 1
        np.testing.assert_array_equal(mask, expected)
    import io

    from PIL import Image

    arr = np.zeros((16, 16), np.uint8)
    arr[4:12, 4:12] = 255
    buf = io.BytesIO()
    Image.fromarray(arr).convert("CMYK").save(buf, format="TIFF")
    np.testing.assert_array_equal(load_mask(buf.getvalue(), "mask.tif"), (arr == 255).astype(np.uint8))


def test_clip_total_pixels_capped_before_decoding(tmp_path):
    from test_io import _mp4

    from nervseg.io.readers import load_frames

    p = tmp_path / "clip.mp4"
    _mp4(p, n=6, size=(48, 64))
    with pytest.raises(InputError, match="clip.mp4.*too large.*million pixels in all"):
        load_frames(p, limits=Limits(max_total_pixels=48 * 64 * 5))
    assert len(load_frames(p, limits=Limits(max_total_pixels=48 * 64 * 6))) == 6


def test_non_utf8_names_are_readable_in_errors(tmp_path):
    name = b"scan\xff.png".decode("utf-8", "surrogateescape")
    p = tmp_path / name
    p.write_bytes(b"not an image")
    with pytest.raises(InputError) as e:
        load_image(p)
    assert "scan\ufffd.png" in str(e.value)
    str(e.value).encode("utf-8")  # printable and writable as UTF-8


# ---------------------------------------------------------------- model cards and weights


def _card_dir(random_model_dir, tmp_path, model_id="random-unet"):
    import shutil

    for suffix in (".json", ".safetensors"):
        shutil.copy(random_model_dir / f"{model_id}{suffix}", tmp_path / f"{model_id}{suffix}")
    return tmp_path


@pytest.mark.parametrize("content,pattern", [
    (b'{"id": "x", "name": "\xff\xfe"}', r"bad\.json cannot be read: it is not UTF-8"),
    (b"[1, 2]", r"bad\.json: expected a JSON object"),
    (b'{"id": "bad", "name": "n", "architecture": "unet", "classes": ["bg", "nerve"], "input_size": "abc"}',
     r"bad\.json: field 'input_size' must be \[height, width\]"),
    (b'{"id": "bad", "name": "n", "architecture": "unet", "classes": "nerve"}', r"bad\.json: field 'classes'"),
    (b'{"id": "bad", "name": 3, "architecture": "unet", "classes": ["bg", "nerve"]}', r"field 'name' must be text"),
    (b'{"id": "bad", "name": "n", "architecture": "unet", "classes": ["bg", "nerve"], "preprocess": []}',
     r"field 'preprocess' must be an object"),
    (b'{"id": "bad", "name": "n", "architecture": "unet", "classes": ["bg", "nerve"], '
     b'"validation": {"per_class": [0.5]}}', r"field 'validation' must map each class"),
])
def test_one_malformed_card_is_named_and_the_others_stay(random_model_dir, tmp_path, content, pattern):
    from nervseg.models.cards import ModelError, available, available_with_errors, get_card, read_card

    folder = _card_dir(random_model_dir, tmp_path)
    (folder / "bad.json").write_bytes(content)
    with pytest.raises(ModelError, match=pattern):
        read_card(folder / "bad.json")
    good, bad = available_with_errors(folder)
    assert [c.id for c in good] == ["random-unet"] and [c.id for c in available(folder)] == ["random-unet"]
    assert len(bad) == 1 and "bad.json" in str(bad[0])
    with pytest.raises(ModelError, match="bad.json"):
        get_card("bad", folder)


def test_weights_errors_say_what_is_wrong(random_model_dir, tmp_path):
    from nervseg.models.cards import ModelError, get_card, load_model, sha256_file

    folder = _card_dir(random_model_dir, tmp_path)
    card = get_card("random-unet", folder)
    weights = card.weights_path()
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # tampered: checksum
    with pytest.raises(ModelError) as e:
        load_model(card)
    assert "does not match its card" in str(e.value) and "architecture" not in str(e.value)
    weights.write_bytes(b"not safetensors at all")  # damaged, with a card updated to match it
    card.weights_sha256 = sha256_file(weights)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_model(card)
    weights.write_bytes(original)
    card.weights_sha256 = sha256_file(weights)
    card.architecture, card.encoder = "densenet", "densenet121"  # intact file, the card builds another net
    with pytest.raises(ModelError, match="do not fit the architecture"):
        load_model(card)
    weights.unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(card)


# ---------------------------------------------------------------- evaluate


def test_evaluate_non_utf8_names_and_no_partial_csv(random_model_dir, tmp_path):
    from nervseg.data.pairs import find_pairs
    from nervseg.evaluate.run import evaluate_pairs, write_csv
    from nervseg.inference.segmenter import load

    odd = b"scan\xff".decode("utf-8", "surrogateescape")
    img = (np.arange(64 * 64).reshape(64, 64) % 256).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 255
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"{odd}.png").write_bytes(hostile.png(img))
    (tmp_path / "data" / f"{odd}_mask.png").write_bytes(hostile.png(mask))
    pairs = find_pairs(tmp_path / "data")
    assert len(pairs) == 1
    rows = evaluate_pairs(load("random-unet", random_model_dir), pairs)["rows"]
    out = tmp_path / "out.csv"
    write_csv(rows, out)
    text = out.read_text(encoding="utf-8")
    assert "scan\ufffd.png" in text and len(text.splitlines()) == 1 + len(rows)
    bad = tmp_path / "bad.csv"
    with pytest.raises(ValueError):  # the second row has a field the first has not: fails mid-write
        write_csv([rows[0], {**rows[0], "extra": 1}], bad)
    assert not bad.exists() and not list(tmp_path.glob(".bad.csv.*"))


def test_byte_budget_evicts_oldest_entries_by_size():
    from nervseg.io.budget import ByteBudget, nbytes_of

    cleared = []
    budget = ByteBudget(max_bytes=100)
    for key, size in (("a", 40), ("b", 40), ("a", 40), ("c", 40)):  # "a" used again: "b" is oldest
        budget.admit((key,), size, lambda *args: cleared.append(args[0]))
    assert cleared == ["b"] and budget.nbytes == 80
    budget.admit(("huge",), 500, lambda *args: cleared.append(args[0]))  # larger than all: not kept
    assert cleared[-1] == "huge" and budget.nbytes <= 100
    assert nbytes_of(np.zeros((10, 10), np.float32)) == 400
