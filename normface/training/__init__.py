"""Training the normalizer: configs, losses, the distributed training loop, checkpoints, export.

- ``config``       TrainConfig (loss weights, schedule, intervals, strategy, precision).
- ``losses``       landmark MSE, texture L1, the identity loss and metric.
- ``trainer``      Trainer: custom step under tf.distribute, resume, TensorBoard, validation.
- ``strategy``     tf.distribute strategies by name; which process is the chief.
- ``schedule``     Adam's learning-rate schedule.
- ``checkpoints``  the checkpoint folders, the best-checkpoint score and the best-else-latest rule.
- ``summaries``    TensorBoard scalars/images without the tensorboard package; sample panels.
- ``export``       writes the export format of :mod:`normface.serving.export_format` + model card.
"""
