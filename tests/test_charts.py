"""lib.charts: downsampling keeps the shape, charts send few, finite points, both loops labelled."""

import dataclasses
import math

import altair as alt
import numpy as np
import pandas as pd
import pytest

import lib
from lib.charts import LABELS, MAX_POINTS, STYLE, all_charts, downsample
from lib.engine.lockstep import History, Result


def datasets_of(chart: alt.TopLevelMixin) -> dict[str, list[dict]]:
    """The rows Altair would embed; its default transformer refuses any dataset over 5,000 rows."""
    return chart.to_dict()["datasets"]


def every_value(chart) -> list[float]:
    return [row["value"] for rows in datasets_of(chart).values() for row in rows if "value" in row]


def fake_result(steps: int, n_params: int, rng: np.random.Generator) -> Result:
    """A Result with long, shaped histories, not run (a million real steps take minutes)."""

    def history() -> History:
        loss = np.exp(-np.arange(steps) / (steps / 5)) + 0.01 * rng.random(steps)
        weights = np.cumsum(rng.normal(size=(steps + 1, n_params)), axis=0) / math.sqrt(steps)
        return History(loss, weights, 2 * loss, 1.0)

    names = tuple(f"w_{j + 1}" for j in range(n_params))
    return Result(
        history(),
        history(),
        lib.Config(iterations=steps),
        names,
        step_diff=np.abs(rng.normal(size=steps + 1)) * 1e-16,
    )


@pytest.mark.parametrize("n", [1, 10, 4_999, 5_000, 5_001, 12_345, 200_001])
def test_downsample_keeps_extremes_order_and_budget(n):
    rng = np.random.default_rng(n)
    y = np.cumsum(rng.normal(size=n))
    [(steps, vals)] = downsample(y, MAX_POINTS)
    assert len(steps) <= MAX_POINTS
    assert np.all(np.diff(steps) >= 0)
    np.testing.assert_array_equal(vals, y[steps])
    assert vals.max() == y.max() and vals.min() == y.min()
    if n <= MAX_POINTS:
        np.testing.assert_array_equal(steps, np.arange(n))


def test_downsample_keeps_every_buckets_first_last_and_extremes_column_by_column():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(100_003, 3))  # not a multiple of the bucket length
    pairs = downsample(y, 1_000)
    size = -(-len(y) // 250)  # a quarter as many buckets as points: four points each
    for j, (steps, _) in enumerate(pairs):
        # Each step at most once, in order.
        assert len(steps) <= 1_000 and np.all(np.diff(steps) > 0)
        for b in (0, 123, len(y) // size):  # first, a middle and the short last bucket
            lo, hi = b * size, min((b + 1) * size, len(y))
            chunk = y[lo:hi, j]
            in_bucket = steps[(steps >= lo) & (steps < hi)]
            assert {lo, hi - 1, lo + int(chunk.argmin()), lo + int(chunk.argmax())} == set(
                in_bucket
            )


def test_downsample_sends_a_monotone_line_as_two_points_per_bucket():
    """A smooth falling loss: max first and min last in every bucket, so each step is sent once."""
    [(steps, _)] = downsample(np.exp(-np.arange(20_000) / 4_000), 1_600)
    assert len(steps) == 2 * 400
    assert steps[0] == 0 and steps[-1] == 19_999


def test_downsample_drops_nonfinite_and_nonpositive_on_request():
    y = np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 0.0, -3.0, 4.0])
    [(steps, vals)] = downsample(y)
    assert list(steps) == [0, 2, 5, 6, 7] and np.isfinite(vals).all()
    [(steps, vals)] = downsample(y, positive=True)
    assert list(steps) == [0, 2, 7] and list(vals) == [1.0, 2.0, 4.0]


def test_downsample_all_bad_gives_empty_series():
    [(steps, vals)] = downsample(np.full(10, np.nan))
    assert len(steps) == 0 and len(vals) == 0


