"""Metrics, Bjontegaard deltas, classic anchors with the bpp search, and ``tfycc evaluate``."""
import json
import math
import os

import numpy as np
import pytest

from conftest import PHOTO, rd_result
from tfycc import anchors, evaluate, metrics


def _noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----- image metrics ---------------------------------------------------------------
def test_psnr_identical_and_known_shift(photo):
    assert metrics.psnr(photo, photo) == math.inf
    a = np.full((8, 8, 3), 100, np.uint8)
    assert metrics.psnr(a, a + 10) == pytest.approx(20 * math.log10(255 / 10), abs=1e-9)


def test_ms_ssim_matches_tensorflow_and_identity(photo):
    import tensorflow as tf

    other = np.clip(photo.astype(int) + _noise(*photo.shape[:2]) // 16 - 8, 0, 255).astype(np.uint8)
    want = float(tf.image.ssim_multiscale(tf.constant(photo[None], tf.float32),
                                          tf.constant(other[None], tf.float32), 255.0)[0])
    assert metrics.ms_ssim(photo, other) == pytest.approx(want, abs=1e-4)
    assert metrics.ms_ssim(photo, photo) == pytest.approx(1.0, abs=1e-6)
    assert 0.5 < metrics.ms_ssim(photo, other) < 0.999
    assert metrics.ms_ssim_db(0.9) == pytest.approx(10.0)
    assert metrics.ms_ssim_db(1.0) == math.inf


def test_ycbcr_psnr_separates_luma_and_chroma():
    a = np.full((16, 16, 3), 128, np.uint8)
    y, c = metrics.ycbcr_psnr(a, a + 4)  # grey shift: luma changes, chroma does not
    assert c > 100 and y == pytest.approx(20 * math.log10(255 / 4), abs=0.01)  # c: float rounding


def test_ciede2000_known_cases():
    from skimage.color import rgb2lab

    grey = np.full((4, 4, 3), 119, np.uint8)
    assert metrics.ciede2000(grey, grey) == 0.0
    lighter = grey + 2
    # For neutral greys around L* = 50, CIEDE2000 reduces to |ΔL*| (S_L = 1, no chroma terms).
    dl = rgb2lab(lighter[:1, :1])[0, 0, 0] - rgb2lab(grey[:1, :1])[0, 0, 0]
    lbar = rgb2lab(lighter[:1, :1])[0, 0, 0] / 2 + rgb2lab(grey[:1, :1])[0, 0, 0] / 2
    s_l = 1 + 0.015 * (lbar - 50) ** 2 / math.sqrt(20 + (lbar - 50) ** 2)
    assert metrics.ciede2000(grey, lighter) == pytest.approx(abs(dl) / s_l, rel=1e-6)


def test_ciede2000_split_tells_lightness_from_colour_errors(photo):
    grey = np.full((4, 4, 3), 119, np.uint8)
    assert metrics.ciede2000_split(grey, grey) == (0.0, 0.0, 0.0)
    whole, colour, lightness = metrics.ciede2000_split(grey, grey + 2)  # lightness only
    assert whole == metrics.ciede2000(grey, grey + 2) and lightness == pytest.approx(whole, rel=1e-3)
    assert colour < 1e-3 * whole
    redder = photo.copy()
    redder[..., 0] = np.clip(redder[..., 0].astype(int) + 30, 0, 255)
    whole, colour, lightness = metrics.ciede2000_split(photo, redder)
    assert whole == metrics.ciede2000(photo, redder)
    assert colour > 2 * lightness > 0  # more red: mostly a colour error (a* up), some L*


def test_delta_ab_signs_colour_shifts():
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert metrics.delta_ab(grey, grey) == (0.0, 0.0)
    redder = grey.copy()
    redder[..., 0] += 30
    da, _ = metrics.delta_ab(grey, redder)
    assert da > 5
    bluer = grey.copy()
    bluer[..., 2] += 30
    _, db = metrics.delta_ab(grey, bluer)
    assert db < -5


# ----- Bjontegaard ------------------------------------------------------------------
def test_bd_rate_and_bd_quality_on_known_curves():
    rate = np.array([0.1, 0.15, 0.25, 0.5])
    psnr = np.array([25.0, 27.0, 29.0, 32.0])
    assert metrics.bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)
    assert metrics.bd_rate(rate, psnr, rate / 2, psnr) == pytest.approx(-50.0, abs=1e-6)
    assert metrics.bd_quality(rate, psnr, rate, psnr + 1.0) == pytest.approx(1.0, abs=1e-9)
    # Disjoint quality ranges: no honest number.
    assert metrics.bd_rate(rate, psnr, rate, psnr - 20) is None
    assert metrics.bd_quality(rate, psnr, rate * 100, psnr) is None
    assert metrics.bd_rate(rate[:1], psnr[:1], rate, psnr) is None


