"""nervseg.bench: measures what it says, in-process on tiny random-weight models."""

from __future__ import annotations

import pytest

from nervseg import bench


def assert_ratio_of_rounded(r: dict) -> None:
    """The ratio (3 decimals) is the quotient of the medians (0.1 ms each) within what their rounding allows."""
    a, b = r["onnx_predict_ms_median"], r["torch_forward_ms_median"]
    slack = 5e-4 + (a / b) * (0.05 / a + 0.05 / b) * 1.01
    assert abs(r["onnx_predict_over_torch_forward"] - a / b) <= slack


def test_bench_one_measures_both_engines(tmp_path):
    card = bench._random_card("unet", tmp_path, size=(64, 64))  # exported to ONNX as well
    r = bench.bench_one(card.id, tmp_path, runs=3, batch=2, video=None, video_frames=None, random_weights=True,
                        threads=1)
    assert r["weights"] == "random weights" and sorted(r["engines"]) == ["onnx", "torch"] and r["threads"] == 1
    for e in ("torch", "onnx"):
        assert r[f"{e}_forward_ms_p90"] >= r[f"{e}_forward_ms_median"] > 0
        assert r[f"{e}_predict_ms_p90"] >= r[f"{e}_predict_ms_median"] > 0
        assert r[f"{e}_fps_batched"] > 0
    assert_ratio_of_rounded(r)
    assert r["parameters"] > 0 and r["weights_mb"] > 0
    assert r["rss_peak_mb"] >= r["rss_after_import_mb"] > 0
    table = bench.format_table([r, {"model": "broken", "error": "boom"}])
    assert table.count("random-unet (random weights)") == 2 and "ERROR: boom" in table


def test_a_card_without_a_graph_is_measured_on_torch_only(random_model_dir):
    r = bench.bench_one("random-unet", random_model_dir, runs=2, batch=2, video=None, video_frames=None,
                        random_weights=True, threads=1)
    assert r["engines"] == ["torch"] and "no ONNX graph" in r["engines_skipped"]["onnx"]
    assert "onnx_predict_over_torch_forward" not in r
    assert "not measured: no ONNX graph" in bench.format_table([r])


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--video" in out and "--engines" in out


@pytest.mark.slow
def test_main_measures_each_engine_in_its_own_process_and_merges_rounds(tmp_path, capsys):
    out = tmp_path / "bench.json"
    [r] = bench.main(["--arch", "unet", "--size", "64", "64", "--runs", "2", "--batch", "2", "--threads", "1",
                      "--rounds", "2", "--json", str(out)])
    assert "error" not in r, r
    assert sorted(r["engines"]) == ["onnx", "torch"] and r["rounds"] == 2
    for e in ("torch", "onnx"):
        rounds = r[f"{e}_rounds"]
        assert len(rounds) == 2
        assert r[f"{e}_predict_ms_median"] == pytest.approx(
            sorted(x["predict_ms_median"] for x in rounds)[0] / 2 + sorted(x["predict_ms_median"] for x in rounds)[1] / 2,
            abs=0.01)
        assert r[f"{e}_rss_peak_mb"] > 0  # each engine's own process
    assert_ratio_of_rounded(r)
    assert "random-unet (random weights)" in capsys.readouterr().out and out.is_file()
