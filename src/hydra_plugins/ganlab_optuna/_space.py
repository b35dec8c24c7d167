"""The search space: Hydra's sweep syntax, read as Optuna distributions (imported when a sweep starts;
Hydra skips modules named ``_*`` when it scans its plugins, so that a plain run does not import Optuna).

``choice(a, b)`` is categorical; ``interval(lo, hi)`` is uniform over the reals in [lo, hi] (Hydra reads
its ends as floats), ``tag(log, interval(lo, hi))`` log-uniform; ``range(start, stop, step)`` is the
integers ``start, start + step, ...`` below ``stop``, as Hydra's range, kept ordered for the sampler (a
float or shuffled range is categorical). The spellings of hydra-optuna-sweeper: its search spaces work.
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

SYNTAX = (
    "key=choice(a, b, ...), key=interval(low, high), key=tag(log, interval(low, high)) or "
    "key=range(start, stop, step), under hydra.sweeper.params or on the command line"
)


def _range(override: Override, sweep: RangeSweep) -> BaseDistribution:
    values = list(override.sweep_iterator())
    if not values:
        raise ValueError(f"{override.input_line}: the range holds no value")
    if all(isinstance(v, int) for v in values) and not sweep.shuffle:
        step = values[1] - values[0] if len(values) > 1 else 1
        return IntDistribution(values[0], values[-1], step=step)
    return CategoricalDistribution(values)


def _interval(sweep: IntervalSweep) -> BaseDistribution:
    return FloatDistribution(float(sweep.start), float(sweep.end), log="log" in sweep.tags)


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override (``ValueError`` for an empty or reversed one)."""
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(sweep, RangeSweep):
        return _range(override, sweep)
    if isinstance(sweep, IntervalSweep):
        return _interval(sweep)
    raise ValueError(f"{override.input_line}: {type(sweep).__name__} cannot be searched")


def parse(lines: list[str], parser: OverridesParser) -> tuple[dict[str, BaseDistribution], list[str]]:
    """The search space (key -> distribution) of the sweep overrides among ``lines``, and the others
    (plain ``key=value``), which every trial gets as they are. A later line for a key replaces an earlier
    one (the command line after ``hydra.sweeper.params``)."""
    parsed: dict[str, BaseDistribution | str] = {}
    for override in parser.parse_overrides(lines):
        key = override.get_key_element()
        parsed.pop(key, None)
        if override.is_sweep_override():
            parsed[key] = distribution(override)
        else:
            parsed[key] = f"{key}={override.get_value_element_as_str()}"
    space = {k: v for k, v in parsed.items() if not isinstance(v, str)}
    return space, [v for v in parsed.values() if isinstance(v, str)]


def example(dist: BaseDistribution) -> Any:
    """A value the distribution can take (its lowest, or first choice), to compose a trial's config with."""
    return dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low
