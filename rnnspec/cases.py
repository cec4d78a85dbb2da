"""Check cases: a configuration plus the run around it (T, B, dtype, device, packing)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from rnnspec.config import RNNConfig
from rnnspec.tolerance import EPS

if TYPE_CHECKING:
    from rnnspec.protocol import Capabilities


@dataclass(frozen=True)
class Case:
    """One run of a candidate. ``batch=None`` is unbatched input; ``lengths`` packs it."""

    config: RNNConfig
    steps: int = 5
    batch: int | None = 3
    dtype: str = "float64"
    device: str = "cpu"
    lengths: tuple[int, ...] | None = None
    given_state: bool = True
    seed: int = 0
    precision: str | None = None  # the candidate computes in this, coarser than dtype

    def __post_init__(self) -> None:
        if self.steps < 1 or (self.batch is not None and self.batch < 1) or self.seed < 0:
            raise ValueError(
                f"steps and batch must be positive and seed non-negative: got steps="
                f"{self.steps}, batch={self.batch}, seed={self.seed}"
            )
        if self.lengths is not None:
            if self.batch is None or len(self.lengths) != self.batch:
                raise ValueError(f"lengths {self.lengths} must give one length per batch entry")
            if max(self.lengths) != self.steps or min(self.lengths) < 1:
                raise ValueError(
                    f"lengths {self.lengths} must lie in [1, T={self.steps}] and reach T"
                )

    @property
    def packed(self) -> bool:
        return self.lengths is not None

    @property
    def unbatched(self) -> bool:
        return self.batch is None

    def replace(self, **changes: Any) -> Case:
        return replace(self, **changes)

    def state_names(self, suffix: str = "_n") -> list[str]:
        """``["h_n", "c_n"]`` for an LSTM (``suffix="0"``: ``["h0", "c0"]``), in state order."""
        return [state.name + suffix for state in self.config.resolve().states]

    def result_names(self) -> list[str]:
        """``["output", "h_n", "c_n"]`` for an LSTM: what a run returns, in order."""
        return ["output", *self.state_names()]

    def result_shapes(self) -> dict[str, tuple[int, ...]]:
        """``output`` (padded form when packed) and each final state, as torch.nn gives them."""
        config = self.config
        features = config.num_directions * config.output_size
        if self.batch is None:
            output: tuple[int, ...] = (self.steps, features)
        elif config.batch_first:
            output = (self.batch, self.steps, features)
        else:
            output = (self.steps, self.batch, features)
        states = config.state_shapes(config.resolve(), self.batch)
        return dict(zip(self.result_names(), (output, *states), strict=True))

    def label(self) -> str:
        """``lstm I=5 H=4 layers=2 bidirectional T=5 B=3 dtype=float32``: for messages."""
        parts = [self.config.describe(), f"T={self.steps}"]
        parts.append("unbatched" if self.batch is None else f"B={self.batch}")
        if self.lengths is not None:
            parts.append(f"packed lengths={list(self.lengths)}")
        if not self.given_state:
            parts.append("hx=None")
        parts.append(f"dtype={self.dtype}")
        if self.precision is not None:
            parts.append(f"precision={self.precision}")
        if self.device != "cpu":
            parts.append(f"device={self.device}")
        return " ".join(parts)

    def id(self) -> str:
        """A pytest id: short, unique within one check's parameter list."""
        return (
            self.label()
            .replace(" ", "-")
            .replace("=", "")
            .replace(",", "_")
            .replace("[", "")
            .replace("]", "")
        )


RUN_FIELDS = frozenset(field.name for field in fields(Case)) - {"config"}


def make_case(cell: str, layers: int = 1, bidirectional: bool = False, **given: Any) -> Case:
    """A case from flat fields: :class:`Case`'s (``steps``, ``batch``, ``dtype``, ``lengths``,
    ...) and, for the rest, :class:`RNNConfig`'s (``input_size``, ``batch_first``, ...)."""
    run = {name: given.pop(name) for name in RUN_FIELDS & given.keys()}
    config = RNNConfig(cell=cell, num_layers=layers, bidirectional=bidirectional, **given)
    return Case(config, **run)


