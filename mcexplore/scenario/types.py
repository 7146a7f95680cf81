"""The scenario layer's building blocks: its two error types, the scalar field types of a config
(durations, rates, probabilities, weights, ``active``) and the base class of every config model.

Where it sits: at the bottom of the mcexplore.scenario package. Every other module of the package
imports from here; this one imports none of them (only mcexplore.units, which parses the units).
"""


from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict

from ..units import UnitError, parse_duration, parse_rate

# "This key is absent": a FieldError's value when the problem is a missing table or key.
_MISSING = object()


class ScenarioError(ValueError):
    """A config, override or scenario change that is not valid; one line per problem."""

    def __init__(self, lines: list[str] | str, source: str | None = None):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + line for line in self.lines))


class FieldError(ValueError):
    """Raised inside a validator to blame a field below the model, not the model itself.

    ``loc`` is the field's path relative to the model being validated (() for a field validator's
    own field). ``reason`` may contain {0}, {1}... which are replaced by the dotted paths of
    ``refs`` (field names relative to the same model), so a message can say "must be <=
    page.mapcount (201)". The error rewriter (mcexplore.scenario.errors) turns it into one line.
    """

    def __init__(self, loc, value, reason: str, refs: tuple = ()):
        self.loc = tuple(loc) if isinstance(loc, (tuple, list)) else (loc,)
        self.value = value
        self.reason = reason
        self.refs = refs
        super().__init__(reason)


# --------------------------------------------------------------------------------------------
# Scalar field types


def _duration(v):
    return parse_duration(v)


def _positive_duration(v):
    return parse_duration(v, positive=True)


def _probability(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0):
        raise UnitError(v, "probabilities must be numbers in [0, 1]")
    return float(v)


def _weight(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 < v <= 1.0):
        raise UnitError(v, "mixture weights must be in (0, 1] and sum to 1")
    return float(v)


def _active(v):
    if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return v
    raise UnitError(v, 'must be a number of tasks >= 0 (tasks 1..active touch the page) or "all"')


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Probability = Annotated[float, BeforeValidator(_probability)]
Weight = Annotated[float, BeforeValidator(_weight)]
Active = Annotated[Union[int, Literal["all"]], BeforeValidator(_active)]


class _Model(BaseModel):
    # frozen: a Scenario is a value; sweeps derive new ones with set() and never mutate.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _choices(values) -> str:
    """'a', 'b' or 'c' (how the error messages list what is valid)."""
    shown = [("true" if v else "false") if isinstance(v, bool) else repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
