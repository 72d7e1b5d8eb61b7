"""Serving the app on more than one machine process: deploy.serve (make serve N=2)."""