def test_big_result_sends_at_most_max_points_per_series_and_says_so():
    result = fake_result(200_000, 4, np.random.default_rng(2))
    charts = all_charts(result, log_loss=True, reference=np.zeros(4))
    assert set(charts) == {"loss", "weights", "grad_norm", "diff"}
    for name, chart in charts.items():
        sets = datasets_of(chart)  # would raise MaxRowsError past 5,000 rows
        assert all(len(rows) <= MAX_POINTS for rows in sets.values()), name
        assert sum(len(rows) for rows in sets.values()) > 1_000, name  # and something is drawn
        assert f"200,000 steps drawn as at most {MAX_POINTS:,} points" in str(
            chart.to_dict()["title"]
        ), name


def test_short_run_is_drawn_point_for_point():
    result = lib.run(
        lib.datasets.linear(m=50, n=2, seed=3), lib.Config(lr=0.05, batch_size=8, iterations=40)
    )
    loss = datasets_of(all_charts(result, log_loss=False)["loss"])
    manual_rows = [rows for rows in loss.values() if rows[0]["loop"] == LABELS["manual"]]
    assert [row["value"] for row in manual_rows[0]] == list(result.manual.loss)


def test_both_loops_labelled_and_torch_drawn_on_top_dashed():
    result = lib.run(lib.datasets.linear(m=30, n=2, seed=0), lib.Config(iterations=20))
    for name in ("loss", "weights", "grad_norm"):
        spec = all_charts(result)[name].to_dict()
        text = str(spec)
        assert LABELS["manual"] in text and LABELS["torch"] in text, name
        lines = [
            layer for layer in _flat_layers(spec) if layer.get("mark", {}).get("type") == "line"
        ]
        loops = [spec["datasets"][layer["data"]["name"]][0]["loop"] for layer in lines]
        # Every manual line comes before every torch line, so torch is drawn over manual.
        assert (
            loops == sorted(loops, key=lambda loop: loop != LABELS["manual"])
            and len(set(loops)) == 2
        ), name
        widths = {
            loop: layer["mark"]["strokeWidth"] for loop, layer in zip(loops, lines, strict=True)
        }
        assert widths[LABELS["manual"]] > widths[LABELS["torch"]], name
        dashes = [
            node["strokeDash"]["scale"]["range"] for node in _walk(spec) if _has_dash_scale(node)
        ]
        # Manual solid, torch dashed.
        assert [[1, 0], list(STYLE["torch"]["strokeDash"])] in dashes, name


def _walk(node):
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from _walk(child)


def _has_dash_scale(node) -> bool:
    return isinstance(node, dict) and "scale" in node.get("strokeDash", {})


def _flat_layers(spec: dict) -> list[dict]:
    out = []
    for layer in spec.get("layer", []):
        out += _flat_layers(layer) if "layer" in layer else [layer]
    return out


def test_diverged_run_charts_only_its_finite_part():
    data = lib.datasets.linear(m=100, n=3, seed=0)
    result = lib.run(data, lib.Config(lr=10.0, batch_size=100, iterations=500))
    assert result.stopped == "diverged"
    assert not np.isfinite(result.manual.loss).all() or not np.isfinite(result.manual.weights).all()
    for name, chart in all_charts(result, log_loss=True).items():
        values = every_value(chart)
        assert values, name
        assert all(math.isfinite(v) for v in values), name
    # Linear scale too: the finite steps before divergence are all drawn.
    loss_values = every_value(all_charts(result, log_loss=False)["loss"])
    assert len(loss_values) == 2 * int(np.isfinite(result.manual.loss).sum())


def test_weight_series_are_capped_with_a_note():
    result = fake_result(300, 30, np.random.default_rng(4))
    chart = all_charts(result)["weights"]
    spec = chart.to_dict()
    assert "Showing the first 12 of 30 weights." in str(spec["title"])
    series = {row["series"] for rows in spec["datasets"].values() for row in rows if "loop" in row}
    assert series == {f"w_{j + 1}" for j in range(12)}


def test_reference_rules_drawn_at_the_given_values():
    data = lib.datasets.linear(m=80, n=3, seed=5)
    cfg = lib.Config(lr=0.05, iterations=30)
    result = lib.run(data, cfg)
    target = lib.least_squares(data, cfg.bias)
    spec = lib.charts.weights_chart(result, reference=target).to_dict()
    rules = [layer for layer in _flat_layers(spec) if layer.get("mark", {}).get("type") == "rule"]
    assert len(rules) == 1
    rows = spec["datasets"][rules[0]["data"]["name"]]
    np.testing.assert_allclose([row["value"] for row in rows], target)
    assert "least-squares solution" in str(spec["title"])


