"""Charts say what they show: no counts plotted beside errors, no series of another scale on
the same axis, both axes labelled with units, epochs as whole numbers, rates in percent as
the tables print them, and no difference drawn before there is data to take it from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.dashboard.charts import curve_chart, curve_table, experiment_charts, kept_epoch_gap
from app.experiments.series import DiffSeries, ExperimentSeries, VariantSeries

#: A rating model's curve (biased-mf): validation errors beside the counts of the set.
RATING_CURVE = [
    {
        "epoch": e,
        "losses": {"loss": 1.87 - 0.01 * e, "train_rmse": 1.37 - 0.004 * e},
        "metrics": {
            "mae": 0.75 - 0.01 * e,
            "n": 9988.0,
            "n_default": 12.0,
            "rmse": 0.95 - 0.01 * e,
        },
        "seconds": 0.5,
    }
    for e in (1, 2)
]
#: Mult-VAE's: a loss of ~700 beside its KL term (~0.02) and the annealing weight (~1e-5).
VAE_CURVE = [
    {
        "epoch": e,
        "losses": {"loss": 701.77 - e, "nll": 701.75 - e, "kl": 0.0196 * e, "beta": 2.5e-6 * e},
        "metrics": {"ndcg@100": 0.02 + 0.01 * e, "recall@20": 0.03 + 0.01 * e},
    }
    for e in (1, 2, 3)
]


def _by_title(charts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {chart["title"]: chart for chart in charts}


def test_a_rating_models_counts_are_not_plotted_beside_its_errors() -> None:
    charts = _by_title(curve_chart(RATING_CURVE))
    assert list(charts) == ["training: loss, train_rmse", "validation: mae, rmse"]
    validation = charts["validation: mae, rmse"]
    assert set(validation["series"]) == {"mae", "rmse"}
    assert validation["y_label"] == "error (rating points)"
    assert all(c["x_label"] == "epoch" and c["x_integer"] for c in charts.values())
    assert all(name not in c["series"] for c in charts.values() for name in ("n", "n_default"))
    # ... they are in the per-epoch table, with everything else.
    table = curve_table(RATING_CURVE)
    assert table is not None
    assert ("metrics", "n") in table["columns"]
    epoch, values, seconds = table["rows"][1]
    assert (epoch, values[table["columns"].index(("metrics", "n"))], seconds) == (2, 9988.0, 0.5)


def test_series_of_different_scales_get_charts_of_their_own() -> None:
    charts = _by_title(curve_chart(VAE_CURVE))
    assert list(charts) == [
        "training: loss, nll",
        "training: kl",
        "training: beta",
        "validation: ndcg@100, recall@20",
    ]
    assert charts["validation: ndcg@100, recall@20"]["y_label"] == "score (0 to 1)"
    assert charts["training: kl"]["y_label"] == "kl"
    for chart in charts.values():
        assert chart["x"] == [1, 2, 3] and chart["x_label"] and chart["y_label"]
        largest = [max(abs(v) for v in values) for values in chart["series"].values()]
        assert max(largest) <= 10 * min(largest), chart["title"]


def test_no_curve_no_chart() -> None:
    assert curve_chart(None) == [] and curve_chart([]) == [] and curve_table("x") is None


def _series() -> ExperimentSeries:
    """Three 1-minute buckets: control served from the first, the treatment from the second."""
    start = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
    return ExperimentSeries(
        start=start,
        bucket_s=60,
        ends=[start + timedelta(minutes=m) for m in (1, 2, 3)],
        variants={
            "control": VariantSeries([4, 6, 5], [0.0406, 0.05, None], [0.0, 0.0, None]),
            "vae": VariantSeries([0, 3, 7], [None, 0.0464, 0.07], [None, 0.01, 0.0]),
        },
        vs_control={
            "vae": DiffSeries(
                diff=[None, 0.0058, 0.01],
                ci_low=[None, None, -0.036],
                ci_high=[None, None, 0.0476],
                p_value=[1.0, 1.0, 0.6],
            )
        },
        conversion_vs_control={
            "vae": DiffSeries(
                diff=[None, 0.004, 0.002],
                ci_low=[None, None, -0.01],
                ci_high=[None, None, 0.014],
                p_value=[1.0, 1.0, 0.9],
            )
        },
    )


def test_experiment_charts_are_in_percent_and_say_so() -> None:
    ctr, conversion, diff, conversion_diff = experiment_charts(_series(), "control")
    assert ctr["y_label"] == "CTR (%)" and conversion["y_label"] == "conversion rate (%)"
    assert ctr["series"]["control"] == [4.06, 5.0, None]
    assert ctr["series"]["vae"] == [None, 4.64, 7.0]
    assert conversion["series"]["vae"] == [None, 1.0, 0.0]
    assert diff["y_label"] == "CTR difference (pt)"
    assert all(c["x_label"] == "minutes since start" and c["x"] == [1, 2, 3] for c in (ctr, diff))
    # No difference before the treatment was served anything (it read 0, drawn as a line at 0).
    assert diff["series"]["vae − control"] == [None, 0.58, 1.0]
    assert diff["series"]["vae 95% low"] == [None, None, -3.6]
    assert diff["bounds"] == {"vae 95% low": "vae − control", "vae 95% high": "vae − control"}
    # the conversion rate's difference with control, charted like the CTR's
    assert conversion_diff["y_label"] == "conversion-rate difference (pt)"
    assert conversion_diff["series"]["vae − control"] == [None, 0.4, 0.2]
    assert conversion_diff["series"]["vae 95% high"] == [None, None, 1.4]
    assert conversion_diff["bounds"] == diff["bounds"]


def test_kept_epoch_gap_only_when_the_saved_figure_differs_from_the_curve() -> None:
    curve = [
        {"epoch": 1, "metrics": {"rmse": 0.95}},
        {"epoch": 2, "metrics": {"rmse": 0.91}},
    ]
    training = {"selection_metric": "rmse", "best_epoch": 2, "curve": curve}
    assert kept_epoch_gap(training, {"rmse": 0.91}) is None
    assert kept_epoch_gap(training, {"rmse": 0.9100000001}) is None  # rounding only
    assert kept_epoch_gap(training, {"rmse": 0.89}) == {
        "metric": "rmse",
        "epoch": 2,
        "curve": 0.91,
        "saved": 0.89,
    }
    # Nothing to compare: no curve, no best epoch, a null figure, an unknown metric.
    assert kept_epoch_gap({**training, "curve": None}, {"rmse": 0.89}) is None
    assert kept_epoch_gap({**training, "best_epoch": None}, {"rmse": 0.89}) is None
    assert kept_epoch_gap(training, {"rmse": None}) is None
    assert kept_epoch_gap({**training, "selection_metric": "mae"}, {"rmse": 0.89}) is None
