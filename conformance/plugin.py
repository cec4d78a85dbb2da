"""The pytest plugin: options, the implementation under test, case parametrization, reports.

Registered through the ``pytest11`` entry point, so ``pytest conformance --impl NAME`` and
``pytest --pyargs conformance --impl NAME`` work wherever rnnspec is installed. The checks
themselves live in :mod:`rnnspec.checks`; this module only wires them into pytest.

It is loaded into every pytest run of every environment that installs rnnspec, so without
``--impl`` (or :func:`conformance.run`) it does nothing: each hook returns at once, and
rnnspec's own modules are imported only in a conformance run. With ``--impl``, every check
runs guarded: a per-check timeout, the candidate's warnings recorded (never failures), and
the process state it may change restored (a change fails the check as ``global-state``).
"""

from __future__ import annotations

import argparse
import gc
import re
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from rnnspec.protocol import Implementation
    from rnnspec.results import Results
    from rnnspec.xfails import Xfail

IMPLEMENTATION_KEY = pytest.StashKey["Implementation"]()
ACTIVE_KEY = pytest.StashKey[bool]()
THREADS_KEY = pytest.StashKey[int]()
FROZE_KEY = pytest.StashKey[bool]()
XFAILS_KEY = pytest.StashKey[list["Xfail"]]()
SPEED_CPU_KEY = pytest.StashKey["int | str | None"]()
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHECK_TIMEOUT = 300.0
UNLIMITED_RESTARTS = 1_000_000


# -- options -----------------------------------------------------------------------------


class _Once(argparse.Action):
    """An option that may be given once: a second value is a usage error, not the winner."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        previous = getattr(namespace, self.dest, None)
        if previous is not None and previous != value:
            raise argparse.ArgumentError(
                self, f"given twice ({previous!r} and {value!r}); one run checks one candidate"
            )
        setattr(namespace, self.dest, value)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be seconds >= 0 (0: no limit), got {text!r}")
    return seconds


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnnspec", "rnnspec conformance")
    group.addoption(
        "--impl",
        metavar="NAME",
        default=None,
        action=_Once,
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
        help="expected failures: one 'CHECK-ID-OR-GLOB  # reason' a line, under '[IMPL]' "
        "for that --impl alone; a listed check that passes fails as XPASS(strict), a line "
        "that matches nothing warns",
    )
    group.addoption(
        "--torch-threads",
        type=_count,
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
    group.addoption(
        "--speed-cpu",
        default="auto",
        metavar="N|auto|none",
        help="the CPU speed runs time their calls on (the thread is pinned to it; auto: the "
        "lowest-numbered one this process may use, at --torch-threads 1; none: the "
        "scheduler decides), recorded in the benchmark JSON",
    )
    group.addoption(
        "--speed-visits",
        type=_count,
        default=None,
        metavar="N",
        help="visits per speed point: every point is timed N times over the run, with "
        "fresh instances, and its ratio pools the rounds of all visits (default: the "
        "sweep's, 9; from 6 visits on, their medians' own 95%% interval widens the point's)",
    )
    group.addoption(
        "--check-timeout",
        type=_seconds,
        default=DEFAULT_CHECK_TIMEOUT,
        metavar="SECONDS",
        help="fail a check that runs longer as 'timeout' and go on (default "
        f"{DEFAULT_CHECK_TIMEOUT:g}; 0: no limit; speed checks have none unless given)",
    )
    group.addoption(
        "--isolate",
        action="store_true",
        default=False,
        help="for untrusted candidates: run the checks in pytest-xdist workers (-n, default "
        "1) and replace a worker that crashes, without limit; its check is recorded as "
        "'crashed'",
    )


def _active(config: pytest.Config) -> bool:
    """A conformance run: ``--impl`` given, or an implementation from conformance.run."""
    return config.stash.get(ACTIVE_KEY, False)


# -- configuration ---------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``--isolate``: distribute to xdist workers and restart every crashed one."""
    if not config.getoption("isolate") or hasattr(config, "workerinput"):
        return
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError("--isolate runs checks in pytest-xdist workers; install it")
    option = config.option
    if option.maxworkerrestart is None:
        option.maxworkerrestart = str(UNLIMITED_RESTARTS)
    if not option.numprocesses:
        option.numprocesses = 1
    if isinstance(option.numprocesses, int):  # else "auto": xdist's own hook resolves it
        option.dist = "load" if option.dist == "no" else option.dist
        option.tx = option.tx or ["popen"] * option.numprocesses


