"""``cnn6`` and ``cnn10``: the PANNs CNN-6 and CNN-10 trained from scratch, as Sung and Wei (2021) did.

Sung and Wei, "BECMER: A Fusion Model Using BERT and CNN for Music Emotion Recognition"
(IEEE IRI 2021), audio arm: the ``Cnn6`` and ``Cnn10`` classes of PANNs (Kong et al.,
"PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition",
2020), trained from scratch on the ``panns-logmel`` input (the first 60 s, 64 bands).

The network, as in PANNs: a BatchNorm over each Mel band; SpecAugment in training (time
stripes of up to 64 frames, frequency stripes of up to 8 bands, two of each); four
blocks of 64, 128, 256 and 512 channels, each followed by dropout 0.2. A CNN-6 block is
a 5x5 convolution, BatchNorm, ReLU and 2x2 average pooling; a CNN-10 block is two 3x3
convolutions with BatchNorm and ReLU, then 2x2 average pooling. Convolutions have no
bias. Then the mean over Mel bands, max plus mean over time, dropout 0.5, Dense 512 ReLU
and the classifier. Weights start Xavier-uniform with zero biases (Keras' defaults).
Training as BECMER: Adam with learning rate 1e-4, multiplied by 0.95 every 3 epochs,
batch 6.

Deliberate departures from BECMER's code (docs/protocol.md):

- the epoch is chosen by early stopping on the validation part (patience 20, at most
  300 epochs), never on the test fold as they did;
- softmax and plain cross-entropy, not cross-entropy over sigmoid outputs with class
  weights 1, 5, 2, 5;
- 32 kHz audio (the feature's setting), not files at their native rate.

``width`` scales every block's channels and the Dense layer (1.0 is the published size;
the quick preset uses less on a CPU).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mer_bench import hookimpl
from mer_bench_plugins.models.keras_classifier import KerasFactory, KerasModel, KerasSettings, Output

CHANNELS = (64, 128, 256, 512)
EMBEDDING = 512
BN_MOMENTUM = 0.9


class PannsSettings(KerasSettings):
    learning_rate: float = Field(1e-4, gt=0)
    decay_every: int = Field(3, gt=0, description="epochs between learning-rate decays")
    decay_rate: float = Field(0.95, gt=0, le=1, description="factor applied every decay_every epochs")
    epochs: int = Field(300, gt=0)
    patience: int = Field(20, gt=0, description="epochs without a lower validation loss before stopping")
    batch_size: int = Field(6, gt=0)
    spec_augment: bool = Field(True, description="SpecAugment stripes in training, as PANNs")
    width: float = Field(1.0, gt=0, description="multiplies every block's channels and the Dense layer's units")


class PannsCNN(KerasFactory):
    """CNN-6 (one 5x5 convolution per block) or CNN-10 (two 3x3 convolutions per block)."""

    feature = "panns-logmel"
    settings_model = PannsSettings
    segmented = False

    def __init__(self, name: str, convolutions: int, kernel: int):
        self.name = name
        self.convolutions = convolutions
        self.kernel = kernel

    def network(self, input_shape: tuple[int, ...], output: Output, settings: PannsSettings, keras):
        """The PANNs network on frames x Mel bands inputs."""
        from mer_bench_plugins.models.spec_augment import SpecAugment

        layers = keras.layers
        frames, bands = input_shape
        inputs = keras.Input(shape=input_shape, name="logmel")
        x = layers.Reshape((frames, bands, 1))(inputs)
        # PyTorch's BatchNorm momentum 0.1 is Keras' 0.9 (Keras' default, 0.99, would keep
        # the moving statistics far from the data for the first few hundred steps).
        x = layers.BatchNormalization(axis=2, momentum=BN_MOMENTUM, name="bn0")(x)  # per Mel band
        if settings.spec_augment:
            x = SpecAugment(name="spec_augment")(x)  # seeded by keras.utils.set_random_seed
        for block, channels in enumerate(CHANNELS, start=1):
            for conv in range(1, self.convolutions + 1):
                x = layers.Conv2D(
                    max(1, round(channels * settings.width)), self.kernel, padding="same", use_bias=False,
                    name=f"block{block}_conv{conv}",
                )(x)
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{block}_bn{conv}")(x)
                x = layers.ReLU()(x)
            x = layers.AveragePooling2D(2, padding="same", name=f"block{block}_pool")(x)
            x = layers.Dropout(0.2)(x)
        # Mean over Mel bands, then max + mean over time.
        x = layers.AveragePooling2D((1, x.shape[2]), name="mean_over_bands")(x)
        x = layers.Reshape((x.shape[1], x.shape[3]))(x)
        x = layers.Add()([layers.GlobalMaxPooling1D()(x), layers.GlobalAveragePooling1D()(x)])
        x = layers.Dropout(0.5)(x)
        x = layers.Dense(max(1, round(EMBEDDING * settings.width)), activation="relu", name="fc1")(x)
        outputs = output.layer(keras)(x)
        return keras.Model(inputs, outputs, name=self.name)

    def optimizer(self, settings: PannsSettings, steps_per_epoch: int, keras):
        """Adam with PyTorch's StepLR(step_size=decay_every, gamma=decay_rate), counted in steps."""
        schedule = keras.optimizers.schedules.ExponentialDecay(
            settings.learning_rate,
            decay_steps=settings.decay_every * steps_per_epoch,
            decay_rate=settings.decay_rate,
            staircase=True,
        )
        return keras.optimizers.Adam(learning_rate=schedule)

    def load(self, folder: Path) -> KerasModel:
        import mer_bench_plugins.models.spec_augment  # noqa: F401  registers SpecAugment for loading

        return super().load(folder)


@hookimpl
def mer_bench_models():
    return [PannsCNN("cnn6", convolutions=1, kernel=5), PannsCNN("cnn10", convolutions=2, kernel=3)]
