"""tag_tf.selection: exact solvers against a brute force written here, the heuristic's bound,
HOA-style cost selection, input errors, selection from a measured affinity with gaps, and the
experiments.select command line."""

import dataclasses
import itertools
import json
import math
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

from tag_tf import selection
from tag_tf.selection import Grouping, api, select_from_costs, select_groups

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---- an independent reference: the definition, and every set of at most k groups -------------


def alone_scores(policy, n):
    if policy == "zero":
        return [0.0] * n
    if policy == "forbid":
        return [-np.inf] * n
    if np.ndim(policy) == 0:
        return [float(policy)] * n
    return [float(v) for v in policy]


def score_in(a, group, t, alone):
    """Mean of A[o, t] over the other members o (a column of A[source, target])."""
    others = [o for o in group if o != t]
    return alone[t] if not others else sum(a[o][t] for o in others) / len(others)


def brute_force(a, k, *, overlap, policy, max_size):
    """Best total over every set of <= k groups covering all tasks (each task: its best group)."""
    n = len(a)
    alone = alone_scores(policy, n)
    subsets = [g for r in range(1, max_size + 1) for g in itertools.combinations(range(n), r)]
    values = np.full((len(subsets), n), -np.inf)
    inside = np.zeros((len(subsets), n), dtype=int)
    for i, g in enumerate(subsets):
        for t in g:
            values[i, t] = score_in(a, g, t, alone)
            inside[i, t] = 1
    best = -np.inf
    for j in range(1, k + 1):
        combos = np.array(list(itertools.combinations(range(len(subsets)), j)))
        if not len(combos):
            continue
        totals = values[combos].max(axis=1).sum(axis=1)
        covered = inside[combos].sum(axis=1)
        ok = (covered == 1).all(axis=1) if not overlap else (covered >= 1).all(axis=1)
        totals = np.where(ok, totals, -np.inf)
        best = max(best, float(totals.max()))
    return best


def rescore(a, grouping, tasks, policy):
    """Check a Grouping is well formed and return the total it really achieves."""
    alone = alone_scores(policy, len(tasks))
    index = {name: i for i, name in enumerate(tasks)}
    groups = [[index[name] for name in g] for g in grouping.groups]
    assert len({tuple(g) for g in groups}) == len(groups), "duplicate groups"
    assert set(grouping.assignment) == set(tasks)
    assert set(grouping.assignment.values()) == set(range(len(groups))), "a group serves nobody"
    total = 0.0
    for name, gi in grouping.assignment.items():
        t = index[name]
        assert t in groups[gi], f"{name} assigned to a group without it"
        mine = score_in(a, groups[gi], t, alone)
        best = max(score_in(a, g, t, alone) for g in groups if t in g)
        assert mine == pytest.approx(best, rel=1e-9, abs=1e-12), f"{name} is not served by its best group"
        total += mine
    return total


def random_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    overlap = bool(rng.integers(2))
    policy = ["zero", "forbid", round(float(rng.normal()), 3), "per_task"][seed % 4]
    if policy == "per_task":
        policy = rng.normal(size=n).round(3).tolist()
    max_size = int(rng.integers(1, n + 1)) if rng.random() < 0.3 else None
    # every set of <= k groups must stay enumerable by the reference
    groups = sum(math.comb(n, r) for r in range(1, (max_size or n) + 1))
    k_max = max(j for j in range(1, 5) if sum(math.comb(groups, i) for i in range(1, j + 1)) <= 400_000)
    k = int(rng.integers(1, k_max + 1))
    a = rng.normal(size=(n, n))
    if rng.random() < 0.4:  # planted blocks
        blocks = rng.integers(0, 3, size=n)
        a = 0.3 * a + (blocks[:, None] == blocks[None, :])
    return a, k, overlap, policy, max_size


