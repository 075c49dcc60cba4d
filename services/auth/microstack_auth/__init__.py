"""The microstack auth service: users, argon2 password hashes, JWTs."""
