"""Each arm's learning rate for a comparison: tuned on its own by successive halving, or an exhaustive sweep.

FR changes a layer's effective step size, so one learning rate shared by the baseline and FR can favour
either arm, and a verdict must survive the question "did you tune the baseline?". :func:`tune` is what
``--compare`` does unless a rate is given:

1. Grid: five rates half a decade apart on the 1-3-10 ladder (…, 1e-4, 3e-4, 1e-3, 3e-3, …), centred on the
   runner's default rate.
2. Stage 1: every rate trains for a tenth of the full budget. Stage 2: the best two train for a quarter.
   Every trial starts from the same seed and follows the full run's schedule compressed to its budget.
3. The stage-2 winner trains for the full budget: that run is the arm's reported run, unless it ends worse than its
   own stage-2 trial. A longer run doing worse than a shorter one means the rate is unstable at full length (a
   SIREN at a high rate can collapse late: 2.7e-6 MSE after 500 steps, 2.2 after 2000), so the stage-2 runner-up
   trains for the full budget too and the better of the two full runs is reported.

A rate whose loss turns NaN or infinite is dropped: it stays in the record as diverged and is never chosen.
When a stage's best rate is the highest or lowest rate tried, the next rate beyond it is tried too (at most
:data:`MAX_ADDED` per arm), so no choice rests on the edge of the grid; a diverged rate beyond counts as a
bound. Cost per arm: 5 × 1/10 + 2 × 1/4 + 1 = 2 full runs, plus a tenth (or, if it is promoted, another
quarter) per rate added, plus one full run when the winner proves unstable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from frinr_core.errors import InputError
from frinr_core.train import Arm, Bar, Diverged

GRID = 5
"""Rates in the first grid, centred on the runner's default."""
STAGES = ((1 / 10, None), (1 / 4, 2))
"""(share of the full budget, how many of the previous stage's best enter: None = every rate)."""
MAX_ADDED = 3
"""Rates added beyond the first grid per arm, at most."""

Trial = Callable[[float, int, Bar], float]
"""``trial(lr, steps, bar)``: a fresh network trained for ``steps`` at ``lr`` (progress on ``bar``) → its metric."""


def describe(default: float) -> str:
    """The search in one line, for reports: what "tuned" means around a runner's default rate."""
    stages = ", ".join(
        f"{'every rate' if keep is None else f'the best {keep}'} for {Fraction(share).limit_denominator()} of the steps"
        for share, keep in STAGES
    )
    return (
        f"successive halving over {GRID} rates half a decade apart around {ladder(ladder_index(default)):g}: {stages}, "
        f"the winner for all of them; at most {MAX_ADDED} rates added past an edge"
    )


def ladder(index: int) -> float:
    """The rate at ``index`` on the 1-3-10 ladder: 2e → 1·10^e, 2e + 1 → 3·10^e."""
    exponent, odd = divmod(index, 2)
    return float(f"{3 if odd else 1}e{exponent}")


def ladder_index(rate: float) -> int:
    """The index of the ladder's rate nearest ``rate`` on a log scale."""
    return round(2 * math.log10(rate))


@dataclass
class Search:
    """One arm's successive-halving search: the ladder indices tried and every trial, in the order run."""

    name: str
    metric: str
    higher: bool
    budgets: list[int]
    """Steps per trial at each stage."""
    indices: list[int]
    """Ladder indices of the rates tried, ascending."""
    trials: list[dict] = field(default_factory=list)
    dropped: set[float] = field(default_factory=set)
    """Rates that diverged at some stage: never ranked again."""
    added: int = 0

    def rates(self) -> list[float]:
        return [ladder(i) for i in self.indices]

    def results(self, stage: int) -> dict[float, float]:
        """Rate → metric at ``stage`` (0-based), for the rates still in the running."""
        return {t["lr"]: t[self.metric] for t in self.trials if t["stage"] == stage + 1 and t["lr"] not in self.dropped}

    def ranked(self, stage: int, among: list[float]) -> list[float]:
        results = self.results(stage)
        return sorted((lr for lr in among if lr in results), key=results.__getitem__, reverse=self.higher)

    def extend(self, lr: float | None) -> bool:
        """Add the next rate beyond ``lr`` (None: below the lowest) if ``lr`` is at the grid's edge and room is left."""
        rates = self.rates()
        if self.added >= MAX_ADDED or lr not in (None, rates[0], rates[-1]):
            return False
        if lr is None or lr == rates[0]:
            self.indices.insert(0, self.indices[0] - 1)
        else:
            self.indices.append(self.indices[-1] + 1)
        self.added += 1
        return True

    def summary(self, chosen: float, seconds: float) -> dict:
        rates = self.rates()
        return {
            "rates": rates, "trials": self.trials, "added": self.added, "at_edge": chosen in (rates[0], rates[-1]),
            "steps": sum(t["steps"] for t in self.trials), "seconds": round(seconds, 3),
        }  # fmt: skip

    def run_stage(self, stage: int, rates: list[float], trial: Trial) -> None:
        """Train each of ``rates`` not yet tried at ``stage``, on one progress bar; a diverged rate is dropped."""
        budget = self.budgets[stage]
        todo = [lr for lr in rates if lr not in self.results(stage) and lr not in self.dropped]
        if not todo:
            return
        description = f"{self.name} search {stage + 1}/{len(STAGES)}: {len(todo)} × {budget} steps"
        with Bar(description, len(todo) * budget) as bar:
            for lr in todo:
                entry = {"stage": stage + 1, "lr": lr, "steps": budget}
                try:
                    value = trial(lr, budget, bar)
                except Diverged:
                    value = math.nan
                if math.isnan(value):
                    self.dropped.add(lr)
                    entry.update({self.metric: None, "diverged": True})
                else:
                    entry[self.metric] = value
                self.trials.append(entry)

    def winner(self, trial: Trial) -> float:
        """Run the stages until the last stage's best rate is not at the grid's edge (or no rate may be added)."""
        while True:
            candidates = self.rates()
            for stage, (_, keep) in enumerate(STAGES):
                candidates = [lr for lr in candidates if lr not in self.dropped][:keep]
                self.run_stage(stage, candidates, trial)
                candidates = self.ranked(stage, candidates)
                if not candidates:
                    if stage == 0 and not self.extend(None):
                        tried = ", ".join(f"{lr:g}" for lr in self.rates())
                        raise InputError(f"every learning rate diverged for {self.name}: {tried}")
                    break  # a rate was added below, or every promoted rate diverged: rank again
                if self.extend(candidates[0]):
                    break
            else:
                return candidates[0]


