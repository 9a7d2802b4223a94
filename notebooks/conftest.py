"""nbval (`make test`) leaves out the notebooks still in progress: see usnb.notebooks.IN_PROGRESS for why.

A cell that prints a warning fails its test: a student reads every warning as something they did wrong, so the
notebooks run clean (the warning's cause is fixed, never the warning hidden). Progress bars also go to stderr; only
lines of the form `...Warning: message` count.
"""
import re

import pytest

from usnb.notebooks import IN_PROGRESS

collect_ignore = [f"{name}.ipynb" for name in IN_PROGRESS]
WARNING = re.compile(r"\b\w*Warning: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.passed:
        return
    lines = [line for out in getattr(item, "test_outputs", None) or []
             if out.get("output_type") == "stream" and out.get("name") == "stderr"
             for line in out.get("text", "").splitlines() if WARNING.search(line)]
    if lines:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid}: the cell printed {len(lines)} warning line(s); fix their cause:\n"
                           + "\n".join(lines[:10]))