def test_param_norms_chart_draws_every_tensors_norm_for_both_loops():
    data = lib.datasets.PRESETS["moons"].make()
    result = lib.run(
        data, lib.Config(model="mlp", hidden=200, loss="bce", init="normal", lr=0.5, iterations=30)
    )
    # Only some weights have a history...
    assert len(result.weight_names) < result.config.n_params(data.n)
    chart = lib.charts.param_norms_chart(result)
    rows = [row for rows in datasets_of(chart).values() for row in rows if "loop" in row]
    assert {row["series"] for row in rows} == {"W1", "b1", "W2", "b2"}
    assert {row["loop"] for row in rows} == {LABELS["manual"], LABELS["torch"]}
    # ...but every tensor's norm is drawn (lib.run computes it from every weight): W1's at the end,
    # both loops.
    for loop in ("manual", "torch"):
        drawn = [
            r["value"]
            for r in rows
            if r["series"] == "W1" and r["loop"] == LABELS[loop] and r["step"] == 30
        ]
        assert drawn == [pytest.approx(getattr(result, loop).param_norms[30, 0], rel=1e-12)]
    assert "Parameter norms per step" in str(chart.to_dict()["title"])


def arrow_bytes(chart: alt.TopLevelMixin) -> int:
    """Bytes of the chart's data as Streamlit sends it (Arrow IPC, one table per dataset)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    total = 0
    for frame in _frames(chart):
        table = pa.Table.from_pandas(frame)
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        total += sink.getvalue().size
    return total


def _frames(chart) -> list:
    out = [chart.data] if isinstance(getattr(chart, "data", None), pd.DataFrame) else []
    for layer in getattr(chart, "layer", None) or []:
        out += _frames(layer)
    return out


def test_a_live_redraw_of_a_long_run_is_a_few_bytes_per_point():
    """A 20,000-step run's four charts at the live budget: about 12 bytes a row, not 40."""
    result = fake_result(20_000, 4, np.random.default_rng(7))
    charts = all_charts(result, reference=np.zeros(4), max_points=lib.charts.LIVE_POINTS)
    rows = sum(len(rows) for chart in charts.values() for rows in datasets_of(chart).values())
    # 13 lines, 4 end labels, 4 rules.
    assert rows <= (2 + 2 + 8 + 1) * lib.charts.LIVE_POINTS + 4 + 4
    sent = sum(arrow_bytes(chart) for chart in charts.values())
    assert sent < 120_000, sent
    final = sum(arrow_bytes(chart) for chart in all_charts(result, reference=np.zeros(4)).values())
    assert final < 300_000, final


def test_every_loss_has_its_name_in_the_loss_chart_title():
    data = lib.datasets.PRESETS["blobs"].make()
    for loss in lib.engine.config.LOSSES:
        cfg = lib.Config(iterations=5, loss=loss, model="logistic" if loss == "bce" else "linear")
        title = str(lib.charts.loss_chart(lib.run(data, cfg)).to_dict()["title"])
        assert f"Loss per step: {lib.charts.LOSS_NAMES[loss]}" in title
    assert lib.charts.LOSS_NAMES["bce"] == "binary cross-entropy"


def test_log_axes_use_one_notation():
    result = fake_result(100, 2, np.random.default_rng(8))
    for log, fmt in ((True, "~e"), (False, "~g")):
        for name in ("loss", "grad_norm"):
            spec = all_charts(result, log_loss=log)[name].to_dict()
            assert spec["encoding"]["y"]["axis"]["format"] == fmt, (name, log)


def test_thinned_lines_draw_torch_finer_so_the_manual_line_shows():
    def torch_marks(steps: int) -> list[dict]:
        spec = all_charts(fake_result(steps, 2, np.random.default_rng(9)))["loss"].to_dict()
        lines = [
            layer for layer in _flat_layers(spec) if layer.get("mark", {}).get("type") == "line"
        ]
        return [
            layer["mark"]
            for layer in lines
            if spec["datasets"][layer["data"]["name"]][0]["loop"] == "torch"
        ]

    [short] = torch_marks(100)
    assert short["strokeWidth"] == STYLE["torch"]["strokeWidth"] and "opacity" not in short
    [dense] = torch_marks(20_000)
    assert dense["strokeWidth"] < short["strokeWidth"] and dense["opacity"] < 1