def tune(
    arm: Arm, trial: Trial, final: Callable[[float], dict], *, default: float, steps: int, metric: str, higher: bool
) -> dict:
    """``arm``'s reported run at the rate successive halving picks, with the search under ``"search"``.

    ``trial(lr, steps, bar)`` trains a fresh network for ``steps`` (progress on the stage's ``bar``) and
    returns its ``metric``; ``final(lr)`` trains the full run and returns its record. A final run that
    diverges drops its rate and the search picks again; one that ends worse than its own stage-2 trial is
    checked against the runner-up's full run, and the better is reported.
    """
    centre = ladder_index(default)
    search = Search(
        arm.name, metric, higher, budgets=[max(1, round(steps * share)) for share, _ in STAGES],
        indices=list(range(centre - GRID // 2, centre + GRID // 2 + 1)),
    )  # fmt: skip
    searching = 0.0  # wall-clock seconds of everything but the reported run
    while True:
        start = time.perf_counter()
        lr = search.winner(trial)
        searching += time.perf_counter() - start
        start = time.perf_counter()
        try:
            record = final(lr)
        except Diverged:
            searching += time.perf_counter() - start
            search.dropped.add(lr)
            search.trials.append({"stage": "full", "lr": lr, "steps": steps, metric: None, "diverged": True})
            continue
        full_seconds = time.perf_counter() - start
        break
    shorter = search.results(len(STAGES) - 1)
    runners_up = [r for r in search.ranked(len(STAGES) - 1, list(shorter)) if r != lr]
    if runners_up and _worse(record[metric], shorter[lr], higher):  # unstable at full length: try the runner-up
        start = time.perf_counter()
        try:
            other = final(runners_up[0])
        except Diverged:
            other = {"lr": runners_up[0], metric: None, "diverged": True}
        other_seconds = time.perf_counter() - start
        if other[metric] is not None and not _worse(other[metric], record[metric], higher):
            record, other, other_seconds = other, record, full_seconds
        searching += other_seconds
        search.trials.append(
            {"stage": "full", "steps": steps} | {k: other[k] for k in ("lr", metric, "diverged") if k in other}
        )
    return {**record, "search": search.summary(record["lr"], searching)}


def _worse(value: float, than: float, higher: bool) -> bool:
    return value < than if higher else value > than


def sweep(
    variants: list[Arm], rates: list[float], run_one: Callable[[Arm, float], dict], metric: str, higher: bool = True
) -> tuple[list[dict], list[dict]]:
    """Train every arm at every learning rate; return (each arm's best run, the whole grid).

    A run that diverges is kept in the grid as ``{metric: None, "diverged": reason}`` when other rates
    remain, so one bad learning rate never sinks a sweep.
    """
    grid, best = [], {}
    for arm in variants:
        for lr in rates:
            try:
                run = run_one(arm, lr)
            except Diverged as error:
                if len(rates) == 1:
                    raise
                grid.append({"name": arm.name, "lr": lr, metric: None, "diverged": str(error)})
                continue
            grid.append(run)
            current = best.get(arm.name)
            if current is None or (run[metric] > current[metric] if higher else run[metric] < current[metric]):
                best[arm.name] = run
        if arm.name not in best:
            raise InputError(f"every learning rate diverged for {arm.name}: {rates}")
    return [best[arm.name] for arm in variants], grid
