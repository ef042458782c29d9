"""The training command: a real run, resume after a kill, multi-worker training."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import PHOTO, ROOT, SHARED_TRAIN


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    photo = Image.open(PHOTO)
    for i in range(4):
        photo.crop((i * 60, i * 30, i * 60 + 96, i * 30 + 80)).save(d / f"crop{i}.png")
    return d


def _train_cmd(*args):
    return [sys.executable, "-m", "tfycc.train", *map(str, args)]


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, **extra)


@pytest.mark.skipif(not os.path.isdir(SHARED_TRAIN), reason="needs ../shared/data/train")
@pytest.mark.slow
def test_train_20_steps_on_the_shared_training_photos(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(_train_cmd("--data", SHARED_TRAIN, "--out", out, "--config", "tiny",
                                  "--steps", 20, "--mixed-precision", "--patch-size", 64,
                                  "--batch-size", 4),
                       capture_output=True, text=True, timeout=600, env=_env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((out / "train_info.json").read_text())
    assert info["steps"] == 20
    assert (out / "codec" / "saved_model.pb").exists() and (out / "config.json").exists()
    assert list((out / "logs").rglob("events.out.tfevents*")), "no TensorBoard logs"


@pytest.mark.slow
def test_killed_run_resumes_where_it_stopped(images, tmp_path):
    out = tmp_path / "run"
    cmd = _train_cmd("--data", images, "--out", out, "--config", "tiny", "--steps", 60,
                     "--steps-per-epoch", 10, "--patch-size", 64, "--batch-size", 2, "--no-export")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), cwd=ROOT, start_new_session=True)
    history = out / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(history.read_text().splitlines()) - 1
    assert 2 <= done_before < 6, "the run was not interrupted mid-way"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    first_epoch = int(re.search(r"Epoch (\d+)/6", r.stdout).group(1))
    assert first_epoch > 1, "the second run started from scratch"
    epochs = [int(line.split(",")[0]) for line in history.read_text().splitlines()[1:]]
    assert sorted(set(epochs)) == list(range(6))
    assert (out / "config.json").exists()


@pytest.mark.slow
def test_warm_start_keeps_the_model_family_and_takes_loss_overrides(images, tmp_path):
    from conftest import varied_tiny
    from tfycc.model import load_model, save_model

    src, out = tmp_path / "src", tmp_path / "run"
    save_model(varied_tiny("tfycc-mine-20260101-00000000"), str(src))
    r = subprocess.run(_train_cmd("--data", images, "--out", out, "--init-from", src,
                                  "--config", "paper", "--distortion", "rmse", "--fine-blocks", 1,
                                  "--deep-blocks", 1, "--search-steps", 2, "--search-weight", 3,
                                  "--search-tune", "psnr-colour", "--search-colour-share", 0.4,
                                  "--steps", 2,
                                  "--patch-size", 64, "--batch-size", 2, "--no-export"),
                       capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    model = load_model(str(out))
    assert model.model_id.startswith("tfycc-mine-"), model.model_id  # not "tfycc-paper-"
    assert model.hparams["distortion"] == "rmse" and model.hparams["filters_y"] == 16
    assert model.hparams["fine_blocks"] == 1 and len(model.dec_y.fine) == 1  # grown
    assert model.hparams["deep_blocks"] == 1 and len(model.enc_c.deep) == 1
    assert (model.hparams["search_steps"], model.hparams["search_weight"],
            model.hparams["search_tune"], model.hparams["search_colour_share"]) == (
                2, 3.0, "psnr-colour", 0.4)


@pytest.mark.parametrize("only,trained", [
    ("importance", {"importance"}), ("encoder", {"enc_y", "enc_c", "importance"})])
def test_train_only_keeps_the_frozen_networks_and_saves_the_level_weight(
        images, tmp_path, only, trained):
    from conftest import varied_tiny
    from tfycc.model import load_model, save_model

    src, out = tmp_path / "src", tmp_path / "run"
    # trained with the search, which a warm start does not carry over unless asked
    save_model(varied_tiny("tfycc-mine-20260101-00000000", search_steps=2), str(src))
    r = subprocess.run(_train_cmd("--data", images, "--out", out, "--init-from", src,
                                  "--train-only", only, "--level-weight", 1, "--rate-warmup-steps", 0,
                                  # every patch with its map's levels, so the map gets a gradient
                                  "--random-level-prob", 0, "--seed", 3,
                                  "--learning-rate", 1e-2, "--steps", 3, "--patch-size", 64,
                                  "--batch-size", 2, "--no-export"),
                       capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    before, after = load_model(str(src)), load_model(str(out))
    assert after.hparams["level_weight"] == 1.0 and before.hparams["level_weight"] == 0.0
    assert after.hparams["search_steps"] == 0 and before.hparams["search_steps"] == 2
    for name in ("enc_y", "dec_y", "enc_c", "dec_c", "importance"):
        old, new = getattr(before, name).get_weights(), getattr(after, name).get_weights()
        same = all(np.array_equal(a, b) for a, b in zip(old, new))
        assert same == (name not in trained), name
    assert re.search(r"parameters \(([\d,]+) trained\)", r.stdout + r.stderr)


def test_ema_saves_the_average_of_the_weights_not_the_last_step(images, tmp_path):
    from conftest import varied_tiny
    from tfycc.model import load_model, save_model

    src = tmp_path / "src"
    save_model(varied_tiny("tfycc-mine-20260101-00000000"), str(src))
    changes = {}
    for ema in (None, 0.999999):  # a near-1 momentum: the average barely leaves the start
        out = tmp_path / f"run-{ema}"
        r = subprocess.run(_train_cmd("--data", images, "--out", out, "--init-from", src,
                                      "--seed", 3, "--learning-rate", 1e-2, "--steps", 3,
                                      "--patch-size", 64, "--batch-size", 2, "--no-export",
                                      *(() if ema is None else ("--ema", ema))),
                           capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
        assert r.returncode == 0, r.stderr[-3000:]
        before, after = load_model(str(src)), load_model(str(out))
        changes[ema] = max(float(np.max(np.abs(a - b)))
                           for a, b in zip(before.dec_y.get_weights(), after.dec_y.get_weights()))
    assert changes[None] > 1e-3 and changes[0.999999] < 1e-5, changes


def test_negative_or_shrinking_model_settings_exit_2_with_one_line(images, tmp_path):
    from tfycc.model import build_model, save_model

    save_model(build_model("tiny", fine_blocks=1), str(tmp_path / "src"))
    for extra, message in ((("--config", "tiny", "--fine-blocks", -1), "must not be negative"),
                           (("--init-from", tmp_path / "src", "--fine-blocks", 0),
                            "fewer would drop trained blocks"),
                           (("--init-from", tmp_path / "src", "--ms-ssim-weight=-1"),
                            "ms_ssim_weight must be finite and >= 0"),
                           (("--init-from", tmp_path / "src", "--level-weight=-1"),
                            "level_weight must be finite and >= 0"),
                           (("--init-from", tmp_path / "src", "--ema", 1),
                            "--ema must be in [0, 1)"),
                           (("--init-from", tmp_path / "src", "--min-scale", 0),
                            "--min-scale must be in (0, 1]")):
        r = subprocess.run(_train_cmd("--data", images, "--out", tmp_path / "run", "--steps", 1,
                                      *extra),
                           capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
        assert r.returncode == 2, r.stderr[-3000:]
        lines = [line for line in r.stderr.splitlines() if line.startswith("tfycc train")]
        assert len(lines) == 1 and message in lines[0], r.stderr[-3000:]
        assert "Traceback" not in r.stderr
        assert not os.path.exists(tmp_path / "run" / "config.json")


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_worker_multiworker_mirrored_run_completes(images, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        cmd = _train_cmd("--data", images, "--out", tmp_path / f"w{index}", "--config", "tiny",
                         "--steps", 4, "--patch-size", 64, "--batch-size", 4, "--no-export")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=_env(TF_CONFIG=tf_config), cwd=ROOT))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, output in zip(procs, outputs):
        assert p.returncode == 0, output[-3000:]
        assert "2 replica(s)" in output
    assert (tmp_path / "w0" / "config.json").exists()  # the chief saves the model


def test_calibrate_refits_the_tables_saves_and_exports_under_a_new_id(images, tmp_path):
    from conftest import varied_tiny
    from tfycc.model import load_model, save_model
    from tfycc.train import calibrate_main

    src, out = tmp_path / "src", tmp_path / "out"
    model = varied_tiny("tfycc-tiny-20260101-00000000")
    save_model(model, str(src))
    assert calibrate_main([str(src), str(out), "--data", str(images), "--offsets=-1,0"]) == 0
    again = load_model(str(out))
    assert again.model_id.startswith("tfycc-tiny-") and again.model_id != model.model_id
    assert (out / "codec" / "saved_model.pb").exists() and (out / "servable" / "saved_model.pb").exists()
    assert not np.allclose(again.entropy.bit_freq1.numpy(), model.entropy.bit_freq1.numpy())
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    assert len(again.compress(photo).numpy()) < len(model.compress(photo).numpy())
    # Never overwrite without --force; bad input is exit code 2.
    assert calibrate_main([str(src), str(out), "--data", str(images)]) == 2
    assert calibrate_main([str(tmp_path), str(tmp_path / "x"), "--data", str(images)]) == 2
    assert calibrate_main([str(src), str(tmp_path / "y"), "--data", str(tmp_path / "none*")]) == 2


def test_calibrate_moves_an_older_model_to_contexts_2_3_4_and_5(images, tmp_path):
    from conftest import varied_tiny
    from tfycc.model import load_model, save_model, with_context
    from tfycc.train import calibrate, calibrate_main

    src, one, two = tmp_path / "src", tmp_path / "one", tmp_path / "two"
    save_model(varied_tiny("tfycc-tiny-20260101-00000001", context=1), str(src))
    args = ["--data", str(images), "--offsets=-1,0", "--images", "4"]
    assert calibrate_main([str(src), str(one), *args]) == 0
    assert calibrate_main([str(src), str(two), "--context", "2", *args]) == 0
    models = [load_model(str(d)) for d in (one, two)]
    assert [m.entropy.context for m in models] == [1, 2]
    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    data = [m.compress(photo).numpy() for m in models]
    assert data[1] != data[0]  # (which is smaller depends on data: 4 images here, 120 by default)
    np.testing.assert_array_equal(models[1].decompress(data[1]).numpy(),
                                  models[0].decompress(data[0]).numpy())
    # A context-2 model has no context-1 tables to go back to: exit code 2.
    assert calibrate_main([str(two), str(tmp_path / "back"), "--context", "1", *args]) == 2
    # On to context 3, then 4 (levels by wavefronts), then 5 (channel mixing): the same
    # pixels again, from files in the new formats.  3 and 4 in-process (each CLI call
    # also exports two SavedModels, ~30 s), 5 through the CLI again.
    src = two
    files = sorted(str(f) for f in images.iterdir())
    for context in (3, 4, 5):
        out = tmp_path / f"context{context}"
        if context < 5:
            model = with_context(load_model(str(src)), context)
            calibrate(model, files, offsets=(-1, 0))
            model.model_id = f"tfycc-tiny-20260101-0000000{context}"
            save_model(model, str(out))
        else:
            assert calibrate_main([str(src), str(out), "--context", str(context), *args]) == 0
        model = load_model(str(out))
        assert model.entropy.context == context
        if context == 5:  # the mixing weights were fitted, saved and exported
            assert np.count_nonzero(model.entropy.mix_q.numpy()) > 0
        np.testing.assert_array_equal(model.decompress(model.compress(photo)).numpy(),
                                      models[0].decompress(data[0]).numpy())
        src = out
    assert calibrate_main([str(src), str(tmp_path / "back4"), "--context", "4", *args]) == 2


def test_context_sums_refuses_mixing_samples_without_a_mixing_model():
    from conftest import varied_tiny
    from tfycc.train import context_sums

    with pytest.raises(ValueError, match="mixes"):
        context_sums(varied_tiny("tfycc-tiny-20260101-00000009"), [], (0,), samples=[])


def test_bf16_support_is_read_from_the_cpu_flags(tmp_path):
    from tfycc.train import cpu_has_bf16

    f = tmp_path / "cpuinfo"
    f.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2\n")
    assert not cpu_has_bf16(str(f))
    f.write_text("flags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert cpu_has_bf16(str(f))
    assert cpu_has_bf16(str(tmp_path / "missing"))


def test_learning_rate_warms_up_linearly_then_steps_down():
    from tfycc.train import learning_rate

    lr = learning_rate(1e-3, total=1000, warmup=100)
    at = {s: float(lr(s)) for s in (0, 49, 99, 500, 799, 800, 949, 950, 999)}
    assert at[0] == pytest.approx(1e-5) and at[49] == pytest.approx(5e-4)
    assert at[99] == at[500] == at[799] == pytest.approx(1e-3)
    assert at[800] == at[949] == pytest.approx(1e-3 / 3)
    assert at[950] == at[999] == pytest.approx(1e-4)
    assert float(learning_rate(1e-3, total=1000)(0)) == pytest.approx(1e-3)  # no warm-up