def test_spread_keeps_labels_apart_in_order_and_in_range():
    values = np.array([0.5, 0.51, 0.49, 0.9, 0.1, 0.505])
    at = lib.charts.spread(values, 0.05, 0.0, 1.0)
    assert list(np.argsort(at, kind="stable")) == list(np.argsort(values, kind="stable"))
    assert np.diff(np.sort(at)).min() >= 0.05 - 1e-12
    assert at.min() >= 0.0 and at.max() <= 1.0
    # Far apart: kept.
    np.testing.assert_array_equal(lib.charts.spread(np.array([0.1, 0.9]), 0.05, 0, 1), [0.1, 0.9])
    # Too many to fit: shared out evenly.
    crowded = lib.charts.spread(np.full(30, 0.5), 0.05, 0.0, 1.0)
    np.testing.assert_allclose(np.sort(crowded), np.linspace(0, 1, 30))


def test_mlp_weight_names_do_not_pile_up():
    data = lib.datasets.PRESETS["moons"].make()
    result = lib.run(
        data, lib.Config(model="mlp", hidden=8, loss="bce", init="normal", lr=0.5, iterations=200)
    )
    spec = all_charts(result)["weights"].to_dict()
    [labels] = [
        layer for layer in _flat_layers(spec) if layer.get("mark", {}).get("type") == "text"
    ]
    rows = spec["datasets"][labels["data"]["name"]]
    assert len(rows) == lib.charts.MAX_WEIGHT_SERIES
    drawn = [row["value"] for rows in spec["datasets"].values() for row in rows if "loop" in row]
    px_per_unit = (lib.charts.HEIGHT + 40) / (max(drawn) - min(drawn))
    gaps = np.diff(np.sort([row["at"] for row in rows])) * px_per_unit
    assert gaps.min() >= lib.charts.LABEL_SPACING - 1e-9
    for row in rows:  # each name stays beside the end of its own line
        assert row["value"] == result.manual.weights[-1, result.weight_names.index(row["series"])]


def test_live_points_share_a_budget_between_the_lines():
    few = fake_result(100, 4, np.random.default_rng(10))
    # 13 lines: the full live budget each.
    assert lib.charts.live_points(few) == lib.charts.LIVE_POINTS
    data = lib.datasets.PRESETS["moons"].make()
    mlp = lib.run(data, lib.Config(model="mlp", hidden=16, loss="bce", init="normal", iterations=5))
    points = lib.charts.live_points(mlp, param_norms=True)
    # Loss, gradient norm, diff; 12 weights and 4 tensors a loop.
    lines = 5 + 2 * lib.charts.MAX_WEIGHT_SERIES + 2 * 4
    assert points * lines <= lib.charts.LIVE_ROWS < (points + 1) * lines


# ------------------------------------------------ epoch means, accuracy, decision boundary


def _layer_rows(chart: alt.TopLevelMixin) -> list[tuple[dict, list[dict]]]:
    spec = chart.to_dict()
    return [(layer, spec["datasets"][layer["data"]["name"]]) for layer in spec["layer"]]


def test_epoch_means_are_each_whole_epochs_plain_mean():
    loss = np.arange(23, dtype=float)
    # Four whole epochs; the last 3 steps are an unfinished one.
    ends, means = lib.charts.epoch_means(loss, 5)
    assert list(ends) == [4, 9, 14, 19]
    assert list(means) == [np.mean(loss[k * 5 : k * 5 + 5]) for k in range(4)]


