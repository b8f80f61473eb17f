#!/usr/bin/env python3
"""Tests of bench/stats.py: known samples give known intervals, verdicts and target outcomes.

Run: python3 bench/stats_test.py (meson test -C BUILD --suite bench runs it too). The expected values
were computed by hand from the formulas in stats.py's docstring, with Student's t quantiles from
published tables (t(0.975, 4) = 2.776445, t(0.975, 2) = 4.302653, ...).
"""
import math
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stats  # noqa: E402


class TQuantiles(unittest.TestCase):
    # Two-sided 95% critical values (the 0.975 quantile), from published tables.
    TABLE = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 5: 2.570582, 6: 2.446912, 9: 2.262157,
             14: 2.144787, 29: 2.045230, 120: 1.979930}

    def test_table(self):
        for df, want in self.TABLE.items():
            self.assertAlmostEqual(stats.t_quantile(0.975, df), want, places=5, msg="df=%d" % df)

    def test_other_levels(self):
        self.assertAlmostEqual(stats.t_quantile(0.95, 5), 2.015048, places=5)
        self.assertAlmostEqual(stats.t_quantile(0.995, 10), 3.169273, places=5)
        self.assertAlmostEqual(stats.t_quantile(0.025, 4), -2.776445, places=5)
        self.assertEqual(stats.t_quantile(0.5, 7), 0.0)

    def test_large_df_tends_to_normal(self):
        self.assertAlmostEqual(stats.t_quantile(0.975, 100000), 1.959988, places=4)

    def test_cdf_closed_forms(self):
        # df = 1 is Cauchy: 1/2 + atan(t)/pi; df = 2: 1/2 + t / (2 sqrt(2 + t^2)).
        for t in (-3.0, -0.5, 0.0, 0.7, 1.0, 4.0):
            self.assertAlmostEqual(stats.t_cdf(t, 1), 0.5 + math.atan(t) / math.pi, places=10)
            self.assertAlmostEqual(stats.t_cdf(t, 2), 0.5 + t / (2 * math.sqrt(2 + t * t)), places=10)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            stats.t_quantile(1.0, 3)
        with self.assertRaises(ValueError):
            stats.t_cdf(1.0, 0)


