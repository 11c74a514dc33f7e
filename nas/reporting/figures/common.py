"""What every figure shares: an Agg figure (no display, no pyplot state), PNG bytes, the status colours."""
from __future__ import annotations

import io

STATUS_COLOURS = {"ok": "#1f77b4", "stopped": "#ff7f0e", "failed": "#d62728", "rejected": "#7f7f7f",
                  "duplicate": "#bcbd22"}
DEFAULT_DPI = 120


def new_figure(width: float, height: float):
    """A figure on the Agg canvas: safe in threads and without a display."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig, dpi: int = DEFAULT_DPI) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()


def count_formatter():
    """Axis ticks as 1.2M / 350K, as the tables write counts."""
    from matplotlib.ticker import FuncFormatter

    def short(value, _):
        for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{unit}"
        return f"{value:.3g}"

    return FuncFormatter(short)


METRIC_LABELS = {"flops": "FLOPs (multiply-adds)", "params": "parameters", "latency": "latency (ms)",
                 "accuracy": "validation accuracy"}