def test_the_loss_chart_draws_the_epoch_means_for_both_loops_within_the_budget():
    # Batch 32 (the default) over 100 samples.
    result = fake_result(200_000, 4, np.random.default_rng(11))
    chart = lib.charts.loss_chart(result, log=True, samples=100)
    layers = _layer_rows(chart)
    labels = [rows[0]["loop"] for _, rows in layers]
    assert labels == ["manual (numpy)", "torch", "manual: epoch mean", "torch: epoch mean"]
    for _, rows in layers:
        assert len(rows) <= MAX_POINTS
    # ceil(100 / 32): the last batch of 4 samples.
    ends, means = lib.charts.epoch_means(result.manual.loss, 4)
    [(idx, vals)] = downsample(means)
    assert [row["value"] for row in layers[2][1]] == list(vals)
    assert [row["step"] for row in layers[2][1]] == list(ends[idx])
    title = str(chart.to_dict()["title"])
    assert "each epoch's 4 batch losses" in title and "in 4 batches, the last of 4" in title
    assert "unfinished" not in title  # 200,000 steps are 50,000 whole epochs
    # The batch lines are faded under the means; the legend names all four lines.
    assert all(layer["mark"]["opacity"] < 1 for layer, _ in layers[:2])
    assert "manual: epoch mean" in str(chart.to_dict()["encoding"]["color"])


def test_no_epoch_means_for_a_full_batch_or_under_two_epochs():
    result = fake_result(50, 4, np.random.default_rng(12))  # batch 32
    # None given, full batch twice, under two epochs of 32 batches.
    for samples in (None, 32, 20, 1_000):
        chart = lib.charts.loss_chart(result, samples=samples)
        assert {rows[0]["loop"] for _, rows in _layer_rows(chart)} == {"manual (numpy)", "torch"}, (
            samples
        )
        assert "epoch" not in str(chart.to_dict()["title"]), samples
    assert lib.charts.live_points(result, samples=100) == min(
        lib.charts.LIVE_POINTS, lib.charts.LIVE_ROWS // (5 + 8 + 2)
    )


def _classifier(n: int = 2, m: int = 150, **cfg) -> tuple[lib.Dataset, Result]:
    data = lib.datasets.PRESETS["blobs"].make() if n == 2 and m == 200 else None
    if data is None:
        rng = np.random.default_rng(n)
        X = rng.normal(size=(m, n))
        data = lib.Dataset(X, (X[:, 0] - X[:, -1] > 0).astype(float))
    return data, lib.run(
        data, lib.Config(**{"model": "logistic", "lr": 0.5, "iterations": 120, **cfg})
    )


def test_the_accuracy_chart_draws_lib_classify_accuracy_for_both_loops():
    data, result = _classifier()
    chart = lib.charts.accuracy_chart(data, result)
    steps, manual, torch = lib.classify.accuracy(data, result, lib.charts.ACCURACY_POINTS)
    layers = _layer_rows(chart)
    assert [rows[0]["loop"] for _, rows in layers] == ["manual (numpy)", "torch"]
    for (_, rows), expected in zip(layers, (manual, torch), strict=True):
        assert [row["value"] for row in rows] == list(expected)
        assert [row["step"] for row in rows] == list(steps + 1)
    # Manual thick, torch thin.
    assert layers[0][0]["mark"]["strokeWidth"] > layers[1][0]["mark"]["strokeWidth"]
    spec = chart.to_dict()
    assert spec["encoding"]["y"]["axis"]["format"] == ".3~%"
    assert f"Last: manual {manual[-1]:.1%}, torch {torch[-1]:.1%}." in str(spec["title"])


def test_accuracy_is_measured_at_fewer_steps_on_big_data():
    data, result = _classifier(n=5, m=50_000, iterations=500, batch_size=64)
    points = lib.charts.accuracy_points(data, result)
    assert points == lib.charts.ACCURACY_WORK // (50_000 * 6) < lib.charts.ACCURACY_POINTS
    rows = _layer_rows(lib.charts.accuracy_chart(data, result))[0][1]
    assert len(rows) == points
    assert f"measured after {points:,} evenly spread steps" in str(
        lib.charts.accuracy_chart(data, result).to_dict()
    )


def test_contour_finds_a_straight_boundary_where_it_is():
    x = np.linspace(-1, 1, 21)
    A, B = np.meshgrid(x, x)
    p = 1 / (1 + np.exp(-(A + 2 * B - 0.3)))  # p = 0.5 on x + 2y = 0.3
    segments = lib.charts.contour(x, x, p)
    assert len(segments) >= 20
    for x0, y0, x1, y1 in segments:
        assert abs(x0 + 2 * y0 - 0.3) < 1e-2 and abs(x1 + 2 * y1 - 0.3) < 1e-2
    assert not len(lib.charts.contour(x, x, np.full((21, 21), 0.9)))  # nowhere 0.5: no line


