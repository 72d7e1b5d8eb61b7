"""Charts: every Altair picture the pages draw, built from lib's results.

The top layer: it imports the others.
"""

from .landscape import landscape_chart, marker_frame, path_frame, path_rows, surface_cells
from .parallel import WORKER_COLORS, shards_chart, shards_frame
from .pitfalls import series_chart
from .runs import (
    ACCURACY_POINTS,
    ACCURACY_WORK,
    AUTOSIZE,
    BOUNDARY_GRID,
    BOUNDARY_SAMPLES,
    CHART_WIDTH,
    CLASS_COLORS,
    COLORS,
    DENSE_TORCH,
    EPOCH_COLORS,
    EPOCH_LABELS,
    EPOCH_STYLE,
    FADED,
    HEIGHT,
    LABEL_SPACING,
    LABELS,
    LIVE_POINTS,
    LIVE_ROWS,
    LOSS_NAMES,
    MAX_POINTS,
    MAX_WEIGHT_SERIES,
    POINTS_PER_PIXEL,
    STYLE,
    TRAIN_SERIES,
    VAL_DASH,
    VAL_SERIES,
    accuracy_chart,
    accuracy_points,
    all_charts,
    boundary_chart,
    boundary_step,
    contour,
    diff_chart,
    downsample,
    epoch_length,
    epoch_means,
    grad_norm_chart,
    live_points,
    loss_chart,
    lr_chart,
    param_norms_chart,
    spread,
    weights_chart,
)
from .sweep import diff_map_chart, loss_map_chart, map_cells
