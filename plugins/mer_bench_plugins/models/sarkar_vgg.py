"""``sarkar-vgg``: a VGG-style CNN on 5 s log-Mel segments, songs scored by averaging segments.

Follows Sarkar, Choudhury, Dutta, Roy and Saha, "Recognition of emotion in music based on
deep convolutional neural network" (Multimedia Tools and Applications 79, 2020), as far as
it can be known here: a VGGNet-style CNN trained on Mel spectrograms of 5 s segments,
with a post-processing step that turns segment outputs into a song's class.

The paper body was not readable, so the network is that of a third-party
reimplementation (Johny-Code/music-piece-emotion-classifier, ``train_sarkar.py``):
3x3 convolutions 64, 64, pool 2, 64, 64, pool 2, 128, pool 3, dropout 0.25, 256, pool 3,
dropout 0.25, 256, pool 3, dropout 0.25, then Flatten, Dense 256 (L2 1e-3), dropout 0.5,
Dense 256 (L2 1e-3), dropout 0.5 and softmax; Adam with learning rate 1e-5.

Assumptions, each a setting where it can vary:

- ReLU activations, "same" padding for convolutions and pooling (so that short inputs
  still fit), batch size 32;
- every segment inherits its song's label; a song's probabilities are the mean of its
  segments' (the post-processing slot); the harness splits songs, so no song's segments
  are on both sides of a split;
- early stopping on the validation segments' loss (patience 30), restoring the best
  epoch, instead of the reimplementation's checkpoint on validation accuracy, with at
  most 500 epochs;
- ``width`` scales every layer's filters and units (1.0 is the network above; the quick
  preset uses less on a CPU).
"""

from __future__ import annotations

from pydantic import Field

from mer_bench import hookimpl
from mer_bench_plugins.models.keras_classifier import KerasFactory, KerasSettings, Output

#: (filters, pool size, dropout after the pool) of each convolution, None: no pool yet.
CONVOLUTIONS = ((64, None, 0.0), (64, 2, 0.0), (64, None, 0.0), (64, 2, 0.0), (128, 3, 0.25), (256, 3, 0.25), (256, 3, 0.25))
DENSE = ((256, 0.5), (256, 0.5))


class SarkarSettings(KerasSettings):
    learning_rate: float = Field(1e-5, gt=0)
    epochs: int = Field(500, gt=0)
    patience: int = Field(30, gt=0, description="epochs without a lower validation loss before stopping")
    l2: float = Field(1e-3, ge=0, description="L2 penalty on the two dense layers")
    width: float = Field(1.0, gt=0, description="multiplies every layer's filters and units")


def _scaled(units: int, width: float) -> int:
    return max(1, round(units * width))


class SarkarVGG(KerasFactory):
    name = "sarkar-vgg"
    feature = "mel-segments"
    settings_model = SarkarSettings
    segmented = True

    def network(self, input_shape: tuple[int, ...], output: Output, settings: SarkarSettings, keras):
        """The VGG-style stack on one segment (Mel bands x frames)."""
        layers = keras.layers
        inputs = keras.Input(shape=input_shape, name="segment")
        x = layers.Reshape((*input_shape, 1))(inputs)
        for filters, pool, dropout in CONVOLUTIONS:
            x = layers.Conv2D(_scaled(filters, settings.width), 3, padding="same", activation="relu")(x)
            if pool:
                x = layers.MaxPooling2D(pool, padding="same")(x)
            if dropout:
                x = layers.Dropout(dropout)(x)
        x = layers.Flatten()(x)
        for units, dropout in DENSE:
            regulariser = keras.regularizers.L2(settings.l2)
            x = layers.Dense(_scaled(units, settings.width), activation="relu", kernel_regularizer=regulariser)(x)
            x = layers.Dropout(dropout)(x)
        outputs = output.layer(keras)(x)
        return keras.Model(inputs, outputs, name="sarkar_vgg")

    def optimizer(self, settings: SarkarSettings, steps_per_epoch: int, keras):
        return keras.optimizers.Adam(learning_rate=settings.learning_rate)


@hookimpl
def mer_bench_models():
    return [SarkarVGG()]
