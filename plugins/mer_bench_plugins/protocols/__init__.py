"""Built-in evaluation protocols: how a run's tracks become train, validation and test parts
(see :class:`mer_bench.types.EvaluationProtocol` and docs/protocol.md)."""