class Intervals(unittest.TestCase):
    def test_mean_interval_textbook(self):
        # 1..5: mean 3, sd sqrt(2.5), se 0.707107; half-width 2.776445 * 0.707107 = 1.963243.
        iv = stats.mean_interval([1, 2, 3, 4, 5])
        self.assertAlmostEqual(iv.est, 3.0)
        self.assertAlmostEqual(iv.lo, 1.036757, places=5)
        self.assertAlmostEqual(iv.hi, 4.963243, places=5)
        self.assertEqual(iv.n, 5)

    def test_log_ratio_interval(self):
        # log ratios 0.1, 0.2, 0.3: mean 0.2, sd 0.1, se 0.057735; half-width 4.302653 * se = 0.248414.
        iv = stats.log_ratio_interval([math.exp(0.1), math.exp(0.2), math.exp(0.3)])
        self.assertAlmostEqual(iv.est, math.exp(0.2), places=9)
        self.assertAlmostEqual(iv.lo, math.exp(0.2 - 0.248414), places=5)
        self.assertAlmostEqual(iv.hi, math.exp(0.2 + 0.248414), places=5)
        self.assertAlmostEqual(iv.lo, 0.952739, places=5)
        self.assertAlmostEqual(iv.hi, 1.565827, places=5)

    def test_paired_ratio_from_values(self):
        # Per-round ratios 1.10, 1.00, 1.20, 1.05, 1.15 (a contender 10% slower than its reference).
        xs = [110, 200, 120, 105, 230]
        ys = [100, 200, 100, 100, 200]
        logs = [math.log(x / y) for x, y in zip(xs, ys)]
        m = sum(logs) / 5
        sd = math.sqrt(sum((v - m) ** 2 for v in logs) / 4)
        h = 2.776445 * sd / math.sqrt(5)
        iv = stats.paired_ratio(xs, ys)
        self.assertAlmostEqual(iv.est, math.exp(m), places=9)
        self.assertAlmostEqual(iv.lo, math.exp(m - h), places=5)
        self.assertAlmostEqual(iv.hi, math.exp(m + h), places=5)
        # The same figures by hand: mean log 0.0932368, sd 0.0720652.
        self.assertAlmostEqual(m, 0.0932368, places=6)
        self.assertAlmostEqual(sd, 0.0720652, places=6)
        self.assertAlmostEqual(iv.lo, 1.00376, places=4)
        self.assertAlmostEqual(iv.hi, 1.20048, places=4)

    def test_swapping_sides_inverts(self):
        xs, ys = [3.1, 2.9, 3.3, 3.0], [2.0, 2.2, 2.1, 1.9]
        a, b = stats.paired_ratio(xs, ys), stats.paired_ratio(ys, xs)
        self.assertAlmostEqual(a.est, 1 / b.est)
        self.assertAlmostEqual(a.lo, 1 / b.hi)
        self.assertAlmostEqual(a.hi, 1 / b.lo)
        inv = stats.invert(a)
        self.assertAlmostEqual(inv.lo, b.lo)
        self.assertAlmostEqual(inv.hi, b.hi)

    def test_constant_ratio_has_no_width(self):
        iv = stats.paired_ratio([2, 4, 8], [1, 2, 4])
        self.assertAlmostEqual(iv.lo, 2.0)
        self.assertAlmostEqual(iv.hi, 2.0)

    def test_pairs_without_both_values_are_left_out(self):
        iv = stats.paired_ratio([2, None, 4, 0, 6], [1, 5, 2, 3, None])
        self.assertEqual(iv.n, 2)
        self.assertAlmostEqual(iv.est, 2.0)

    def test_z_quantile(self):
        self.assertAlmostEqual(stats.z_quantile(0.975), 1.959964, places=5)
        self.assertAlmostEqual(stats.z_quantile(0.5), 0.0, places=9)
        self.assertAlmostEqual(stats.z_quantile(0.05), -1.644854, places=5)

    def test_between_runs_widens_in_quadrature(self):
        # log ratios 0.1, 0.2, 0.3: t half-width 0.248414; with a between-run sd of 0.1 the half-width
        # is sqrt(0.248414^2 + (1.959964 * 0.1)^2) = 0.316423.
        rs = [math.exp(0.1), math.exp(0.2), math.exp(0.3)]
        iv = stats.log_ratio_interval(rs, between=0.1)
        self.assertAlmostEqual(iv.est, math.exp(0.2), places=9)
        self.assertAlmostEqual(iv.lo, math.exp(0.2 - 0.316423), places=5)
        self.assertAlmostEqual(iv.hi, math.exp(0.2 + 0.316423), places=5)
        self.assertAlmostEqual(iv.se, 0.057735, places=6)
        self.assertEqual(iv.between, 0.1)
        # A ratio the rounds agree on exactly still moves between runs: 2.0 x exp(+-0.195996).
        iv = stats.paired_ratio([2, 4, 8], [1, 2, 4], between=0.1)
        self.assertAlmostEqual(iv.lo, 2.0 * math.exp(-0.1959964), places=5)
        self.assertAlmostEqual(iv.hi, 2.0 * math.exp(0.1959964), places=5)
        # The verdict follows the wider interval: 1.06x with the rounds alone is slower, not with 5%.
        tight = stats.paired_ratio([106, 212, 318], [100, 200, 300])
        self.assertEqual(stats.verdict(tight, "lower"), stats.SLOWER)
        wide = stats.paired_ratio([106, 212, 318], [100, 200, 300], between=0.05)
        self.assertEqual(stats.verdict(wide, "lower"), stats.SAME)
        self.assertEqual(stats.invert(wide).between, 0.05)

    def test_between_runs_from_runs(self):
        # One ratio seen in three runs at log 0.0, 0.1, 0.2 (variance 0.01), each with se 0.05 (0.0025
        # of it explained by the rounds): sqrt(0.0075). A second ratio the runs agree on within its se
        # adds 0; one seen in a single run is left out.
        runs = [{"a": (0.0, 0.05), "b": (1.0, 0.1), "c": (5.0, 0.01)},
                {"a": (0.1, 0.05), "b": (1.02, 0.1)},
                {"a": (0.2, 0.05), "b": (0.99, 0.1)}]
        sigma, n = stats.between_runs(runs)
        self.assertEqual(n, 2)
        self.assertAlmostEqual(sigma, math.sqrt(0.0075 / 2), places=9)
        self.assertEqual(stats.between_runs([]), (0.0, 0))

    def test_one_round_gives_no_interval(self):
        iv = stats.paired_ratio([2.0], [1.0])
        self.assertEqual(iv.n, 1)
        self.assertFalse(iv.known)
        self.assertEqual(stats.verdict(iv, "lower"), stats.UNKNOWN)
        self.assertEqual(stats.mean_interval([]).n, 0)

    def test_rejects_non_positive_ratios(self):
        with self.assertRaises(ValueError):
            stats.log_ratio_interval([1.0, 0.0])

    def test_coverage_is_near_nominal(self):
        # 2000 seeded experiments of 5 rounds, log-normal noise of 5% around a true ratio of 1.3: the
        # 95% interval must hold the true ratio in 93-97% of them (binomial sd: 0.5%).
        rng = random.Random(20261121)
        hits = 0
        for _ in range(2000):
            rs = [1.3 * math.exp(rng.gauss(0.0, 0.05)) for _ in range(5)]
            iv = stats.log_ratio_interval(rs)
            hits += iv.lo <= 1.3 <= iv.hi
        self.assertGreater(hits / 2000, 0.93)
        self.assertLess(hits / 2000, 0.97)


def iv(lo, hi, n=5):
    return stats.Interval((lo + hi) / 2, lo, hi, n)