@pytest.mark.parametrize("seed", range(240))
def test_exact_matches_brute_force(seed):
    a, k, overlap, policy, max_size = random_case(seed)
    n = len(a)
    tasks = [f"t{i}" for i in range(n)]
    expected = brute_force(a, k, overlap=overlap, policy=policy, max_size=max_size or n)
    if not np.isfinite(expected):
        with pytest.raises(ValueError):
            select_groups(a, k, tasks=tasks, overlap=overlap, singleton=policy, max_group_size=max_size)
        return
    g = select_groups(a, k, tasks=tasks, overlap=overlap, singleton=policy, max_group_size=max_size)
    assert g.optimal and g.method == "dp"
    assert g.score == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert rescore(a, g, tasks, policy) == pytest.approx(g.score, rel=1e-9, abs=1e-9)
    assert g.upper_bound == pytest.approx(g.score)
    assert len(g.groups) <= k
    assert all(len(group) <= (max_size or n) for group in g.groups)
    if not overlap:
        assert sorted(t for group in g.groups for t in group) == sorted(tasks)


@pytest.mark.parametrize("seed", range(240, 280))
def test_milp_path_matches_brute_force(seed, monkeypatch):
    """The column-generation + reduced-cost-fixing MILP (used from 16 tasks on), forced small."""
    monkeypatch.setattr(api, "DP_MAX_TASKS", 0)
    a, k, overlap, policy, max_size = random_case(seed)
    n = len(a)
    expected = brute_force(a, k, overlap=overlap, policy=policy, max_size=max_size or n)
    if not np.isfinite(expected):
        with pytest.raises(ValueError):
            select_groups(a, k, overlap=overlap, singleton=policy, max_group_size=max_size, method="exact")
        return
    g = select_groups(a, k, overlap=overlap, singleton=policy, max_group_size=max_size, method="exact")
    assert g.optimal and g.method == "milp"
    assert g.score == pytest.approx(expected, rel=1e-7, abs=1e-7)
    assert rescore(a, g, [f"task_{i}" for i in range(n)], policy) == pytest.approx(g.score, rel=1e-9)


@pytest.mark.parametrize("seed", range(280, 300))
def test_brute_force_method_matches_reference(seed):
    a, k, overlap, policy, max_size = random_case(seed)
    expected = brute_force(a, k, overlap=overlap, policy=policy, max_size=max_size or len(a))
    if not np.isfinite(expected):
        with pytest.raises(ValueError):
            select_groups(a, k, overlap=overlap, singleton=policy, max_group_size=max_size,
                          method="brute_force")
        return
    g = select_groups(a, k, overlap=overlap, singleton=policy, max_group_size=max_size, method="brute_force")
    assert g.method == "brute_force" and g.score == pytest.approx(expected, rel=1e-9, abs=1e-9)


# ---- known cases by hand ---------------------------------------------------------------------


def two_blocks():
    """Tasks a, b help each other; so do c, d; nothing crosses."""
    a = np.zeros((4, 4))
    a[0, 1], a[1, 0], a[2, 3], a[3, 2] = 0.9, 0.8, 0.7, 0.6
    return a, ["a", "b", "c", "d"]


def test_two_obvious_blocks_for_two_networks():
    a, tasks = two_blocks()
    g = select_groups(a, 2, tasks=tasks)
    assert g.groups == (("a", "b"), ("c", "d"))
    assert g.assignment == {"a": 0, "b": 0, "c": 1, "d": 1}
    assert g.score == pytest.approx(0.9 + 0.8 + 0.7 + 0.6)
    assert g.optimal and g.budget == 2


def test_one_network_is_everything_together():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    g = select_groups(a, 1)
    assert g.groups == (tuple(f"task_{i}" for i in range(6)),)
    column_means = (a.sum(axis=0) - np.diag(a)) / 5  # each task: mean of its column over the others
    assert g.score == pytest.approx(column_means.sum())


def test_budget_of_n_or_more_serves_each_task_by_its_best_source():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    best_source = np.where(np.eye(5, dtype=bool), -np.inf, a).max(axis=0)
    for k in (5, 9):
        g = select_groups(a, k)  # zero singleton: alone is worth 0
        assert g.score == pytest.approx(np.maximum(best_source, 0.0).sum())
        assert len(g.groups) <= 5