def pytest_configure(config: pytest.Config) -> None:
    provided = _provided_implementation(config)
    name = config.getoption("impl")
    config.stash[ACTIVE_KEY] = provided is not None or name is not None
    if not _active(config):
        return
    from rnnspec import fixed, registry, spec
    from rnnspec.errors import RnnSpecError

    _check_markexpr(config)
    _parse_speed_cpu(config)
    for path in config.getoption("spec"):
        try:
            spec.register(spec.load(path))
        except (RnnSpecError, OSError) as error:
            raise pytest.UsageError(f"--spec {path}: {error}") from None
    if provided is not None:
        config.stash[IMPLEMENTATION_KEY] = provided
    else:
        try:
            config.stash[IMPLEMENTATION_KEY] = registry.load(name)
            if fixed.is_fixed(config.stash[IMPLEMENTATION_KEY]):
                fixed.config(config.stash[IMPLEMENTATION_KEY])  # its weights make a network
        except RnnSpecError as error:
            raise pytest.UsageError(f"--impl: {error}") from None
    if config.getoption("xfails"):
        from rnnspec import xfails

        try:
            path, impl = Path(config.getoption("xfails")), config.stash[IMPLEMENTATION_KEY]
            config.stash[XFAILS_KEY] = xfails.read(path, *{name or impl.name, impl.name})
        except RnnSpecError as error:
            raise pytest.UsageError(f"--xfails: {error}") from None
    reporter = _Reporter(config)
    config.pluginmanager.register(reporter, "rnnspec-reporter")
    reporter.start()
    checking = not _is_xdist_controller(config)
    if checking:
        import torch

        config.stash[THREADS_KEY] = torch.get_num_threads()
        torch.set_num_threads(config.getoption("torch_threads"))
    if checking and not _speed_run(config):
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


def _speed_run(config: pytest.Config) -> bool:
    return "speed" in (config.getoption("markexpr") or "")


def _slow_run(config: pytest.Config) -> bool:
    return re.search(r"\bslow\b", config.getoption("markexpr") or "") is not None


def _parse_speed_cpu(config: pytest.Config) -> None:
    """``--speed-cpu`` as rnnspec.speed takes it, for the speed checks: parsed here rather
    than by argparse, which would import rnnspec on every pytest run to parse the default."""
    from rnnspec.speed import cpu_choice

    try:
        config.stash[SPEED_CPU_KEY] = cpu_choice(config.getoption("speed_cpu"))
    except argparse.ArgumentTypeError as error:
        raise pytest.UsageError(f"--speed-cpu: {error}") from None


def _check_markexpr(config: pytest.Config) -> None:
    """``-m`` names only known categories and markers: a typo would select nothing."""
    from rnnspec.checks.suite import CATEGORIES

    expression = config.getoption("markexpr") or ""
    without_arguments = re.sub(r"(\w+)\([^)]*\)", r"\1", expression)
    named = set(re.findall(r"[A-Za-z_]\w*", without_arguments)) - {"and", "or", "not"}
    registered = {re.split(r"[:(]", line, maxsplit=1)[0] for line in config.getini("markers")}
    unknown = sorted(named - set(CATEGORIES) - registered)
    if unknown:
        raise pytest.UsageError(
            f"-m {expression}: unknown category {', '.join(map(repr, unknown))}; the "
            f"categories are {', '.join(CATEGORIES)}"
        )


def _is_xdist_controller(config: pytest.Config) -> bool:
    """The process that only distributes work to xdist workers: it runs no check."""
    distributing = bool(getattr(config.option, "numprocesses", None))
    return distributing and not hasattr(config, "workerinput")


def _provided_implementation(config: pytest.Config) -> Implementation | None:
    """An Implementation handed over by :func:`conformance.run` through a plugin object."""
    for plugin in config.pluginmanager.get_plugins():
        provided = getattr(plugin, "rnnspec_implementation", None)
        if provided is not None:
            return provided
    return None


