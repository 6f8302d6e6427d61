"""tf.distribute strategies by name, and which process is the chief (writes logs, checkpoints,
exports). ``default`` runs on one device; ``mirrored`` on every GPU (or logical CPU device);
``multi_worker`` across machines (TF_CONFIG); ``tpu`` on a TPU (untested here)."""

from __future__ import annotations

import os

import tensorflow as tf


def make_strategy(name: str, tpu: str = "") -> tf.distribute.Strategy:
    """The tf.distribute strategy called ``name`` (default | mirrored | multi_worker | tpu).

    ``mirrored`` uses every GPU, or every logical CPU device when there is no GPU (tests split the
    CPU with ``tf.config.set_logical_device_configuration``). ``multi_worker`` reads TF_CONFIG and
    must be created before any other TensorFlow op runs. ``tpu`` connects to ``tpu`` (a name or
    address; "" = the local TPU) -- untested here.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError("strategy multi_worker needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy must be default, mirrored, multi_worker or tpu, got {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and exports (always, unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}_{resolver.task_id}" if resolver is not None else "0"
