"""usnb.evaluate: T-frame views spread over a video."""
from usnb.evaluate import view_indices


def test_view_indices_spread_t_frame_views_over_the_video():
    # view v takes frame floor((i + (v + 0.5) / views) n / t): n = 8, t = 4, 2 views interleave
    assert [v.tolist() for v in view_indices(8, 4, 2)] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert view_indices(8, 4, 1)[0].tolist() == [1, 3, 5, 7]  # one view: the centres of t equal segments
    assert view_indices(2, 4, 1)[0].tolist() == [0, 0, 1, 1]  # a short video repeats frames in order
    assert view_indices(3, 4, 3)[2].max() == 2  # never past the last frame


def test_visibility_correlation_within_clips_and_pooled():
    import math
    import warnings
    from pathlib import Path

    import numpy as np
    import pytest

    from usnb.datasets.records import VideoRecord
    from usnb.evaluate import Predictions, visibility_correlation

    records = [VideoRecord("a", Path("a"), "benign", "a", meta={"visibility": [0, 0.5, 1, 0.2]}),
               VideoRecord("b", Path("b"), "benign", "b", meta={"visibility": [0.5, 0.5, 0.5]})]  # constant: no rho
    preds = Predictions(records, np.zeros(2), np.zeros(2), [np.arange(4), np.arange(3)], np.zeros((2, 1)))
    weights = [np.array([0.1, 0.2, 0.4, 0.3]), np.array([0.2, 0.3, 0.5])]
    corr = visibility_correlation(weights, preds)
    # clip a: ranks (1, 2, 4, 3) vs (1, 3, 4, 2), sum d^2 = 2: rho = 1 - 6 * 2 / (4 * 15); clip b is left out
    assert corr["within_clip_rho"] == pytest.approx(0.8) and corr["clips"] == 1
    # pooled over 7 frames, weights x T: ranks (1, 3, 7, 5, 2, 4, 6) vs (1, 4.5, 7, 2, 4.5, 4.5, 4.5), mean 4
    assert corr["pooled_rho"] == pytest.approx(15.5 / math.sqrt(28 * 23))
    with warnings.catch_warnings():  # pooled over one constant clip: scipy warns, rho is nan
        warnings.simplefilter("ignore")
        alone = visibility_correlation([weights[1]], Predictions(records[1:], np.zeros(1), np.zeros(1), [np.arange(3)],
                                                                 np.zeros((1, 1))))
    assert math.isnan(alone["within_clip_rho"]) and alone["clips"] == 0
