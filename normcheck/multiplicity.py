"""One family, one error rate: a graphical closed test over every claim the verdicts make.

Each hypothesis can make two claims, "holds" and "refuted" (H1 also "superior", after
"non-inferior"). At a hypothesis's boundary both of its claims are false, so each claim is a
null of its own: a node of the graph, with a one-sided p-value. The procedure (Bretz, Maurer,
Brannath and Posch 2009) starts every hypothesis with a share 1/m of alpha, half on each
claim; a claim is made when its p-value is at most its weight times alpha, and its weight then
passes on along the graph's edges: "non-inferior" to "superior", every other claim to the
other hypotheses' claims in equal parts. It is a closed test with weighted Bonferroni tests
for every intersection, so the chance of any false claim is at most alpha whatever the
dependence between the claims. Holm's procedure is the special case without directions; it
gave a decided hypothesis's whole share away, which its proof does not cover when a
hypothesis can be decided either way.

Over looks at growing numbers of replicates (Maurer and Bretz 2013, with a union bound over
looks): look k may spend the share ``shares[k]`` of alpha (they add up to alpha), a claim is
made at a look when its p-value there, or at any earlier look, is at most its weight times
that look's share, and weights pass on as before. The chance of any false claim over all
looks stays at most alpha.
"""

from dataclasses import dataclass

HOLDS, REFUTED, SUPERIOR = "holds", "refuted", "superior"


def node(hypothesis: str, claim: str) -> str:
    return f"{hypothesis}:{claim}"


@dataclass(frozen=True)
class Graph:
    """Initial weights of the claims (adding up to at most 1 in each family) and the edges
    their weights pass along once a claim is made (each claim's out-edges add up to at most
    1)."""

    weights: dict[str, float]
    edges: dict[str, dict[str, float]]

    @classmethod
    def family(cls, hypotheses: list[str], stronger: tuple[str, ...] = ()) -> "Graph":
        """The study's graph: every hypothesis weighs 1/m, half on "holds", half on
        "refuted"; those in ``stronger`` have a "superior" claim that "holds" passes its whole
        weight to; every other claim passes to the other hypotheses' claims equally."""
        m = len(hypotheses)
        weights, edges = {}, {}
        for h in hypotheses:
            weights[node(h, HOLDS)] = weights[node(h, REFUTED)] = 1 / (2 * m)
            if h in stronger:
                weights[node(h, SUPERIOR)] = 0.0
        for h in hypotheses:
            others = [node(o, c) for o in hypotheses if o != h for c in (HOLDS, REFUTED)]
            share = {o: 1 / len(others) for o in others} if others else {}
            for claim in (HOLDS, REFUTED, SUPERIOR):
                if node(h, claim) in weights:
                    edges[node(h, claim)] = dict(share)
            if h in stronger:
                edges[node(h, HOLDS)] = {node(h, SUPERIOR): 1.0}
        return cls(weights, edges)

    @classmethod
    def separate(cls, graphs: list["Graph"]) -> "Graph":
        """Families side by side, each with its own alpha: no edge joins two, so a claim made
        in one never moves another's weights, and ``test`` and ``adjusted`` give each claim
        what its family alone would (the claims are taken in order of p over weight, so
        another family's claims taken between never raise the running adjusted p)."""
        weights = {j: w for g in graphs for j, w in g.weights.items()}
        edges = {j: e for g in graphs for j, e in g.edges.items()}
        return cls(weights, edges)

    def test(self, p: dict[str, float], alpha: float) -> "Decisions":
        """Make every claim the procedure allows at family error rate ``alpha``: the claims
        made, in order, each with the level it was made at, and the level every other claim
        was left at."""
        weights = dict(self.weights)
        edges = {j: dict(self.edges.get(j, {})) for j in weights}
        active, made, levels = set(weights), [], {}
        while True:
            ready = [j for j in active if weights[j] > 0 and p[j] <= weights[j] * alpha]
            if not ready:
                break
            j = min(ready, key=lambda x: (p[x] / weights[x], x))
            levels[j] = weights[j] * alpha
            made.append(j)
            active.remove(j)
            weights, edges = _pass_on(weights, edges, j, active)
        levels.update({j: weights[j] * alpha for j in active})
        return Decisions(tuple(made), levels)

    def adjusted(self, p: dict[str, float]) -> dict[str, float]:
        """Each claim's adjusted p-value: the smallest error rate of its family at which the
        procedure makes it (1 where it never would)."""
        weights = dict(self.weights)
        edges = {j: dict(self.edges.get(j, {})) for j in weights}
        active, out, running = set(weights), {}, 0.0
        while active:
            live = [j for j in active if weights[j] > 0]
            if not live:
                break
            j = min(live, key=lambda x: (p[x] / weights[x], x))
            running = max(running, min(1.0, p[j] / weights[j]))
            out[j] = running
            active.remove(j)
            weights, edges = _pass_on(weights, edges, j, active)
        out.update({j: 1.0 for j in active})
        return out


def _pass_on(weights: dict[str, float], edges: dict[str, dict[str, float]], j: str,
             active: set[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Bretz et al.'s update once claim ``j`` is made: its weight passes along its edges, and
    edges through it are joined."""
    new_weights = {k: (weights[k] + weights[j] * edges[j].get(k, 0.0) if k in active else 0.0)
                   for k in weights}
    new_edges: dict[str, dict[str, float]] = {}
    for a in active:
        into_j, row = edges[a].get(j, 0.0), {}
        for b in active:
            if b == a:
                continue
            denominator = 1 - into_j * edges[j].get(a, 0.0)
            value = edges[a].get(b, 0.0) + into_j * edges[j].get(b, 0.0)
            if denominator > 1e-12 and value > 0:
                row[b] = value / denominator
        new_edges[a] = row
    return new_weights, new_edges


@dataclass(frozen=True)
class Decisions:
    """The claims made, in the order they were made, and the level each claim was judged at
    (made: where it was made; not made: where the procedure left it)."""

    made: tuple[str, ...]
    levels: dict[str, float]

    def claim(self, hypothesis: str) -> str | None:
        """The strongest claim made of ``hypothesis``: superior, holds or refuted."""
        for claim in (SUPERIOR, HOLDS, REFUTED):
            if node(hypothesis, claim) in self.made:
                return claim
        return None


def over_looks(looks: list[dict[str, float]], shares: list[float], alpha: float
               ) -> dict[str, float]:
    """Each claim's p-value over looks, scaled so that ``Graph.test`` at ``alpha`` makes it
    exactly when some look's p-value is at most its weight times that look's share."""
    if len(shares) < len(looks):
        raise ValueError(f"{len(looks)} looks but shares for {len(shares)}")
    return {j: min(p[j] * alpha / share for p, share in zip(looks, shares, strict=False))
            for j in looks[0]}
