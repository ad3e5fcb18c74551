"""The data contracts: every row valid or quarantined with a reason, file and line (Great Expectations suites)."""
