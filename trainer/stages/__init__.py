"""The pipeline's stages as plain functions: each is the one library call behind a Prefect task in
`tasks/` (validate, select rows, resolve, train, evaluate, register, export, back up, report,
refine), composed from the packages below it. No Prefect here: the tasks add retries, caching,
Prefect artifacts and the run's identity.
"""