class Verdicts(unittest.TestCase):
    def test_lower_is_better(self):
        self.assertEqual(stats.verdict(iv(0.80, 0.90), "lower"), stats.FASTER)
        self.assertEqual(stats.verdict(iv(1.05, 1.20), "lower"), stats.SLOWER)
        self.assertEqual(stats.verdict(iv(0.95, 1.02), "lower"), stats.SAME)

    def test_higher_is_better(self):
        self.assertEqual(stats.verdict(iv(1.05, 1.20), "higher"), stats.FASTER)
        self.assertEqual(stats.verdict(iv(0.80, 0.90), "higher"), stats.SLOWER)
        self.assertEqual(stats.verdict(iv(0.99, 1.01), "higher"), stats.SAME)

    def test_a_difference_inside_the_noise_band_is_none(self):
        # The interval excludes 1, but not the +-3% that moves between runs.
        self.assertEqual(stats.verdict(iv(1.004, 1.07), "lower"), stats.SAME)
        self.assertEqual(stats.verdict(iv(1.01, 1.025), "higher"), stats.SAME)
        self.assertEqual(stats.verdict(iv(0.95, 0.975), "lower"), stats.SAME)
        # Beyond the band on either side, symmetric in the logarithm (1/1.03 = 0.9709).
        self.assertEqual(stats.verdict(iv(1.031, 1.05), "lower"), stats.SLOWER)
        self.assertEqual(stats.verdict(iv(0.95, 0.970), "lower"), stats.FASTER)
        self.assertEqual(stats.verdict(iv(0.95, 0.972), "lower"), stats.SAME)
        # A ratio and its inverse get the same verdict, turned.
        a = iv(1.02, 1.05)
        self.assertEqual(stats.verdict(a, "lower"), stats.SAME)
        self.assertEqual(stats.verdict(stats.invert(a), "lower"), stats.SAME)
        b = iv(1.031, 1.06)
        self.assertEqual(stats.verdict(b, "lower"), stats.SLOWER)
        self.assertEqual(stats.verdict(stats.invert(b), "lower"), stats.FASTER)

    def test_other_words(self):
        self.assertEqual(stats.verdict(iv(0.5, 0.6), "lower", ("smaller", "larger")), "smaller")

    def test_targets(self):
        self.assertEqual(stats.target_verdict(iv(1.00, 1.10), 1.15, "<="), stats.MET)
        self.assertEqual(stats.target_verdict(iv(1.20, 1.30), 1.15, "<="), stats.NOT_MET)
        self.assertEqual(stats.target_verdict(iv(1.10, 1.20), 1.15, "<="), stats.UNDECIDED)
        self.assertEqual(stats.target_verdict(iv(46, 50), 45, ">="), stats.MET)
        self.assertEqual(stats.target_verdict(iv(30, 40), 45, ">="), stats.NOT_MET)
        self.assertEqual(stats.target_verdict(iv(40, 50), 45, ">="), stats.UNDECIDED)
        self.assertEqual(stats.target_verdict(stats.Interval(1.0, None, None, 1), 2, "<="), stats.UNKNOWN)

    def test_level_targets(self):
        # Reaching a reference: above the bound is met; reaching it and short by less than the band is level.
        self.assertEqual(stats.target_verdict(iv(1.01, 1.05), 1.0, ">=", level=True), stats.MET)
        self.assertEqual(stats.target_verdict(iv(0.993, 1.026), 1.0, ">=", level=True), stats.LEVEL)
        self.assertEqual(stats.target_verdict(iv(0.972, 1.0), 1.0, ">=", level=True), stats.LEVEL)
        # Short by more than the band somewhere in the interval: not known to be level.
        self.assertEqual(stats.target_verdict(iv(0.95, 1.02), 1.0, ">=", level=True), stats.UNDECIDED)
        # Wholly below the bound is not met, however close: a shortfall is known.
        self.assertEqual(stats.target_verdict(iv(0.98, 0.995), 1.0, ">=", level=True), stats.NOT_MET)
        # The same intervals as plain targets: only wholly above is met.
        self.assertEqual(stats.target_verdict(iv(0.993, 1.026), 1.0, ">="), stats.UNDECIDED)
        with self.assertRaises(ValueError):
            stats.target_verdict(iv(0.9, 1.0), 1.0, "<=", level=True)

    def test_settled(self):
        self.assertTrue(stats.settled(iv(1.10, 1.30), 0.02))            # excludes 1
        self.assertFalse(stats.settled(iv(0.90, 1.10), 0.02))           # straddles 1, wide
        self.assertTrue(stats.settled(iv(0.995, 1.01), 0.02))           # straddles 1, narrow
        self.assertFalse(stats.settled(iv(1.10, 1.30), 0.02, (1.2,)))   # straddles a target's bound
        self.assertFalse(stats.settled(iv(1.01, 1.08), 0.02))           # straddles the band's edge
        self.assertTrue(stats.settled(iv(0.98, 1.02), 0.01))            # inside the band: no difference
        self.assertTrue(stats.settled(iv(4.3, 4.5), 0.05, (12,), ratio=False))
        self.assertFalse(stats.settled(iv(10, 14), 0.05, (12,), ratio=False))


if __name__ == "__main__":
    unittest.main(verbosity=1)
