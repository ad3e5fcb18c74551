"""The ML engine as a plain library: it never imports Prefect. Sub-packages name its parts; see docs/architecture.md."""
