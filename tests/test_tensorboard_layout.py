"""What TensorBoard shows first (``cluster/tensorboard_layout.py``): each lab's Custom Scalars
layout names only metrics the lab reports, and reaches TensorBoard as its custom-scalar plugin
reads it back, tags anchored (a Tune trial's under ray/tune/)."""

from __future__ import annotations

import re

import pytest

from cluster.labs import LABS
from cluster.tensorboard_layout import LAYOUTS, TUNE_PREFIX, layout, metrics_of, write_layout


@pytest.mark.parametrize("lab", sorted(LABS))
def test_every_lab_has_a_layout_of_metrics_it_reports(lab):
    assert lab in LAYOUTS
    assert metrics_of(lab) <= set(LABS[lab].metrics()), metrics_of(lab) - set(LABS[lab].metrics())
    for charts in LAYOUTS[lab].values():
        for kind, names in charts.values():
            assert kind in ("Multiline", "Margin") and (kind != "Margin" or len(names) == 3)


def test_the_layout_reads_back_from_the_event_file_as_tensorboard_sees_it(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(logdir=str(tmp_path))
    write_layout(writer, "mnist", TUNE_PREFIX)
    writer.add_scalar("ray/tune/test/accuracy", 0.9, 1)
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    (event,) = events.Tensors(metadata.CONFIG_SUMMARY_TAG)
    read = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    charts = {chart.title: list(chart.multiline.tag) for category in read.category for chart in category.chart}
    assert charts["accuracy: train and test"] == ["^ray/tune/train/accuracy$", "^ray/tune/test/accuracy$"]
    assert [t for t in events.Tags()["scalars"] if re.match(charts["accuracy: train and test"][1], t)]
    band = layout("rl")["return"]["episode return: mean, min-max band (last stop.window episodes)"]
    assert band == ["Margin", ["^rollout/episode_return_mean$", "^rollout/episode_return_min$",
                               "^rollout/episode_return_max$"]]
