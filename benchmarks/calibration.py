"""Do the verdicts mean what they say? Simulate studies under truths built to break them, and
count.

Truths (normcheck.simulation): no effect; equal instability in both norms; each hypothesis
alone at its boundary; and the least favourable truths: every hypothesis of the family at its
boundary at once, with no-norm's runs at lr=0.01 collapsing to chance 10% of the time (a
replicate's collapses correlated with rho, so most replicates see none and a few see several)
and the stable runs there better by just enough, noise as uneven as the full grid's (or, with
--metrics, fitted from a real metrics.csv: per-cell, per-arm sds, collapse and loss-up rates,
log beta per cell, the measured correlation), at rho 0, 0.3 and 0.6; the norms grid's fifteen
primary and twelve explanatory hypotheses at their boundaries; and effects of the study's size
(power). For each truth and replicate count, studies are judged exactly as the suite judges
them, and the benchmark prints each family's false-verdict rate, every claim's p-value
validity P(p <= q) <= q at the levels the verdicts are read at, and 95% coverage, each rate
with its Clopper-Pearson 95% interval.

    python benchmarks/calibration.py                                 # 2000 studies per row
    python benchmarks/calibration.py --metrics reports/metrics.csv   # + truths from real runs
    python benchmarks/calibration.py --sequential                    # studies in rounds
    python benchmarks/calibration.py --validity                      # small levels, one contrast
    python benchmarks/calibration.py --explanatory                   # what E1-E4 cost H1-H5

--explanatory measures the choice registered in version 7: the explanatory hypotheses form a
family of their own, so H1-H5 are decided as if alone; the alternative, one family of nine,
would start each hypothesis at alpha/18 instead of alpha/10. On the same simulated studies
(common random numbers) it prints how often each of H1-H5 is decided under the three.

--sequential runs the registered design (normcheck.sequential, hypotheses.toml's
[sequential]) on at least 2000 studies per truth, against re-testing at alpha at every look
(not valid) and against AdaStop (adastop on PyPI; group-sequential permutation tests of two
agents over seeds) on H1's comparison: false decisions and replicates to a decision, side by
side on the same simulated studies.
"""

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from normcheck import provenance
from normcheck.contrasts import nanmean
from normcheck.family import PRIMARY, Family, load
from normcheck.registration import declared
from normcheck.sequential import Design
from normcheck.simulation import (
    Simulator,
    Truth,
    boundary_truth,
    calibrate,
    calibrate_sequential,
    h1_margin_truth,
    h4_margin_truth,
    norms_truth,
    null_truth,
    rate,
    study_truth,
    truth_from_table,
    uneven_truth,
    unstable_null_truth,
)
from normcheck.stats import Proportion, sign_tail

ALPHA = declared()["family"]["alpha"]
# the hypotheses the suite collects, as `pytest experiments` finds them (and any added there)
FAMILY = load([Path(__file__).resolve().parents[1] / "experiments"])
OBSERVATIONS = Family(tuple(h for h in FAMILY.hypotheses if FAMILY.group(h.name) == PRIMARY))


class OneFamily(Family):
    """The choice not taken: the explanatory hypotheses in H1-H5's family, one alpha for all."""

    def group(self, name: str) -> str:
        return PRIMARY


JOINED = OneFamily(FAMILY.hypotheses)


def cp(k: int, n: int) -> str:
    share, low, high = rate(k, n)
    return f"{share:.2%} [{low:.2%}, {high:.2%}]"


def ratio(k: int, n: int, q: float) -> str:
    """A simulated P(p <= q) as a multiple of q, with its 95% interval."""
    share, low, high = rate(k, n)
    return f"{share / q:.2f} [{low / q:.2f}, {high / q:.2f}]"


def levels(m: int) -> list[float]:
    """One-sided levels the verdicts are read at: a claim's first level alpha / 2m, its
    level once every other hypothesis is decided (about alpha / 4), and the registered
    design's looks' first levels (share / 2m)."""
    shares = Design.declared().look_alphas()
    return sorted({ALPHA / (2 * m), ALPHA / 4, shares[0] / (2 * m), shares[-1] / (2 * m)},
                  reverse=True)


