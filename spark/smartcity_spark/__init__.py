"""Shared code of the smartcity Spark jobs: event contracts, record validation, Spark runtime."""
