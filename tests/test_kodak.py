"""The TFDS ``kodak`` builder, prepared offline from a manual directory of two small PNGs."""
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tfycc import kodak

SHAPES = {"kodim01": (48, 64, 3), "kodim02": (64, 48, 3)}


@pytest.fixture()
def manual_dir(tmp_path):
    """A manual directory holding kodim01.png and kodim02.png; returns (dir, {name: pixels})."""
    directory = tmp_path / "manual"
    directory.mkdir()
    rng = np.random.default_rng(0)
    pixels = {}
    for name, shape in SHAPES.items():
        pixels[name] = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(pixels[name]).save(directory / f"{name}.png")
    return directory, pixels


@pytest.fixture()
def no_network(monkeypatch):
    """Fail the test if the builder tries to download anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(tfds.download.DownloadManager, "download", refuse)


def test_load_images_from_manual_dir(manual_dir, tmp_path, no_network):
    directory, pixels = manual_dir
    data_dir = tmp_path / "tfds"
    images = kodak.load_images(data_dir=data_dir, manual_dir=directory)
    assert [name for name, _ in images] == ["kodim01", "kodim02"]
    for name, image in images:
        assert image.dtype == np.uint8
        assert image.shape == SHAPES[name]
        np.testing.assert_array_equal(image, pixels[name])

    # The prepared dataset is an ordinary TFDS dataset, reused without the manual dir.
    builder = tfds.builder("kodak", data_dir=data_dir)
    assert builder.info.splits["test"].num_examples == 2
    examples = list(tfds.as_numpy(tfds.load("kodak", split="test", data_dir=data_dir)))
    assert sorted(ex["filename"] for ex in examples) == [b"kodim01.png", b"kodim02.png"]


@pytest.mark.parametrize("contents", [None, [], ["notes.txt"]], ids=["missing", "empty", "other"])
def test_downloads_all_24_without_manual_files(tmp_path, monkeypatch, contents):
    """Without kodim*.png in the manual dir, the builder asks for the 24 r0k.us URLs."""
    manual = tmp_path / "manual"
    if contents is not None:
        manual.mkdir()
        for name in contents:
            (manual / name).write_text("x")
    requested = {}

    def fake_download(self, urls):
        requested.update(urls)
        return {name: str(tmp_path / name) for name in urls}

    monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
    dl_manager = tfds.download.DownloadManager(
        download_dir=tmp_path / "downloads", manual_dir=manual,
        manual_dir_instructions=kodak.Kodak.MANUAL_DOWNLOAD_INSTRUCTIONS)
    splits = kodak.Kodak(data_dir=tmp_path / "tfds")._split_generators(dl_manager)
    assert len(requested) == 24
    assert requested["kodim07.png"] == "http://r0k.us/graphics/kodak/kodak/kodim07.png"
    key, example = next(iter(splits["test"]))
    assert key == "kodim01"
    assert example == {"image": str(tmp_path / "kodim01.png"), "filename": "kodim01.png"}
