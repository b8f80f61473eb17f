"""The statistics of weft's benchmarks: intervals on ratios, verdicts, targets. Python standard library only.

Every comparison bench/run prints is a ratio of one contender's figure to a reference's, both taken in the
same round (run back to back, in an order that turns each round). The interval is a paired Student t
interval on the logarithms of the per-round ratios:

    d_i = ln(x_i / y_i)                 one per round in which both have a figure
    ratio = exp(mean(d))                the geometric mean of the per-round ratios
    95% CI = exp(mean(d) -+ t(0.975, n-1) * sd(d) / sqrt(n))

Why this one:
  - Pairs cancel what moves both sides of a round alike (the machine's speed drifting between rounds).
  - On logarithms a ratio and its inverse get the same interval, inverted (A/B in [lo, hi] exactly when
    B/A is in [1/hi, 1/lo]): which side is the reference does not change the verdict.
  - It is exact for the small samples a benchmark affords (5 to 15 rounds) when the log ratios are about
    normal, and an outlying round widens it instead of moving it a long way: a disturbed round makes the
    verdict "no difference", never a false "faster". A percentile bootstrap covers less than its nominal
    95% at such n (it cannot see beyond the rounds it has), and the Wilcoxon signed-rank interval has no
    95% level below 6 rounds (its smallest two-sided level at n = 5 is 1/16).

A verdict compares the interval with a band of +-3% around 1 (NOISE; 1/1.03 to 1.03, symmetric in the
logarithm): entirely above or below the band is a difference; touching the band is "no difference within
noise". The interval covers the noise within a run; the band covers what moves between runs, which no
run can see in its own rounds: two default runs taken back to back on a quiet machine
(bench/results/kept/20261207T022418Z and 20261207T022808Z) moved the same ratios by up to 3% (weft-io_uring
over liburing at a fixed echo rate 1.016x then 1.037x, weft-epoll over nginx in requests/s 1.033x then
1.004x), each time with intervals that excluded 1 in one run and not in the other. A difference under 3%
is below what these benchmarks resolve on such a machine; a before/after run (--baseline) shows its
intervals for whoever wants to look closer. A target compares the interval with the target's bound: "met" when the whole
interval is on the right side, "not met" when it is entirely on the wrong side, "undecided" when it
straddles the bound. A target to reach a reference (>= 1.0x of it, `level`) where both meet the same
ceiling (a disk both wait on, sleeping between completions) can at best be level with it: such a
target is also met, as "level", when its interval reaches 1.0 and falls short of it by less than the
band (lo >= 1/1.03), so no shortfall beyond the noise remains; one wholly below 1.0 is not met,
however close. Absolute figures (a target on one contender's value) use the t interval of the mean
of the rounds.
"""
import math

CONFIDENCE = 0.95
NOISE = 0.03  # a ratio within 1/(1 + NOISE) .. 1 + NOISE of 1 is no difference: see above


# ---- Student's t ----------------------------------------------------------------------------------

def _betacf(a, b, x):
    """The continued fraction of the incomplete beta function (modified Lentz), as in Numerical Recipes."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t, df):
    """P(T <= t) for Student's t with df degrees of freedom."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p, df):
    """The p-quantile of Student's t with df degrees of freedom (0 < p < 1), by bisection on t_cdf."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
        if hi > 1e12:
            return math.inf
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


# ---- intervals ------------------------------------------------------------------------------------

class Interval:
    """An estimate with its confidence interval over n rounds; lo and hi are None below two rounds. A
    ratio's also carries se, the standard error of its logarithm from the run's own rounds, and between,
    the between-run standard deviation its interval allows for (log_ratio_interval)."""

    __slots__ = ("est", "lo", "hi", "n", "conf", "se", "between")

    def __init__(self, est, lo, hi, n, conf=CONFIDENCE, se=None, between=0.0):
        self.est, self.lo, self.hi, self.n, self.conf = est, lo, hi, n, conf
        self.se, self.between = se, between

    @property
    def known(self):
        return self.lo is not None and self.hi is not None

    def as_dict(self):
        d = {"est": self.est, "lo": self.lo, "hi": self.hi, "n": self.n, "conf": self.conf}
        if self.se is not None:
            d.update(se=self.se, between=self.between)
        return d

    def __repr__(self):
        return "Interval(est=%r, lo=%r, hi=%r, n=%r)" % (self.est, self.lo, self.hi, self.n)


def mean_sd(xs):
    n = len(xs)
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return m, sd


def mean_interval(xs, conf=CONFIDENCE):
    """The t interval of the mean of xs."""
    xs = [float(x) for x in xs]
    n = len(xs)
    if n == 0:
        return Interval(None, None, None, 0, conf)
    m, sd = mean_sd(xs)
    if n < 2:
        return Interval(m, None, None, n, conf)
    h = t_quantile((1.0 + conf) / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(m, m - h, m + h, n, conf)


def z_quantile(p):
    """The p-quantile of the standard normal (0 < p < 1), by bisection on its cdf."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def log_ratio_interval(ratios, conf=CONFIDENCE, between=0.0):
    """The paired interval of a ratio from its per-round values (each > 0): exp of the t interval of the
    mean of their logarithms, widened by `between`, the standard deviation of the logarithm of the same
    ratio from one run to the next (the run's mean moves by that much beyond what its rounds show):
    half-width sqrt((t * se)^2 + (z * between)^2)."""
    ratios = [float(r) for r in ratios]
    if any(not (r > 0) or math.isinf(r) for r in ratios):
        raise ValueError("ratios must be positive and finite")
    logs = [math.log(r) for r in ratios]
    iv = mean_interval(logs, conf)
    if iv.est is None:
        return iv
    if not iv.known:
        return Interval(math.exp(iv.est), None, None, iv.n, conf)
    se = mean_sd(logs)[1] / math.sqrt(iv.n)
    half = math.hypot(iv.hi - iv.est, z_quantile((1.0 + conf) / 2.0) * between)
    return Interval(math.exp(iv.est), math.exp(iv.est - half), math.exp(iv.est + half), iv.n, conf, se, between)


