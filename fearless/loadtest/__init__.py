"""Load testing a model API with Locust, run as its own process."""
