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