def test_overlap_beats_partition_when_one_task_helps_two_others():
    # h helps a and c (rows are sources); a and c hurt each other; alone scores -1
    tasks = ["h", "a", "c"]
    a = np.array([[0.0, 1.0, 1.0],
                  [0.0, 0.0, -1.0],
                  [0.0, -1.0, 0.0]])
    shared = select_groups(a, 2, tasks=tasks, singleton=-1.0)
    assert set(shared.groups) == {("h", "a"), ("h", "c")}
    assert shared.score == pytest.approx(2.0)  # a and c score 1, h scores 0
    apart = select_groups(a, 2, tasks=tasks, singleton=-1.0, overlap=False)
    assert apart.score == pytest.approx(0.0)  # {h,a}+{c}: 1+0-1, or all three: 0
    assert sorted(t for g in apart.groups for t in g) == sorted(tasks)


def test_forbidding_singletons_and_max_group_size():
    a, tasks = two_blocks()
    g = select_groups(a, 4, tasks=tasks, singleton="forbid", max_group_size=2)
    assert all(len(group) == 2 for group in g.groups)
    assert g.score == pytest.approx(3.0)
    lonely = select_groups(-np.ones((3, 3)), 3, singleton="zero")  # alone (0) beats -1
    assert len(lonely.groups) == 3 and lonely.score == 0.0


def test_grouping_json_round_trip_and_selection_file(tmp_path):
    a, tasks = two_blocks()
    groupings = [select_groups(a, k, tasks=tasks) for k in (1, 2)]
    for g in groupings:
        data = json.loads(json.dumps(g.to_json()))
        assert Grouping.from_json(data) == g
        assert set(data["assignment"]) == set(tasks)  # names, not bare indices
    path = str(tmp_path / "selection.json")
    selection.save_selection(path, tasks, groupings)
    assert selection.load_selection(path) == (tasks, groupings)
    assert os.listdir(tmp_path) == ["selection.json"]
    with pytest.raises(ValueError, match="assignment"):
        Grouping.from_json({**groupings[1].to_json(), "assignment": {"a": 1}})


# ---- the heuristic and its bounds --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_heuristic_within_its_bound_and_near_exact(seed):
    rng = np.random.default_rng(100 + seed)
    n, k = 12, int(rng.integers(2, 6))
    blocks = rng.integers(0, 4, size=n)
    planted = blocks[:, None] == blocks[None, :]
    a = rng.normal(size=(n, n)) * (0.3 if seed % 2 else 1.0) + (seed % 2) * planted
    overlap = seed < 4
    exact = select_groups(a, k, overlap=overlap)
    heuristic = select_groups(a, k, overlap=overlap, method="heuristic")
    assert heuristic.method == "heuristic"
    assert heuristic.score <= exact.score + 1e-9
    assert heuristic.upper_bound >= exact.score - 1e-9
    assert heuristic.score <= heuristic.upper_bound + 1e-12
    assert heuristic.score >= exact.score - 0.05 * abs(exact.score)
    assert rescore(a, heuristic, [f"task_{i}" for i in range(n)], "zero") == pytest.approx(heuristic.score)
    assert heuristic.optimal == (heuristic.upper_bound - heuristic.score <= 1e-9 * (1 + abs(heuristic.score)))


