import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
PHOTO = os.path.join(ROOT, "tfycc", "assets", "photo.png")
SHARED_TRAIN = os.path.join(os.path.dirname(ROOT), "shared", "data", "train")


def run_python(code_or_args, timeout=600, env=None):
    """Run a fresh Python process (``-c code`` or a list of args); returns CompletedProcess."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=ROOT)


def rd_result(bpp, kind="tfycc", name="x", **curves):
    """A result dict as ``tfycc evaluate`` writes it, for one image: ``curves`` maps metric
    keys to values per point; every other metric is 1.0."""
    from tfycc.evaluate import METRIC_KEYS

    n = len(bpp)
    results = {k: [1.0] * n for k in METRIC_KEYS + ("encoding_time", "decoding_time")}
    results.update({k: list(v) for k, v in curves.items()})
    results.update({"offset" if kind == "tfycc" else "target_bpp": list(range(n)),
                    "bpp": list(bpp), "images": [1] * n})
    return dict(name=name, kind=kind, per_image=[dict(image="a.png")], results=results)


@pytest.fixture(scope="session")
def photo():
    from PIL import Image

    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture(scope="session")
def tiny_model():
    """An untrained tiny codec whose levels vary across the image (so masks matter)."""
    return varied_tiny("tfycc-test-tiny")


def varied_tiny(model_id, **overrides):
    """A tiny untrained model with a strongly varying importance map (levels differ)."""
    from tfycc.model import build_model

    tf_seed(0)
    model = build_model("tiny", model_id=model_id, **overrides)
    model.importance.head.bias.assign([0.0])
    model.importance.head.kernel.assign(model.importance.head.kernel * 40.0)
    return model


def tf_seed(seed):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)


@pytest.fixture(scope="session")
def exported_tiny(tiny_model, tmp_path_factory):
    """The tiny model saved and exported as a shipped model: DIR/tiny/{config.json, codec, servable}."""
    from tfycc import export
    from tfycc.model import save_model

    root = tmp_path_factory.mktemp("models")
    src = tmp_path_factory.mktemp("trained") / "src"
    save_model(tiny_model, str(src))
    assert export.main([str(src), str(root / "tiny")]) == 0
    return root
