"""nervseg.bench: measures what it says, in-process on a tiny random-weight model."""

from __future__ import annotations

import pytest

from nervseg import bench


def test_bench_one_random_model(random_model_dir):
    r = bench.bench_one("random-unet", random_model_dir, runs=3, batch=2, video=None, video_frames=None,
                        random_weights=True)
    assert r["weights"] == "random weights"
    assert r["latency_ms_p90"] >= r["latency_ms_median"] > 0
    assert r["fps_batched"] > 0 and r["fps_single"] > 0
    assert r["parameters"] > 0 and r["weights_mb"] > 0
    assert r["rss_peak_mb"] >= r["rss_after_import_mb"] > 0
    table = bench.format_table([r, {"model": "broken", "error": "boom"}])
    assert "random-unet" in table and "random weights" in table and "ERROR: boom" in table


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0 and "--video" in capsys.readouterr().out
