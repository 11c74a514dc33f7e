"""report.md: the run's table, its counts and timing, every figure with a caption, and the recipe, as one
page that any Markdown viewer shows."""
from __future__ import annotations

from nas.reporting.load import Run
from nas.reporting.tables import dnas_markdown, markdown_table, timing_line


def report_markdown(run: Run, rows: list, figures: list) -> str:
    lines = [f"# {run.name}: search report", ""]
    state = {"finished": "finished", "running": "**still running**: this report shows what has finished so far",
             "interrupted": "interrupted (resume it with `nas search --resume RUN_DIR`)"}[run.state]
    lines += [f"- run folder: `{run.path}`", f"- state: {state}", f"- {timing_line(run)}"]
    if run.kind == "dnas":
        best = (run.summary or {}).get("best")
        if best:
            lines.append(f"- derived architecture: `best.arch.yaml`, {best['params']:,} params, "
                         f"{best['flops'] / 1e6:.2f}M FLOPs (multiply-adds)")
        retrain = (run.summary or {}).get("retrain")
        if retrain and retrain.get("test_acc") is not None:
            lines.append(f"- test accuracy after retraining {retrain['epochs']} epoch(s): {retrain['test_acc']:.4f}")
        lines += ["", "## Epochs", "", dnas_markdown(run)]
    else:
        title = "Pareto front" if len(run.objectives()) > 1 else f"Top {len(rows)} trials"
        lines += ["", f"## {title}", "", markdown_table(rows) if rows else "No trial finished training yet."]
    if figures:
        lines += ["", "## Figures"]
        for figure in figures:
            lines += ["", f"![{figure.caption}]({figure.file})", "", f"*{figure.caption}.*"]
    fence = "````" if "```" in run.recipe_text else "```"
    lines += ["", "## Recipe", "", "The resolved recipe the search ran (`recipe.yaml`):", "", f"{fence}yaml",
              run.recipe_text.rstrip("\n"), fence, ""]
    return "\n".join(lines)
