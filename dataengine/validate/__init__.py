"""Reference trainers that gate a release: train a fixed recipe on it, evaluate, compare, decide.

`dataengine validate RELEASE` picks the trainer for what the release holds (`registry`), reads the
recipe and thresholds from the catalog's `validate:` block (`config`), trains through
`dataengine.load` only, evaluates with the family's protocol, applies the gate (`gate`) and writes
`validation.json` beside the manifest; the card and the report show it.
"""
