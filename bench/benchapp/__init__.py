"""A bench-only Django app: the models and URLs the benchmarks need."""
