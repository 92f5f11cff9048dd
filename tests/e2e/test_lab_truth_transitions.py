"""Ground truth on the lab, a second schedule: the transitions the first one does not cross, judged the same way
(tests/e2e/test_lab_truth.py: its measure and its verdict), on a lab of its own so the month's report holds only
this schedule.

About 2.5 minutes, real kernel drops as root: a core switch cut in the middle of a prefecture's tree (its child
unreachable, not paged), an edge router cut across a graceful restart (SIGTERM, back 6 s later), and a leaf
firewall cut that ends just before a kill -9 (the recovery is seen by the restarted daemon, 4 s later: its end
must still be within one probe interval of the truth).

Run it alone (it drives the machine-wide nftables table of the lab):
    flock /tmp/lab.lock .venv/bin/pytest -q -p no:cacheprovider tests/e2e/test_lab_truth_transitions.py
"""

from __future__ import annotations

import signal
import time

import pytest

from monitor.demo import kernel_faults
from tests.e2e.test_lab_truth import Cut, Lab, check_figures, edge, lab, settle_and_measure

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not kernel_faults.available(), reason="real drops need root and nft"),
]
__all__ = ["lab"]  # the fixture: a lab and a daemon of this module's own

SCHEDULE = [
    Cut("pref01-core", 2, 50, ("pref-net-01",)),  # mid-tree: pref01-fw behind it is unreachable, not down
    Cut("pref02-edge", 20, 80, edge("02")),  # across a graceful stop (at 50) and start (at 56)
    Cut("pref03-fw", 30, 40, ("pref-net-03",)),  # ends at 70; kill -9 at 72, restart at 76
]
STOP_AT, START_AT = 50.0, 56.0
KILL_AT, RESTART_AT = 72.0, 76.0


def test_transitions_against_ground_truth(lab: Lab) -> None:
    t0 = time.time() + 3.0
    for cut in SCHEDULE:
        lab.post_fault({"target": cut.target, "mode": "cut", "at": t0 + cut.after, "for": cut.seconds,
                        "note": f"truth suite (transitions): {cut.seconds:.0f} s"})  # fmt: skip
    stops = []
    for down, up, sig in ((STOP_AT, START_AT, signal.SIGTERM), (KILL_AT, RESTART_AT, signal.SIGKILL)):
        time.sleep(max(0.0, t0 + down - time.time()))
        assert lab.daemon is not None
        stops.append(time.time())
        lab.daemon.stop(sig)
        time.sleep(max(0.0, t0 + up - time.time()))
        lab.start_daemon()
    figures = settle_and_measure(lab, SCHEDULE, t0, stops, "figures-transitions.json")
    check_figures(figures, {"target:pref02-edge"})  # (the others are open at a stop or not, by the probe phase)