def layout_case(
    cell: str,
    layers: int,
    bidirectional: bool,
    layout: str,
    *,
    batch: int,
    lengths: tuple[int, ...],
    **given: Any,
) -> Case:
    """A case in a named layout: ``time-major``, ``batch_first``, ``unbatched``, ``packed``
    or ``packed batch_first``; ``given`` are the other fields, as for :func:`make_case`."""
    return make_case(
        cell,
        layers,
        bidirectional,
        batch_first=layout.endswith("batch_first"),
        batch=None if layout == "unbatched" else batch,
        lengths=lengths if layout.startswith("packed") else None,
        **given,
    )


# --- the declared envelope ------------------------------------------------------------------

DTYPE_ORDER = ("float64", "float32", "float16", "bfloat16")  # most precise first
# Every check runs in each of these the candidate declares (the nearest declared dtype when
# it declares neither); bfloat16 and float16 are the dtype category's, whose cases keep
# their dtype.
WORKING_DTYPES = ("float64", "float32")
ASPECTS = frozenset({"initial_state", "direction", "dtype", "single_dtype", "gradients"})
Provider = Callable[[Iterable[str]], list[Case]]


def needs(*aspects: str) -> Callable[[Provider], Provider]:
    """Mark a case provider with what its check exists to test: ``initial_state`` (the
    check passes h0 whatever the case says: never fitted away), ``direction`` (the check
    means one direction: never made bidirectional), ``dtype`` (the case's dtype is the
    point: never fitted, no twins), ``single_dtype`` (one dtype is enough: fitted to the
    nearest declared, no twins) or ``gradients`` (the check runs backward: a candidate
    without gradients runs none of its cases)."""
    unknown = set(aspects) - ASPECTS
    if unknown:
        raise ValueError(f"unknown aspects {sorted(unknown)} (known: {sorted(ASPECTS)})")

    def mark(provider: Provider) -> Provider:
        provider.needs = frozenset(aspects)  # type: ignore[attr-defined]
        return provider

    return mark


def needs_of(provider: Provider) -> frozenset[str]:
    return getattr(provider, "needs", frozenset())


def unsupported(
    capabilities: Capabilities,
    case: Case,
    *,
    gradients: bool = False,
    initial_state: bool = False,
    transform: str | None = None,
) -> str | None:
    """Why the candidate cannot run ``case`` (``initial_state``: the check passes h0 even
    when the case does not; ``transform``: run through that transform), or None."""
    return capabilities.unsupported(
        case.config,
        dtype=case.dtype,
        device=case.device,
        packed=case.packed,
        unbatched=case.unbatched,
        initial_state=case.given_state or initial_state,
        gradients=gradients,
        transform=transform,
    )


def nearest_dtype(dtype: str, declared: Iterable[str]) -> str | None:
    """The declared dtype closest in precision to ``dtype`` (the more precise on a tie)."""
    known = [d for d in DTYPE_ORDER if d in set(declared)]
    if dtype not in DTYPE_ORDER or not known:
        return None
    index = DTYPE_ORDER.index(dtype)
    return min(known, key=lambda d: (abs(DTYPE_ORDER.index(d) - index), DTYPE_ORDER.index(d)))


