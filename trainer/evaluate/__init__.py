"""Held-out evaluation: loss, perplexity, token accuracy and samples, for the adapter, the base and the champion."""
