"""Which figures a run gets, and the report folder: the PNGs, report.md, all written atomically through a
`RunDir` of kind `report` (so a second `nas report` replaces the first, and never a folder it did not make)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from nas.reporting.load import Run


@dataclass
class Figure:
    file: str  # PNG name in the report folder
    caption: str  # one line on what it shows
    draw: Callable[[], object]  # → a matplotlib Figure, drawn only when written


def best_arch(run: Run):
    """The run's best (or first Pareto-optimal) architecture, from the file the search wrote; None if none."""
    from nas.dsl import load

    for path in [run.path / "best.arch.yaml"] + sorted(run.path.glob("pareto/*.arch.yaml")):
        if path.is_file():
            return load(path)
    return None


def figures(run: Run, references: list = ()) -> Iterator[Figure]:
    from nas.reporting.figures import dnas
    from nas.reporting.figures.arch import arch_figure

    if run.kind == "dnas":
        yield Figure("theta.png", "option probabilities (softmax θ) of every choice over the epochs; ◀ marks the "
                                  "derived pick", lambda: dnas.theta_figure(run))
        if dnas.has_cost(run):
            yield Figure("cost.png", "expected cost of the architecture distribution and cost of the derived "
                                     "architecture over the epochs", lambda: dnas.cost_figure(run))
        yield Figure("accuracy.png", "train and validation accuracy over the epochs", lambda: dnas.accuracy_figure(run))
    else:
        from nas.reporting.figures.choices import choices_figure
        from nas.reporting.figures.pareto import cost_metrics, pareto_figure
        from nas.reporting.figures.progress import progress_figure

        yield Figure("progress.png", "every trial's objective, and the best so far, against the trial number and "
                                     "the wall time", lambda: progress_figure(run))
        for metric in cost_metrics(run):
            yield Figure(f"pareto_{metric}.png", f"accuracy × {metric}: the Pareto front of the fully trained "
                                                 "trials, labelled by trial number",
                         lambda metric=metric: pareto_figure(run, metric, references))
        if run.kind == "coefficients":
            from nas.reporting.figures.coefficients import coefficients_figure

            yield Figure("coefficients.png", "accuracy of each tried (α, β, γ) on the β × γ plane",
                         lambda: coefficients_figure(run))
        elif len(run.choice_names) > 0 and sum(r.status in ("ok", "stopped") for r in run.records) >= 2:
            yield Figure("choices.png", "share of the best 20% of the trials and of the rest picking each option",
                         lambda: choices_figure(run))
    arch = best_arch(run) if not run.running else None
    if arch is not None:
        kind = "its cells as graphs" if arch.is_cell else "one box per layer (colour: kernel, height: expansion)"
        yield Figure("best_arch.png", f"the best architecture ({arch.name}): {kind}", lambda: arch_figure(arch))


def write_report(run: Run, out: Path, rows: list, references: list = (), dpi: int = 120) -> list[Path]:
    """Every figure and report.md into `out`; returns the files written."""
    from nas.reporting.figures.common import png_bytes
    from nas.reporting.markdown import report_markdown

    written, made = [], []
    with _report_folder(run, out) as folder:
        for figure in figures(run, references):
            written.append(folder.write_bytes(figure.file, png_bytes(figure.draw(), dpi)))
            made.append(figure)
        written.append(folder.write_text("report.md", report_markdown(run, rows, made)))
    return written


def _report_folder(run: Run, out: Path):
    from nas.dsl.errors import SpecError
    from nas.runs import MARKER, RunDir, is_within, read_json

    if is_within(run.path, out):
        raise SpecError("the report folder would hold the run folder", str(out), "choose another -o folder")
    if (out / MARKER).is_file():
        marker = read_json(out / MARKER, limit=64 * 1024)
        if not isinstance(marker, dict) or marker.get("kind") != "report":
            raise SpecError(f"a '{marker.get('kind') if isinstance(marker, dict) else '?'}' run folder, not a "
                            "report folder", str(out), "choose another -o folder")
    return RunDir.create(out, kind="report", overwrite=True)