# ----- anchors and the bpp search -----------------------------------------------------
def _fake(integer, size_of):
    """An anchor whose file is ``size_of(x)`` zero bytes: a known, checkable search."""
    return anchors.Anchor("fake", "fake", lambda image, x: bytes(size_of(x)),
                          lambda data: np.zeros((8, 8, 3), np.uint8), 0, 100, integer, str)


def test_bpp_search_finds_the_largest_fitting_integer_setting():
    image = np.zeros((80, 100, 3), np.uint8)  # 8000 pixels: 0.5 bpp = 500 bytes
    fit = anchors.fit_to_bpp(_fake(True, lambda x: 7 * int(x) + 3), image, 0.5)
    assert fit.reached and fit.setting == 71 and len(fit.data) == 500
    assert fit.encodes <= 10  # bisection, not a linear scan


def test_bpp_search_float_setting_and_overshoot():
    image = np.zeros((80, 100, 3), np.uint8)
    fit = anchors.fit_to_bpp(_fake(False, lambda x: int(10 * x) + 50), image, 0.5)
    assert fit.reached and 490 <= len(fit.data) <= 500
    low = anchors.fit_to_bpp(_fake(True, lambda x: 1000 + int(x)), image, 0.5)
    assert not low.reached and low.setting == 0 and len(low.data) == 1000
    top = anchors.fit_to_bpp(_fake(True, lambda x: int(x)), image, 0.5)
    assert top.reached and top.setting == 100


