import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfycc.data import centre_crop, list_images, patch_dataset


@pytest.fixture()
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    for i, size in enumerate([(40, 50), (64, 80), (20, 20)]):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(tmp_path / "grey.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_list_images_accepts_directories_and_globs(image_dir):
    assert len(list_images(str(image_dir))) == 4
    assert len(list_images([str(image_dir / "*.png")])) == 3
    with pytest.raises(ValueError):
        list_images(str(image_dir / "*.gif"))


def test_centre_crop_keeps_the_middle_of_arrays_and_tensors():
    image = np.arange(5 * 8 * 3).reshape(5, 8, 3)
    np.testing.assert_array_equal(centre_crop(image, 4), image[0:4, 2:6])
    np.testing.assert_array_equal(centre_crop(tf.constant(image), 6).numpy(), image[:, 1:7])
    assert centre_crop(image, 0) is image


def test_patches_are_uint8_batches_and_small_images_are_skipped(image_dir):
    ds = patch_dataset(str(image_dir), patch_size=32, batch_size=4, seed=1)
    batch = next(iter(ds))
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == tf.uint8
    # The 20x20 image can never produce a 32x32 patch: every patch comes from the others.
    ds = patch_dataset(str(image_dir / "im2.png"), patch_size=32, batch_size=1)
    with pytest.raises(StopIteration):
        next(iter(ds))


def test_tfds_dataset_patches_with_mocked_data():
    import tensorflow_datasets as tfds

    from tfycc.data import tfds_patch_dataset

    with tfds.testing.mock_data(num_examples=6):
        batch = next(iter(tfds_patch_dataset("mnist", patch_size=16, batch_size=2)))
    assert batch.shape == (2, 16, 16, 3) and batch.dtype == tf.uint8  # greyscale expanded
