"""Recipes: the whole pipeline on a user-style model and data (`python -m experiments.tag_pipeline --recipe=...`)."""
