"""The auth service's schema migrations, applied in order under the advisory lock.

Append only: a released migration is never edited, a change is a new entry.
"""

MIGRATIONS = (
    """
    CREATE TABLE users (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        username text NOT NULL,
        password_hash text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # Usernames are unique regardless of case: "Alice" and "alice" are one user.
    "CREATE UNIQUE INDEX users_username_key ON users (lower(username))",
)
