"""Network selection: which groups of tasks to train, and which network serves each task.

The problem
-----------
The affinity matrix ``A[source, target]`` says how much one step on task ``source`` lowers the
loss of task ``target``. Selection reads the affinity *onto* a task, i.e. a column of ``A``: the
score of task ``t`` in a group ``g`` (a set of tasks trained together, ``t`` in ``g``) is

    score(t, g)   = mean of A[o, t] over the other members o of g      (|g| >= 2)
    score(t, {t}) = singleton[t]        (0, a given value, or forbidden)

Given a budget of ``k`` networks, choose at most ``k`` groups (they may overlap) that cover every
task; each task is served by the chosen group that scores it best; maximise the total of the served
scores. The official TAG notebook enumerates every set of up to ``k`` groups; HOA (Standley et al.
2020) instead minimises measured per-task losses of trained networks, each costing 1 (full size)
or 0.5 (half size) against a budget. Both are the same problem over *candidate groups*, each with
a per-task value vector and a cost, which is what the solvers here work on.

The reduction
-------------
Fix which tasks each chosen group *serves*: the served sets ``S_1 .. S_m`` partition the tasks,
``m <= k``, and ``S_i`` is a subset of its group ``g_i``. Once they are fixed the groups no longer
interact, so

    OPT(k)  = max over partitions {S_1 .. S_m}, m <= k, of  best(S_1) + ... + best(S_m)
    best(S) = max over groups g containing S (|g| <= max_group_size) of  sum_{t in S} score(t, g).

For affinity scores ``best(S)`` has a closed form. With ``g = S + R`` and ``|g| = m``,

    sum_{t in S} score(t, g) = (inner(S) + sum_{o in R} r_S[o]) / (m - 1),
    inner(S) = sum of A[o, t] over o != t in S,      r_S[o] = sum_{t in S} A[o, t],

so for each size ``m`` the best extra members ``R`` are the ``m - |S|`` largest entries of ``r_S``
outside ``S``: one sort per served set, ``O(2^n n log n)`` for the whole table. With
``overlap=False`` the group *is* the served set and ``best(S) = inner(S) / (|S| - 1)``. For
measured networks (``select_from_costs``) ``best_c(S)`` is the best candidate of cost ``c``
containing ``S``. One served set never needs two networks, so the partition view loses nothing.

Solvers
-------
``dp`` (exact, n <= 15, `tag_tf.selection.dp`): a subset dynamic programme over bitmasks and
budget units. ``milp`` (exact, n <= 22, `tag_tf.selection.milp`): column generation over the
``2^n`` table of ``best(S)``, reduced-cost fixing, and a HiGHS MILP that proves optimality.
``heuristic`` (any n, `tag_tf.selection.heuristic`): agglomeration, local search and a MILP over the
pool of served sets; its ``upper_bound`` is the LP bound when the table fits (n <= 22), else the
Lagrangian bound of `relaxed_upper_bound` (`tag_tf.selection.bounds`), valid and close on
block-structured matrices but loose (2-4x the score) on unstructured ones; the gap is reported as is,
and ``optimal`` is True only when score and bound meet. ``brute_force``: every set of at most k
groups, as the TAG notebook (small n). ``method="auto"``: dp up to 15 tasks, milp up to 22, the
heuristic beyond (`tag_tf.selection.api`).

Stability
---------
``select_from_affinity`` also reports, per budget, how often a bootstrap of the affinity run's
samples selects the same grouping (`tag_tf.selection.stability`); below ``STABLE`` (0.9) the
measurement does not settle the grouping.

Modules: `result` (`Grouping`, `selection.json`), `stability` (the bootstrap), `scores` (the math
over bitmasks), `instance` (the problem as the solvers see it), `dp`, `milp`, `heuristic`, `bounds`,
`brute_force`, `checks` (input errors), `api` (the entry points).
"""

from tag_tf.selection.api import (METHODS, check_group_budget, select_from_affinity, select_from_costs,
                                  select_from_group_lookahead, select_groups)
from tag_tf.selection.bounds import relaxed_upper_bound
from tag_tf.selection.dp import partition_dp
from tag_tf.selection.result import SENSES, Grouping, format_groups, load_selection, save_selection
from tag_tf.selection.stability import (STABLE, bootstrap_matrices, group_lookahead_resamples, group_lookahead_stability,
                                        served, stability, stability_text)
from tag_tf.selection.scores import (SINGLETON_POLICIES, group_scores, masks_of, measured_group_scores,
                                     members_of, served_set_values, singleton_scores, subset_sums)

__all__ = [
    "METHODS", "SENSES", "SINGLETON_POLICIES", "STABLE", "Grouping", "bootstrap_matrices", "check_group_budget", "format_groups",
    "group_lookahead_resamples", "group_lookahead_stability", "group_scores", "load_selection", "masks_of",
    "measured_group_scores", "members_of", "partition_dp", "relaxed_upper_bound", "save_selection", "select_from_affinity", "select_from_costs",
    "select_from_group_lookahead", "select_groups", "served", "served_set_values", "singleton_scores", "stability",
    "stability_text", "subset_sums",
]
