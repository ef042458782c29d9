"""A tensorflow-datasets builder for the Kodak image set (kodim01..kodim24).

Importing this module registers the TFDS dataset ``kodak``: one split, ``test``, of 24
lossless RGB PNGs (768x512 or 512x768), each example ``{"image", "filename"}``.

Usage::

    tfycc evaluate --tfds kodak ...

or from Python::

    import tensorflow_datasets as tfds
    import tfycc.kodak  # noqa: F401  (registers "kodak")

    ds = tfds.load("kodak", split="test", data_dir=...)
    # or, to prepare from local files instead of downloading:
    config = tfds.download.DownloadConfig(manual_dir="../shared/data/kodak")
    ds = tfds.load("kodak", split="test",
                   download_and_prepare_kwargs={"download_config": config})

or, for a plain list of ``(name, uint8 array)`` pairs, :func:`load_images`.

The images are taken from the TFDS manual directory when it holds ``kodim*.png`` files
(this project keeps them in ``../shared/data/kodak`` beside the repository root, which
:func:`load_images` uses by default); otherwise they are downloaded from r0k.us.
"""
import contextlib
import os
import sys

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import tqdm_utils

__all__ = ["Kodak", "load_images", "DEFAULT_MANUAL_DIR", "URL_TEMPLATE"]

URL_TEMPLATE = "http://r0k.us/graphics/kodak/kodak/kodim{:02d}.png"
NUM_IMAGES = 24

# <repo root>/../shared/data/kodak, where repo root is the parent of the tfycc package.
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MANUAL_DIR = os.path.join(os.path.dirname(_REPO_ROOT), "shared", "data", "kodak")

_CITATION = """\
@misc{kodak,
  title = {Kodak Lossless True Color Image Suite},
  author = {{Eastman Kodak Company}},
  howpublished = {\\url{http://r0k.us/graphics/kodak/}},
  note = {PhotoCD PCD0992}
}
"""


class Kodak(tfds.core.GeneratorBasedBuilder):
    """The 24 Kodak PhotoCD test images, as TFDS dataset ``kodak`` (split ``test``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Optional: put kodim01.png ... kodim24.png (or any subset) in the manual directory
    (`--manual_dir` / `tfds.download.DownloadConfig(manual_dir=...)`) to avoid the download.
    In this project's environment they live in `../shared/data/kodak` beside the repository
    root. Without them the images are downloaded from http://r0k.us/graphics/kodak/.
    """

    def _info(self):
        """Features: the RGB image and its file name (e.g. ``kodim01.png``)."""
        return tfds.core.DatasetInfo(
            builder=self,
            description=("The Kodak Lossless True Color Image Suite: 24 photographs "
                         "(768x512 or 512x768 RGB), a standard image-compression test set."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "filename": tfds.features.Text(),
            }),
            supervised_keys=None,
            homepage="http://r0k.us/graphics/kodak/",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        """The ``test`` split, from the manual directory if populated, else downloaded."""
        files = _manual_files(dl_manager)
        if not files:
            urls = {f"kodim{i:02d}.png": URL_TEMPLATE.format(i) for i in range(1, NUM_IMAGES + 1)}
            files = dl_manager.download(urls)
        return {"test": self._generate_examples(files)}

    def _generate_examples(self, files):
        """Yield ``stem, {"image": path, "filename": name}`` for a ``{name: path}`` dict."""
        for name, path in sorted(files.items()):
            yield os.path.splitext(name)[0], {"image": path, "filename": name}


def _manual_files(dl_manager):
    """``{name: path}`` of the kodim*.png files in the manual directory; {} if none."""
    try:
        manual_dir = dl_manager.manual_dir
    except AssertionError:  # TFDS raises this when the directory is missing or empty.
        return {}
    return {path.name: path for path in sorted(manual_dir.glob("kodim*.png"))}


@contextlib.contextmanager
def _quiet_tfds():
    """Hide TFDS progress bars and send its status prints to stderr (keeps stdout clean)."""
    bars = tqdm_utils._active
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        tfds.display_progress_bar(bars)


def load_images(data_dir=None, manual_dir=None):
    """Prepare (if needed) and read the Kodak set: a list of ``(name, uint8 [H, W, 3])``.

    ``data_dir`` is the TFDS data directory (TFDS's default when None). ``manual_dir``
    holds the kodim*.png files; it defaults to :data:`DEFAULT_MANUAL_DIR` when that exists,
    otherwise the images are downloaded. An already prepared dataset in ``data_dir`` is
    reused as is. Names are file stems (``kodim01``...), sorted.
    """
    if manual_dir is None and os.path.isdir(DEFAULT_MANUAL_DIR):
        manual_dir = DEFAULT_MANUAL_DIR
    builder = tfds.builder("kodak", data_dir=data_dir)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    with _quiet_tfds():
        builder.download_and_prepare(download_config=config)
        examples = tfds.as_numpy(builder.as_dataset(split="test"))
        images = [(os.path.splitext(ex["filename"].decode())[0], ex["image"]) for ex in examples]
    return sorted(images, key=lambda item: item[0])
