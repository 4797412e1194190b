"""Evaluation metrics for released datasets (depth robustness now; VQA later)."""
