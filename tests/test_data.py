import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfycc.data import centre_crop, list_images, patch_dataset, random_scaled_crop


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


def test_scaled_crops_shrink_a_larger_window_and_plain_crops_copy_pixels(image_dir):
    # Columns of a horizontal ramp: a plain crop keeps the step of 1 per pixel; a crop
    # at scale s spans about 1/s as many columns, so its step is larger (up to 1/s).
    ramp = tf.constant(np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (200, 1, 3)))
    tf.random.set_seed(3)
    plain = random_scaled_crop(ramp, 32).numpy().astype(int)
    assert set(np.diff(plain[0, :, 0])) == {1}
    steps = [np.diff(random_scaled_crop(ramp, 32, 0.25).numpy()[0, :, 0].astype(int)).mean()
             for _ in range(20)]
    assert all(0.9 < step < 4.2 for step in steps) and max(steps) > 1.5
    # The window never exceeds the image: a 40-pixel image at scale 0.1 gives at most 40/32.
    small = random_scaled_crop(ramp[:40, :40], 32, 0.1).numpy()
    assert small.dtype == np.uint8 and small.shape == (32, 32, 3)
    assert np.diff(small[0, :, 0].astype(int)).mean() <= 40 / 32 + 0.05
    with pytest.raises(ValueError, match="min_scale"):
        patch_dataset(str(image_dir), min_scale=0)
    batch = next(iter(patch_dataset(str(image_dir), patch_size=32, batch_size=2, min_scale=0.5)))
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == tf.uint8


def test_tfds_dataset_patches_with_mocked_data():
    import tensorflow_datasets as tfds

    from tfycc.data import tfds_patch_dataset

    with tfds.testing.mock_data(num_examples=6):
        batch = next(iter(tfds_patch_dataset("mnist", patch_size=16, batch_size=2)))
    assert batch.shape == (2, 16, 16, 3) and batch.dtype == tf.uint8  # greyscale expanded
