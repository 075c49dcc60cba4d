"""The API's schema migrations, applied in order under the advisory lock.

Append only: a released migration is never edited, a change is a new entry.
"""

MIGRATIONS = (
    """
    CREATE TABLE items (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL,
        description text NOT NULL DEFAULT '',
        owner text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
)
