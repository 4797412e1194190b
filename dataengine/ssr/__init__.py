"""SSR-CoT style spatial rationales: measured facts from depth, text from the facts, checks."""
