"""Settings and what they choose from: the settings model, presets, the base model catalog, where state lives."""
