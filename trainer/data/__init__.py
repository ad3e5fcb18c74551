"""Training data: finding and reading files, row formats, the held-out split, and the data contracts."""
