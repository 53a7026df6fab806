"""The savings-over-horizons plot: an undefined mean is left out, an upper bound is marked ≤."""

from __future__ import annotations

import matplotlib.pyplot as plt

from kinherit.metrics import plots


def test_savings_plot_leaves_out_undefined_means_and_marks_bounds(tmp_path, monkeypatch):
    drawn = {}
    original = plots.save_png

    def keep(fig, path):
        ax = fig.axes[0]
        drawn["points"] = {bars.get_label(): [float(x) for x in bars.lines[0].get_xdata()] for bars in ax.containers}
        drawn["marks"] = [(t.get_text(), t.xy) for t in ax.texts]
        return original(fig, path)

    monkeypatch.setattr(plots, "save_png", keep)
    series = {
        "ki": [{"mean": 0.2, "std": 0.1}, {"mean": None, "std": 0.0}, {"mean": 0.1, "std": 0.0, "bound": True}],
        "grown": [{"mean": 0.5, "std": 0.0}, {"mean": 0.4, "std": 0.0}, {"mean": 0.3, "std": 0.0}],
    }
    path = plots.plot_savings(series, [1, 2, 3], tmp_path / "s.png", "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn["points"] == {"ki": [1.0, 3.0], "grown": [1.0, 2.0, 3.0]}  # ki's undefined 2× mean is not drawn
    assert [(text, tuple(float(v) for v in xy)) for text, xy in drawn["marks"]] == [("≤", (3.0, 10.0))]
    assert not plt.get_fignums()  # closed


def test_a_staged_runs_growths_have_one_legend_entry(tmp_path, monkeypatch):
    from kinherit.metrics.runs import Run

    legends = []
    original = plots.save_png

    def keep(fig, path):
        legends.append([text.get_text() for text in fig.axes[0].get_legend().get_texts()])
        return original(fig, path)

    monkeypatch.setattr(plots, "save_png", keep)
    events = [
        {"step": s, "flops": 10.0 * s, "tokens": 4 * s, "time_s": 0.5 * s, "val_loss": 5.0 - 0.1 * s} for s in range(7)
    ]
    staged = Run("staged", tmp_path, events, events, [{"step": 2, "growth": 1}, {"step": 4, "growth": 2}])
    plots.plot_curves([staged], 4.5, tmp_path)
    assert legends and all(legend.count("staged: growth") == 1 and "staged" in legend for legend in legends)
