"""tag_tf: Task Affinity Grouping for multi-task Keras models (measure, select, train, serve)."""

__version__ = "0.1.0"
