"""TF Serving deployment: model server config, client and a TF-Serving-compatible dev server."""