def paired_ratio(xs, ys, conf=CONFIDENCE, between=0.0):
    """The interval of x/y from pairs (x_i, y_i) taken in the same round; pairs with a value <= 0 are
    left out (a ratio of them means nothing). between: as log_ratio_interval."""
    rs = [x / y for x, y in zip(xs, ys) if x is not None and y is not None and x > 0 and y > 0]
    return log_ratio_interval(rs, conf, between)


def between_runs(runs):
    """The between-run standard deviation of log ratios, from several runs' estimates of the same
    ratios: runs is a list of {key: (log estimate, se)}, one per run. For each ratio in two runs or
    more, the variance of its estimates across runs less the mean of their squared standard errors (what
    the rounds of a run already account for), floored at 0; pooled over the ratios as the root of the
    mean. (sigma, number of ratios)."""
    keys = set().union(*[set(r) for r in runs]) if runs else set()
    excess = []
    for k in keys:
        seen = [r[k] for r in runs if k in r and r[k][1] is not None]
        if len(seen) < 2:
            continue
        _, sd = mean_sd([e for e, _ in seen])
        excess.append(max(0.0, sd * sd - sum(se * se for _, se in seen) / len(seen)))
    if not excess:
        return 0.0, 0
    return math.sqrt(sum(excess) / len(excess)), len(excess)


# ---- verdicts -------------------------------------------------------------------------------------

FASTER, SLOWER, SAME, UNKNOWN = "faster", "slower", "no difference within noise", "undecided (fewer than 2 rounds)"
MET, NOT_MET, UNDECIDED = "met", "not met", "undecided (the interval straddles it)"
LEVEL = "met: level (short of the bound by less than the noise band)"
BUSY = "undecided"  # report.py: the verdict of rounds most of which other processes disturbed


def verdict(iv, better, words=(FASTER, SLOWER)):
    """The verdict on a ratio contender/reference of a figure for which `better` ("lower" or "higher")
    is better: words[0] when the whole interval is beyond the noise band on the better side of 1,
    words[1] when it is beyond it on the worse side, SAME when it reaches into the band."""
    if iv is None or not iv.known:
        return UNKNOWN
    good, bad = words
    if iv.lo > 1.0 + NOISE:
        return good if better == "higher" else bad
    if iv.hi < 1.0 / (1.0 + NOISE):
        return good if better == "lower" else bad
    return SAME


def target_verdict(iv, bound, op, level=False):
    """A target "value op bound" (op "<=" or ">=") on a quantity with interval iv. level (">=" on a
    ratio only): an interval that reaches the bound and lies above bound / (1 + NOISE) is LEVEL."""
    if iv is None or not iv.known:
        return UNKNOWN
    if level:
        if op != ">=":
            raise ValueError("a level target is a >= target")
        if iv.lo >= bound:
            return MET
        if iv.hi < bound:
            return NOT_MET
        return LEVEL if iv.lo >= bound / (1.0 + NOISE) else UNDECIDED
    if op == "<=":
        if iv.hi <= bound:
            return MET
        if iv.lo > bound:
            return NOT_MET
        return UNDECIDED
    if op == ">=":
        if iv.lo >= bound:
            return MET
        if iv.hi < bound:
            return NOT_MET
        return UNDECIDED
    raise ValueError("op is <= or >=")


def settled(iv, precision, bounds=(), ratio=True):
    """Whether more rounds would be wasted on this interval: it excludes every bound given and, for a
    ratio, both edges of the noise band (the verdict and the targets are decided), or it is narrower
    than +-precision (relative), so any difference left is below what the benchmark resolves."""
    if iv is None or not iv.known:
        return False
    if ratio:
        if iv.lo > 0 and iv.hi / iv.lo <= (1.0 + precision) ** 2:
            return True
    elif iv.est and (iv.hi - iv.lo) / 2.0 <= precision * abs(iv.est):
        return True
    for b in ((1.0 / (1.0 + NOISE), 1.0 + NOISE) if ratio else ()) + tuple(bounds):
        if iv.lo <= b <= iv.hi:
            return False
    return True


def invert(iv):
    """The interval of 1/x given that of x > 0."""
    if iv is None or iv.est is None:
        return iv
    return Interval(1.0 / iv.est, 1.0 / iv.hi if iv.known else None, 1.0 / iv.lo if iv.known else None,
                    iv.n, iv.conf, iv.se, iv.between)