def test_the_boundary_chart_shades_p_and_draws_both_loops_lines_and_the_data():
    data, result = _classifier(n=2, m=200)
    chart = lib.charts.boundary_chart(data, result)
    grid = lib.classify.boundary(data, result, result.steps - 1, lib.charts.BOUNDARY_GRID)
    (_, cells), (_, dots), (_, manual), (_, torch) = _layer_rows(chart)
    assert len(cells) == lib.charts.BOUNDARY_GRID**2
    # p is sent as float32.
    np.testing.assert_allclose([row["p"] for row in cells], grid.manual.ravel(), rtol=1e-6)
    assert len(dots) == data.m
    assert sum(row["class"] == "class 1" for row in dots) == int(data.y.sum())
    assert {row["loop"] for row in manual} == {"manual (numpy)"}
    assert {row["loop"] for row in torch} == {"torch"}
    np.testing.assert_allclose(
        [[r["x"], r["y"], r["x2"], r["y2"]] for r in torch],
        lib.charts.contour(grid.x1, grid.x2, grid.torch),
    )
    assert f"After {result.steps:,} steps: the lines are p = 0.5" in str(chart.to_dict()["title"])


def test_the_boundary_chart_thins_big_data_and_skips_a_diverged_last_step():
    data, result = _classifier(n=2, m=5_000)
    rows = _layer_rows(lib.charts.boundary_chart(data, result))[1][1]
    assert len(rows) == lib.charts.BOUNDARY_SAMPLES
    assert "1,000 of the 5,000 samples are drawn" in str(
        lib.charts.boundary_chart(data, result).to_dict()["title"]
    )

    # A run whose last weights went non-finite is drawn after the step before; one with none finite
    # is refused.
    def with_weights(rows: slice) -> Result:
        histories = {}
        for loop in ("manual", "torch"):
            weights = getattr(result, loop).weights.copy()
            weights[rows] = np.nan
            histories[loop] = dataclasses.replace(getattr(result, loop), weights=weights)
        return dataclasses.replace(result, stopped="diverged", **histories)

    last_bad = with_weights(slice(-1, None))
    assert lib.charts.boundary_step(last_bad) == result.steps - 2
    title = str(lib.charts.boundary_chart(data, last_bad).to_dict()["title"])
    assert (
        f"After {result.steps - 1:,} steps "
        f"(of {result.steps:,}: the last step's weights are not finite)" in title
    )
    with pytest.raises(ValueError, match="no step left both loops' weights finite"):
        lib.charts.boundary_chart(data, with_weights(slice(1, None)))


def test_the_difference_chart_sizes_a_rounding_by_the_weights():
    """Issue 9, finding 18: "one float64 rounding is about 1e-16" holds relative to the number.

    Not absolutely.
    """
    from lib.charts.runs import _rounding_note

    data = lib.datasets.linear(m=200, n=3, noise=0.1, seed=0)
    big = lib.run(data, lib.Config(lr=100, iterations=500))  # weights near 3e156 before it diverges
    largest = float(np.nanmax(np.abs(big.torch.weights[np.isfinite(big.torch.weights)])))
    note = _rounding_note(big)
    assert (
        f"about {1.1102230246251565e-16 * largest:.2g} at this run's largest weight, {largest:.3g}"
        in note
    )
    small = lib.run(data, lib.Config(lr=1e-6, iterations=5))
    assert "below 1.1e-16 for these weights, all smaller than 1" in _rounding_note(small)


# ------------------------------------------------ the pitfalls lab's series chart


def test_series_chart_drops_what_it_cannot_draw_and_draws_rules():
    chart = lib.charts.series_chart(
        {
            "mistake, manual": np.array([1.0, np.inf, np.nan, 4.0]),
            "correct": np.array([1.0, 0.0, 2.0, 3.0]),
        },
        "title",
        "loss",
        log=True,
        rules={"limit": 1.5},
    )
    spec = chart.to_dict()
    rows = [r for d in spec["datasets"].values() for r in d if "series" in r]
    assert sorted((r["series"], r["x"]) for r in rows) == [
        ("correct", 0),
        ("correct", 2),
        ("correct", 3),
        ("mistake, manual", 0),
        ("mistake, manual", 3),
    ]
    assert "2 non-finite" in str(spec["title"])
    assert any(layer.get("mark", {}).get("type") == "rule" for layer in spec["layer"])


