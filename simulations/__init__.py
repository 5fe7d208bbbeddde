"""Load profiles, traffic and the Locust file that drives a model API."""