@pytest.mark.parametrize("name", anchors.DEFAULT_ANCHORS)
def test_each_default_anchor_hits_a_target_at_or_under_it(name, photo):
    anchor = anchors.get_anchor(name)
    image = photo[:128, :192]
    cache = {}
    for target in (0.5, 1.0):
        fit = anchors.fit_to_bpp(anchor, image, target, cache)
        bpp = 8 * len(fit.data) / (128 * 192)
        if fit.reached:
            assert bpp <= target
        decoded = anchor.decode(fit.data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        assert metrics.psnr(image, decoded) > 15  # a real codec, not noise
    assert fit.reached  # 1 bpp is reachable for every anchor on this crop


def test_unknown_anchor_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown anchor 'bpg'.*jpeg"):
        anchors.get_anchor("bpg")


# ----- the command --------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    from PIL import Image

    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    d = tmp_path_factory.mktemp("two")
    Image.fromarray(photo[:176, :176]).save(d / "a.png")
    Image.fromarray(photo[-176:, -200:][:, ::-1]).save(d / "b.png")
    return d


def test_evaluate_two_images_two_anchors_and_a_model(two_images, exported_tiny, tmp_path, capsys):
    out = tmp_path / "rd"
    argv = ["--data", str(two_images), "--models", str(exported_tiny / "tiny"),
            "--offsets=-1,0", "--anchors", "jpeg,webp", "--bpp", "0.3,1.0", "--out", str(out),
            "--quiet"]
    assert evaluate.main(argv) == 0
    assert "Bjontegaard" in capsys.readouterr().out
    for name in ("tfycc-tiny", "jpeg", "webp"):
        r = json.loads((out / f"{name}.json").read_text())
        # CompressAI's schema: name, description, results of equal-length lists.
        assert isinstance(r["name"], str) and isinstance(r["description"], str)
        res = r["results"]
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "psnr-y", "psnr-cbcr", "ciede2000",
                    "delta-a", "delta-b"):
            assert len(res[key]) == 2, key
        assert len(r["per_image"]) == 4
        for row in r["per_image"]:
            size = os.path.getsize(two_images / (row["image"] + ".png"))
            assert row["bytes"] > 0 and size > 0
            if r["name"] != "tfycc-tiny" and row["reached"]:
                assert row["bpp"] <= row["target_bpp"]
    jpeg = json.loads((out / "jpeg.json").read_text())
    assert jpeg["results"]["target_bpp"] == [0.3, 1.0]
    assert jpeg["results"]["images"][1] == 2
    summary = (out / "summary.md").read_text()
    assert "| jpeg | ≤ 1 bpp | 2 |" in summary and "tfycc-tiny" in summary
    for plot in ("rd.png", "rd-psnr-rgb.png", "rd-ms-ssim-db.png", "rd-ciede2000.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --reuse keeps results that cover the same images and rate points.
    stamp = (out / "jpeg.json").stat().st_mtime_ns
    assert evaluate.main(argv + ["--reuse", "--no-plots"]) == 0
    assert (out / "jpeg.json").stat().st_mtime_ns == stamp
    assert "3 reused" in capsys.readouterr().out
    # ... but not a model's results once the model changed (another id).
    model = json.loads((out / "tfycc-tiny.json").read_text())
    model["model_id"] = "tfycc-tiny-older-version"
    (out / "tfycc-tiny.json").write_text(json.dumps(model))
    assert evaluate.main(argv + ["--reuse", "--no-plots"]) == 0
    assert "1 codec(s) run, 2 reused" in capsys.readouterr().out
    assert json.loads((out / "tfycc-tiny.json").read_text())["model_id"] != "tfycc-tiny-older-version"


def test_interrupted_evaluation_keeps_its_rows_and_reuse_goes_on(
        two_images, exported_tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "rd"
    argv = ["--data", str(two_images), "--models", str(exported_tiny / "tiny"), "--offsets=-1,0",
            "--anchors", "none", "--out", str(out), "--quiet", "--no-plots"]
    measure, calls = evaluate.image_metrics, []

    def interrupted_at_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return measure(*args)

    monkeypatch.setattr(evaluate, "image_metrics", interrupted_at_third)
    assert evaluate.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "tfycc-tiny.json.partial" in err and "--reuse" in err
    assert not (out / "tfycc-tiny.json").exists()
    partial = json.loads((out / "tfycc-tiny.json.partial").read_text())
    assert [(r["image"], r["offset"]) for r in partial["per_image"]] == [("a", -1), ("b", -1)]
    # --reuse measures only the two missing rows.
    calls.clear()
    assert evaluate.main(argv + ["--reuse"]) == 0
    assert len(calls) == 2
    result = json.loads((out / "tfycc-tiny.json").read_text())
    assert result["per_image"][:2] == partial["per_image"]  # the same rows, timings too
    assert result["results"]["images"] == [2, 2]
    assert not (out / "tfycc-tiny.json.partial").exists()


def test_evaluate_reads_kodak_through_tfds(two_images, tmp_path, capsys):
    import shutil

    manual = tmp_path / "manual"
    manual.mkdir()
    for i, name in enumerate(("a.png", "b.png"), 1):
        shutil.copy(two_images / name, manual / f"kodim{i:02d}.png")
    out = tmp_path / "rd"
    assert evaluate.main(["--tfds", "kodak", "--tfds-manual-dir", str(manual), "--tfds-data-dir",
                          str(tmp_path / "tfds"), "--models", "--anchors", "jpeg", "--bpp", "1",
                          "--out", str(out), "--quiet", "--no-plots"]) == 0
    rows = json.loads((out / "jpeg.json").read_text())["per_image"]
    assert [r["image"] for r in rows] == ["kodim01", "kodim02"]


@pytest.mark.parametrize("extra, message", [
    (["--anchors", "bpg"], "unknown anchor"),
    (["--bpp", "0.1,x"], "--bpp must be comma-separated numbers"),
    (["--models", "--anchors", "none"], "nothing to evaluate"),
])
def test_evaluate_bad_arguments_exit_2_with_one_line(extra, message, two_images, tmp_path, capsys):
    assert evaluate.main(["--data", str(two_images), "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_summary_reports_partial_targets_honestly():
    rows = [dict(image=i, target_bpp=t, reached=(t > 0.1 or i == "a"), bpp=t, **{
        k: 1.0 for k in evaluate.METRIC_KEYS}, encoding_time=0.0, decoding_time=0.0)
        for i in ("a", "b") for t in (0.1, 0.2)]
    keys = ("bpp",) + evaluate.METRIC_KEYS + ("encoding_time", "decoding_time")
    res = dict(name="x", kind="anchor", per_image=rows,
               results=evaluate._average(rows, "target_bpp", [0.1, 0.2], keys))
    assert res["results"]["images"] == [1, 2]
    bpp, _ = evaluate.rd_curve(res, "psnr-rgb")
    assert list(bpp) == [0.2]  # the 0.1 point covers only one of two images
    assert "| x | ≤ 0.1 bpp | 1 |" in evaluate.summarize([res], [0.2])


def test_summary_bd_rate_ignores_a_models_falling_tail():
    """A model that needs half an anchor's bits up to its best point, then falls: -50 %."""
    rate = np.array([0.05, 0.1, 0.2, 0.4])
    psnr = np.array([20.0, 22.0, 23.5, 24.5])
    ciede = 40.0 - psnr
    anchor = rd_result(rate, "anchor", "a",
                       **{"psnr-rgb": psnr, "ms-ssim-db": psnr, "ciede2000": ciede})
    tail_psnr = list(psnr) + [21.0]
    model = rd_result(list(rate / 2) + [0.4], "tfycc", "m", **{
        "psnr-rgb": tail_psnr, "ms-ssim-db": tail_psnr, "ciede2000": list(ciede) + [19.0]})
    rows = [line for line in evaluate.summarize([model, anchor], [0.1]).splitlines()
            if line.startswith("| m | a |")]
    assert len(rows) == 1
    _, _, bd_psnr, bd_dbpsnr, bd_msssim, bd_ciede = [c.strip() for c in rows[0].strip("|").split("|")]
    assert (bd_psnr, bd_msssim, bd_ciede) == ("-50.0 %", "-50.0 %", "-50.0 %")
    assert float(bd_dbpsnr.split()[0]) > 0  # BD-PSNR: better at the same rate


def test_plot_styles_give_every_codec_its_own_colour():
    """Kodak's plot has 6 classic codecs and up to 6 tfycc curves: no two may share a colour
    (session 27's ms-ssim-colour curve was drawn in WebP's blue)."""
    results = ([dict(kind="anchor")] * 6 + [dict(kind="tfycc")] * 6)[::-1]
    styles = evaluate.plot_styles(results)
    assert len({colour for colour, *_ in styles}) == 12
    assert [style for _, style, _, _ in styles] == ["-"] * 6 + ["--"] * 6
    assert len({marker for _, _, marker, _ in styles[6:]}) == 6
    many = evaluate.plot_styles([dict(kind="tfycc")] * (len(evaluate.TFYCC_COLOURS) + 1))
    assert many[0][0] == many[-1][0]  # a palette repeats only past its size
