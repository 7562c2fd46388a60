"""Benchmark of effnetb3's fit loop against a minimal hand-written ``model.fit``.

Run:  python benchmarks/bench_train.py [--size 300] [--images 64] [--epochs 3] [--batch 16]

Both variants train the same network (``build_network``, random weights, Adam, the paper's
loss) on the same images, written once as a uint8 ``.npy`` file the way the feature cache
keeps them, with a validation set of a quarter as many:

- harness: ``EffNetB3.fit`` on ``FoldData`` whose ``x`` is a ``Rows`` view of the
  memory-mapped file, exactly what a run hands the model (tf.data, uint8 cast on the fly,
  prefetch, early stopping watching the validation loss);
- plain: the arrays read into memory as float32 and ``model.fit(x, y, validation_data=...)``.

Each variant runs in a fresh process, so that its peak RSS is its own. Training
throughput is images per second over the training part of every epoch after the first
(the first one traces the graph), the median; a callback added to ``Model.fit`` times
both variants the same way. Inference is images per second of a second prediction over
the validation images. The target: harness throughput at least 0.95 of plain, and peak
memory at most 1.10 of plain.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_inputs(folder: Path, n: int, size: int) -> Path:
    """``n`` train and ``n // 4`` validation images with labels, as one memory-mappable file each."""
    rng = np.random.default_rng(0)
    total = n + max(n // 4, 4)
    np.save(folder / "images.npy", rng.integers(0, 256, (total, size, size, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.arange(total) % 4)
    return folder


def child(kind: str, folder: Path, n: int, epochs: int, batch: int) -> dict:
    import keras

    from mer_bench.features import Features
    from mer_bench.types import FoldData
    from mer_bench_plugins.models.effnetb3 import EffNetB3, EffNetB3Settings, build_network
    from mer_bench_plugins.models.imagenet_weights import WeightsSource
    from mer_bench_plugins.models.keras_classifier import Output

    train_seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_test_begin(self, logs=None):
            train_seconds.append(time.perf_counter() - self.start)

    plain_fit = keras.Model.fit

    def timed_fit(self, *args, callbacks=None, **kwargs):
        return plain_fit(self, *args, callbacks=[*(callbacks or []), EpochTimer()], **kwargs)

    keras.Model.fit = timed_fit
    images = np.load(folder / "images.npy", mmap_mode="r")
    labels = np.load(folder / "labels.npy")
    settings = EffNetB3Settings(weights="none", epochs=epochs, patience=epochs, batch_size=batch)
    if kind == "harness":
        ids = [f"x/{i}" for i in range(len(images))]
        features = Features([images], ids, [])
        train = FoldData(features.select(ids[:n]), labels[:n], ids[:n])
        val = FoldData(features.select(ids[n:]), labels[n:], ids[n:])
        model = EffNetB3(settings, Output(False, 4), seed=0)
        model.fit(train, val)

        def predict():
            return model.predict_proba(val.x)
    else:
        x = np.asarray(images, dtype=np.float32)
        keras.utils.set_random_seed(0)
        network = build_network(x.shape[1:], Output(False, 4), WeightsSource("none"))
        network.compile(
            optimizer=keras.optimizers.Adam(settings.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=["accuracy"],
        )
        network.fit(
            x[:n], labels[:n], batch_size=batch, epochs=epochs, validation_data=(x[n:], labels[n:]), verbose=0
        )

        def predict():
            return network.predict(x[n:], batch_size=batch, verbose=0)

    predict()
    start = time.perf_counter()
    predict()
    infer_s = time.perf_counter() - start
    return {
        "variant": kind,
        "train_img_s": n / median(train_seconds[1:]),
        "first_epoch_s": train_seconds[0],
        "infer_img_s": (len(images) - n) / infer_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--child", choices=["harness", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.images, args.epochs, args.batch)))
        return
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch traces the graph")

    import tensorflow as tf

    device = ", ".join(d.device_type for d in tf.config.list_physical_devices() if d.device_type != "CPU") or "CPU"
    print(f"effnetb3 fit loop: {args.images} images {args.size}x{args.size}x3, batch {args.batch}, "
          f"{args.epochs} epochs, on {device} ({os.cpu_count()} cores)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_inputs(Path(tmp), args.images, args.size)
        for kind in ("plain", "harness"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, "--folder", str(folder), "--images", str(args.images),
                 "--epochs", str(args.epochs), "--batch", str(args.batch)],
                capture_output=True, text=True, check=False,
            )
            if out.returncode != 0:
                sys.exit(f"{kind} failed:\n{out.stderr[-3000:]}")
            results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    for r in results.values():
        print(f"  {r['variant']:8s} train {r['train_img_s']:7.2f} img/s (first epoch {r['first_epoch_s']:.1f} s)  "
              f"inference {r['infer_img_s']:7.2f} img/s  peak RSS {r['peak_rss_gb']:.2f} GB")
    speed = results["harness"]["train_img_s"] / results["plain"]["train_img_s"]
    memory = results["harness"]["peak_rss_gb"] / results["plain"]["peak_rss_gb"]
    print(f"  harness/plain: throughput {speed:.3f} (target >= 0.95), peak memory {memory:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
