"""The pytest plugin: options, the implementation under test, case parametrization, reports.

Registered through the ``pytest11`` entry point, so ``pytest conformance --impl NAME`` and
``pytest --pyargs conformance --impl NAME`` work wherever rnnspec is installed. The checks
themselves live in :mod:`rnnspec.checks`; this module only wires them into pytest.
"""

from __future__ import annotations

import gc
import traceback
from pathlib import Path
from typing import Any

import pytest

import rnnspec
from rnnspec import fixed, registry, spec, xfails
from rnnspec.checks import CATEGORIES
from rnnspec.compare import CheckFailure, Comparison
from rnnspec.errors import RnnSpecError
from rnnspec.harness import Unsupported
from rnnspec.protocol import Implementation
from rnnspec.results import Results, foreign_files

IMPLEMENTATION_KEY = pytest.StashKey[Implementation]()
THREADS_KEY = pytest.StashKey[int]()
FROZE_KEY = pytest.StashKey[bool]()
XFAILS_KEY = pytest.StashKey[list[xfails.Xfail]]()
PACKAGE_DIR = Path(__file__).resolve().parent


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnnspec", "rnnspec conformance")
    group.addoption(
        "--impl",
        metavar="NAME",
        default=None,
        help="implementation under test: an entry point name of the group "
        "rnnspec.implementations, or package.module:attribute",
    )
    group.addoption(
        "--spec",
        metavar="FILE",
        action="append",
        default=[],
        help="add a spec file's cells to the run (repeatable)",
    )
    group.addoption(
        "--conformance-report",
        metavar="PATH",
        default=None,
        help="write the conformance report to PATH.json and PATH.md",
    )
    group.addoption(
        "--xfails",
        metavar="FILE",
        default=None,
        help="expected failures: one 'CHECK-ID-OR-GLOB  # reason' a line; a listed check "
        "that passes fails as XPASS(strict), a line that matches nothing warns",
    )
    group.addoption(
        "--torch-threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads, which oneDNN's kernels use too, for the checks and "
        "for speed runs (-m speed), where it is recorded (default 1: the checks' tensors "
        "are tiny and extra threads only spin; timings on shared cores are steadiest)",
    )
    group.addoption(
        "--speed-sweep",
        choices=("small", "full"),
        default="small",
        help="sizes the speed checks sweep (default: small)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: rnnspec conformance checks of {category}")
    config.addinivalue_line(
        "markers", "cases(provider=f, **options): parametrize 'case' with provider(cells)"
    )
    for path in config.getoption("spec"):
        try:
            spec.register(spec.load(path))
        except (RnnSpecError, OSError) as error:
            raise pytest.UsageError(f"--spec {path}: {error}") from None
    provided = _provided_implementation(config)
    name = config.getoption("impl")
    if provided is not None:
        config.stash[IMPLEMENTATION_KEY] = provided
    elif name is not None:
        try:
            config.stash[IMPLEMENTATION_KEY] = registry.load(name)
            if fixed.is_fixed(config.stash[IMPLEMENTATION_KEY]):
                fixed.config(config.stash[IMPLEMENTATION_KEY])  # its weights make a network
        except RnnSpecError as error:
            raise pytest.UsageError(f"--impl: {error}") from None
    if config.getoption("xfails"):
        try:
            config.stash[XFAILS_KEY] = xfails.read(Path(config.getoption("xfails")))
        except RnnSpecError as error:
            raise pytest.UsageError(f"--xfails: {error}") from None
    report = config.getoption("conformance_report")
    if report and foreign_files(Path(report)):
        names = ", ".join(str(path) for path in foreign_files(Path(report)))
        raise pytest.UsageError(
            f"--conformance-report {report}: {names} exists and was not written by rnnspec; "
            "refusing to overwrite it (remove it or choose another path)"
        )
    config.pluginmanager.register(_Reporter(config), "rnnspec-reporter")
    checking = IMPLEMENTATION_KEY in config.stash and not _is_xdist_controller(config)
    if checking:
        import torch

        config.stash[THREADS_KEY] = torch.get_num_threads()
        torch.set_num_threads(config.getoption("torch_threads"))
    if checking and "speed" not in (config.getoption("markexpr") or ""):
        # torch's millions of long-lived objects out of the garbage collector's way (a full
        # collection over them costs ~0.1 s), unless the host process froze objects itself
        if gc.get_freeze_count() == 0:
            gc.freeze()
            config.stash[FROZE_KEY] = True


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give the process its torch threads and garbage collection back (conformance.run may
    be called in-process); an xdist worker exits now, so its collector stays frozen."""
    if THREADS_KEY in config.stash:
        import torch

        torch.set_num_threads(config.stash[THREADS_KEY])
    if FROZE_KEY in config.stash and not hasattr(config, "workerinput"):
        gc.unfreeze()


def _is_xdist_controller(config: pytest.Config) -> bool:
    """The process that only distributes work to xdist workers: it runs no check."""
    distributing = bool(getattr(config.option, "numprocesses", None))
    return distributing and not hasattr(config, "workerinput")


def _provided_implementation(config: pytest.Config) -> Implementation | None:
    """An Implementation handed over by :func:`conformance.run` through a plugin object."""
    for plugin in config.pluginmanager.get_plugins():
        provided = getattr(plugin, "rnnspec_implementation", None)
        if isinstance(provided, Implementation):
            return provided
    return None


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if "speed" not in (config.getoption("markexpr") or ""):  # speed runs only with -m speed
        slow = [item for item in items if item.get_closest_marker("speed")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("speed")]
    if IMPLEMENTATION_KEY in config.stash:
        _mark_xfails(config, items)
        return
    if any(_is_conformance(item) for item in items):
        names = ", ".join(registry.registered_names()) or "none"
        raise pytest.UsageError(
            f"the conformance suite needs --impl NAME; registered implementations: {names}"
        )


def _mark_xfails(config: pytest.Config, items: list[pytest.Item]) -> None:
    entries = config.stash.get(XFAILS_KEY, [])
    for item in items:
        entry = next((entry for entry in entries if entry.matches(item.nodeid)), None)
        if entry is not None:
            item.add_marker(pytest.mark.xfail(reason=entry.reason, strict=True))
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    for entry in xfails.unmatched(entries, (item.nodeid for item in items)):
        if terminal is not None:  # not warnings.warn: under -W error it would abort the run
            terminal.write_line(
                f"rnnspec warning: --xfails line {entry.line}: {entry.pattern!r} matches no check"
            )


def _is_conformance(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(PACKAGE_DIR)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("cases")
    if marker is None or "case" not in metafunc.fixturenames:
        return
    options = dict(marker.kwargs)
    provider = options.pop("provider")
    cells = [cell.name for loaded in spec.all_specs().values() for cell in loaded.cells.values()]
    impl = metafunc.config.stash.get(IMPLEMENTATION_KEY, None)
    supported = [cell for cell in cells if impl is None or impl.capabilities.declares(cell)]
    found = provider(supported, **options)
    if fixed.is_fixed(impl):  # a network with its own weights: its one configuration
        found = fixed.fit_all(impl, found)
    # One representative case per undeclared cell: it is skipped with the reason.
    for cell in sorted(set(cells) - set(supported)):
        found += provider([cell], **options)[:1]
    metafunc.parametrize("case", found, ids=[case.id() for case in found])


@pytest.fixture(scope="session")
def implementation(pytestconfig: pytest.Config) -> Implementation:
    """The implementation under test (from ``--impl``)."""
    return pytestconfig.stash[IMPLEMENTATION_KEY]


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Any:
    """Keep each comparison of a check for the reports (travels with xdist reports)."""

    def keep(comparison: Comparison) -> None:
        request.node.user_properties.append(("rnnspec", _comparison_dict(comparison)))

    return keep


def _comparison_dict(comparison: Comparison) -> dict[str, Any]:
    return {
        "what": comparison.what,
        "max_abs": comparison.max_abs,
        "max_rel": comparison.max_rel,
        "atol": comparison.tolerance.atol,
        "rtol": comparison.tolerance.rtol,
        "passed": comparison.passed,
    }


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """An unsupported case becomes a skip with the reason; a failure keeps its category."""
    outcome = yield
    error = outcome.excinfo[1] if outcome.excinfo else None
    if isinstance(error, Unsupported):
        outcome.force_exception(pytest.skip.Exception(str(error), _use_item_location=True))
    elif isinstance(error, CheckFailure):
        pyfuncitem.user_properties.append(("rnnspec-failure", error.category))
        if "diagnosis" in error.details:
            verdict = error.details["diagnosis"].as_dict()
            pyfuncitem.user_properties.append(("rnnspec-diagnosis", verdict))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A check's failure reads as its one-line message, with what the candidate raised and
    the diagnosis in sections of their own: no dump of the objects passed to the check."""
    outcome = yield
    report = outcome.get_result()
    error = call.excinfo.value if call.excinfo is not None else None
    if report.failed and isinstance(error, CheckFailure):
        report.longrepr = str(error)
        if error.__cause__ is not None:
            report.sections.append(("candidate traceback", _traceback(error.__cause__)))
        if "diagnosis" in error.details:
            report.sections.append(("rnnspec diagnosis", str(error.details["diagnosis"])))


def _traceback(error: BaseException) -> str:
    """What the candidate raised, with its own frames (rnnspec's left out)."""
    kit = str(Path(rnnspec.__file__).resolve().parent)
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(kit)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(error)
    return "".join(lines).rstrip()


class _Reporter:
    """Collects every test report (on the xdist controller too) and writes the summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results = Results()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.results.add(report)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results.count():
            return
        impl = self.config.stash.get(IMPLEMENTATION_KEY, None)
        terminalreporter.write_sep("=", f"rnnspec conformance: {impl.name if impl else '?'}")
        for line in self.results.summary_lines():
            terminalreporter.write_line(line)
        path = self.config.getoption("conformance_report")
        if path and not hasattr(self.config, "workerinput"):
            for written in self.results.write(Path(path), impl):
                terminalreporter.write_line(f"conformance report written to {written}")
