"""Training the normalizer: configs, the distributed training loop, summaries, export, synthetic data.

- ``config``     TrainConfig (loss weights, schedule, intervals, strategy, precision).
- ``trainer``    Trainer: custom step under tf.distribute, checkpoints + resume, TensorBoard,
                 validation by the identity metric with best-checkpoint selection.
- ``export``     SavedModel + .keras + metadata + model card; loading helpers.
- ``summaries``  TensorBoard scalars/images without the tensorboard package; sample panels.
- ``synthetic``  in-memory data and a fake encoder for tests, smoke runs and benchmarks.
"""
