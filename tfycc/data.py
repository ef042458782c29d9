"""tf.data input pipelines: random patches from image files or a TFDS dataset.

Yields uint8 batches [B, P, P, 3]; the model converts to float itself.
"""
import glob
import os

import tensorflow as tf

__all__ = ["list_images", "decode_image", "centre_crop", "random_scaled_crop", "patch_dataset",
           "tfds_patch_dataset", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def list_images(patterns):
    """Expand globs (or directories) into a sorted list of image files; ValueError if none."""
    files = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**", "*")
        files += [f for f in glob.glob(pattern, recursive=True)
                  if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(f)]
    if not files:
        raise ValueError(f"no PNG/JPEG images match {patterns!r}")
    return sorted(set(files))


def decode_image(contents):
    """Encoded image bytes -> uint8 [H, W, 3] (grey expanded, alpha dropped)."""
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def centre_crop(image, max_side):
    """The centre (at most) max_side x max_side of an [H, W, ...] array or eager tensor;
    max_side 0 keeps it whole."""
    if not max_side:
        return image
    h, w = min(image.shape[0], max_side), min(image.shape[1], max_side)
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    return image[y0:y0 + h, x0:x0 + w]


def random_scaled_crop(image, patch_size, min_scale=1.0):
    """A random patch_size^2 uint8 crop of ``image`` seen at a random scale s in
    [min_scale, 1]: a window of about patch_size / s pixels is cropped and shrunk to the
    patch (antialiased), so s < 1 shows more of the image, as a downscaled copy would.
    The window never exceeds the image's shorter side; min_scale 1 is a plain crop."""
    if min_scale >= 1:
        return tf.image.random_crop(image, [patch_size, patch_size, 3])
    shape = tf.shape(image)
    side = tf.minimum(shape[0], shape[1])
    scale = tf.random.uniform([], min_scale, 1.0)
    window = tf.cast(tf.math.ceil(patch_size / scale), tf.int32)
    window = tf.clip_by_value(window, patch_size, side)
    crop = tf.image.random_crop(image, tf.stack([window, window, 3]))
    small = tf.image.resize(tf.cast(crop, tf.float32), [patch_size, patch_size],
                            method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(small), 0, 255), tf.uint8)


def _patches(images, patch_size, batch_size, shuffle_buffer, seed, min_scale=1.0):
    """Common tail: drop too-small images, random (scaled) crop, random flips, shuffle,
    batch."""
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must be in (0, 1], not {min_scale}")

    def big_enough(image):
        shape = tf.shape(image)
        return shape[0] >= patch_size and shape[1] >= patch_size

    def augment(image):
        image = random_scaled_crop(image, patch_size, min_scale)
        image = tf.image.random_flip_left_right(image)
        return tf.image.random_flip_up_down(image)

    return (images.filter(big_enough).repeat().shuffle(shuffle_buffer, seed=seed)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def patch_dataset(patterns, patch_size=128, batch_size=8, shuffle_buffer=256, cache=True, seed=None,
                  min_scale=1.0):
    """Endless dataset of random patches from the image files matching ``patterns``.

    Images smaller than the patch are skipped; ``min_scale`` < 1 shows each patch at a
    random scale in [min_scale, 1] (``random_scaled_crop``).  Decoded images are cached in memory
    (the 680 training photos take about 1 GB) so JPEG decoding runs once.
    """
    files = list_images(patterns)
    images = (tf.data.Dataset.from_tensor_slices(files)
              .shuffle(len(files), seed=seed, reshuffle_each_iteration=False)
              .map(lambda f: decode_image(tf.io.read_file(f)), num_parallel_calls=tf.data.AUTOTUNE))
    if cache:
        images = images.cache()
    return _patches(images, patch_size, batch_size, shuffle_buffer, seed, min_scale)


def tfds_patch_dataset(name, split="train", patch_size=128, batch_size=8, shuffle_buffer=256,
                       data_dir=None, seed=None, min_scale=1.0):
    """Random patches from a TFDS dataset with an ``image`` feature (e.g. ``clic``)."""
    import tensorflow_datasets as tfds

    ds = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=True)
    images = ds.map(lambda ex: tf.image.grayscale_to_rgb(ex["image"])
                    if ex["image"].shape[-1] == 1 else ex["image"][..., :3])
    return _patches(images, patch_size, batch_size, shuffle_buffer, seed, min_scale)
