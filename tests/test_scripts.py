"""The scripts/ tools run end to end on tiny inputs."""
import os

from conftest import PHOTO, ROOT, run_python


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
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("rd_table", os.path.join(ROOT, "scripts",
                                                                           "rd_table.py"))
    rd_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rd_table)
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
