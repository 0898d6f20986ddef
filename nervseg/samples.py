"""Sample scans: public images downloaded on request, and local shared-data pairs.

`sample_images/manifest.json` lists public CC-BY scans (name, URL, licence,
attribution, sha256). `fetch` downloads one into the git-ignored cache
`sample_images/cache/` and checks its sha256; nothing is downloaded unless asked.
$NERVSEG_SAMPLES_URL replaces the manifest's base URL (a mirror, or a local
test server); $NERVSEG_SAMPLES_CACHE moves the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import PROJECT_ROOT, data_root

MANIFEST = PROJECT_ROOT / "sample_images" / "manifest.json"
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_path(sample: Sample) -> Path | None:
    """The cached copy of `sample` if present and intact."""
    p = cache_dir() / sample.name
    if p.is_file() and _sha256(p.read_bytes()) == sample.sha256:
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
    if _sha256(data) != sample.sha256:
        raise SampleError(f"{sample.name}: the downloaded file differs from the manifest (sha256 mismatch); not used.")
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / (sample.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target / sample.name)
    return target / sample.name


def local_samples(per_dataset: int = 3, root: Path | None = None) -> list[LocalSample]:
    """A few image/mask pairs from the shared data folder, if it exists (else [])."""
    from .data import find_pairs

    root = Path(root) if root else data_root()
    sources = [
        ("usgra-seg", root / "usgra-seg", "CC-BY 4.0, Timm Kandaouroff"),
        ("kaggle-bp", root / "kaggle-bp" / "images-256", "Kaggle 2016 competition data, research use only"),
        ("kaggle-bp full-res", root / "kaggle-bp" / "fullres", "Kaggle 2016 competition data, research use only"),
    ]
    out = []
    for dataset, folder, licence in sources:
        if not folder.is_dir():
            continue
        pairs = find_pairs(folder)
        step = max(1, len(pairs) // per_dataset) if pairs else 1
        for p in pairs[::step][:per_dataset]:
            out.append(LocalSample(f"{dataset} {p.stem}", dataset, p.image, p.mask, licence))
    return out
