"""The supervised labs' pictures: matplotlib figures drawn off-screen as RGB arrays or PNG files.

Each figure is a ``matplotlib.figure.Figure`` on its own Agg canvas: no pyplot, no global state,
safe in a Tune trial's worker. ``figure_to_rgb`` gives TensorBoard's images (uint8 [H, W, 3]),
``save_png`` a file. MNIST: the confusion matrix and the misclassified digits; the debiasing
lab: the face probability per group, reconstructions, the faces the resampling favours.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from supervised.faces import FaceData


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """A figure drawn off-screen (Agg, no pyplot state) as uint8 RGB [H, W, 3]."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, path: str | Path) -> Path:
    """The figure as a PNG file at ``path`` (its folder made if needed); the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


# ------------------------------------------------------------------------------------- MNIST


def render_confusion(matrix: np.ndarray) -> np.ndarray:
    """The confusion matrix as a labelled heat map with the counts written in."""
    fig = Figure(figsize=(5.5, 5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    k = len(matrix)
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true",
           title=f"confusion matrix, accuracy {accuracy:.4f}")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > matrix.max() / 2 else "black")
    return figure_to_rgb(fig)


def render_misclassified(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                         grid: int = 5) -> np.ndarray:
    """The first grid x grid misclassified digits, each titled with its true and predicted
    label; the picture's size does not depend on how many there are."""
    wrong = np.flatnonzero(labels != predictions)
    fig = Figure(figsize=(grid * 1.3, grid * 1.45 + 0.3), dpi=100, layout="constrained")
    fig.suptitle(f"misclassified test digits: {len(wrong)} of {len(labels)}")
    for k in range(grid * grid):
        ax = fig.add_subplot(grid, grid, k + 1)
        ax.set_axis_off()
        if k < len(wrong):
            i = wrong[k]
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(f"true {labels[i]}, pred {predictions[i]}", fontsize=8)
    return figure_to_rgb(fig)


# ------------------------------------------------------------------------------- debiasing


def render_group_plot(metrics: Mapping[str, float], label: str = "this model") -> Figure:
    """The course's bar plot: the mean face probability per group (eval/mean_face_prob_<group>),
    each bar topped with the group's accuracy; with baseline/ metrics (a co-trained standard
    classifier) its bars stand beside, as the course plots the standard CNN beside the DB-VAE.
    The legend holds each model's E[A] and Var[A]."""
    models = [(prefix, name) for prefix, name in (("baseline", "standard CNN"), ("eval", label))
              if f"{prefix}/E_A" in metrics]
    groups = [k.removeprefix("eval/mean_face_prob_") for k in metrics
              if k.startswith("eval/mean_face_prob_")]
    width = 0.8 / len(models)
    fig = Figure(figsize=(5.5, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for m, (prefix, name) in enumerate(models):
        xs = np.arange(len(groups)) + (m - (len(models) - 1) / 2) * width
        heights = [metrics[f"{prefix}/mean_face_prob_{g}"] for g in groups]
        ax.bar(xs, heights, width, label=f"{name}: E[A] {metrics[f'{prefix}/E_A']:.1f}%, "
                                         f"Var[A] {metrics[f'{prefix}/Var_A']:.1f}")
        for x, h, g in zip(xs, heights, groups):
            ax.text(x, h + 0.02, f"{metrics.get(f'{prefix}/accuracy_{g}', np.nan):.2f}",
                    ha="center", fontsize=7)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set(ylim=(0, 1.3), ylabel="mean face probability",
           title="face probability per group (bar tops: accuracy)")
    ax.legend(loc="upper center", fontsize=7, ncol=1)
    return fig


def render_reconstructions(originals: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Originals (top row) above their reconstructions (bottom row), uint8 [n, H, W, 3] each."""
    n = len(originals)
    fig = Figure(figsize=(1.2 * n, 2.8), dpi=100, layout="constrained")
    fig.suptitle("test faces (top) and their DB-VAE reconstructions from the latent mean")
    for row, images in enumerate((originals, reconstructions)):
        for k, image in enumerate(images):
            ax = fig.add_subplot(2, n, row * n + k + 1)
            ax.imshow(image)
            ax.set_axis_off()
    return figure_to_rgb(fig)


def render_extremes(data: FaceData, probs: np.ndarray, k: int = 8) -> np.ndarray:
    """The k training faces with the highest sampling probability (top row) and the k with the
    lowest (bottom row), each titled with its probability relative to uniform (p * F)."""
    order = np.argsort(probs, kind="stable")
    k = min(k, len(probs))
    fig = Figure(figsize=(1.2 * k, 3.0), dpi=100, layout="constrained")
    fig.suptitle("faces the resampling favours most (top) and least (bottom), p x F")
    for row, picked in enumerate((order[::-1][:k], order[:k])):
        images = data.images(data.face_indices[picked])
        for j, (i, image) in enumerate(zip(picked, images)):
            ax = fig.add_subplot(2, k, row * k + j + 1)
            ax.imshow(image)
            ax.set_title(f"{probs[i] * len(probs):.2f}", fontsize=8)
            ax.set_axis_off()
    return figure_to_rgb(fig)
