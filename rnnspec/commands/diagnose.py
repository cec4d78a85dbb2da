"""``rnnspec diagnose --impl NAME [--cell CELL] [--as-cell CELL] [--config KEY=VALUE ...]``:
run a candidate on small cases, fitted to what it declares, and diagnose each failure."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rnnspec import registry
from rnnspec.cases import Case, fit
from rnnspec.config import RNNConfig
from rnnspec.diagnosis.trial import diagnostic_cases, try_case
from rnnspec.errors import ConfigError
from rnnspec.spec import cell_names


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="run an implementation on small cases and diagnose each failure",
        description="Run an implementation on small diagnostic cases (plain; bidirectional "
        "packed; two layers bidirectional batch_first; with proj_size for LSTM), or on the "
        "one case --config describes, each fitted to what the implementation declares (layers, "
        "direction, layout, batching, initial state, dtype; judged at the precision it "
        "computes in), and print for each failure where the candidate first diverges, which "
        "hypothesis of the library matches it, and the fix. Exits 1 on any failure, 2 when "
        "nothing ran.",
    )
    parser.add_argument(
        "--impl", required=True, metavar="NAME", help="entry point name or package.module:attr"
    )
    parser.add_argument(
        "--cell",
        metavar="CELL",
        help="cell kind[:variant] (default: every cell and variant the implementation declares)",
    )
    parser.add_argument(
        "--as-cell",
        metavar="CELL",
        help="judge the candidate against this cell's gold instead of the one it is built "
        "for (e.g. a GRU declared 'gru' checked as gru:reset_before)",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="one case instead of the defaults: RNNConfig fields (num_layers=2, "
        "bidirectional=true, batch_first=true, ...) and steps, batch (none: unbatched), "
        "unbatched=true, dtype, device, lengths=6,2,4, given_state=false (no h0), seed",
    )
    parser.set_defaults(execute=execute)


def execute(args: argparse.Namespace) -> int:
    impl = registry.load(args.impl)
    declared = impl.capabilities
    known = cell_names()
    cells = [args.cell] if args.cell else [c for c in known if declared.declares(c)]
    if not cells:
        raise ConfigError(
            f"{impl.name} declares no known cell ({', '.join(sorted(declared.cells))})"
        )
    if args.as_cell is not None and args.as_cell not in known:
        raise ConfigError(f"--as-cell {args.as_cell}: unknown cell (known: {', '.join(known)})")
    envelope = impl.effective_capabilities
    outcomes = []
    for cell in cells:
        cases = [case_from_options(cell, args.config)] if args.config else diagnostic_cases(cell)
        for case in dict.fromkeys(fit(case, envelope) for case in cases):
            trial = try_case(impl, case, args.as_cell)
            outcomes.append(trial.outcome)
            print(trial)
    if all(outcome == "skipped" for outcome in outcomes):
        raise ConfigError(f"nothing ran: {impl.name} declares none of these cases")
    return 1 if {"failed", "raised"} & set(outcomes) else 0


CASE_KEYS = ("steps", "batch", "dtype", "device", "lengths", "given_state", "unbatched", "seed")
_OPTION_TYPES: dict[str, type] = {
    "cell": str,
    "dtype": str,
    "device": str,
    "dropout": float,
    "bidirectional": bool,
    "bias": bool,
    "batch_first": bool,
    "given_state": bool,
    "unbatched": bool,
}


def case_from_options(cell: str, options: Sequence[str]) -> Case:
    """A case from ``key=value`` options: RNNConfig fields, and steps, batch (``none``:
    unbatched), dtype, device, lengths, given_state (``false``: no h0), unbatched, seed."""
    config_fields = set(RNNConfig.__dataclass_fields__) - {"cell"}
    config: dict[str, Any] = {"input_size": 5, "hidden_size": 7}
    case: dict[str, Any] = {"batch": 3}
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in config_fields | set(CASE_KEYS):
            known = ", ".join(sorted(config_fields | set(CASE_KEYS)))
            raise ConfigError(f"--config {option!r}: expected KEY=VALUE, KEY one of {known}")
        (config if key in config_fields else case)[key] = _typed(option, key, text.strip())
    if case.pop("unbatched", False):
        case["batch"] = None
    case.setdefault("steps", max(case.get("lengths") or (6,)))
    try:
        return Case(RNNConfig(cell=cell, **config), **case)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"--config {' '.join(options)}: {error}") from None


def _typed(option: str, key: str, text: str) -> Any:
    """The value of ``key=text`` in the type the field takes, or a ConfigError saying so."""
    expected = _OPTION_TYPES.get(key, int)
    value = _value(text)
    try:
        if key == "lengths":
            return tuple(int(n) for n in text.split(","))
        if key == "batch" and value is None:
            return None
        if expected is float and type(value) in (int, float):
            return float(value)
        if type(value) is not expected:
            raise ValueError
        return value
    except ValueError:
        kind = "comma-separated integers" if key == "lengths" else expected.__name__
        if key == "batch":
            kind += " or none (unbatched)"
        raise ConfigError(f"--config {option!r}: {key} must be {kind}") from None


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
