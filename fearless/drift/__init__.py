"""The drift check: Evidently scores (in their own process) and the verdict over them."""
