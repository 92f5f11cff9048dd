"""Configuration: strict YAML (and CSV inventories) validated into a model, then resolved into checks."""