def fixed_row(job: tuple) -> dict:
    """One truth at one replicate count, as a row of the fixed design's table."""
    truth, sims, seed, adversarial = job
    start = time.perf_counter()
    c = calibrate(truth, FAMILY, sims, seed=seed)
    m = len(c.outcomes)
    worst = {}
    for q in levels(m):
        hits = max(((k, n, claim) for claim, (k, n) in c.validity(q).items()),
                   key=lambda x: Proportion(x[0], x[1], 0.95).low if x[1] else -1,
                   default=(0, 0, "-"))
        worst[q] = hits
    coverage = min(c.covered.values()) if c.covered else sims
    return {"truth": truth.name, "R": truth.replicates, "rho": truth.rho, "sims": sims,
            "family": c.families_false, "worst": worst, "coverage": coverage,
            "rates": c.rates, "adversarial": adversarial, "m": m,
            "seconds": time.perf_counter() - start}


def show_fixed(rows: list[dict]) -> list[tuple[str, bool]]:
    print("\n## Fixed designs: the family's false verdicts and each claim's p-value validity\n")
    print("Worst claim at each level q: the claim (false under the truth) whose p-values were "
          "most often at most q, as P(p <= q) / q [95% CI of that ratio]; valid: at most 1.\n")
    print("| truth | R | rho | studies | any false verdict, per family [95% CI] | worst claim "
          "P(p <= q) / q | lowest 95% coverage | verdicts (share of studies) | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    checks = []
    for r in rows:
        cells = []
        for q, (k, n, claim) in r["worst"].items():
            if n:
                p = Proportion(k, n, 0.95)
                cells.append(f"q={q:.3g}: {claim} {k / n / q:.2f} [{p.low / q:.2f}, "
                             f"{p.high / q:.2f}]")
                if r["adversarial"]:
                    checks.append((f"{r['truth']}, R={r['R']}, rho={r['rho']}: {claim} at "
                                   f"q={q:.3g}, P(p <= q) lower bound {p.low:.4f}",
                                   p.low <= q))
        verdicts = "; ".join(f"{h} " + ", ".join(f"{o} {s:.0%}" for o, s in sorted(
            rates.items()) if s >= 0.005) for h, rates in r["rates"].items())
        families = "<br>".join(f"{group} {cp(k, r['sims'])}" for group, k in r["family"].items())
        print(f"| {r['truth']} | {r['R']} | {r['rho']:.2f} | {r['sims']} | "
              f"{families} | {'<br>'.join(cells) or '-'} | "
              f"{cp(r['coverage'], r['sims'])} | {verdicts} | {r['seconds']:.0f} |")
        if r["adversarial"]:
            checks += [family_check(f"{r['truth']}, R={r['R']}, rho={r['rho']}: any false "
                                    f"verdict of the {group} family", k, r["sims"])
                       for group, k in r["family"].items()]
    return checks


def power_row(job: tuple) -> dict:
    """How often each of H1-H5 is decided on the same studies, under each family choice."""
    truth, sims, seed = job
    decided = {}
    for name, family in (("H1-H5 alone", OBSERVATIONS), ("registered: two families", FAMILY),
                         ("one family of nine", JOINED)):
        c = calibrate(truth, family, sims, seed=seed)
        decided[name] = {h: sims - c.outcomes[h].get("inconclusive", 0)
                         for h in OBSERVATIONS.names if h in c.outcomes}
    return {"truth": truth.name, "R": truth.replicates, "sims": sims, "decided": decided}


def show_power(rows: list[dict]) -> None:
    print("\n## What the explanatory hypotheses cost H1-H5: studies deciding each\n")
    print("Share of studies in which each hypothesis was decided (any verdict but "
          "inconclusive), with its 95% interval; the same studies in each row of a truth.\n")
    print("| truth | R | family choice | " + " | ".join(OBSERVATIONS.names) + " |")
    print("|---|---|---|" + "---|" * len(OBSERVATIONS.names))
    for r in rows:
        for choice, decided in r["decided"].items():
            print(f"| {r['truth']} | {r['R']} | {choice} | "
                  + " | ".join(cp(decided[h], r["sims"]) for h in OBSERVATIONS.names) + " |")


def family_check(label: str, false: int, sims: int) -> tuple[str, bool]:
    """A family's false-decision rate, with its interval, against alpha."""
    share, low, high = rate(false, sims)
    return f"{label} {share:.2%} [{low:.2%}, {high:.2%}]", share <= ALPHA


def sequential_row(job: tuple) -> dict:
    truth, design, name, sims, seed = job
    start = time.perf_counter()
    c = calibrate_sequential(truth, FAMILY, design, sims, seed=seed)
    return {"truth": truth.name, "design": name, "sims": sims, "family": c.family_false,
            "replicates": c.mean_replicates, "all": c.all_decided, "futile": c.futile,
            "decided": {h: n / sims for h, n in c.decided.items()},
            "to_decide": c.to_decide, "seconds": time.perf_counter() - start,
            "adversarial": name.startswith("registered") and truth.name.startswith("every")}


def show_sequential(rows: list[dict]) -> list[tuple[str, bool]]:
    print("\n## Studies in rounds: optional stopping, futility, replicates to a decision\n")
    print("| truth | design | studies | any false decision, worst family [95% CI] | "
          "mean replicates run | "
          "all decided | stopped for futility | per hypothesis: decided, mean replicates to "
          "its decision | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    checks = []
    for r in rows:
        per = "; ".join(f"{h} {r['decided'][h]:.0%} @{r['to_decide'][h]:.1f}"
                        for h in sorted(r["decided"]))
        print(f"| {r['truth']} | {r['design']} | {r['sims']} | {cp(r['family'], r['sims'])} | "
              f"{r['replicates']:.1f} | {r['all'] / r['sims']:.1%} | "
              f"{r['futile'] / r['sims']:.1%} | {per} | {r['seconds']:.0f} |")
        if r["adversarial"]:
            checks.append(family_check(f"sequential, {r['truth']}: any false decision (the "
                                       "worst family)",
                                       r["family"], r["sims"]))
    return checks


def adastop_row(job: tuple) -> dict:
    """H1's comparison (BatchNorm against none, each replicate's mean accuracy over cells) by
    AdaStop and by the registered design, on the same simulated studies."""
    from adastop import MultipleAgentsComparator

    from normcheck import sequential

    truth, sims, seed, alpha = job
    design = Design.declared()
    simulator = Simulator(truth.with_replicates(design.max_seeds))
    out = {"truth": truth.name, "alpha": alpha, "sims": sims, "ours_false": 0,
           "ours_decided": 0, "ours_n": 0.0, "ada_false": 0, "ada_decided": 0, "ada_n": 0.0}
    from normcheck.simulation import true_values

    difference = true_values(truth, FAMILY)["H1"][0]
    tolerance = true_values(truth, FAMILY).tolerance["H1"][0]
    for i in range(sims):
        paired = simulator.paired(np.random.default_rng([seed, i]))
        run = sequential.take_looks(paired, design)
        h1 = next(v for v in run.verdicts() if v.name == "H1")
        at = run.decided_at("H1")
        if h1.outcome in ("superior", "refuted"):  # directional claims about the difference
            out["ours_decided"] += 1
            wrong = (h1.outcome == "superior" and difference <= tolerance) or (
                h1.outcome == "refuted" and difference >= -0.02 - tolerance)
            out["ours_false"] += wrong
        out["ours_n"] += (at or run.looks[-1].replicates) / sims
        acc = nanmean(paired("final_val_acc"), axis=(0, 1, 2))  # (replicate, norm)
        comparator = MultipleAgentsComparator(n=design.round, K=design.max_seeds // design.round,
                                              B=2000, alpha=alpha, seed=int(seed * 1000 + i))
        values = {"none": [], "batchnorm": []}
        used = 0
        for k in range(comparator.K):
            used = (k + 1) * design.round
            values = {"none": acc[:used, 0], "batchnorm": acc[:used, 1]}
            comparator.partial_compare(values, verbose=False)
            if comparator.is_finished:
                break
        decision = next(iter(comparator.decisions.values()))
        if decision in ("larger", "smaller"):
            out["ada_decided"] += 1
            larger = decision == "larger" if comparator.agent_names[0] == "batchnorm" else \
                decision == "smaller"
            out["ada_false"] += (larger and difference <= tolerance) or (
                not larger and difference >= -tolerance)
        out["ada_n"] += used / sims
    return out


def show_adastop(rows: list[dict]) -> None:
    print("\n## H1's comparison: the registered design against AdaStop, on the same studies\n")
    print("AdaStop decides BatchNorm larger, smaller or equal over looks every 5 replicates "
          "(two-sample permutation tests at its alpha, pairs not used); the registered design "
          "decides H1 as one member of the family of five (its claims at alpha/10 to start). "
          "Directional decisions: superior or refuted (ours), larger or smaller (AdaStop).\n")
    print("| truth | studies | AdaStop alpha | ours: false [95% CI] | ours: decided | ours: "
          "replicates | AdaStop: false [95% CI] | AdaStop: decided | AdaStop: replicates |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        n = r["sims"]
        print(f"| {r['truth']} | {n} | {r['alpha']:g} | {cp(r['ours_false'], n)} | "
              f"{r['ours_decided'] / n:.1%} | {r['ours_n']:.1f} | {cp(r['ada_false'], n)} | "
              f"{r['ada_decided'] / n:.1%} | {r['ada_n']:.1f} |")


def validity_at_small_levels(draws: int, seed: int) -> list[tuple[str, bool]]:
    """One contrast shaped by the least favourable truth (most replicates a little below the
    boundary, a few far above after a collapse), its median exactly at the boundary: the sign
    test's P(p <= q) at levels down to the last look's. The p-value is ``Median.p_above``'s,
    the binomial tail of the count beyond the margin, computed from the counts directly."""
    print(f"\n## One contrast under a collapse mixture: sign-test validity at small levels "
          f"({draws} studies per row)\n")
    print("P(p <= q) / q with its 95% interval, for the claim above the median and the claim "
          "below it; valid: at most 1 (the sign test is discrete, so often well below).\n")
    print("| replicates | q | claim above | claim below |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(seed)
    population = 0.03 * rng.standard_normal(2_000_000) + np.where(
        rng.random(2_000_000) < 0.15, 0.25, 0.0)
    center = float(np.median(population))
    checks = []
    for replicates in (10, 20, 40):
        values = rng.choice(population, size=(draws, replicates)) - center
        above = (values > 0).sum(axis=1)
        below = (values < 0).sum(axis=1)
        for q in levels(5) + [levels(15)[-1]]:
            k_above = sum(sign_tail(replicates, int(k)) <= q for k in above)
            k_below = sum(sign_tail(replicates, int(k)) <= q for k in below)
            print(f"| {replicates} | {q:.3g} | {ratio(k_above, draws, q)} | "
                  f"{ratio(k_below, draws, q)} |")
            for k in (k_above, k_below):
                checks.append((f"one contrast, R={replicates}, q={q:.3g}: "
                               f"{rate(k, draws)[1]:.5f} lower bound", rate(k, draws)[1] <= q))
    return checks


def build(args: argparse.Namespace) -> tuple[list[tuple], dict[str, Truth]]:
    """The fixed design's jobs, and the bases of the least favourable truths."""
    bases = {"uneven noise": uneven_truth()}
    if args.metrics:
        bases["measured"] = truth_from_table(pd.read_csv(args.metrics),
                                             f"measured ({args.metrics})")
    jobs, k = [], 0
    for r in args.replicates:
        for builder in (null_truth, unstable_null_truth, h1_margin_truth, h4_margin_truth):
            jobs.append((builder(r, 0.3), args.sims, 1000 * args.seed + k, True))
            k += 1
    for name, base in bases.items():
        rhos = sorted({0.0, 0.3, 0.6, round(base.rho, 2)}) if name == "measured" else \
            (0.0, 0.3, 0.6)
        for rho in rhos:
            least = boundary_truth(replace(base, rho=rho), FAMILY)
            for r in args.replicates:
                jobs.append((least.with_replicates(r), args.sims, 1000 * args.seed + k, True))
                k += 1
    norms = boundary_truth(norms_truth(replace(bases["uneven noise"], rho=0.6)), FAMILY)
    for r in args.replicates:
        if r >= 10:
            jobs.append((norms.with_replicates(r), args.sims, 1000 * args.seed + k, True))
            k += 1
    power = [study_truth()] + ([bases["measured"]] if "measured" in bases else [])
    for truth in power:
        for r in args.replicates:
            jobs.append((truth.with_replicates(r), args.sims, 1000 * args.seed + k, False))
            k += 1
    return jobs, bases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="studies per row [2000]")
    parser.add_argument("--replicates", type=int, nargs="+", default=[5, 10, 40])
    parser.add_argument("--metrics", default=None,
                        help="a metrics.csv whose noise and instability to fit truths to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequential", action="store_true",
                        help="studies in rounds (and AdaStop) instead of fixed designs")
    parser.add_argument("--validity", action="store_true",
                        help="only one contrast's p-value validity at small levels")
    parser.add_argument("--validity-draws", type=int, default=200_000)
    parser.add_argument("--explanatory", action="store_true",
                        help="only what the explanatory family costs H1-H5 in power")
    parser.add_argument("--workers", type=int, default=2, help="processes [2]")
    args = parser.parse_args()
    print(f"# Calibration: {provenance.stamp()}; registration version "
          f"{declared()['version']}, family alpha {ALPHA:g}\n")
    started = time.perf_counter()
    if args.validity:
        checks = validity_at_small_levels(args.validity_draws, args.seed)
    elif args.explanatory:
        truths = [study_truth()] + ([truth_from_table(pd.read_csv(args.metrics),
                                                      f"measured ({args.metrics})")]
                                    if args.metrics else [])
        jobs = [(t.with_replicates(r), args.sims, 1000 * args.seed + i)
                for i, t in enumerate(truths) for r in args.replicates]
        with ProcessPoolExecutor(args.workers) as pool:
            show_power(list(pool.map(power_row, jobs)))
        checks = []
    elif args.sequential:
        bases = {"uneven noise": uneven_truth()}
        if args.metrics:
            bases["measured"] = truth_from_table(pd.read_csv(args.metrics),
                                                 f"measured ({args.metrics})")
        truths = [boundary_truth(replace(b, rho=0.6), FAMILY) for b in bases.values()]
        truths += [null_truth(), study_truth()] + ([bases["measured"]] if args.metrics else [])
        designs = [("registered", Design.declared()),
                   ("registered, O'Brien-Fleming", replace(Design.declared(),
                                                           spending="obrien-fleming")),
                   ("naive: alpha at every look", replace(Design.declared(), naive=True))]
        jobs = [(t, d, name, args.sims, 1000 * args.seed + i)
                for i, t in enumerate(truths) for name, d in designs]
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(sequential_row, jobs))
        checks = show_sequential(rows)
        ada = [(t, min(args.sims, 500), 7 + i, alpha) for i, t in enumerate(
            [null_truth(), study_truth()] + ([bases["measured"]] if args.metrics else []))
            for alpha in (0.05, 0.005)]
        with ProcessPoolExecutor(args.workers) as pool:
            show_adastop(list(pool.map(adastop_row, ada)))
    else:
        jobs, _ = build(args)
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(fixed_row, jobs))
        checks = show_fixed(rows)
    if checks:
        print(f"\n## Summary (targets: any false verdict at most {ALPHA:.0%} in each family; "
              "every claim's P(p <= q) at most q, by its interval's lower bound)\n")
        misses = [text for text, ok in checks if not ok]
        print(f"{len(checks) - len(misses)} of {len(checks)} checks met"
              + "".join(f"\nMISS {text}" for text in misses))
    print(f"\nwall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
