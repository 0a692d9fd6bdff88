"""Command-line entry points (absl): parse flags, build a config, call tag_tf."""
