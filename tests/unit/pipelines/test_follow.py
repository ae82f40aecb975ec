"""The follow loop's parts that need no Spark or broker: its config, when a cycle is due, the signal
protocol (first finishes, second abandons), freshness statistics and the CLI flag."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from pipelines.cli import build_parser
from pipelines.config import load_config
from pipelines.errors import ConfigError
from pipelines.stages.follow import CycleAbandoned, StopFlag, due, freshness_stats


def test_follow_config_validates_and_stays_out_of_the_params_hash() -> None:
    cfg = load_config(None, ["follow.interval=2.5", "follow.min_records=100"])
    assert (cfg.follow.interval, cfg.follow.min_records, cfg.follow.max_cycles) == (2.5, 100, None)
    assert cfg.params_hash() == load_config(None).params_hash()  # the schedule changes no output
    with pytest.raises(ConfigError, match="follow.interval"):
        load_config(None, ["follow.interval=0"])
    with pytest.raises(ConfigError, match="unknown config key 'follow.every'"):
        load_config(None, ["follow.every=5"])


def test_a_cycle_is_due_at_start_after_the_interval_or_when_enough_records_wait() -> None:
    assert due(0.0, None, 60, None, 0)
    assert not due(59.0, 0.0, 60, 10**6, 0)  # min_records 0: the interval alone
    assert due(60.0, 0.0, 60, 0, 0)
    assert not due(1.0, 0.0, 60, 9, 10) and due(1.0, 0.0, 60, 10, 10)
    assert not due(1.0, 0.0, 60, None, 10)  # not polled yet


def test_first_signal_stops_after_the_cycle_and_a_second_abandons_it() -> None:
    flag = StopFlag()
    with flag.installed():
        flag.in_cycle = True
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.stopping.wait(5)  # the cycle goes on
        with pytest.raises(CycleAbandoned, match="second SIGTERM") as info:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(5)  # the handler raises here, in the main thread
        assert info.value.exit_code == 20
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_signal_between_cycles_only_stops() -> None:
    flag = StopFlag()
    with flag.installed():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # no cycle to abandon: nothing raised
        assert flag.stopping.is_set() and flag.signals == 2


def test_freshness_stats() -> None:
    assert freshness_stats([]) == {"published_docs": 0, "freshness_p50_s": None, "freshness_p95_s": None,
                                   "freshness_max_s": None}
    stats = freshness_stats([float(x) for x in range(1, 101)])
    assert stats["published_docs"] == 100 and stats["freshness_p50_s"] == 50.5
    assert stats["freshness_p95_s"] == 95.05 and stats["freshness_max_s"] == 100.0


def test_run_takes_follow() -> None:
    args = build_parser().parse_args(["run", "--follow", "--set", "follow.max_cycles=1"])
    assert args.follow and args.overrides == ["follow.max_cycles=1"]
    assert not build_parser().parse_args(["run"]).follow