def test_series_chart_styles_series_by_name_then_by_first_word():
    from lib.pitfalls import SERIES_STYLE

    names = ["+= loss", "mistake, torch", "mistake: lr too big", "correct run"]
    chart = lib.charts.series_chart({name: np.arange(1.0, 4.0) for name in names}, "t", "y")
    encoding = chart.to_dict()["layer"][0]["encoding"]
    styles = [
        SERIES_STYLE[key] for key in ("+= loss", "mistake, torch", "mistake, manual", "correct")
    ]
    assert encoding["color"]["scale"] == {"domain": names, "range": [s[0] for s in styles]}
    assert encoding["strokeDash"]["scale"]["range"] == [list(s[1]) for s in styles]
    assert encoding["strokeWidth"]["scale"]["range"] == [s[2] for s in styles]
    # A name it does not know leaves the colours to Altair, in plain 2 px lines.
    plain = lib.charts.series_chart({"a": np.ones(3), "b": np.ones(3)}, "t", "y", log=False)
    encoding = plain.to_dict()["layer"][0]["encoding"]
    assert encoding["color"]["scale"] == {"domain": ["a", "b"]}
    assert encoding["strokeWidth"]["scale"]["range"] == [2.0, 2.0]
    assert encoding["y"]["scale"] == {"zero": False}


# ------------------------------------------- the whole loop (issue 12): validation and the lr


def _val_run(**changes) -> tuple[lib.Dataset, Result]:
    data = lib.io.datasets.linear(m=200)
    cfg = lib.Config(lr=0.05, iterations=300, val_fraction=0.2, **changes)
    return data, lib.run(data, cfg)


def test_the_loss_chart_draws_both_loops_validation_loss_dashed_at_the_step_after():
    data, result = _val_run()
    chart = lib.charts.loss_chart(result, log=True, samples=data.m)
    spec = chart.to_dict()
    layers = _layer_rows(chart)
    found = {(rows[0]["loop"], rows[0]["series"]): rows for _, rows in layers}
    val = lib.charts.runs.VAL_SERIES
    for loop, label in (("manual", "manual (numpy)"), ("torch", "torch")):
        rows = found[(label, val)]
        history = getattr(result, loop)
        assert [r["step"] for r in rows] == list(result.val_steps + 1)
        np.testing.assert_array_equal([r["value"] for r in rows], history.val_loss)
        train = found[(label, lib.charts.runs.TRAIN_SERIES)]
        np.testing.assert_array_equal([r["value"] for r in train], history.loss)
    # the training lines fade under the epoch means, the validation lines do not
    for layer, rows in layers:
        faded = layer["mark"].get("opacity", 1.0) < 1
        if rows[0]["series"] == val:
            assert not faded
        elif rows[0]["series"] == lib.charts.runs.TRAIN_SERIES:
            assert faded
    # colour: the loops; dash: training or validation, each in a labelled legend
    assert spec["encoding"]["color"]["field"] == "loop"
    dash = spec["encoding"]["strokeDash"]
    assert dash["field"] == "series" and dash["scale"]["domain"][:2] == [
        lib.charts.runs.TRAIN_SERIES,
        val,
    ]
    assert dash["scale"]["range"][1] == list(lib.charts.runs.VAL_DASH)
    assert dash["scale"]["range"][0] == [1, 0]
    title = str(spec["title"])
    assert "the loss on the 40 held-out rows" in title and "after every 2 steps" in title
    # 160 training rows in batches of 32: five whole batches an epoch
    assert "one pass over the 160 training rows" in title and "in 5 batches, each of 32" in title
    # without a split: the loops' dashes as before, no validation line
    plain = lib.charts.loss_chart(lib.run(data, result.config.replace(val_fraction=0.0)))
    assert plain.to_dict()["encoding"]["strokeDash"]["field"] == "loop"
    assert "held-out" not in str(plain.to_dict())


