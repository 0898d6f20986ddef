"""Sample scans: bundled demo pairs, public images downloaded on request, local shared-data pairs.

`sample_images/samples.json` lists the usgra-seg image/mask pairs shipped in the
repository (unchanged CC-BY copies, see sample_images/ATTRIBUTION.md); `bundled()`
reads it and `bundled_stems()` gives the stems training must leave out.
`sample_images/manifest.json` lists public CC-BY scans (name, URL, licence,
attribution, sha256). `fetch` downloads one into the git-ignored cache
`sample_images/cache/` and checks its sha256; nothing is downloaded unless asked.
$NERVSEG_SAMPLES_URL replaces the manifest's base URL (a mirror, or a local
test server); $NERVSEG_SAMPLES_CACHE moves the cache.
"""

from __future__ import annotations

import functools
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nervseg import PROJECT_ROOT, data_root
from nervseg.files import write_atomic
from nervseg.io.hashing import sha256_bytes

MANIFEST = PROJECT_ROOT / "sample_images" / "manifest.json"
BUNDLED = PROJECT_ROOT / "sample_images" / "samples.json"
Progress = Callable[[int, int], None]  # (bytes done, bytes total; 0 when unknown)


class SampleError(RuntimeError):
    """A sample cannot be provided; the message says why."""


class OfflineError(SampleError):
    """The sample server cannot be reached (no network, or the server is down)."""


@dataclass(frozen=True)
class Sample:
    """One downloadable public scan from the manifest."""

    name: str
    title: str
    path: str  # relative to the base URL
    url: str
    sha256: str
    licence: str
    attribution: str
    bytes: int = 0


@dataclass(frozen=True)
class LocalSample:
    """An image (and its ground-truth mask, if any) from the shared data folder."""

    title: str
    dataset: str
    image: Path
    mask: Path | None
    licence: str


@dataclass(frozen=True)
class BundledSample:
    """One demo image/mask pair shipped in sample_images/ (listed in samples.json)."""

    stem: str
    title: str  # plain words (samples.json `title`), the stem and the region when known
    image: Path
    mask: Path
    image_sha256: str
    size_px: tuple[int, int]  # (width, height)
    structures: tuple[str, ...]
    description: str
    region: str | None
    dataset: str
    licence: str
    attribution: str


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SampleError(f"sample list {path.name} cannot be read: {e}") from None


def bundled(path: Path | None = None) -> list[BundledSample]:
    """The demo pairs listed in samples.json whose files are present ([] when the list is absent)."""
    path = Path(path) if path else BUNDLED
    if not path.is_file():
        return []
    d = _read_json(path)
    out = []
    for s in d.get("samples", []):
        image, mask = path.parent / s["image"], path.parent / s["mask"]
        if not (image.is_file() and mask.is_file()):
            continue
        region = s.get("region")
        title = (f"{s['title']} ({s['stem']})" if s.get("title") else f"{d.get('dataset', 'sample')} {s['stem']}") \
            + (f" · {region}" if region else "")
        out.append(BundledSample(
            s["stem"], title, image, mask, s.get("image_sha256", ""), tuple(s.get("size_px", (0, 0))),
            tuple(s.get("structures", ())), s.get("description", ""), region, d.get("dataset", ""),
            d.get("licence", ""), d.get("attribution", ""),
        ))
    return out


def bundled_stems(path: Path | None = None) -> list[str]:
    """The stems of the bundled samples (training leaves them out of every fold)."""
    path = Path(path) if path else BUNDLED
    return list(_read_json(path).get("stems", [])) if path.is_file() else []


def manifest(path: Path | None = None) -> list[Sample]:
    """The samples listed in the manifest, with URLs under the active base URL."""
    path = Path(path) if path else MANIFEST
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SampleError(f"sample manifest {path.name} cannot be read: {e}") from None
    base = base_url(d.get("base_url", ""))
    out = []
    for s in d.get("samples", []):
        url = base + s["path"] if base else s["url"]
        out.append(Sample(s["name"], s.get("title", s["name"]), s["path"], url, s["sha256"],
                          s.get("licence", ""), s.get("attribution", ""), int(s.get("bytes", 0))))
    return out


def base_url(default: str) -> str:
    """$NERVSEG_SAMPLES_URL (with a trailing slash) if set, else `default`."""
    env = os.environ.get("NERVSEG_SAMPLES_URL")
    if not env:
        return default
    return env if env.endswith("/") else env + "/"


def cache_dir() -> Path:
    env = os.environ.get("NERVSEG_SAMPLES_CACHE")
    return Path(env) if env else PROJECT_ROOT / "sample_images" / "cache"


def cached_path(sample: Sample) -> Path | None:
    """The cached copy of `sample` if present and intact."""
    p = cache_dir() / sample.name
    if p.is_file() and sha256_bytes(p.read_bytes()) == sample.sha256:
        return p
    return None


def fetch(sample: Sample, progress: Progress | None = None, timeout: float = 15.0) -> Path:
    """The cached file of `sample`, downloading it first if needed (sha256 checked).

    Raises OfflineError when the server cannot be reached, SampleError when the
    download is incomplete or its content differs from the manifest.
    """
    hit = cached_path(sample)
    if hit:
        if progress:
            progress(hit.stat().st_size, hit.stat().st_size)
        return hit
    try:
        with urllib.request.urlopen(sample.url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            chunks, done = [], 0
            while True:
                chunk = resp.read(64 * 1024)
                if not chunk:
                    break
                chunks.append(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as e:
        raise SampleError(f"{sample.name}: the server answered {e.code} ({e.reason}).") from None
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise OfflineError(
            f"{sample.name}: cannot reach {sample.url.split('/')[2]} ({reason}). "
            "Are you offline? Upload a scan instead, or try again later."
        ) from None
    data = b"".join(chunks)
    if sha256_bytes(data) != sample.sha256:
        raise SampleError(f"{sample.name}: the downloaded file differs from the manifest (sha256 mismatch); not used.")
    target = cache_dir()
    write_atomic(target / sample.name, lambda f: f.write(data), binary=True)
    return target / sample.name


def local_samples(per_dataset: int = 3, root: Path | None = None) -> list[LocalSample]:
    """A few image/mask pairs of every set of every dataset spec found under the data folder (else []).

    Listed once per process and folder (a data folder holds thousands of files: 0.3 s here).
    """
    return list(_local_samples(per_dataset, Path(root) if root else data_root()))


@functools.lru_cache(maxsize=4)
def _local_samples(per_dataset: int, root: Path) -> tuple[LocalSample, ...]:
    from nervseg.data.datasets import TASKS

    out = []
    for ds in TASKS.values():
        for set_name, pair_set in ds.sets.items():
            pairs = pair_set.pairs(root)
            label = pair_set.folder.split("/")[0] + ("" if set_name == "main" else f" {set_name}")
            step = max(1, len(pairs) // per_dataset) if pairs else 1
            for p in pairs[::step][:per_dataset]:
                out.append(LocalSample(f"{label} {p.stem}", label, p.image, p.mask, ds.credit))
    return tuple(out)


@functools.lru_cache(maxsize=32)
def thumbnail_png(stem: str, width: int = 320, height: int = 280) -> bytes:
    """A small PNG of a bundled sample for a gallery (no more pixels than shown), made once per process."""
    from nervseg.display.viz import letterbox, png_bytes
    from nervseg.io.readers import load_image

    sample = next((s for s in bundled() if s.stem == stem), None)
    if sample is None:
        raise SampleError(f"no bundled sample {stem!r}")
    return png_bytes(letterbox(load_image(sample.image), (width, height)))
