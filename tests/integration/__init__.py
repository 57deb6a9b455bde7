"""Integration suite: real Redis, Celery workers, databases and a fake API."""
