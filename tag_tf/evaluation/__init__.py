"""Evaluation: the measures of a grouping and what it is compared with.

    grouped.py    train and evaluate a grouping: total error, ΔMTL, per-task results
    baselines.py  all-in-one, single-task, random partitions, HOA as Groupings
    hoa.py        HOA (Standley et al. 2020): groups chosen from trained pairs
    stats.py      mean ± std over seeds, paired differences with 95% t intervals
"""
