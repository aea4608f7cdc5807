"""Pictures people would rather see than read: learning curves, confusion matrices, digits, the leaderboard."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from . import lazy
from .helpers import write_atomically


def _save(figure, path: Path, dpi: int) -> None:
    """Whole or not at all: two processes (cron beside a terminal) may draw the same picture at once."""
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=dpi))


def learning_curves(curves: dict[str, list[float]], best_epoch: int | None, title: str, path: Path) -> Path | None:
    """Training vs validation loss and accuracy per epoch: where they part, the model overfits."""
    if not curves.get("loss"):
        return None  # scikit-learn models have no epochs
    plt = lazy.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(curves["loss"]) + 1)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        axis.plot(epochs, curves[metric], label="training")
        if f"val_{metric}" in curves:
            axis.plot(epochs, curves[f"val_{metric}"], label="validation")
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path, 100)
    plt.close(figure)
    return path


def confusion_matrix(counts: list[list[int]], class_names: tuple[str, ...], title: str, path: Path) -> Path:
    plt = lazy.pyplot()
    matrix = np.asarray(counts)
    figure, axis = plt.subplots(figsize=(7, 6))
    # Log colour scale: the diagonal dwarfs the mistakes, which are what a reader is looking for.
    image = axis.imshow(np.log1p(matrix), cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if matrix[row, column] > matrix.max() / 3 else "black"
            axis.text(column, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    ticks = np.arange(len(class_names))
    axis.set_xticks(
        ticks,
        class_names,
        rotation=45 if len(class_names[0]) > 2 else 0,
        ha="right" if len(class_names[0]) > 2 else "center",
    )
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="log(1 + count)")
    figure.tight_layout()
    _save(figure, path, 100)
    plt.close(figure)
    return path


def misclassified(
    images: np.ndarray,
    mistakes: list[tuple[int, int, int]],
    class_names: tuple[str, ...],
    title: str,
    path: Path,
    limit: int = 40,
) -> Path | None:
    """A grid of wrongly classified validation digits, each captioned 'true -> predicted'."""
    if not mistakes:
        return None
    plt = lazy.pyplot()
    shown = mistakes[:limit]
    columns = 10
    rows = int(np.ceil(len(shown) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (index, true, predicted) in zip(axes.flat, shown, strict=False):
        axis.imshow(images[index].reshape(28, 28), cmap="gray_r")
        axis.set_title(f"{class_names[true]}→{class_names[predicted]}", fontsize=8, color="firebrick")
    figure.suptitle(f"{title}: true→predicted ({len(mistakes)} misclassified)")
    figure.tight_layout()
    _save(figure, path, 100)
    plt.close(figure)
    return path


def score_history(rows: list[dict[str, str]], title: str, path: Path) -> Path | None:
    """Public score and holdout accuracy of each scored submission, in order: is the leaderboard following?"""
    scored = [row for row in rows if row.get("public")]
    if not scored:
        return None
    plt = lazy.pyplot()
    figure, axis = plt.subplots(figsize=(8, 4))
    positions = np.arange(1, len(scored) + 1)
    public = [float(row["public"]) for row in scored]
    holdout = [float(row["holdout"]) if row.get("holdout") else np.nan for row in scored]
    axis.plot(positions, public, marker="o", label="public score (Kaggle)")
    axis.plot(positions, holdout, marker="s", linestyle="--", label="holdout accuracy (local)")
    for position, row, value in zip(positions, scored, public, strict=True):
        axis.annotate(
            row["model"], (position, value), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
        )
    axis.set_xticks(positions, [row["time"][:10] for row in scored], rotation=30, ha="right", fontsize=8)
    axis.set_ylabel("accuracy")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    _save(figure, path, 100)
    plt.close(figure)
    return path


def accuracy_vs_minutes(curves: dict[str, list[dict]], title: str, path: Path) -> Path:
    """One line per model: accuracy at each epoch budget against its training minutes, with 95% bars."""
    plt = lazy.pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for model, points in curves.items():
        minutes = [point["minutes"] for point in points]
        accuracy = np.array([point["accuracy"] for point in points])
        half = 1.96 * np.sqrt(accuracy * (1 - accuracy) / np.array([point["rows"] for point in points]))
        axes.errorbar(minutes, accuracy, yerr=half, marker="o", capsize=3, label=model)
        for point in points:
            axes.annotate(
                f"{point['epochs']}",
                (point["minutes"], point["accuracy"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    axes.set_xlabel("training minutes (this machine)")
    axes.set_ylabel("accuracy on held-out rows")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(title="model (labels: epochs)")
    figure.tight_layout()
    _save(figure, path, 120)
    plt.close(figure)
    return path


def leaderboard(scores: list[float], standing, path: Path) -> Path:
    """How many teams score what, near the top: the leak plateau shaded, the honest top and the team marked."""
    plt = lazy.pyplot()
    values = np.array([value for value in scores if np.isfinite(value)])
    low = np.floor(min(0.97, standing.score - 0.005) * 1000) / 1000  # the team is always in the picture
    shown = values[values >= low]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.hist(shown, bins=np.linspace(low, 1.0005, 101), color="#7a9cc6", log=True)
    axes.axvspan(
        standing.threshold,
        1.0005,
        color="#d62728",
        alpha=0.15,
        label=f"leak plateau (>= {standing.threshold:g}): {standing.plateau_teams:,} teams",
    )
    if standing.honest_top is not None:
        axes.axvline(
            standing.honest_top, color="#2ca02c", linestyle="--", label=f"honest top {standing.honest_top:.5f}"
        )
    honest = f", honest rank {standing.honest_rank:,} of {standing.honest_teams:,}" if standing.honest_rank else ""
    axes.axvline(
        standing.score,
        color="black",
        linewidth=2,
        label=f"{standing.team}: {standing.score:.5f}, rank {standing.rank:,}{honest}",
    )
    axes.set_xlabel("public score")
    axes.set_ylabel("teams (log scale)")
    below = int(np.sum(values < low))
    axes.set_title(
        f"{standing.competition}: public leaderboard, {standing.teams:,} teams ({below:,} below {low:.3f}, not shown)",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    _save(figure, path, 100)
    plt.close(figure)
    return path


def tuning(study, folder: Path) -> dict[str, Path]:
    """A study's pictures, drawn by Optuna's matplotlib visualizations: the optimization history (every trial's
    value and the best so far) and, once there is enough to rank, the parameters' importances (fANOVA)."""
    pyplot = lazy.pyplot()
    visualization = lazy.optuna().visualization.matplotlib
    drawn: dict[str, Path] = {}
    complete = [trial for trial in study.trials if trial.state.name == "COMPLETE"]
    for kind, draw in (
        ("history", visualization.plot_optimization_history),
        ("importances", visualization.plot_param_importances),
    ):
        if kind == "importances" and len(complete) < 3:
            continue  # fewer trials rank nothing: Optuna would draw every parameter as equally important
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" notes of Optuna's plotting: not the user's concern
                axes = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError):
            continue  # importances need two complete trials with some spread; the history needs one
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        scheme = study.user_attrs.get("kaggle_digits", {}).get("scheme", "")
        axes.set_title("")  # Optuna's own title (centred or left): one title, ours, in its place
        axes.set_title("", loc="left")
        axes.set_title(
            f"study {study.study_name}: {'accuracy' if kind == 'history' else 'importances'}"
            + (f" ({scheme})" if scheme else ""),
            loc="left",
        )
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        drawn[kind] = folder / f"{kind}.png"
        _save(figure, drawn[kind], 100)
        pyplot.close(figure)
    return drawn
