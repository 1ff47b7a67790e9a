"""Regularized (aging) evolution as a keras-tuner Oracle (Real et al. 2019).

The population is the `population_size` most recently created completed trials: adding a
child retires the oldest member, whatever its fitness. A child is the best of
`sample_size` members drawn with replacement, mutated (each gene resampled with
probability `mutation_rate`, at least one), optionally crossed with a second tournament
winner first. A candidate already tried, over the budget or under its floor is rejected
before it is evaluated. All state is derived from the trials, so a reloaded search goes on
unchanged.
"""

from __future__ import annotations

import random

import keras_tuner as kt

from search.resume import KillSafeOracle

MAX_ATTEMPTS = 2000


class BudgetError(ValueError):
    """No configuration of the search space meets the budget."""


def gene_name(block: int) -> str:
    return f"groups_{block:02d}"


class AgingEvolutionOracle(KillSafeOracle, kt.Oracle):
    def __init__(self, choices, cost_fn, budget: dict, *, floor: dict | None = None,
                 population_size=20, sample_size=5, mutation_rate=0.1, crossover=False,
                 max_trials=100, seed=0, **kwargs):
        super().__init__(objective=kt.Objective("val_accuracy", "max"),
                         max_trials=max_trials, seed=seed, **kwargs)
        self.choices = [list(c) for c in choices]
        self.cost_fn = cost_fn
        self.budget = dict(budget)
        # Least costs a candidate must reach: a random search at equal or higher cost than
        # another search's pick draws only there (docs/benchmarks.md).
        self.floor = dict(floor or {})
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_rate = mutation_rate
        self.crossover = crossover
        self.rejected_over_budget = 0
        self.rejected_under_floor = 0
        for block, allowed in enumerate(self.choices):
            self.hyperparameters.Choice(gene_name(block), allowed)
        self._check_budget_is_feasible()

    # -- configurations ----------------------------------------------------------------

    def config_of(self, values) -> list:
        return [values[gene_name(b)] for b in range(len(self.choices))]

    def values_of(self, config) -> dict:
        return {gene_name(b): g for b, g in enumerate(config)}

    def _over_budget(self, costs) -> bool:
        return any(costs[k] > limit for k, limit in self.budget.items())

    def _under_floor(self, costs) -> bool:
        return any(costs[k] < least for k, least in self.floor.items())

    def outside_budget(self, config) -> str | None:
        """"over" the budget, "under" its floor, or None: within both."""
        costs = self.cost_fn(config)
        if self._over_budget(costs):
            return "over"
        if self._under_floor(costs):
            return "under"
        return None

    def sample_within_budget(self, count: int, seed: int = 0) -> list:
        """`count` uniform draws from the configurations within the budget (rejection
        sampling), for training the supernet on the region the search explores. The floor
        is left out: searches under one directory share the supernet, which records its
        budget alone. A budget that almost nothing meets falls back to the configurations
        found, at least the cheapest."""
        rng = random.Random(f"{self.seed}-supernet-{seed}")
        found = []
        for _ in range(count * 1000):
            config = self.random_config(rng)
            if not self._over_budget(self.cost_fn(config)):
                found.append(config)
                if len(found) == count:
                    break
        return found or [self.cheapest()]

    def cheapest(self) -> list:
        """Depthwise everywhere: the fewest MACs and parameters."""
        return [max(c) for c in self.choices]

    def costliest(self) -> list:
        """The fewest groups everywhere: the most MACs and parameters."""
        return [min(c) for c in self.choices]

    def _check_budget_is_feasible(self):
        costs = self.cost_fn(self.cheapest())
        if self._over_budget(costs):
            raise BudgetError(
                f"No configuration meets the budget {self.budget}: even the cheapest (all "
                f"depthwise) costs { {k: costs[k] for k in self.budget} }. Raise the budget."
            )
        costs = self.cost_fn(self.costliest())
        if self._under_floor(costs):
            raise BudgetError(
                f"No configuration reaches the floor {self.floor}: even the costliest (fewest "
                f"groups) costs { {k: costs[k] for k in self.floor} }. Lower the floor."
            )
        if any(least > self.budget[k] for k, least in self.floor.items() if k in self.budget):
            raise BudgetError(f"The floor {self.floor} is above the budget {self.budget}: "
                              "no configuration is within both. Lower the floor.")

    # -- evolution ---------------------------------------------------------------------

    def population(self) -> list:
        """The newest `population_size` completed trials, oldest first."""
        done = [t for t in self.trials.values()
                if t.status == kt.engine.trial.TrialStatus.COMPLETED and t.score is not None]
        done.sort(key=lambda t: int(t.trial_id))
        return done[-self.population_size:]

    def random_config(self, rng) -> list:
        return [rng.choice(allowed) for allowed in self.choices]

    def mutate(self, config, rng) -> list:
        child = list(config)
        genes = [b for b in range(len(child)) if rng.random() < self.mutation_rate]
        for block in genes or [rng.randrange(len(child))]:
            child[block] = rng.choice([g for g in self.choices[block] if g != child[block]]
                                      or self.choices[block])
        return child

    def tournament(self, population, rng):
        return max((rng.choice(population) for _ in range(self.sample_size)),
                   key=lambda t: t.score)

    def propose(self, rng) -> list:
        population = self.population()
        if len(population) < self.population_size:
            return self.random_config(rng)
        parent = self.config_of(self.tournament(population, rng).hyperparameters.values)
        if self.crossover:
            other = self.config_of(self.tournament(population, rng).hyperparameters.values)
            parent = [rng.choice(pair) for pair in zip(parent, other)]
        return self.mutate(parent, rng)

    def populate_space(self, trial_id):
        rng = random.Random(f"{self.seed}-{trial_id}")
        for _ in range(MAX_ATTEMPTS):
            config = self.propose(rng)
            values = self.values_of(config)
            if self._duplicate(values):
                continue
            side = self.outside_budget(config)
            if side == "over":
                self.rejected_over_budget += 1
                continue
            if side == "under":
                self.rejected_under_floor += 1
                continue
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
        return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    def get_state(self):
        state = super().get_state()
        state["rejected_over_budget"] = self.rejected_over_budget
        state["rejected_under_floor"] = self.rejected_under_floor
        return state

    def set_state(self, state):
        super().set_state(state)
        self.rejected_over_budget = state.get("rejected_over_budget", 0)
        self.rejected_under_floor = state.get("rejected_under_floor", 0)
