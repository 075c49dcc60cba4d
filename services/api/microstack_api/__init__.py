"""The microstack API service: items in PostgreSQL, cached in Redis."""
