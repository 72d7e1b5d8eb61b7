"""lib.charts.landscape_chart: the Loss landscape page's map, paths and markers, built without
streamlit."""

import numpy as np
import pytest

import lib
from lib.charts import landscape_chart, path_frame, path_rows, surface_cells
from lib.charts.landscape import MAX_DOTS, MAX_PATH_POINTS
from lib.lessons.landscape import surface


@pytest.fixture(scope="module")
def run():
    data = lib.datasets.linear(m=20, n=1, noise=0.5, seed=29)
    return data, lib.run(data, lib.Config(lr=0.7, batch_size=20, iterations=25))


def layers(spec: dict) -> list[dict]:
    return spec["layer"]


def marks(spec: dict) -> list[tuple[str, str | None]]:
    out = []
    for layer in layers(spec):
        mark = layer["mark"]
        out.append((mark["type"], mark.get("shape")))
    return out


def rows_of(spec: dict, layer: dict) -> list[dict]:
    return spec["datasets"][layer["data"]["name"]]


def test_the_chart_has_bands_both_paths_both_markers_and_the_least_squares_diamond(run):
    data, result = run
    s = surface(data, result, 0, 1, size=20)
    best = lib.least_squares(data, True)
    spec = landscape_chart(s, result, 10, ("w_1", "b"), best=best).to_dict()
    assert marks(spec) == [
        ("rect", None),  # the bands
        ("line", None),  # the hand loop's path
        ("circle", None),  # its steps as dots (10 steps: fewer than MAX_DOTS)
        ("line", None),  # torch's path, dashed
        ("point", "circle"),  # the ring at step 10
        ("point", "cross"),  # the cross at step 10
        ("point", "diamond"),  # the least-squares solution
    ]
    assert layers(spec)[3]["mark"]["strokeDash"] == [5, 3]
    diamond = rows_of(spec, layers(spec)[6])
    assert diamond[0]["a"] == pytest.approx(best[0]) and diamond[0]["b"] == pytest.approx(best[1])
    assert spec["title"] == "Loss over w_1 and b, after 10 of 25 steps"


def test_the_axes_cover_the_surface_exactly(run):
    data, result = run
    s = surface(data, result, 0, 1, size=20)
    spec = landscape_chart(s, result, result.steps, ("w_1", "b")).to_dict()
    heat = layers(spec)[0]
    half_a, half_b = (s.a_values[1] - s.a_values[0]) / 2, (s.b_values[1] - s.b_values[0]) / 2
    x_domain = heat["encoding"]["x"]["scale"]["domain"]
    y_domain = heat["encoding"]["y"]["scale"]["domain"]
    assert x_domain == pytest.approx([s.a_values[0] - half_a, s.a_values[-1] + half_a])
    assert y_domain == pytest.approx([s.b_values[0] - half_b, s.b_values[-1] + half_b])
    assert len(rows_of(spec, heat)) == s.loss.size  # every cell is finite here
    # The paths use the same axes as the map, so they sit on it.
    assert layers(spec)[1]["encoding"]["x"]["scale"]["domain"] == x_domain
    assert not any(mark == "point" and shape == "diamond" for mark, shape in marks(spec))  # no best


def test_both_loops_paths_are_in_the_data_step_by_step(run):
    data, result = run
    k = 12
    s = surface(data, result, 0, 1, size=10)
    spec = landscape_chart(s, result, k, ("w_1", "b")).to_dict()
    manual, torch = rows_of(spec, layers(spec)[1]), rows_of(spec, layers(spec)[3])
    assert {row["loop"] for row in manual} == {"manual (numpy)"}
    assert {row["loop"] for row in torch} == {"torch"}
    for rows, history in ((manual, result.manual), (torch, result.torch)):
        assert [row["step"] for row in rows] == list(range(k + 1))
        np.testing.assert_allclose([row["a"] for row in rows], history.weights[: k + 1, 0])
        np.testing.assert_allclose([row["b"] for row in rows], history.weights[: k + 1, 1])
    ring, cross = rows_of(spec, layers(spec)[4]), rows_of(spec, layers(spec)[5])
    assert ring[0]["a"] == pytest.approx(result.manual.weights[k, 0])
    assert cross[0]["b"] == pytest.approx(result.torch.weights[k, 1])


def test_the_band_edges_rise_and_have_one_colour_more_than_edges(run):
    data, result = run
    s = surface(data, result, 0, 1, size=20)
    scale = layers(landscape_chart(s, result, 5, ("w_1", "b")).to_dict())[0]["encoding"]["color"]
    edges, colours = scale["scale"]["domain"], scale["scale"]["range"]
    assert edges == sorted(edges) and len(set(edges)) == len(edges) > 1
    assert len(colours) == len(edges) + 1
    assert colours[0] == "#ffffff" and colours[-1] == "#6b6f80"  # low loss light, high loss grey


def test_overflowed_cells_are_left_out_and_a_map_without_finite_cells_is_refused(run):
    data, result = run
    s = surface(data, result, 0, 1, size=10)
    loss = s.loss.copy()
    loss[0, :3] = np.inf
    partly = lib.landscape.Surface(s.i, s.j, s.a_values, s.b_values, loss, s.exact)
    cells, overflowed = surface_cells(partly)
    assert overflowed == 3 and len(cells) == loss.size - 3
    nowhere = lib.landscape.Surface(
        s.i, s.j, s.a_values, s.b_values, np.full_like(loss, np.inf), s.exact
    )
    with pytest.raises(ValueError, match="overflows float64 everywhere"):
        landscape_chart(nowhere, result, 3, ("w_1", "b"))


def test_long_paths_are_thinned_and_keep_their_ends():
    assert len(path_rows(10)) == 11
    rows = path_rows(1_000_000)
    assert len(rows) <= MAX_PATH_POINTS + 1 and rows[0] == 0 and rows[-1] == 1_000_000
    assert np.all(np.diff(rows) > 0)


def test_no_dots_past_max_dots_and_nonfinite_steps_are_left_out():
    data = lib.datasets.linear(m=20, n=1, noise=0.5, seed=29)
    result = lib.run(data, lib.Config(lr=0.01, batch_size=20, iterations=MAX_DOTS + 5))
    s = surface(data, result, 0, 1, size=10)
    spec = landscape_chart(s, result, MAX_DOTS + 1, ("w_1", "b")).to_dict()
    assert ("circle", None) not in marks(spec)
    # A loop whose weights stopped being finite: its path ends at the last finite step.
    weights = result.manual.weights.copy()
    weights[7:] = np.nan
    broken = lib.Result(
        lib.History(result.manual.loss, weights, result.manual.grad_norm, result.manual.seconds),
        result.torch,
        result.config,
        result.weight_names,
        step_diff=result.step_diff,
        recorded=result.recorded,
    )
    frame = path_frame(broken, 20, 0, 1)
    assert frame[frame["loop"] == "manual (numpy)"]["step"].max() == 6
    assert frame[frame["loop"] == "torch"]["step"].max() == 20
