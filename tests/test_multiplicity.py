"""The family's graphical closed test (normcheck.multiplicity): Holm as its special case, the
Bretz et al. weight updates, superiority inside the family, and the family-wise error under
dependence when claims can go either way. Broken on purpose (version 4: Holm over decision
p-values, superiority read at H1's level outside the family), the error exceeds alpha."""

import numpy as np
import pytest
from scipy.special import ndtr

from normcheck.multiplicity import Graph, node, over_looks
from normcheck.stats import Proportion

ALPHA = 0.05
NAMES = ["H1", "H2", "H3", "H4", "H5"]


def holm_graph(names: list[str]) -> Graph:
    m = len(names)
    return Graph({n: 1 / m for n in names},
                 {n: {o: 1 / (m - 1) for o in names if o != n} for n in names})


def test_holm_is_the_special_case_without_directions() -> None:
    graph = holm_graph(["a", "b", "c"])
    p = {"a": 0.01, "b": 0.02, "c": 0.04}
    decisions = graph.test(p, ALPHA)
    assert decisions.made == ("a", "b", "c")
    assert decisions.levels == pytest.approx({"a": ALPHA / 3, "b": ALPHA / 2, "c": ALPHA})
    assert graph.adjusted(p) == pytest.approx({"a": 0.03, "b": 0.04, "c": 0.04})
    assert graph.test({"a": 0.01, "b": 0.03, "c": 0.04}, ALPHA).made == ("a",)


def test_separate_families_are_each_tested_alone() -> None:
    """Two families side by side make exactly the claims, at exactly the levels and adjusted
    p-values, that each makes alone at the same alpha."""
    first, second = Graph.family(NAMES, ("H1",)), Graph.family(["E1", "E2"])
    both = Graph.separate([first, second])
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = {j: float(10 ** rng.uniform(-4, 0)) for j in both.weights}
        alone = [g.test(p, ALPHA) for g in (first, second)]
        together = both.test(p, ALPHA)
        assert set(together.made) == set(alone[0].made) | set(alone[1].made)
        assert together.levels == pytest.approx({**alone[0].levels, **alone[1].levels})
        assert both.adjusted(p) == pytest.approx({**first.adjusted(p), **second.adjusted(p)})


def test_the_study_graph_starts_each_claim_at_a_tenth_and_passes_weight_on() -> None:
    graph = Graph.family(NAMES, ("H1",))
    assert graph.weights[node("H3", "holds")] == graph.weights[node("H3", "refuted")] == 0.1
    assert graph.weights[node("H1", "superior")] == 0.0
    assert sum(graph.weights.values()) == pytest.approx(1.0)
    p = {claim: 0.5 for claim in graph.weights}
    p.update({node("H1", "holds"): 0.004, node("H1", "superior"): 0.004,
              node("H3", "holds"): 0.0055})
    decisions = graph.test(p, ALPHA)
    # non-inferiority passes its whole weight to superiority, which passes it to the others
    assert decisions.made == (node("H1", "holds"), node("H1", "superior"), node("H3", "holds"))
    assert decisions.claim("H1") == "superior" and decisions.claim("H3") == "holds"
    # superiority's 0.1 to the 8 claims of H2-H5; H3's 0.1125 to the 7 claims left
    assert decisions.levels[node("H2", "holds")] == pytest.approx(
        ALPHA * (0.1 + 0.1 / 8) * (1 + 1 / 7))
    assert decisions.claim("H2") is None


def test_a_claim_made_at_an_earlier_look_is_made_with_the_weight_it_gains_later() -> None:
    graph = Graph.family(["H1", "H2"], ("H1",))
    shares = [0.02, 0.03]
    first = {node("H1", "holds"): 0.001, node("H1", "superior"): 0.2,
             node("H1", "refuted"): 0.9, node("H2", "holds"): 0.006, node("H2", "refuted"): 0.9}
    later = {**first, node("H1", "superior"): 0.001, node("H2", "holds"): 0.5}
    once = graph.test(over_looks([first], shares, ALPHA), ALPHA)
    assert once.claim("H1") == "holds" and once.claim("H2") is None
    twice = graph.test(over_looks([first, later], shares, ALPHA), ALPHA)
    # superiority at look 2 passes its weight to H2, whose look-1 p-value now suffices
    assert twice.claim("H1") == "superior" and twice.claim("H2") == "holds"


def directional_studies(rng: np.random.Generator, sims: int, rho: float) -> np.ndarray:
    """(sims, 5) z statistics of five hypotheses at their boundaries (both claims false),
    equally correlated; H1's superiority claim's z is its own, H1 being non-inferior by far."""
    shared = rng.standard_normal((sims, 1))
    return np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal((sims, 5))


def version_4(z: np.ndarray, z_superior: np.ndarray) -> np.ndarray:
    """Broken on purpose, version 4's scheme: Holm over two-sided decision p-values of H2-H5
    (H1 non-inferior by far, so decided first at alpha/5), and H1's superiority read at H1's
    level, outside the family. Whether any claim made is false, per study."""
    p = 2 * ndtr(-np.abs(z[:, 1:]))  # H2-H5: either claim false at the boundary
    order = np.sort(p, axis=1)
    levels = ALPHA / (4 - np.arange(4))  # after H1 at alpha/5 was rejected
    rejected = np.cumprod(order <= levels, axis=1).any(axis=1)
    return rejected | (ndtr(-z_superior) <= ALPHA / 5 / 2)


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_the_family_error_holds_with_superiority_inside(rho: float) -> None:
    rng = np.random.default_rng(11)
    sims = 20_000
    z, z_superior = directional_studies(rng, sims, rho), rng.standard_normal(sims)
    graph = Graph.family(NAMES, ("H1",))
    false = 0
    for zs, sup in zip(z, z_superior, strict=True):
        p = {node("H1", "holds"): 1e-9, node("H1", "refuted"): 1.0,
             node("H1", "superior"): float(ndtr(-sup))}
        for name, zi in zip(NAMES[1:], zs[1:], strict=True):
            p[node(name, "holds")], p[node(name, "refuted")] = float(ndtr(-zi)), float(ndtr(zi))
        made = graph.test(p, ALPHA).made
        false += any(c != node("H1", "holds") for c in made)
    assert Proportion(false, sims, 0.98).low <= ALPHA, false / sims
    broken = version_4(directional_studies(rng, 400_000, 0.0), rng.standard_normal(400_000))
    if rho == 0.0:  # independent claims: version 4's error is alpha (1 + 1/10) or so
        assert Proportion(int(broken.sum()), len(broken), 0.98).low > ALPHA, broken.mean()