@pytest.mark.parametrize("seed", range(40))
def test_relaxed_bound_is_at_least_the_optimum(seed):
    """The bound used beyond 22 tasks, checked where the optimum is known."""
    rng = np.random.default_rng(200 + seed)
    n, k = int(rng.integers(3, 11)), int(rng.integers(1, 5))
    a = rng.normal(size=(n, n))
    policy = ["zero", "forbid", -0.5][seed % 3]
    overlap = seed % 2 == 0
    max_size = None if seed % 5 or (policy == "forbid" and not overlap) else \
        int(rng.integers(max(2, -(-n // k)), n + 1))  # always feasible
    exact = select_groups(a, k, singleton=policy, max_group_size=max_size, overlap=overlap)
    bound = selection.relaxed_upper_bound(a, selection.singleton_scores(policy, n), k, overlap=overlap,
                                          max_group_size=max_size)
    assert bound >= exact.score - 1e-9
    trivial = np.maximum(np.where(np.eye(n, dtype=bool), -np.inf, a).max(axis=0),
                         selection.singleton_scores(policy, n)).sum()
    assert bound <= trivial + 1e-9


def test_large_instance_uses_the_heuristic_and_its_bound():
    rng = np.random.default_rng(7)
    n = 30
    blocks = np.repeat(np.arange(5), 6)
    a = 0.2 * rng.normal(size=(n, n)) + (blocks[:, None] == blocks[None, :])
    g = select_groups(a, 5)
    assert g.method == "heuristic" and g.score <= g.upper_bound
    assert g.optimal and g.gap <= 1e-9 * g.score  # planted blocks: the relaxed bound is tight here
    found = {frozenset(group) for group in g.groups}
    assert found == {frozenset(f"task_{i}" for i in range(6 * b, 6 * b + 6)) for b in range(5)}


def test_seventeen_tasks_are_solved_exactly_by_the_milp():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(17, 17))
    g = select_groups(a, 3)
    assert g.method == "milp" and g.optimal
    h = select_groups(a, 3, method="heuristic")
    assert h.score <= g.score + 1e-9 and h.upper_bound >= g.score - 1e-9


# ---- HOA-style selection from measured losses ---------------------------------------------------


def hoa_example():
    """Three tasks; full-size networks cost 1, half-size ones 0.5."""
    results = {
        ("a", "b", "c"): {"a": 0.30, "b": 0.32, "c": 0.40},
        ("a", "b"): {"a": 0.25, "b": 0.26},
        ("c",): {"c": 0.20},
        ("a",): {"a": 0.22},
        ("b", "c"): {"b": 0.30, "c": 0.35},
    }
    cost = {("a", "b", "c"): 1.0, ("a", "b"): 1.0, ("c",): 0.5, ("a",): 0.5, ("b", "c"): 0.5}
    return results, cost


def test_select_from_costs_hand_built_hoa_example():
    results, cost = hoa_example()
    # budget 1: {a,b,c} (0.30+0.32+0.40=1.02), {a}+{b,c} (0.22+0.30+0.35=0.87) -> the halves win
    g = select_from_costs(results, 1.0, cost)
    assert set(g.groups) == {("a",), ("b", "c")}
    assert g.score == pytest.approx(0.87) and g.optimal and g.sense == "minimize"
    assert g.served_by("a") == ("a",)
    # budget 1.5: {a,b} + {c} = 0.25+0.26+0.20 = 0.71; {a} + {b,c} + {c} = 0.22+0.30+0.20 = 0.72
    g = select_from_costs(results, 1.5, cost)
    assert set(g.groups) == {("a", "b"), ("c",)} and g.score == pytest.approx(0.71)
    # budget 2: {a,b} + {c} + {a} = 0.22+0.26+0.20 = 0.68: a is served by its better network
    g = select_from_costs(results, 2.0, cost)
    assert set(g.groups) == {("a", "b"), ("c",), ("a",)} and g.score == pytest.approx(0.68)
    assert g.served_by("a") == ("a",) and g.served_by("b") == ("a", "b")
    # every network costing 1: budget 1 can only buy {a,b,c}
    assert select_from_costs(results, 1.0).groups == (("a", "b", "c"),)


def brute_force_costs(results, cost, budget, tasks):
    best = np.inf
    keys = list(results)
    for j in range(1, len(keys) + 1):
        for combo in itertools.combinations(keys, j):
            if sum(cost[g] for g in combo) > budget + 1e-12:
                continue
            losses = [min(results[g][t] for g in combo if t in g) if any(t in g for g in combo) else np.inf
                      for t in tasks]
            best = min(best, sum(losses))
    return best


@pytest.mark.parametrize("seed", range(30))
def test_select_from_costs_matches_brute_force(seed, monkeypatch):
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(2, 6))
    tasks = [f"t{i}" for i in range(n)]
    subsets = [g for r in range(1, n + 1) for g in itertools.combinations(tasks, r)]
    chosen = rng.choice(len(subsets), size=min(len(subsets), int(rng.integers(3, 9))), replace=False)
    results = {subsets[i]: {t: float(rng.uniform(0.1, 1.0)) for t in subsets[i]} for i in chosen}
    for t in tasks:  # every task needs some network
        results.setdefault((t,), {t: float(rng.uniform(0.1, 1.0))})
    cost = {g: float(rng.choice([0.5, 1.0])) for g in results}
    budget = float(rng.choice([0.5, 1.0, 1.5, 2.0, 3.0]))
    if seed % 3 == 0:
        monkeypatch.setattr(api, "DP_MAX_TASKS", 0)  # the MILP path
    expected = brute_force_costs(results, cost, budget, tasks)
    if not np.isfinite(expected):
        with pytest.raises(ValueError, match="budget"):
            select_from_costs(results, budget, cost, tasks=tasks)
        return
    g = select_from_costs(results, budget, cost, tasks=tasks)
    assert g.score == pytest.approx(expected, rel=1e-7)
    assert sum(cost[tuple(group)] for group in g.groups) <= budget + 1e-9
    served = sum(results[g.groups[i]][t] for t, i in g.assignment.items())
    assert served == pytest.approx(g.score)
    assert g.method == ("milp" if seed % 3 == 0 else "dp")


# ---- errors before any work ---------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"matrix": np.zeros((2, 3))}, r"shape \(2, 3\)"),
    ({"matrix": [[0.0, np.nan], [0.0, 0.0]]}, r"matrix\[0, 1\] = nan"),
    ({"num_groups": 0}, r"num_groups=0.*>= 1"),
    ({"num_groups": 1.5}, r"num_groups=1.5"),
    ({"tasks": ["a", "b"]}, r"2 names.*3 rows"),
    ({"tasks": ["a", "b", "a"]}, r"duplicate task names \['a'\]"),
    ({"method": "greedy"}, r"method='greedy'.*'auto', 'exact', 'heuristic', 'brute_force'"),
    ({"singleton": "never"}, r"singleton='never'.*'zero', 'forbid'"),
    ({"singleton": [0.0, 1.0]}, r"3 finite floats"),
    ({"max_group_size": 0}, r"max_group_size=0"),
    ({"num_groups": 1, "max_group_size": 2}, r"num_groups=1 with max_group_size=2 cannot cover 3 tasks"),
    ({"singleton": "forbid", "max_group_size": 1, "num_groups": 3}, r"singleton='forbid' needs groups"),
    ({"singleton": "forbid", "overlap": False, "max_group_size": 2, "num_groups": 3}, r"disjoint groups"),
    ({"matrix": np.zeros((23, 23)), "method": "exact"}, r"method='exact' supports up to 22 tasks"),
])
def test_select_groups_rejects_bad_input(kwargs, match):
    args = {"matrix": np.zeros((3, 3)), "num_groups": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        select_groups(args.pop("matrix"), args.pop("num_groups"), **args)


def test_brute_force_refuses_too_many_sets():
    with pytest.raises(ValueError, match="would enumerate"):
        select_groups(np.zeros((10, 10)), 4, method="brute_force")


@pytest.mark.parametrize("change, match", [
    ({"budget": 0.25}, r"budget=0.25 is below the cheapest network's cost 0.5"),
    ({"budget": float("nan")}, r"budget=nan"),
    ({"network_cost": {("x",): 1.0}}, r"network_cost names group \('x',\)"),
    ({"network_cost": {("c",): -1.0}}, r"network_cost\[\('c',\)\] = -1.0"),
    ({"tasks": ["a", "b"]}, r"tasks \['c'\] that are not in tasks"),
    ({"tasks": ["a", "b", "c", "d"]}, r"tasks \['d'\] are in no network"),
    ({"results": {("a", "b"): {"a": 0.1}}}, r"losses for \['a'\]; expected exactly \['a', 'b'\]"),
    ({"results": {("a", "a"): {"a": 0.1}}}, r"names a task twice"),
    ({"results": {("a", "b"): {"a": 0.1, "b": 0.2}, ("b", "a"): {"a": 0.1, "b": 0.2}}}, r"repeats the tasks"),
    ({"results": {("a",): {"a": float("inf")}}}, r"expected a finite number"),
])
def test_select_from_costs_rejects_bad_input(change, match):
    results, cost = hoa_example()
    args = {"results": results, "budget": 1.0, "network_cost": cost, **change}
    with pytest.raises(ValueError, match=match):
        select_from_costs(args.pop("results"), args.pop("budget"), args.pop("network_cost"), **args)


def test_select_from_costs_budget_that_no_cover_meets():
    results = {("a",): {"a": 0.1}, ("b",): {"b": 0.1}}
    with pytest.raises(ValueError, match=r"budget=1.0: no set of networks within it covers every task"):
        select_from_costs(results, 1.0)


# ---- the command line ---------------------------------------------------------------------------


def test_select_command_writes_selection_json(tmp_path):
    a, tasks = two_blocks()
    run = tmp_path / "run"
    run.mkdir()
    (run / "affinity.json").write_text(json.dumps({"tasks": tasks, "matrix": a.tolist()}))
    out = subprocess.run(
        [sys.executable, "-m", "experiments.select", f"--affinity={run / 'affinity.json'}",
         "--num_groups=1,2,3", "--singleton=forbid"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    header, *rows = out.stdout.strip().splitlines()
    assert header.split() == ["k", "groups", "score", "optimal", "bound", "seconds", "stability"]
    assert rows[1].split()[-1] == "-"  # a file without the affinity's samples: no bootstrap
    assert rows[1].split()[:6] == ["2", "{a,", "b}", "{c,", "d}", "3"]
    data = json.loads((run / "selection.json").read_text())
    assert data["tasks"] == tasks
    groupings = [Grouping.from_json(s) for s in data["selections"]]
    assert [g.budget for g in groupings] == [1, 2, 3]
    assert groupings[1].groups == (("a", "b"), ("c", "d"))
    assert sorted(os.listdir(run)) == ["affinity.json", "selection.json"]


def affinity_with_a_gap():
    """two_blocks with no sample for the pair a -> d (NaN, JSON null); d is c's block partner."""
    a, tasks = two_blocks()
    a[1, 2] = 0.5  # b helps c a little, so that the budget 1 grouping depends on every entry
    gap = a.copy()
    gap[0, 3] = np.nan
    return gap, tasks


def test_select_from_affinity_takes_pairs_without_samples_as_zero(caplog):
    gap, tasks = affinity_with_a_gap()
    affinity = types.SimpleNamespace(tasks=tuple(tasks), matrix=gap)
    with caplog.at_level("WARNING"):
        groupings = selection.select_from_affinity(affinity, [1, 2], overlap=False, singleton="forbid")
    filled = np.nan_to_num(gap, nan=0.0)
    assert groupings == [dataclasses.replace(select_groups(filled, k, tasks=tasks, overlap=False,
                                                           singleton="forbid"), seconds=g.seconds)
                         for k, g in zip([1, 2], groupings)]
    assert [g.budget for g in groupings] == [1, 2] and groupings[1].groups == (("a", "b"), ("c", "d"))
    warning, = [r.getMessage() for r in caplog.records if "without samples" in r.getMessage()]
    assert "('a', 'd')" in warning and "('d', 'a')" not in warning
    caplog.clear()
    selection.select_from_affinity(types.SimpleNamespace(tasks=tasks, matrix=filled), [2])
    assert not [r for r in caplog.records if "without samples" in r.getMessage()]


@pytest.mark.parametrize("num_groups, matrix, match", [
    (2, np.zeros((4, 4)), r"num_groups=2: expected a non-empty sequence"),
    ([], np.zeros((4, 4)), r"num_groups=\[\]"),
    ([2], np.zeros((3, 3)), r"shape \(3, 3\) but affinity.tasks names 4 tasks"),
    ([0], np.zeros((4, 4)), r"num_groups=0"),
])
def test_select_from_affinity_rejects_bad_input(num_groups, matrix, match):
    with pytest.raises(ValueError, match=match):
        selection.select_from_affinity(types.SimpleNamespace(tasks=list("abcd"), matrix=matrix), num_groups)


def test_select_command_reads_an_affinity_file_with_pairs_without_samples(tmp_path):
    from tag_tf.affinity import TaskAffinity

    gap, tasks = affinity_with_a_gap()
    path = tmp_path / "affinity.json"
    TaskAffinity(tasks=tuple(tasks), matrix=gap, epochs=(gap,), steps=3).to_json(str(path))
    assert json.loads(path.read_text())["matrix"][0][3] is None  # as a pipeline run writes it
    out = subprocess.run(
        [sys.executable, "-m", "experiments.select", f"--affinity={path}", "--num_groups=1,2"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert out.returncode == 0, out.stderr
    assert re.search(r"without samples.*\('a', 'd'\)", out.stderr), out.stderr
    tasks_read, groupings = selection.load_selection(str(tmp_path / "selection.json"))
    filled = np.where(np.isnan(gap), 0.0, gap)
    assert tasks_read == tasks
    assert [g.groups for g in groupings] == [select_groups(filled, k, tasks=tasks).groups for k in (1, 2)]
    assert [g.score for g in groupings] == pytest.approx([select_groups(filled, k).score for k in (1, 2)])


# ---- stability --------------------------------------------------------------------------------


def affinity_from_steps(matrix, noise, steps=40, seed=0):
    """A TaskAffinity whose blocks are `steps` per-step samples: `matrix` plus N(0, noise²)."""
    from tag_tf.affinity import TaskAffinity

    rng = np.random.default_rng(seed)
    samples = [matrix + noise * rng.normal(size=matrix.shape) for _ in range(steps)]
    return TaskAffinity(tasks=tuple("abcd"[:len(matrix)]), matrix=np.mean(samples, axis=0), steps=steps,
                        blocks=tuple(samples), block_counts=(np.ones(matrix.shape, np.int64),) * steps)


def test_stability_weighs_each_block_by_the_steps_it_stands_for():
    """Two blocks: one sample of {a, b} + {c, d} standing for 100 steps and one of {a, c} + {b, d}
    (three times as strong) standing for 1. A draw of both averages them by weight, 100 : 1, and
    keeps {a, b} + {c, d}; only the draws of the light block twice (a quarter) choose otherwise.
    By sample counts, 1 : 1, the mixed draws would choose {a, c} + {b, d} too."""
    from tag_tf.affinity import TaskAffinity

    heavy, tasks = two_blocks()
    light = 3 * heavy[:, [0, 2, 1, 3]][[0, 2, 1, 3]]  # the same structure on {a, c} + {b, d}
    ones = np.ones((4, 4), np.int64)
    weighted = TaskAffinity(tasks=tuple(tasks), matrix=(100 * heavy + light) / 101, steps=2, blocks=(heavy, light),
                            block_counts=(ones, ones), block_weights=(100.0 * ones, 1.0 * ones))
    chosen = select_groups(weighted.matrix, 2, tasks=tasks)
    assert chosen.groups == (("a", "b"), ("c", "d"))
    select = lambda m: select_groups(m, 2, tasks=tasks)  # noqa: E731
    draws = np.random.default_rng(0).integers(0, 2, size=(400, 2))
    light_twice = float(np.mean(draws.sum(axis=1) == 2))
    assert selection.stability(weighted, chosen, select, resamples=400) == pytest.approx(1 - light_twice)
    unweighted = dataclasses.replace(weighted, block_weights=())  # an older file: its samples weigh 1
    assert selection.stability(unweighted, chosen, select, resamples=400) == pytest.approx(np.mean(draws.sum(1) == 0))


def test_stability_is_one_on_a_clear_cut_matrix_and_lower_on_a_near_tie():
    a, tasks = two_blocks()
    clear, = selection.select_from_affinity(affinity_from_steps(a, noise=0.1), [2])
    assert clear.groups == (("a", "b"), ("c", "d")) and clear.stability == 1.0
    # {a, c} + {b, d} scores 4 x 0.75 = 3.0, as {a, b} + {c, d} does: a tie, each step's noise 0.2
    tie = a.copy()
    tie[0, 2] = tie[2, 0] = tie[1, 3] = tie[3, 1] = 0.75
    near, = selection.select_from_affinity(affinity_from_steps(tie, noise=0.2, seed=1), [2])
    assert 0.2 < near.stability < selection.STABLE
    assert "LOW" in selection.stability_text(near) and "LOW" not in selection.stability_text(clear)
    again = selection.stability(affinity_from_steps(tie, noise=0.2, seed=1), near,
                                lambda m: select_groups(m, 2, tasks=tasks), resamples=100, seed=0)
    assert again == near.stability  # seeded: the same resamples
    data = json.loads(json.dumps(near.to_json()))
    assert Grouping.from_json(data) == near and data["stability"] == near.stability
    del data["stability"]  # a selection.json written before stability was measured
    assert Grouping.from_json(data).stability is None
    assert selection.select_from_affinity(types.SimpleNamespace(tasks=tasks, matrix=a), [2])[0].stability is None


def group_lookahead_from_steps(groups, noise, steps=30, seed=0):
    """A TaskAffinity of tasks a-d whose blocks are `steps` per-step samples: the pairs' matrix (each
    task's own lookahead 1) and every pair group's Z[G→member] (`groups`: {group: value}, else 1),
    each plus N(0, noise²)."""
    from tag_tf.affinity import TaskAffinity

    rng = np.random.default_rng(seed)
    tasks = ("a", "b", "c", "d")
    pairs = [np.eye(4) + noise * rng.normal(size=(4, 4)) for _ in range(steps)]
    measured = {g: {t: groups.get(g, 1.0) + noise * rng.normal(size=steps) for t in g}
                for g in itertools.combinations(tasks, 2)}
    ones = np.ones(steps, np.int64)
    return TaskAffinity(tasks=tasks, matrix=np.mean(pairs, axis=0), steps=steps, blocks=tuple(pairs),
                        block_counts=(np.ones((4, 4), np.int64),) * steps,
                        group_affinity={g: {t: float(z.mean()) for t, z in v.items()} for g, v in measured.items()},
                        group_blocks=measured, group_block_counts={g: {t: ones for t in g} for g in measured})


def by_hand_group_stability(affinity, chosen, k, resamples=100, seed=0):
    """The bootstrap written out: draw blocks (numpy's generator, as the library seeds it), average
    the pairs' and the groups' samples over the draw, score each group (Z[G→t] − A[t, t]) / (|G| − 1),
    choose with select_from_costs and count the choices serving every task as `chosen` does."""
    draws = np.random.default_rng(seed).integers(0, len(affinity.blocks), size=(resamples, len(affinity.blocks)))
    target = {t: set(chosen.served_by(t)) for t in affinity.tasks}
    agree = 0
    for draw in draws:
        diagonal = np.diag(np.mean(np.array(affinity.blocks)[draw], axis=0))
        scores = {g: {t: (np.mean(z[draw]) - diagonal[affinity.tasks.index(t)]) / (len(g) - 1) for t, z in v.items()}
                  for g, v in affinity.group_blocks.items()}
        grouping = select_from_costs({**{(t,): {t: 0.0} for t in affinity.tasks}, **scores}, budget=k,
                                     sense="maximize")
        agree += {t: set(grouping.served_by(t)) for t in affinity.tasks} == target
    return agree / resamples


def test_group_lookahead_stability_equals_a_by_hand_bootstrap_on_fixed_blocks():
    # {a, b} and {c, d}: each member gains 1 over its own lookahead; every other group gains 0
    clear = group_lookahead_from_steps({("a", "b"): 2.0, ("c", "d"): 2.0}, noise=0.2)
    chosen = selection.select_from_group_lookahead(clear, 2)
    assert chosen.groups == (("a", "b"), ("c", "d")) and chosen.stability == 1.0
    assert by_hand_group_stability(clear, chosen, 2) == 1.0
    # {a, c} + {b, d} gain as much: a tie, which the noise of each step breaks either way
    tie = group_lookahead_from_steps({("a", "b"): 2.0, ("c", "d"): 2.0, ("a", "c"): 2.0, ("b", "d"): 2.0},
                                     noise=0.5, seed=1)
    near = selection.select_from_group_lookahead(tie, 2)
    assert 0.2 < near.stability < selection.STABLE and "LOW" in selection.stability_text(near)
    assert near.stability == by_hand_group_stability(tie, near, 2)
    assert selection.select_from_group_lookahead(tie, 2, seed=1).stability == by_hand_group_stability(tie, near, 2,
                                                                                                       seed=1)
    # files written before the groups' blocks were kept: no bootstrap
    older = dataclasses.replace(tie, group_blocks={}, group_block_counts={})
    assert selection.select_from_group_lookahead(older, 2).stability is None
    data = json.loads(json.dumps(near.to_json()))
    assert Grouping.from_json(data) == near and data["stability"] == near.stability
