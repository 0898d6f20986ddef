"""Sample manifest and on-request download, against a local HTTP server serving ../shared/data."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading

import pytest

from nervseg.data import samples


@pytest.fixture
def server(data_root):
    """http.server on 127.0.0.1 serving the shared data folder; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(data_root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NERVSEG_SAMPLES_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_manifest_lists_public_cc_by_images():
    items = samples.manifest()
    assert len(items) >= 3
    for s in items:
        assert s.url.startswith("https://raw.githubusercontent.com/tmkand/usgra-seg/main/dataset/images/")
        assert s.licence == "CC-BY 4.0" and "Kandaouroff" in s.attribution
        assert len(s.sha256) == 64 and s.url.endswith(s.path)


def test_manifest_hashes_match_the_shared_copies(data_root):
    for s in samples.manifest():
        local = data_root / "usgra-seg" / s.path
        assert hashlib.sha256(local.read_bytes()).hexdigest() == s.sha256, s.name


def test_fetch_downloads_with_progress_then_uses_the_cache(server, cache, monkeypatch, data_root):
    monkeypatch.setenv("NERVSEG_SAMPLES_URL", server + "usgra-seg")
    sample = samples.manifest()[0]
    assert sample.url.startswith("http://127.0.0.1:")
    calls = []
    path = samples.fetch(sample, progress=lambda done, total: calls.append((done, total)))
    assert path.parent == cache
    assert path.read_bytes() == (data_root / "usgra-seg" / sample.path).read_bytes()
    assert calls and calls[-1][0] == calls[-1][1] == path.stat().st_size
    # now offline: the cached, verified copy is still served
    monkeypatch.setenv("NERVSEG_SAMPLES_URL", "http://127.0.0.1:9/")
    assert samples.fetch(samples.manifest()[0]) == path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_raises_a_typed_readable_error(cache, monkeypatch):
    monkeypatch.setenv("NERVSEG_SAMPLES_URL", f"http://127.0.0.1:{_closed_port()}/")
    with pytest.raises(samples.OfflineError, match="offline"):
        samples.fetch(samples.manifest()[0], timeout=3)
    assert not cache.exists() or not any(cache.iterdir())


def test_wrong_content_is_refused(tmp_path, cache, monkeypatch):
    """A server returning other bytes under the same name: sha256 mismatch, nothing cached."""
    (tmp_path / "www" / "images").mkdir(parents=True)
    sample = samples.manifest()[0]
    (tmp_path / "www" / sample.path).write_bytes(b"not the scan")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("NERVSEG_SAMPLES_URL", f"http://127.0.0.1:{httpd.server_address[1]}/")
        with pytest.raises(samples.SampleError, match="sha256"):
            samples.fetch(samples.manifest()[0])
        monkeypatch.setenv("NERVSEG_SAMPLES_URL", f"http://127.0.0.1:{httpd.server_address[1]}/nowhere/")
        with pytest.raises(samples.SampleError, match="404"):
            samples.fetch(samples.manifest()[0])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert samples.cached_path(sample) is None


def test_local_samples_pair_shared_images_with_masks(data_root):
    from nervseg.io.readers import check_pair, load_image, load_mask

    found = samples.local_samples(per_dataset=2)
    assert {s.dataset for s in found} >= {"usgra-seg", "kaggle-bp"}
    for s in found:
        assert s.image.is_file() and s.mask is not None
        check_pair(load_image(s.image), load_mask(s.mask))


def test_local_samples_empty_without_data(tmp_path):
    assert samples.local_samples(root=tmp_path / "absent") == []


# ---------------------------------------------------------------- bundled demo samples


def test_bundled_samples_are_unchanged_validation_pairs_with_their_licence():
    """Every bundled pair matches its listed sha256, is a validation image of every usgra card, has a mask."""
    from nervseg.io.readers import load_image, load_mask
    from nervseg.models.cards import available
    from nervseg.models.provenance import trained_on

    items = samples.bundled()
    assert 8 <= len(items) <= 12
    assert [s.stem for s in items] == samples.bundled_stems()
    folder = samples.BUNDLED.parent
    assert "Kandaouroff" in (folder / "ATTRIBUTION.md").read_text()
    assert "Attribution 4.0 International" in (folder / "LICENSE").read_text()
    usgra = [c for c in available() if c.task == "usgra"]
    for card in usgra:
        assert not any(trained_on(card, f"{s}.png") for s in samples.bundled_stems()), card.id
    for s in items:
        assert hashlib.sha256(s.image.read_bytes()).hexdigest() == s.image_sha256
        assert s.licence == "CC-BY 4.0" and "Kandaouroff" in s.attribution
        image, mask = load_image(s.image), load_mask(s.mask)
        assert image.shape == mask.shape == (s.size_px[1], s.size_px[0])
        assert "nerve" in s.structures and (mask == 1).any()
        assert ("vessel" in s.structures) == bool((mask == 2).any())


def test_bundled_samples_are_identical_to_the_shared_data(data_root):
    for s in samples.bundled():
        for kind, path in (("images", s.image), ("masks", s.mask)):
            assert path.read_bytes() == (data_root / "usgra-seg" / kind / path.name).read_bytes(), path


def test_bundled_list_missing_or_broken(tmp_path):
    assert samples.bundled(tmp_path / "absent.json") == [] and samples.bundled_stems(tmp_path / "absent.json") == []
    bad = tmp_path / "samples.json"
    bad.write_text("{not json")
    with pytest.raises(samples.SampleError, match="cannot be read"):
        samples.bundled(bad)


def test_no_bundled_sample_has_a_near_duplicate_among_training_images(data_root):
    """usgra-seg has near-duplicate frames: a sample whose near-copy was trained on would flatter the models."""
    import json

    from nervseg.data import folds
    from nervseg.data.datasets import TASKS
    from nervseg.models.cards import available
    from nervseg.models.provenance import trained_on

    stems, vectors = folds.similarity_vectors(TASKS["usgra"].pairs("main", data_root))
    groups = folds.similarity_groups(vectors, stems)
    for card in [c for c in available() if c.task == "usgra"]:
        for s in samples.bundled_stems():
            mates = [t for t in stems if groups[t] == groups[s] and t != s and trained_on(card, f"{t}.png")]
            assert not mates, f"{s} is a near-duplicate of training images {mates} of {card.id}"
    assert json.loads(samples.BUNDLED.read_text())["stems"] == samples.bundled_stems()
