"""Feeding Keras from the feature cache: a ``tf.data`` pipeline over ``FoldData.x``.

``x`` is usually a :class:`mer_bench.features.Rows` view of memory-mapped blocks, so a
fold is never copied into memory: each batch reads its rows with ``x.take``, in its
own dtype (uint8 for images), and is cast to float32 on the way, while the next
batches are read ahead.
"""

from __future__ import annotations

import numpy as np


def batches(x, y: np.ndarray | None, batch_size: int, *, shuffle_seed: int | None = None):
    """A ``tf.data.Dataset`` of ``(images, targets)`` (or images alone when ``y`` is None):
    integer class labels as int64, a regression task's float values as float32.

    With ``shuffle_seed`` the order is reshuffled every epoch, the same way for the same
    seed; without it rows come in order (for validation and prediction).
    """
    import tensorflow as tf

    n, item_shape = len(x), tuple(x.shape[1:])
    dtype = tf.as_dtype(x.dtype)

    def read(indices: np.ndarray) -> np.ndarray:
        return x.take(indices, axis=0)

    if y is None:
        labels = None
    else:
        y = np.asarray(y)
        # Values of a regression task must not be truncated to integers on the way.
        labels = tf.constant(y.astype(np.float32) if np.issubdtype(y.dtype, np.floating) else y.astype(np.int64))

    def load(indices):
        images = tf.numpy_function(read, [indices], dtype, stateful=False)
        images = tf.cast(tf.ensure_shape(images, (None, *item_shape)), tf.float32)
        return images if labels is None else (images, tf.gather(labels, indices))

    order = tf.data.Dataset.range(n)
    if shuffle_seed is not None:
        order = order.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
    return order.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