def test_a_long_validation_history_is_thinned_to_the_budget():
    result = fake_result(200_000, 4, np.random.default_rng(12))
    steps = np.arange(result.steps)
    rng = np.random.default_rng(13)

    def with_val(h: History) -> History:
        return dataclasses.replace(h, val_loss=h.loss + 0.1 * rng.random(result.steps))

    cfg = lib.Config(iterations=result.steps, val_fraction=0.2, eval_every=1)
    result = dataclasses.replace(
        result,
        manual=with_val(result.manual),
        torch=with_val(result.torch),
        config=cfg,
        val_steps=steps,
        val_rows=np.arange(20),
    )
    chart = lib.charts.loss_chart(result, samples=100, max_points=MAX_POINTS)
    for _, rows in _layer_rows(chart):
        assert len(rows) <= MAX_POINTS
    live = lib.charts.live_points(result, samples=100)
    rows = sum(len(r) for _, r in _layer_rows(lib.charts.loss_chart(result, max_points=live)))
    assert rows <= 6 * live  # train, validation and epoch means of both loops


def test_epoch_means_follow_the_training_rows_drop_last_and_accumulation():
    data = lib.io.datasets.linear(m=200)
    cases = [
        ({"val_fraction": 0.2}, 5),  # 160 rows / 32
        ({"val_fraction": 0.2, "batch_size": 30, "drop_last": True}, 5),  # 150 of 160 kept
        ({"val_fraction": 0.2, "batch_size": 30}, 6),  # the last of 10
        ({"accumulate": 7}, None),  # 7 batches of 200: one step an epoch, its mean the loss
        ({"accumulate": 2}, None),  # 7 batches make no whole number of steps
        ({"batch_size": 20, "accumulate": 5}, 2),
    ]
    for changes, length in cases:
        result = lib.run(data, lib.Config(iterations=20, **changes))
        assert lib.charts.epoch_length(result, data.m) == length, changes
    result = lib.run(
        data, lib.Config(iterations=20, batch_size=30, val_fraction=0.2, drop_last=True)
    )
    title = str(lib.charts.loss_chart(result, samples=data.m).to_dict()["title"])
    assert "in 5 batches, each of 30" in title
    assert "drop_last leaves out the other 10 rows of each epoch" in title
    acc = lib.run(data, lib.Config(iterations=20, batch_size=20, accumulate=5))
    title = str(lib.charts.loss_chart(acc, samples=data.m).to_dict()["title"])
    assert (
        "each epoch's 2 step losses" in title and "in 10 batches, each of 20, 5 to a step" in title
    )


def test_the_lr_chart_draws_both_loops_lr_and_their_largest_gap():
    data = lib.io.datasets.linear(m=200)
    cfg = lib.Config(iterations=300, scheduler="cosine", scheduler_kwargs={"T_max": 100})
    result = lib.run(data, cfg)
    charts = all_charts(result)
    assert set(charts) == {"loss", "weights", "grad_norm", "diff", "lr"}
    layers = _layer_rows(charts["lr"])
    for (_, rows), history in zip(layers, (result.manual, result.torch), strict=True):
        np.testing.assert_array_equal([r["value"] for r in rows], history.lr)
        assert [r["step"] for r in rows] == list(range(result.steps))
    title = str(charts["lr"].to_dict()["title"])
    gap = float(np.max(np.abs(result.manual.lr - result.torch.lr)))
    assert "Learning rate per step: CosineAnnealingLR" in title
    assert f"Largest |manual − torch| over the steps: {gap:.3g}." in title
    # a torch lr that is off shows in the note
    off = dataclasses.replace(result.torch, lr=result.torch.lr * (1 + 1e-3))
    title = str(lib.charts.runs.lr_chart(dataclasses.replace(result, torch=off)).to_dict()["title"])
    assert f"{float(np.max(np.abs(result.manual.lr * 1e-3))):.3g}" in title
    # no schedule: no lr chart, and the live budget counts its two lines only with one
    plain = lib.run(data, cfg.replace(scheduler=None, scheduler_kwargs={}))
    assert "lr" not in all_charts(plain)
    assert lib.charts.live_points(plain) >= lib.charts.live_points(result)