def fit(case: Case, capabilities: Capabilities, keep: Collection[str] = ()) -> Case:
    """The nearest case inside the declared envelope: layers cut to ``max_layers``, the
    declared direction and layout, unbatched input for unbatched-only candidates, no h0
    for candidates that take none, the nearest declared dtype, and the precision the
    candidate computes in. Features (packed input, ``proj_size``, ``bias=False``, dropout,
    a device) are never invented or dropped: a case that needs one the candidate lacks
    stays outside. ``keep`` names the aspects (see :func:`needs`) left as they are."""
    config, run = case.config, case
    if capabilities.max_layers is not None and config.num_layers > capabilities.max_layers:
        config = config.replace(num_layers=capabilities.max_layers)
    if config.bidirectional and not capabilities.bidirectional:
        config = config.replace(bidirectional=False)
    elif not config.bidirectional and not capabilities.unidirectional and "direction" not in keep:
        config = config.replace(bidirectional=True)
    if config.batch_first and not capabilities.batch_first:
        config = config.replace(batch_first=False)
    elif not config.batch_first and not capabilities.time_major:
        config = config.replace(batch_first=True)
    if case.batch is not None and not case.packed and not capabilities.batched:
        run = run.replace(batch=None)
    if case.given_state and not capabilities.initial_state and "initial_state" not in keep:
        run = run.replace(given_state=False)
    if case.dtype not in capabilities.dtypes and "dtype" not in keep:
        run = run.replace(dtype=nearest_dtype(case.dtype, capabilities.dtypes) or case.dtype)
    precision = capabilities.precision
    if precision is not None and EPS[precision] > EPS[run.dtype]:
        run = run.replace(precision=precision)
    return run.replace(config=config)


def _dtype_twins(case: Case, capabilities: Capabilities) -> list[Case]:
    """The case in each other working dtype the candidate declares."""
    if case.dtype not in WORKING_DTYPES:
        return []
    return [
        case.replace(dtype=dtype)
        for dtype in WORKING_DTYPES
        if dtype != case.dtype and dtype in capabilities.dtypes
    ]


LARGEST_RESIZED_HIDDEN = 128


def _distinct(case: Case, taken: Collection[Case]) -> Case | None:
    """``case``, or, when fitting folded it onto a case already taken, the same case at
    larger sizes (input, hidden and projection sizes scaled together, so that their ratios
    hold): a narrow candidate then runs each case of the grid on a configuration of its own
    instead of losing it. None when the sizes would pass ``LARGEST_RESIZED_HIDDEN``."""
    config, scale = case.config, 1
    while case in taken:
        scale += 1
        if config.hidden_size * scale > LARGEST_RESIZED_HIDDEN:
            return None
        case = case.replace(
            config=config.replace(
                input_size=config.input_size * scale,
                hidden_size=config.hidden_size * scale,
                proj_size=config.proj_size * scale,
            )
        )
    return case


def for_envelope(
    provider: Provider, cells: Iterable[str], capabilities: Capabilities | None
) -> list[Case]:
    """The provider's cases for each cell in each working dtype the candidate declares,
    fitted to the envelope; a case that fitting folds onto another runs at other sizes.

    Per cell, what the candidate cannot run after fitting is kept once per reason, to be
    skipped with it; an undeclared cell keeps one case, skipped with the reason. Without
    capabilities (no candidate chosen), the provider's cases as they are.
    """
    if capabilities is None:
        return provider(list(cells))
    keep = needs_of(provider)
    found: list[Case] = []
    for cell in cells:
        given = provider([cell])
        if not capabilities.declares(cell):
            found += given[:1]
            continue
        if not keep & {"dtype", "single_dtype"}:
            given = given + [twin for case in given for twin in _dtype_twins(case, capabilities)]
        runnable: list[Case] = []
        outside: dict[str, Case] = {}
        fitted: dict[Case, None] = {}
        for case in dict.fromkeys(given):
            distinct = _distinct(fit(case, capabilities, keep), fitted)
            if distinct is not None:
                fitted[distinct] = None
        for case in fitted:
            reason = unsupported(
                capabilities,
                case,
                gradients="gradients" in keep,
                initial_state="initial_state" in keep,
            )
            if reason is None:
                runnable.append(case)
            else:
                outside.setdefault(reason, case)
        found += runnable + list(outside.values())
    return found