# -- collection ------------------------------------------------------------------------------


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not _active(config):
        if any(_is_conformance(item) for item in items):
            from rnnspec import registry

            names = ", ".join(registry.registered_names()) or "none"
            raise pytest.UsageError(
                f"the conformance suite needs --impl NAME; registered implementations: {names}"
            )
        return
    if not _speed_run(config):  # speed runs only with -m speed
        slow = [item for item in items if item.get_closest_marker("speed")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("speed")]
    if not _slow_run(config):  # slow conformance checks run only when -m names slow
        heavy = [
            item for item in items if item.get_closest_marker("slow") and _is_conformance(item)
        ]
        if heavy:
            config.hook.pytest_deselected(items=heavy)
            items[:] = [item for item in items if item not in heavy]
    _add_timeouts(config, items)
    _mark_xfails(config, items)


def _add_timeouts(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--check-timeout`` on every check through pytest-timeout (signal method: the check
    fails and the run goes on); speed checks only when the option is given."""
    seconds = config.getoption("check_timeout")
    if not seconds or not config.pluginmanager.hasplugin("timeout"):
        return
    explicit = seconds != DEFAULT_CHECK_TIMEOUT
    for item in items:
        if _is_conformance(item) and (explicit or not item.get_closest_marker("speed")):
            item.add_marker(pytest.mark.timeout(seconds, method="signal", func_only=True))


def _mark_xfails(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--xfails``: each listed check is expected to fail (strict); a line that matches no
    check is said."""
    from rnnspec import xfails

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
    if marker is None or "case" not in metafunc.fixturenames or not _active(metafunc.config):
        return
    from rnnspec import spec

    provider = marker.kwargs["provider"]
    cells = spec.cell_names()
    from rnnspec import fixed
    from rnnspec.cases import for_envelope

    impl = metafunc.config.stash[IMPLEMENTATION_KEY]
    declared = [cell for cell in cells if impl.capabilities.declares(cell)]
    others = sorted(set(cells) - set(declared))  # one case each, skipped with the reason
    found = for_envelope(provider, declared + others, impl.capabilities)
    if fixed.is_fixed(impl):  # a network with its own weights: its one configuration
        found = fixed.fit_all(impl, found)
    metafunc.parametrize("case", found, ids=[case.id() for case in found])


def pytest_itemcollected(item: pytest.Item) -> None:
    """A check's cell travels with its reports: the summary flags declared cells for which
    a category ran nothing."""
    if not _active(item.config):
        return
    from rnnspec.cases import Case

    case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
    if isinstance(case, Case):
        item.user_properties.append(("rnnspec-cell", case.config.cell))


@pytest.fixture(scope="session")
def implementation(pytestconfig: pytest.Config) -> Implementation:
    """The implementation under test (from ``--impl``)."""
    return pytestconfig.stash[IMPLEMENTATION_KEY]


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Any:
    """Keep each comparison of a check for the reports (travels with xdist reports)."""

    def keep(comparison: Any) -> None:
        request.node.user_properties.append(("rnnspec", _comparison_dict(comparison)))

    return keep


def _comparison_dict(comparison: Any) -> dict[str, Any]:
    return {
        "what": comparison.what,
        "max_abs": comparison.max_abs,
        "max_rel": comparison.max_rel,
        "atol": comparison.tolerance.atol,
        "rtol": comparison.tolerance.rtol,
        "passed": comparison.passed,
    }


# -- running a check ---------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Guard one check: its warnings recorded, never raised; the process state it changed
    restored and failed as ``global-state``; a timeout failed as ``timeout``."""
    if not _active(item.config) or not _is_conformance(item):
        return (yield)
    from rnnspec.compare import CheckFailure
    from rnnspec.harness import HEARD, global_state, restore

    HEARD.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        before = global_state()
        try:
            return (yield)
        except pytest.fail.Exception as error:
            if not str(error).startswith("Timeout"):
                raise
            seconds = item.config.getoption("check_timeout")
            raise _failure(
                item,
                CheckFailure(
                    f"no result within {seconds:g} s (--check-timeout): the candidate loops "
                    "or is far too slow",
                    kind="timeout",
                ),
            ) from None
        finally:
            changed = restore(before) + _filters_changed(filters)
            warnings.filters[:] = filters
            item.user_properties.append(
                (
                    "rnnspec-warnings",
                    sorted({f"{w.category.__name__}: {w.message}" for w in [*caught, *HEARD]}),
                )
            )
            if changed:
                raise _failure(
                    item,
                    CheckFailure(
                        f"the candidate changed global state: {'; '.join(changed)} "
                        "(restored for the next check)",
                        kind="global-state",
                    ),
                ) from None


def _filters_changed(before: list[Any]) -> list[str]:
    """What the warning filters now do to a plain UserWarning, if that changed (modules
    imported on first use add filters of their own: those change no verdict)."""
    was, now = _action(before), _action(warnings.filters)
    return [f"warning filters: a UserWarning now gives {now!r}, not {was!r}"] if was != now else []


def _action(filters: list[Any]) -> str:
    """The action ``filters`` take on a UserWarning with any message from any module."""
    for action, message, category, module, lineno in filters:
        if (
            issubclass(UserWarning, category)
            and (message is None or message.match(""))
            and (module is None or module.match(""))
            and not lineno
        ):
            return str(action)
    return str(warnings.defaultaction)


def _failure(item: pytest.Item, failure: Any) -> Any:
    item.user_properties.append(("rnnspec-failure", failure.kind))
    return failure


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    """An unsupported case becomes a skip with the reason; a failure keeps its kind."""
    if not _active(pyfuncitem.config):
        return (yield)
    from rnnspec.compare import CheckFailure
    from rnnspec.harness import Unsupported

    try:
        return (yield)
    except Unsupported as error:
        raise pytest.skip.Exception(str(error), _use_item_location=True) from None
    except CheckFailure as error:
        pyfuncitem.user_properties.append(("rnnspec-failure", error.kind))
        if "diagnosis" in error.details:
            verdict = error.details["diagnosis"].as_dict()
            pyfuncitem.user_properties.append(("rnnspec-diagnosis", verdict))
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A check's failure reads as its one-line message, with what the candidate raised and
    the diagnosis in sections of their own: no dump of the objects passed to the check."""
    report = yield
    if not _active(item.config):
        return report
    from rnnspec.compare import CheckFailure

    error = call.excinfo.value if call.excinfo is not None else None
    if report.failed and isinstance(error, CheckFailure):
        report.longrepr = str(error)
        if error.__cause__ is not None:
            report.sections.append(("candidate traceback", _traceback(error.__cause__)))
        if "diagnosis" in error.details:
            report.sections.append(("rnnspec diagnosis", str(error.details["diagnosis"])))
    return report


def _traceback(error: BaseException) -> str:
    """What the candidate raised, with its own frames (rnnspec's left out)."""
    import rnnspec

    kit = str(Path(rnnspec.__file__).resolve().parent)
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not str(Path(frame.filename).resolve()).startswith(kit)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(error)
    return "".join(lines).rstrip()


# -- reporting ---------------------------------------------------------------------------------


class _Reporter:
    """Collects every test report (on the xdist controller too), writes the report files at
    the start (a run still ``running``) and at the session's end, and the summary."""

    def __init__(self, config: pytest.Config) -> None:
        from rnnspec.results import Results

        self.config = config
        self.results: Results = Results()
        self.results.run.threads = config.getoption("torch_threads")
        option = config.getoption("conformance_report")
        writes = option and not hasattr(config, "workerinput")
        self.path = Path(option) if writes else None
        self.written: list[Path] = []
        self.write_error = ""

    def start(self) -> None:
        """Validate the report path and replace any old report by one of a running run."""
        if self.path is None:
            return
        from rnnspec.results import ReportPathError, check_report_path

        try:
            check_report_path(self.path)
            self.results.write(self.path, self.config.stash[IMPLEMENTATION_KEY])
        except (ReportPathError, OSError) as error:
            raise pytest.UsageError(f"--conformance-report {self.path}: {error}") from None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.results.run.collected = _conformance_count(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.results.run.collected = _conformance_count(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.results.add(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        run = self.results.run
        run.status = "finished"
        run.exit_status = int(exitstatus)
        run.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop)
        if self.path is None:
            return
        try:
            self.written = self.results.write(self.path, self.config.stash[IMPLEMENTATION_KEY])
        except OSError as error:
            self.write_error = f"conformance report NOT written to {self.path}: {error}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results.count() and self.path is None:
            return
        impl = self.config.stash.get(IMPLEMENTATION_KEY, None)
        terminalreporter.write_sep("=", f"rnnspec conformance: {impl.name if impl else '?'}")
        for line in self.results.summary_lines(impl.capabilities if impl else None):
            terminalreporter.write_line(line)
        for written in self.written:
            terminalreporter.write_line(f"conformance report written to {written}")
        if self.write_error:
            terminalreporter.write_line(self.write_error, red=True)


def _conformance_count(nodeids: Any) -> int:
    from rnnspec.results import category_of

    return sum(category_of(nodeid) is not None for nodeid in nodeids)
