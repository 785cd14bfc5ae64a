"""GPUs for TensorFlow: memory growth, so that learners and trials sharing a GPU fit side by side.

Where a GPU is shared is a placement decision, so it is made here, by the runners (the REINFORCE
trainer, the learner's actor, the Tune trainables), before a component first touches the GPU;
the components in rl/ and supervised/ do not know whether they share one.
"""

from __future__ import annotations


def enable_memory_growth() -> list[str]:
    """Lets TensorFlow take GPU memory as it needs it rather than all at once. Must run before
    TensorFlow first touches the GPU; returns the names of the GPUs this process sees (none on a
    CPU machine)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: its setting stands
            pass
    return [gpu.name for gpu in gpus]
