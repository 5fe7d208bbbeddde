"""The model API: a FastAPI app that scores records and logs every prediction for drift checks.

Run it with `python -m fearless.serving --bundle DIR --port N`; nothing is imported here so
that reading the inference log (`fearless.serving.inference_log`) stays cheap.
"""
