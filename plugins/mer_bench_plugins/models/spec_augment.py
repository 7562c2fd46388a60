"""SpecAugment as PANNs applies it in training: stripes of time frames and Mel bands set to zero.

torchlibrosa's ``SpecAugmentation(time_drop_width, time_stripes_num, freq_drop_width,
freq_stripes_num)``: per example and stripe, a width drawn from [0, drop_width) and a
start from [0, size - width), independently. Keras has no such layer, so this small one
is registered for saving and loading. Importing this module imports Keras.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mer_bench")
class SpecAugment(keras.layers.Layer):
    """Zeroes random stripes of axis 1 (time) and axis 2 (Mel bands) of (batch, time, mels, 1) inputs, in training only."""

    def __init__(self, time_drop_width=64, time_stripes=2, freq_drop_width=8, freq_stripes=2, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.time_drop_width = time_drop_width
        self.time_stripes = time_stripes
        self.freq_drop_width = freq_drop_width
        self.freq_stripes = freq_stripes
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _stripes(self, x, axis: int, drop_width: int, stripes: int):
        batch, size = ops.shape(x)[0], ops.shape(x)[axis]
        position = ops.arange(size)[None, :]
        for _ in range(stripes):
            width = ops.floor(keras.random.uniform((batch, 1), 0, drop_width, seed=self.seed_generator))
            room = ops.maximum(ops.cast(size, "float32") - width, 1.0)
            start = ops.floor(keras.random.uniform((batch, 1), 0, 1, seed=self.seed_generator) * room)
            position_f = ops.cast(position, "float32")
            dropped = ops.logical_and(position_f >= start, position_f < start + width)
            mask_shape = (batch, size, 1, 1) if axis == 1 else (batch, 1, size, 1)
            x = ops.where(ops.reshape(dropped, mask_shape), ops.zeros_like(x), x)
        return x

    def call(self, inputs, training=None):
        if not training:
            return inputs
        x = self._stripes(inputs, 1, self.time_drop_width, self.time_stripes)
        return self._stripes(x, 2, self.freq_drop_width, self.freq_stripes)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "time_drop_width": self.time_drop_width,
            "time_stripes": self.time_stripes,
            "freq_drop_width": self.freq_drop_width,
            "freq_stripes": self.freq_stripes,
            "seed": self.seed,
        }
