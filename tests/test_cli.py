"""The tfycc command line, called through main(argv) and (for tracebacks) as a process."""
import json
import os
import random
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import PHOTO, run_python
from tfycc import cli


@pytest.fixture()
def models(exported_tiny, monkeypatch):
    monkeypatch.setenv("TFYCC_MODELS", str(exported_tiny))
    return exported_tiny


@pytest.fixture()
def small_png(tmp_path):
    path = tmp_path / "small.png"
    Image.open(PHOTO).crop((0, 0, 40, 24)).save(path)
    return path


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_decompress_info_round_trip(models, small_png, tmp_path, capsys):
    code, out, _ = _run(["compress", small_png, "--model", "tiny", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    tfycc_file = str(small_png) + ".tfycc"
    assert result["output"] == tfycc_file
    assert result["bytes"] == os.path.getsize(tfycc_file)
    assert result["bpp"] == pytest.approx(8 * result["bytes"] / (40 * 24))
    code, out, _ = _run(["info", tfycc_file, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["width"] == 40 and info["height"] == 24 and info["format_version"] == 1
    assert info["model"] == "tfycc-test-tiny"
    code, out, _ = _run(["decompress", tfycc_file, "--model", "tiny"], capsys)
    assert code == 0
    decoded = np.asarray(Image.open(tmp_path / "small.png.png"))
    assert decoded.shape == (24, 40, 3)


def test_decompress_finds_the_model_from_the_file(models, small_png, capsys):
    assert _run(["compress", small_png, "--model", "tiny"], capsys)[0] == 0
    code, _, err = _run(["decompress", f"{small_png}.tfycc", str(small_png.parent / "o.png")], capsys)
    assert code == 0, err


def test_existing_output_needs_force(models, small_png, capsys):
    assert _run(["compress", small_png, "--model", "tiny"], capsys)[0] == 0
    before = os.path.getmtime(f"{small_png}.tfycc")
    code, _, err = _run(["compress", small_png, "--model", "tiny"], capsys)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert os.path.getmtime(f"{small_png}.tfycc") == before
    assert _run(["compress", small_png, "--model", "tiny", "--force"], capsys)[0] == 0


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16"])
def test_unusual_image_modes_are_converted_with_a_note(models, tmp_path, mode, capsys):
    rgb = Image.open(PHOTO).crop((0, 0, 24, 16))
    if mode == "I;16":
        im = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    else:
        im = rgb.convert(mode)
    path = tmp_path / f"in_{mode.replace(';', '')}.png"
    im.save(path)
    code, _, err = _run(["compress", path, "--model", "tiny"], capsys)
    assert code == 0, err
    if mode != "L":
        assert "note:" in err


def test_exif_orientation_is_applied(models, tmp_path, capsys):
    im = Image.open(PHOTO).crop((0, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif.tobytes())
    code, out, err = _run(["compress", path, "--model", "tiny", "--json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert (r["width"], r["height"]) == (16, 32) and "orientation" in err


def _bad_cases(tmp_path, tfycc_bytes):
    (tmp_path / "text.txt").write_text("hello")
    (tmp_path / "empty.tfycc").write_bytes(b"")
    (tmp_path / "magic.tfycc").write_bytes(b"JUNK" + tfycc_bytes[4:])
    version = bytearray(tfycc_bytes)
    version[4] = 9
    (tmp_path / "version.tfycc").write_bytes(bytes(version))
    (tmp_path / "trunc.tfycc").write_bytes(tfycc_bytes[:-5])
    return [
        ["compress", tmp_path / "missing.png"],
        ["compress", tmp_path / "text.txt"],
        ["decompress", tmp_path / "missing.tfycc"],
        ["decompress", tmp_path / "empty.tfycc"],
        ["decompress", tmp_path / "magic.tfycc"],
        ["decompress", tmp_path / "version.tfycc"],
        ["decompress", tmp_path / "trunc.tfycc"],
        ["info", tmp_path / "magic.tfycc"],
        ["compress", PHOTO, tmp_path / "no" / "such" / "dir.tfycc"],
        ["compress", PHOTO, "--model", "no-such-model"],
        ["compress", PHOTO, tmp_path / "big.tfycc", "--max-pixels", "1000"],
    ]


def test_bad_input_gives_one_line_and_exit_2(models, small_png, tmp_path, capsys):
    assert _run(["compress", small_png, "--model", "tiny"], capsys)[0] == 0
    data = open(f"{small_png}.tfycc", "rb").read()
    for argv in _bad_cases(tmp_path, data):
        if argv[0] != "info" and "--model" not in argv:
            argv = argv + ["--model", "tiny"]
        before = set(os.listdir(tmp_path))
        code, out, err = _run(argv, capsys)
        assert code == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert set(os.listdir(tmp_path)) == before, f"partial output left by {argv}"


def test_wrong_model_is_refused(models, small_png, tmp_path, capsys):
    # Another model: the tiny codec under another id (the CLI matches a file's id against
    # the model directory's config.json), without a second 30 s export.
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(models / "tiny" / "codec", other / "codec")
    config = json.loads((models / "tiny" / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(dict(config, model_id="tfycc-test-other")))
    assert _run(["compress", small_png, "--model", "tiny"], capsys)[0] == 0
    code, _, err = _run(["decompress", f"{small_png}.tfycc", "--model", other], capsys)
    assert code == 2 and "tfycc-test-tiny" in err and "tfycc-test-other" in err
    assert sorted(os.listdir(tmp_path)) == ["other", "small.png", "small.png.tfycc"]


def test_every_truncation_and_random_flips_end_in_exit_2_or_an_image(models, tmp_path, capsys):
    src = tmp_path / "s.png"
    Image.open(PHOTO).crop((0, 0, 24, 16)).save(src)
    assert _run(["compress", src, "--model", "tiny"], capsys)[0] == 0
    data = open(f"{src}.tfycc", "rb").read()
    bad = tmp_path / "bad.tfycc"
    variants = [data[:n] for n in range(len(data))]
    rng = random.Random(0)
    for _ in range(1000):
        b = bytearray(data)
        b[rng.randrange(len(b))] = rng.randrange(256)
        variants.append(bytes(b))
    outcomes = {0: 0, 2: 0}
    for variant in variants:
        bad.write_bytes(variant)
        out = tmp_path / "out.png"
        code, _, err = _run(["decompress", bad, out, "--model", "tiny", "--force"], capsys)
        assert code in (0, 2) and "Traceback" not in err
        outcomes[code] += 1
        if code == 0:
            assert np.asarray(Image.open(out)).shape == (16, 24, 3)
    assert outcomes[2] >= len(data)  # every truncation is caught


def test_cli_process_has_no_traceback_and_quiet_tensorflow(models, tmp_path):
    r = run_python(["-m", "tfycc.cli", "decompress", str(tmp_path / "none.tfycc")],
                   env={"TFYCC_MODELS": str(models)})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"tfycc decompress: error: {tmp_path / 'none.tfycc'}: no such file"]


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("compress", "decompress", "info", "demo", "train", "export"):
        assert name in out


def test_demo_prints_bpp_and_quality(models, capsys, monkeypatch):
    code, out, err = _run(["demo", "--model", "tiny", "--json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["bpp"] > 0 and np.isfinite(r["psnr_rgb"]) and 0 < r["ms_ssim"] <= 1
    assert r["ciede2000"] > 0 and f"CIEDE2000 {r['ciede2000']:.2f}" in _run(
        ["demo", "--model", "tiny"], capsys)[1]
    # The base install has no scikit-image: the demo runs and leaves CIEDE2000 out.
    monkeypatch.setitem(sys.modules, "skimage.color", None)
    code, out, err = _run(["demo", "--model", "tiny"], capsys)
    assert code == 0, err
    assert "MS-SSIM" in out and "CIEDE2000" not in out


def test_evaluate_writes_compressai_style_json(models, tmp_path, capsys):
    from conftest import DATA

    code, out, err = _run(["evaluate", "--data", DATA, "--models", "tiny", "--offsets=-1,1",
                           "--anchors", "none", "--out", tmp_path / "rd", "--quiet"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "rd" / "tfycc-tiny.json").read_text())
    assert result["name"] == "tfycc-tiny" and "description" in result
    r = result["results"]
    assert len(r["bpp"]) == 2 and r["bpp"][0] < r["bpp"][1]
    for key in ("psnr-rgb", "ms-ssim-rgb", "psnr-y", "psnr-cbcr", "raw_bpp"):
        assert len(r[key]) == 2
    row = result["per_image"][0]
    assert row["bpp"] == pytest.approx(8 * row["bytes"] / (64 * 64))
    assert "| tfycc-tiny | offset -1 | " in out
    # --reuse with another offset: the stored (image, offset) rows are kept, the new one run.
    code, out, err = _run(["evaluate", "--data", DATA, "--models", "tiny", "--offsets=-1,0,1",
                           "--anchors", "none", "--out", tmp_path / "rd", "--quiet", "--reuse"], capsys)
    assert code == 0, err
    extended = json.loads((tmp_path / "rd" / "tfycc-tiny.json").read_text())
    assert extended["results"]["offset"] == [-1, 0, 1]
    rows = {r["offset"]: r for r in extended["per_image"]}
    assert rows[-1] == result["per_image"][0] and rows[1] == result["per_image"][1]  # timings too
    assert rows[0]["bytes"] > 0
    code, out, err = _run(["evaluate", "--data", DATA, "--models", "tiny", "--offsets=0", "--refine", "2",
                           "--anchors", "none", "--out", tmp_path / "rd", "--quiet"], capsys)
    assert code == 0, err
    refined = json.loads((tmp_path / "rd" / "tfycc-tiny-refine2.json").read_text())
    assert refined["refine_steps"] == 2 and "2 steps of encoder-side search" in refined["description"]
    assert refined["tune"] == "psnr"
    code, out, err = _run(["evaluate", "--data", DATA, "--models", "tiny", "--offsets=0", "--refine", "2",
                           "--tune", "ms-ssim", "--anchors", "none", "--out", tmp_path / "rd", "--quiet",
                           "--reuse"], capsys)
    assert code == 0, err
    tuned = json.loads((tmp_path / "rd" / "tfycc-tiny-refine2-ms-ssim.json").read_text())
    assert tuned["tune"] == "ms-ssim" and "tuned for ms-ssim" in tuned["description"]
    assert "tfycc-tiny-refine2-ms-ssim" in out
    # The psnr-tuned result is not taken for the ms-ssim one (nor the reverse).
    assert json.loads((tmp_path / "rd" / "tfycc-tiny-refine2.json").read_text()) == refined
    code, _, err = _run(["evaluate", "--data", DATA, "--models", "tiny", "--tune", "ms-ssim",
                         "--anchors", "none", "--out", tmp_path / "rd", "--quiet"], capsys)
    assert code == 2 and "add --refine" in err


@pytest.mark.parametrize("argv", [["--bpp", "0.1", "--offset", "1"], ["--bpp", "0"], ["--bpp", "x"],
                                  ["--refine", "-1"], ["--refine", "2.5"], ["--tune", "ms-ssim"],
                                  ["--refine", "2", "--tune", "ssim"]])
def test_compress_bpp_bad_arguments(argv, models, small_png, capsys):
    with pytest.raises(SystemExit) as e:
        code = cli.main(["compress", str(small_png), "--model", "tiny", *argv])
        raise SystemExit(code)
    assert e.value.code == 2
    assert not os.path.exists(f"{small_png}.tfycc")


def test_refine_writes_files_that_decode_as_any_other(models, small_png, tmp_path, capsys):
    code, out, err = _run(["compress", small_png, tmp_path / "r.tfycc", "--model", "tiny",
                           "--refine", "3", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["refine"] == 3 and json.loads(out)["tune"] == "psnr"
    code, _, err = _run(["decompress", tmp_path / "r.tfycc", tmp_path / "r.png"], capsys)
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "r.png")).shape == (24, 40, 3)
    # With --bpp: the offset is searched unrefined, then the file remade with the search;
    # never over the target (the unrefined file is kept if the refined one overshoots).
    code, out, err = _run(["compress", small_png, tmp_path / "b.tfycc", "--model", "tiny",
                           "--bpp", "1", "--refine", "2", "--json"], capsys)
    r = json.loads(out)
    assert code == 0 and r["bpp"] <= 1 and r["refine"] in (0, 2)
    assert ("overshot" in err) == (r["refine"] == 0)
    # Tuned for MS-SSIM: another search, the same kind of file.
    code, out, err = _run(["compress", small_png, tmp_path / "m.tfycc", "--model", "tiny",
                           "--refine", "3", "--tune", "ms-ssim"], capsys)
    assert code == 0, err
    assert "3 refine steps (ms-ssim)" in out
    code, _, err = _run(["decompress", tmp_path / "m.tfycc", tmp_path / "m.png"], capsys)
    assert code == 0, err
    assert np.asarray(Image.open(tmp_path / "m.png")).shape == (24, 40, 3)


def test_refine_needs_a_model_exported_with_the_search():
    with pytest.raises(cli.CliError, match="re-export"):
        cli.refined_compressor(object(), 3)
    with pytest.raises(cli.CliError, match="re-export it with `tfycc export` to use --refine --tune"):
        cli.refined_compressor(type("Old", (), {"compress_refined": None})(), 3, "ms-ssim")
    cli.refined_compressor(object(), 0)  # no search asked: any codec will do
