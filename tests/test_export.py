"""SavedModel exports: the codec's signatures and the core-ops servable for TF Serving."""
import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from conftest import PHOTO, ROOT, run_python


def test_codec_savedmodel_has_named_signatures(exported_tiny):
    from tfycc.export import load_codec

    codec = load_codec(str(exported_tiny / "tiny" / "codec"))
    assert {"compress", "compress_at", "compress_refined", "compress_refined_ms_ssim",
            "compress_refined_colour", "compress_refined_ms_ssim_colour",
            "decompress"} <= set(codec.signatures)
    image = np.asarray(Image.open(PHOTO))[:40, :56]
    data = codec.signatures["compress"](image=image)["output_0"]
    out = codec.signatures["decompress"](data=data)["output_0"].numpy()
    assert out.shape == (40, 56, 3)


def test_saved_model_cli_shows_the_signatures(exported_tiny):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    r = subprocess.run([cli, "show", "--all", "--dir", str(exported_tiny / "tiny" / "servable")],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("encode", "encode_image", "decode", "image_bytes", "levels", "bits_y", "png"):
        assert name in r.stdout


def test_servable_runs_without_tensorflow_compression_and_uses_only_core_ops(exported_tiny, tmp_path):
    png = io.BytesIO()
    Image.open(PHOTO).crop((0, 0, 48, 40)).save(png, format="PNG")
    (tmp_path / "in.png").write_bytes(png.getvalue())
    code = f"""
import json, sys
import numpy as np, tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
path = {str(exported_tiny / "tiny" / "servable")!r}
m = tf.saved_model.load(path)
enc = m.signatures["encode"](image_bytes=tf.constant(open({str(tmp_path / "in.png")!r}, "rb").read()))
dec = m.signatures["decode"](**{{k: enc[k] for k in ("levels", "bits_y", "bits_c", "height", "width")}})
image = tf.io.decode_png(dec["png"]).numpy()
sm = saved_model_pb2.SavedModel()
sm.ParseFromString(open(path + "/saved_model.pb", "rb").read())
graph = sm.meta_graphs[0].graph_def
ops = {{n.op for n in graph.node}} | {{n.op for f in graph.library.function for n in f.node_def}}
print(json.dumps(dict(
    tfc_loaded=any(k.startswith("tensorflow_compression") for k in sys.modules),
    shape=list(image.shape), ops=sorted(ops),
    unregistered=sorted(o for o in ops if op_def_registry.get(o) is None),
    levels=enc["levels"].numpy().tolist())))
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["tfc_loaded"] is False
    assert result["shape"] == [40, 48, 3]
    assert result["unregistered"] == []
    assert not [o for o in result["ops"] if "Entropy" in o or "RangeEncoder" in o or "RangeDecoder" in o]
    assert "DecodeImage" in result["ops"] or "DecodePng" in result["ops"]


def test_servable_matches_the_codec_transform(exported_tiny):
    """encode -> decode through the servable equals decompress(compress) through the codec."""
    import tensorflow as tf

    from tfycc.export import load_codec

    servable = tf.saved_model.load(str(exported_tiny / "tiny" / "servable"))
    codec = load_codec(str(exported_tiny / "tiny" / "codec"))
    image = np.asarray(Image.open(PHOTO))[:64, :80]
    enc = servable.signatures["encode_image"](image=image)
    keys = ("levels", "bits_y", "bits_c", "height", "width")
    png = servable.signatures["decode"](**{k: enc[k] for k in keys})["png"]
    np.testing.assert_array_equal(tf.io.decode_png(png).numpy(),
                                  codec.decompress(codec.compress(image)).numpy())


def test_rest_request_body_in_the_readme_is_valid_json(exported_tiny):
    """The README's TF Serving request shape: {"signature_name", "inputs": {"image_bytes": {"b64"}}}."""
    body = {"signature_name": "encode",
            "inputs": {"image_bytes": {"b64": base64.b64encode(b"png bytes").decode()}}}
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert '"signature_name": "encode"' in readme and '"b64"' in readme
    assert json.loads(json.dumps(body))["inputs"]["image_bytes"]["b64"]


def test_saved_model_cli_runs_the_codec_signatures(exported_tiny, tmp_path):
    image = np.asarray(Image.open(PHOTO))[:24, :32]
    np.save(tmp_path / "image.npy", image)
    codec = str(exported_tiny / "tiny" / "codec")
    r = run_python(["-m", "tfycc.cli", "saved-model-cli", "run", "--dir", codec, "--tag_set", "serve",
                    "--signature_def", "compress", "--inputs", f"image={tmp_path / 'image.npy'}",
                    "--outdir", str(tmp_path / "enc")])
    assert r.returncode in (0, None), r.stderr[-2000:]
    data = np.load(tmp_path / "enc" / "output_0.npy", allow_pickle=True)
    assert bytes(data.item() if data.shape == () else data).startswith(b"TFYC")
    np.save(tmp_path / "data.npy", np.array(data.item() if data.shape == () else data, dtype=object))
    r = run_python(["-m", "tfycc.cli", "saved-model-cli", "run", "--dir", codec, "--tag_set", "serve",
                    "--signature_def", "decompress", "--inputs", f"data={tmp_path / 'data.npy'}",
                    "--outdir", str(tmp_path / "dec")])
    assert r.returncode in (0, None), r.stderr[-2000:]
    assert np.load(tmp_path / "dec" / "output_0.npy").shape == (24, 32, 3)
