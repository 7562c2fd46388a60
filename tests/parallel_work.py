"""A TensorFlow job for worker processes (importable by name, so it pickles)."""


def add_one(x: float) -> float:
    """x + 1 computed by TensorFlow in the worker."""
    import tensorflow as tf

    return float((tf.constant(x) + 1.0).numpy())
