"""Statistics over seeds, against hand computations and SciPy's paired t test."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from jaxnn import stats


def test_mean_stderr_by_hand():
    s = stats.mean_stderr([1.0, 2.0, 3.0])  # s² = (1 + 0 + 1)/2 = 1
    assert s.n == 3 and s.mean == pytest.approx(2.0) and s.stderr == pytest.approx(1 / math.sqrt(3))
    cube = np.arange(12.0).reshape(4, 3)  # seeds on axis 0: columns 0, 1, 2 step by 3
    s = stats.mean_stderr(cube)
    np.testing.assert_allclose(s.mean, [4.5, 5.5, 6.5])
    np.testing.assert_allclose(s.stderr, np.full(3, np.std([0, 3, 6, 9], ddof=1) / 2))
    np.testing.assert_allclose(stats.mean_stderr(cube.T, axis=1).stderr, s.stderr)


def test_paired_difference_is_scipys_paired_t():
    rng = np.random.default_rng(0)
    a = rng.normal(size=7)
    b = a + 0.3 + 0.1 * rng.normal(size=7)
    d = stats.paired_difference(a, b)
    t = scipy_stats.ttest_rel(a, b).statistic
    assert d.n == 7 and d.z == pytest.approx(t, rel=1e-12)
    assert d.mean == pytest.approx(np.mean(a - b)) and d.mean < -2 * d.stderr


def test_identical_differences_and_count():
    d = stats.paired_difference([1.0, 2.0], [0.0, 1.0])  # the same difference every seed
    assert d.mean == 1.0 and d.stderr == 0.0 and d.z == math.inf
    assert math.isnan(stats.paired_difference([1.0, 2.0], [1.0, 2.0]).z)
    assert stats.count([True, False, True]) == 2 and stats.count(np.zeros(3)) == 0


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: stats.mean_stderr(3.0), "one value per seed"),
        (lambda: stats.mean_stderr([3.0]), "at least 2 seeds"),
        (lambda: stats.paired_difference([1.0, 2.0], [1.0, 2.0, 3.0]), "pair up seed by seed"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
