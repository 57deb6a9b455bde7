"""A site app whose AnalysisMeta is wrong: the system checks must refuse it."""
