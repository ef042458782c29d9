"""The scripts/ tools run end to end on tiny inputs."""
import os

import pytest

from conftest import PHOTO, ROOT, rd_result, run_python


def _load_script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_benchmark_runs_and_prints_a_table(tmp_path):
    import shutil

    shutil.copy(PHOTO, tmp_path / "a.png")
    out = tmp_path / "speed.json"
    proc = run_python([os.path.join(ROOT, "scripts", "benchmark.py"), "--data", str(tmp_path),
                       "--models", "", "--anchors", "jpeg,webp", "--runs", "1", "--bpp", "0.5",
                       "--json", str(out)], timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| jpeg")]
    assert len(lines) == 1 and "| 1 | 1 |" in lines[0]  # ratios to itself
    assert out.exists() and '"codec": "webp"' in out.read_text()


def test_rd_table_interpolates_models_and_marks_partial_anchors(tmp_path, capsys):
    import json

    rd_table = _load_script("rd_table")
    keys = ("psnr-rgb", "ms-ssim-rgb", "psnr-cbcr", "ciede2000")
    model = dict(name="tfycc-m", kind="tfycc", per_image=[{"image": "a"}, {"image": "b"}],
                 results=dict(offset=[-1, 1], bpp=[0.1, 0.4], images=[2, 2],
                              **{k: [20.0, 22.0] for k in keys}))
    anchor = dict(name="jpeg", kind="anchor", per_image=[{"image": "a"}, {"image": "b"}],
                  results=dict(target_bpp=[0.2], bpp=[0.19], images=[1], **{k: [30.0] for k in keys}))
    for r in (model, anchor):
        (tmp_path / f"{r['name']}.json").write_text(json.dumps(r))
    assert rd_table.main([str(tmp_path), "--at", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "| 0.2 | **tfycc-m** | 21.00 |" in out  # halfway in log bpp between 0.1 and 0.4
    assert "| 0.2 | jpeg (1/2 images reached it) | — |" in out


def test_rd_table_write_rebuilds_summary_and_plots_from_every_json(tmp_path, capsys):
    import json

    results = [rd_result([0.1, 0.2, 0.4], name="tfycc-m", **{"psnr-rgb": [20, 21, 22]}),
               rd_result([0.1, 0.3], name="tfycc-m-refine10", **{"psnr-rgb": [21, 23]}),
               rd_result([0.1, 0.2], "anchor", "jpeg", **{"psnr-rgb": [22, 24]})]
    results[2]["results"]["target_bpp"] = [0.1, 0.2]
    for r in results:
        (tmp_path / f"{r['name']}.json").write_text(json.dumps(r))
    assert _load_script("rd_table").main([str(tmp_path), "--write"]) == 0
    summary = (tmp_path / "summary.md").read_text()
    for name in ("tfycc-m", "tfycc-m-refine10"):
        assert f"| {name} | offset +1 |" in summary and f"| {name} | jpeg |" in summary
    assert "0.2 bpp: PSNR" in summary and "0.3 bpp: PSNR" not in summary  # the anchors' targets
    assert (tmp_path / "rd.png").stat().st_size > 10000
    out, err = capsys.readouterr()
    assert out.startswith("| bpp |") and "wrote" not in out and "summary.md" in err  # stdout: the table


def test_ceiling_measures_what_decompress_returns(exported_tiny, tmp_path):
    import json
    import shutil

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from tfycc import metrics
    from tfycc.model import load_model

    shutil.copy(PHOTO, tmp_path / "a.png")
    out = tmp_path / "c.json"
    model_dir = str(exported_tiny / "tiny")
    assert _load_script("ceiling").main(["--model", model_dir, "--data", str(tmp_path),
                                         "--levels", "0,2,4", "--offsets=-1,0", "--json",
                                         str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["setting"] for r in rows] == ["level 0", "level 2", "level 4", "map, offset -1",
                                            "map, offset +0"]
    assert rows[0]["raw_bpp"] == 0 and rows[0]["level"] == 0
    assert rows[2]["raw_bpp"] == (8 + 4) / 64 and rows[2]["level"] == 4  # tiny: all channels
    assert 0 < rows[1]["raw_bpp"] < rows[2]["raw_bpp"]
    # The map row at offset 0 is the quality of a real file's decoded image.
    model = load_model(model_dir)
    image = np.asarray(Image.open(PHOTO).convert("RGB"))
    decoded = model.decompress(model.compress(tf.constant(image))).numpy()
    assert abs(rows[4]["psnr-rgb"] - metrics.psnr(image, decoded)) < 0.02


def test_ceiling_rejects_a_folder_without_images(exported_tiny, tmp_path):
    import pytest

    with pytest.raises(SystemExit) as e:
        _load_script("ceiling").main(["--model", str(exported_tiny / "tiny"), "--data", str(tmp_path)])
    assert e.value.code == 2


def test_contexts_charges_what_the_calibrated_files_hold(exported_tiny, tmp_path):
    """Fitted and charged on the same photo, the model's own context set costs what the
    file of a model calibrated on that photo holds; contexts 3, 4 and 5 are measured
    beside it, and models moved to context 4 and 5 and calibrated the same way write what
    those sets cost."""
    import json
    import shutil

    import numpy as np
    from PIL import Image

    from tfycc import bitstream
    from tfycc.model import load_model, with_context
    from tfycc.train import calibrate

    shutil.copy(PHOTO, tmp_path / "a.png")
    out = tmp_path / "c.json"
    model_dir = str(exported_tiny / "tiny")
    script = _load_script("contexts")
    assert script.main(["--model", model_dir, "--train", str(tmp_path), "--data", str(tmp_path),
                        "--contexts", "1,2,3,4,5", "--offsets", "0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["context"] for r in rows] == [2, 3, 4, 5]  # (1 is below the tiny model's 2: skipped)
    assert len({r["kept_bpp"] for r in rows}) == 1 and rows[0]["kept_bpp"] > 0  # same latents
    assert all(0 < r["bits_per_kept_bit"] < 1.2 and 0 < r["level_bpp"] < r["bpp"] for r in rows)
    assert rows[2]["bits_per_kept_bit"] == pytest.approx(rows[1]["bits_per_kept_bit"])  # set 3's
    image = np.asarray(Image.open(PHOTO).convert("RGB"))
    for row, context in ((rows[0], None), (rows[2], 4), (rows[3], 5)):
        model = load_model(model_dir)
        if context:
            model = with_context(model, context)
        calibrate(model, [str(tmp_path / "a.png")], offsets=(0,))
        payload = 8 * (len(model.compress(image).numpy()) - bitstream.header_size(model.model_id)
                       - bitstream.CHECKSUM_BYTES)
        estimate = row["bpp"] * image.shape[0] * image.shape[1]
        assert abs(payload - estimate) < 0.02 * estimate + 64, (context, payload, estimate)
    with pytest.raises(SystemExit) as e:  # nothing at or above the model's context set
        script.main(["--model", model_dir, "--train", str(tmp_path), "--data", str(tmp_path),
                     "--contexts", "1"])
    assert e.value.code == 2


def test_colour_bias_is_the_mean_signed_error_of_real_files(exported_tiny, tmp_path):
    import json
    import shutil

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from tfycc import metrics
    from tfycc.model import load_model

    shutil.copy(PHOTO, tmp_path / "a.png")
    out = tmp_path / "b.json"
    model_dir = str(exported_tiny / "tiny")
    script = _load_script("colour_bias")
    assert script.main(["--model", model_dir, "--data", str(tmp_path), "--offsets=-1,0",
                        "--max-side", "64", "--subtract", "1,0,-2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["offset"] for r in rows] == [-1, 0] and rows[1]["images"] == 1
    model = load_model(model_dir)
    image = np.asarray(Image.open(PHOTO).convert("RGB"))
    h, w = image.shape[:2]
    crop = image[(h - 64) // 2:(h - 64) // 2 + 64, (w - 64) // 2:(w - 64) // 2 + 64]
    data = model.compress(tf.constant(crop)).numpy()
    decoded = model.decompress(data).numpy()
    assert np.allclose(rows[1]["error_rgb"], (decoded.astype(float) - crop).mean(axis=(0, 1)))
    assert rows[1]["delta_b"] == pytest.approx(metrics.delta_ab(crop, decoded)[1])
    assert rows[1]["bpp"] == pytest.approx(8 * len(data) / 64 ** 2)
    assert rows[1]["psnr"] == pytest.approx(metrics.psnr(crop, decoded))
    fixed = np.clip(decoded.astype(float) - [1, 0, -2], 0, 255).astype(np.uint8)
    assert rows[1]["corrected"]["ciede2000"] == pytest.approx(metrics.ciede2000(crop, fixed))
    with pytest.raises(SystemExit) as e:
        script.main(["--model", model_dir, "--data", str(tmp_path / "none")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        script.main(["--model", model_dir, "--data", str(tmp_path), "--subtract", "1,2"])
    assert e.value.code == 2


def test_benchmark_train_parses_model_overrides():
    parse = _load_script("benchmark_train").parse_config
    assert parse("compact") == ("compact", {})
    assert parse("compact:streams=rgb+code_c=8+fuse_encoder=false") == (
        "compact", {"streams": "rgb", "code_c": 8, "fuse_encoder": False})
    with pytest.raises(ValueError):
        parse("compact:code_c")


def test_ablation_bd_table_cuts_each_curve_at_its_best_point():
    from tfycc.evaluate import rising_rd_curve

    ablation = _load_script("ablation")

    def result(bpp, psnr, ciede):
        keys = ("psnr-rgb", "psnr-y", "psnr-cbcr", "ms-ssim-db")
        return rd_result(bpp, **{k: psnr for k in keys}, ciede2000=ciede)

    ref = result([0.05, 0.1, 0.2, 0.4], [20, 22, 23, 22.5], [9, 8, 7, 7.5])
    # the same curve at half the rate in the rising part; its falling tail must not count
    test = result([0.025, 0.05, 0.1, 0.2], [20, 22, 23, 21], [9, 8, 7, 8])
    rate, quality = rising_rd_curve(ref, "psnr-rgb")
    assert list(quality) == [20, 22, 23] and list(rate) == [0.05, 0.1, 0.2]
    rate, quality = rising_rd_curve(ref, "ciede2000", -1)
    assert list(quality) == [-9, -8, -7]
    rows = ablation.bd_table({"ref": ref, "half": test})
    assert rows[-1].startswith("| half |") and rows[-1].count("-50.0 %") == 5


def _write_results(tmp_path, *results):
    """Each result as MODEL_ID.json (or NAME.json) in tmp_path; their paths."""
    import json

    paths = [str(tmp_path / f"{r.get('model_id', r['name'])}.json") for r in results]
    for path, r in zip(paths, results):
        with open(path, "w") as f:
            json.dump(r, f)
    return paths


def test_compare_gives_bd_deltas_of_a_curve_with_half_the_bits(tmp_path, capsys):
    compare = _load_script("compare")
    quality = dict(**{k: [20.0, 22.0, 24.0] for k in ("psnr-rgb", "ms-ssim-db", "psnr-y",
                                                      "psnr-cbcr")},
                   **{"ms-ssim-rgb": [0.8, 0.85, 0.9], "ciede2000": [7.0, 6.0, 5.0]})
    ref = dict(name="old", model_id="tfycc-old", kind="tfycc", per_image=[{"image": "a"}],
               results=dict(offset=[-1, 0, 1], bpp=[0.1, 0.2, 0.4], images=[1, 1, 1], **quality))
    test = dict(ref, model_id="tfycc-new", results=dict(ref["results"], bpp=[0.05, 0.1, 0.2]))
    d = compare.deltas(ref, test)
    for key in ("psnr-rgb", "ms-ssim-db", "psnr-y", "psnr-cbcr", "ciede2000"):
        assert abs(d[key][0] + 50.0) < 1e-6, key  # same quality at half the bits
    assert abs(d["psnr-rgb"][1] - 2.0) < 1e-6  # 2 dB per halving of the rate, one halving
    assert abs(d["ciede2000"][1] + 1.0) < 1e-6  # lower CIEDE2000 = better
    assert compare.deltas(ref, ref)["psnr-rgb"] == (0.0, 0.0)
    paths = _write_results(tmp_path, ref, test)
    assert compare.main(paths + ["--at", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "| tfycc-new | PSNR-RGB | -50.0 % | +2.00 dB |" in out
    assert "| 0.1 | tfycc-old | 20.00 | 0.800 | 7.00 |" in out
    assert "| 0.1 | tfycc-new | 22.00 | 0.850 | 6.00 |" in out
    assert compare.main([str(tmp_path / "missing.json"), paths[0]]) == 2
    # One model encoded two ways (the same model id): rows named by result name instead.
    assert compare.labels([ref, test]) == ["tfycc-old", "tfycc-new"]
    assert compare.labels([ref, dict(ref, name="old-refine10")]) == ["old", "old-refine10"]


def test_compare_bpp_range_leaves_out_differences_outside_it(tmp_path, capsys):
    import numpy as np

    from tfycc.evaluate import clip_rd_curve

    rate, quality = clip_rd_curve(np.array([0.05, 0.1, 0.2, 0.4]), np.array([20.0, 22, 23, 24]),
                                  0.07, 0.3)
    assert np.allclose(rate, [0.07, 0.1, 0.2, 0.3])
    assert np.allclose(quality, [20 + 2 * np.log2(0.07 / 0.05), 22, 23, 23 + np.log2(1.5)])
    rate, quality = clip_rd_curve(np.array([0.1, 0.2]), np.array([22.0, 23]), 0.05, 0.5)
    assert list(rate) == [0.1, 0.2]  # nothing made up beyond the curve's own ends

    compare = _load_script("compare")
    keys = ("psnr-rgb", "ms-ssim-db", "psnr-y", "psnr-cbcr")
    ref = dict(name="old", model_id="tfycc-old", kind="tfycc", per_image=[{"image": "a"}],
               results=dict(offset=[-2, -1, 0, 1], bpp=[0.02, 0.1, 0.2, 0.4], images=[1] * 4,
                            **{k: [15.0, 22, 23, 24] for k in keys}, **{"ms-ssim-rgb": [0.5] * 4},
                            ciede2000=[12.0, 7, 6, 5]))
    # The same curve from 0.1 bpp on; below it, the same quality for 30 % more bits.
    low = dict(ref["results"], bpp=[0.026, 0.1, 0.2, 0.4])
    test = dict(ref, model_id="tfycc-new", results=low)
    assert compare.deltas(ref, test)["psnr-rgb"][0] > 1.0
    for key, (rate, quality) in compare.deltas(ref, test, (0.1, 0.4)).items():
        assert abs(rate) < 1e-9 and abs(quality) < 1e-9, key
    paths = _write_results(tmp_path, ref, test)
    assert compare.main(paths + ["--bpp-range", "0.1,0.4"]) == 0
    out = capsys.readouterr().out
    assert "over the 0.1–0.4 bpp" in out and "| tfycc-new | PSNR-RGB | +0.0 % | +0.00 dB |" in out
    assert compare.main(paths + ["--bpp-range", "0.4,0.1"]) == 2
    assert "--bpp-range" in capsys.readouterr().err


def test_compare_per_image_checks_each_anchor_file_on_the_result_curve(tmp_path, capsys):
    compare = _load_script("compare")
    curve = [dict(image=i, bpp=b, **{"ms-ssim-rgb": q}) for i in ("a", "b")
             for b, q in ((0.1, 0.80), (0.4, 0.90))]
    res = dict(name="t", model_id="t", kind="tfycc", per_image=curve,
               results=dict(bpp=[0.1, 0.4], images=[2, 2], offset=[0, 1], **{k: [1.0, 2.0] for k in (
                   "psnr-rgb", "ms-ssim-rgb", "ms-ssim-db", "psnr-y", "psnr-cbcr", "ciede2000")}))
    files = [dict(image="a", target_bpp=0.25, reached=True, bpp=0.2, **{"ms-ssim-rgb": 0.86}),
             dict(image="b", target_bpp=0.25, reached=True, bpp=0.2, **{"ms-ssim-rgb": 0.84}),
             dict(image="a", target_bpp=0.05, reached=False, bpp=0.2, **{"ms-ssim-rgb": 0.9}),
             dict(image="b", target_bpp=0.05, reached=True, bpp=0.04, **{"ms-ssim-rgb": 0.9})]
    anchor = dict(name="j2k", kind="anchor", per_image=files)
    n, a, t, higher, se = compare.per_image(anchor, res, 0.25)
    assert (n, higher) == (2, 1) and abs(a - 0.85) < 1e-9 and abs(t - 0.85) < 1e-9  # 0.2 = midway in log bpp
    assert abs(se - 0.01) < 1e-9  # differences -0.01, +0.01: sd 0.01414, / sqrt(2)
    assert compare.per_image(anchor, res, 0.05) is None  # unreached, or outside the curve
    paths = _write_results(tmp_path, res, anchor)
    capsys.readouterr()
    assert compare.main([paths[0], paths[0], "--at", "0.25", "--per-image", paths[1]]) == 0
    assert "| 0.25 | j2k | t | 2 | 0.8500 | 0.8500 | 1 | +0.0000 ± 0.0100 |" in capsys.readouterr().out
    assert compare.main([paths[0], paths[0], "--at", "0.25", "--per-image", paths[1],
                         "--metric", "psnr-rgb"]) == 2  # no such per-image values


def test_colour_share_zero_is_the_plain_search_and_a_share_changes_it(exported_tiny, tmp_path):
    """Share 0 measures the plain search's real file; another share changes the search
    (the share is read when a fresh model traces it); the module's share is restored."""
    import json
    import shutil

    import numpy as np
    from PIL import Image

    import tfycc.model as model_module
    from tfycc.evaluate import image_metrics

    shutil.copy(PHOTO, tmp_path / "a.png")
    out = tmp_path / "s.json"
    model_dir = str(exported_tiny / "tiny")
    kept = model_module.REFINE_COLOUR_SHARE
    script = _load_script("colour_share")
    assert script.main(["--model", model_dir, "--data", str(tmp_path), "--images", "1",
                        "--crop", "48x64", "--tune", "psnr", "--shares", "0,2", "--offsets", "0",
                        "--steps", "3", "--json", str(out)]) == 0
    assert model_module.REFINE_COLOUR_SHARE == kept
    rows = json.loads(out.read_text())["rows"]
    assert [(r["share"], r["offset"]) for r in rows] == [(0, 0), (2, 0)]
    image = np.asarray(Image.open(PHOTO).convert("RGB"))
    y0, x0 = (image.shape[0] - 48) // 2, (image.shape[1] - 64) // 2
    image = image[y0:y0 + 48, x0:x0 + 64]
    model = model_module.load_model(model_dir)
    data = model.compress_refined(image, 0.0, 3).numpy()
    m = image_metrics(image, model.decompress(data).numpy())
    assert rows[0]["bpp"] == pytest.approx(8 * len(data) / (48 * 64))
    assert rows[0]["psnr-cbcr"] == pytest.approx(m["psnr-cbcr"])
    assert rows[1]["psnr-cbcr"] != pytest.approx(rows[0]["psnr-cbcr"], abs=1e-6)
    with pytest.raises(SystemExit) as e:
        script.main(["--model", model_dir, "--data", str(tmp_path), "--shares", "-1"])
    assert e.value.code == 2


def test_colour_split_compares_each_anchor_at_the_tfycc_files_size(exported_tiny, tmp_path, capsys):
    import json

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from tfycc import metrics
    from tfycc.model import load_model

    Image.open(PHOTO).save(tmp_path / "a.png")
    Image.open(PHOTO).crop((0, 0, 24, 16)).save(tmp_path / "b.png")  # no anchor fits its size
    out = tmp_path / "split.json"
    model_dir = str(exported_tiny / "tiny")
    script = _load_script("colour_split")
    assert script.main(["--model", model_dir, "--data", str(tmp_path), "--offsets=2",
                        "--anchors", "jpeg2000,webp", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| tfycc | 2 |" in printed and "| webp | 1 |" in printed
    found = json.loads(out.read_text())
    assert {(r["image"], r["codec"], r["reached"]) for r in found["per_image"]} == {
        ("a.png", "tfycc", True), ("a.png", "jpeg2000", True), ("a.png", "webp", True),
        ("b.png", "tfycc", True), ("b.png", "jpeg2000", False), ("b.png", "webp", False)}
    rows = {r["codec"]: r for r in found["per_image"] if r["image"] == "a.png"}
    image = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    model = load_model(model_dir)
    data = model.compress_at(tf.constant(image), tf.constant(2.0)).numpy()
    want = metrics.ciede2000_split(image, model.decompress(data).numpy())
    assert [rows["tfycc"][k] for k in script.PARTS] == pytest.approx(list(want))
    assert rows["tfycc"]["bpp"] == pytest.approx(8 * len(data) / image[..., 0].size)
    for anchor in ("jpeg2000", "webp"):
        assert rows[anchor]["reached"] and rows[anchor]["bpp"] <= rows["tfycc"]["bpp"]
        n, diff, _ = found["summary"][0]["differences"][anchor]["colour"]
        assert n == 1 and diff == pytest.approx(rows["tfycc"]["colour"] - rows[anchor]["colour"])
    with pytest.raises(SystemExit) as e:
        script.main(["--model", model_dir, "--data", str(tmp_path), "--anchors", "bmp"])
    assert e.value.code == 2
