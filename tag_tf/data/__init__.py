"""Data sources yielding `(input, {task_name: label})` elements: CelebA and planted synthetic data."""
