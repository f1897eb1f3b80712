"""Which running task gets a speculative copy, decided as Spark's TaskSetManager does,
and the spark.speculation* settings read with Spark's defaults and time units."""

from __future__ import annotations

import pytest

from unbounded.executors.speculation import SpeculationConf, speculatable

ON = SpeculationConf(enabled=True)


def test_defaults_are_spark_4s():
    conf = SpeculationConf.from_conf({}.get)
    assert conf == SpeculationConf(False, 0.1, 3.0, 0.9, 0.1)


def test_settings_follow_sparks_names_and_time_units():
    conf = SpeculationConf.from_conf({
        "spark.speculation": "TRUE", "spark.speculation.interval": "250",
        "spark.speculation.multiplier": "1.5", "spark.speculation.quantile": "0.5",
        "spark.speculation.minTaskRuntime": "2s"}.get)
    assert conf == SpeculationConf(True, 0.25, 1.5, 0.5, 2.0)


def test_disabled_speculation_never_copies():
    assert speculatable(SpeculationConf(), 2, [1.0], {1: 100.0}) == []


def test_a_set_of_one_task_is_never_speculated():
    assert speculatable(ON, 1, [], {0: 100.0}) == []


def test_nothing_is_copied_before_the_quantile_of_tasks_succeeded():
    # floor(0.9 * 10) = 9 successes needed
    assert speculatable(ON, 10, [1.0] * 8, {8: 50.0, 9: 50.0}) == []
    assert speculatable(ON, 10, [1.0] * 9, {9: 50.0}) == [9]


def test_the_threshold_is_the_multiplier_times_the_median_duration():
    succeeded = [1.0, 2.0, 9.0]  # median 2.0 -> threshold 6.0
    conf = SpeculationConf(True, quantile=0.5)
    assert speculatable(conf, 5, succeeded, {3: 6.0, 4: 6.5}) == [4]


@pytest.mark.parametrize(("elapsed", "copied"), [(0.4, []), (0.6, [1])])
def test_min_task_runtime_floors_the_threshold(elapsed, copied):
    conf = SpeculationConf(True, min_runtime_s=0.5)
    assert speculatable(conf, 2, [0.01], {1: elapsed}) == copied
