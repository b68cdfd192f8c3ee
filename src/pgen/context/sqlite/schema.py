"""SQLite schema of the embedded store, as an ordered list of migrations.

The store records the number of migrations applied in ``PRAGMA user_version``; opening an
older file applies the missing ones in one transaction. Append, never edit, a migration.
Everything a user owns references ``users`` with ON DELETE CASCADE, so deleting the user
row removes every derived row (documents, embeddings, summaries, outputs, artifacts...).
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: the context, derived data and artifacts.
    """
    CREATE TABLE users (
        user_id   TEXT PRIMARY KEY,
        profile   TEXT NOT NULL DEFAULT '{}',
        revision  INTEGER NOT NULL DEFAULT 0  -- bumped whenever the user's documents change
    );
    CREATE TABLE documents (
        user_id      TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        doc_id       TEXT NOT NULL,
        kind         TEXT NOT NULL,
        title        TEXT,
        text         TEXT NOT NULL,
        time         TEXT,
        fields       TEXT NOT NULL DEFAULT '{}',
        content_hash TEXT NOT NULL,
        revision     INTEGER NOT NULL DEFAULT 0,  -- the user's revision when last written
        PRIMARY KEY (user_id, doc_id)
    );
    CREATE INDEX documents_by_revision ON documents(user_id, revision);
    CREATE TABLE document_deletions (  -- lets indexes catch up without rereading everything
        user_id  TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        doc_id   TEXT NOT NULL,
        revision INTEGER NOT NULL
    );
    CREATE INDEX document_deletions_by_revision ON document_deletions(user_id, revision);
    CREATE TABLE items (
        item_id    TEXT PRIMARY KEY,
        title      TEXT NOT NULL DEFAULT '',
        text       TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        image_path TEXT
    );
    CREATE TABLE interactions (
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        item_id TEXT NOT NULL REFERENCES items(item_id),
        action  TEXT NOT NULL,
        rating  REAL,
        time    TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (user_id, item_id, action, time)
    );
    CREATE INDEX interactions_by_item ON interactions(item_id);
    CREATE TABLE subjects (
        user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        class_word  TEXT NOT NULL,
        image_paths TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE TABLE feedback (
        user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        feedback_id TEXT NOT NULL,
        output_id   TEXT,
        thumbs      INTEGER,
        prompt      TEXT,
        chosen      TEXT,
        rejected    TEXT,
        time        TEXT,
        PRIMARY KEY (user_id, feedback_id)
    );
    CREATE TABLE embeddings (
        user_id      TEXT NOT NULL,
        doc_id       TEXT NOT NULL,
        model_id     TEXT NOT NULL,
        dim          INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        vector       BLOB NOT NULL,
        PRIMARY KEY (user_id, model_id, doc_id),
        FOREIGN KEY (user_id, doc_id) REFERENCES documents(user_id, doc_id) ON DELETE CASCADE
    );
    CREATE TABLE summaries (
        user_id   TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        key       TEXT NOT NULL,   -- which model and prompt wrote it
        docs_hash TEXT NOT NULL,   -- the documents it was written from
        text      TEXT NOT NULL,
        PRIMARY KEY (user_id, key)
    );
    CREATE TABLE outputs (
        output_id   TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        instruction TEXT NOT NULL,
        strategy    TEXT NOT NULL,
        text        TEXT NOT NULL,
        provenance  TEXT NOT NULL,
        created     TEXT NOT NULL
    );
    CREATE INDEX outputs_by_user ON outputs(user_id);
    CREATE TABLE artifacts (
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        kind    TEXT NOT NULL,   -- lora, dpo, subject-lora, textual-inversion, recommender...
        name    TEXT NOT NULL,
        path    TEXT NOT NULL,   -- a file or folder the store removes with the user
        PRIMARY KEY (user_id, kind, name)
    );
    """,
    # 2: recency retrieval reads a user's documents newest first.
    """
    CREATE INDEX documents_by_time ON documents(user_id, time, doc_id);
    """,
    # 3: a user created again after delete-user is a new incarnation (a random 64-bit id
    # given at insert), so an index another process keeps in memory for the old one is
    # rebuilt, never caught up from revisions that start again at 0.
    """
    ALTER TABLE users ADD COLUMN incarnation INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: image vectors (concept references, photos), one per image content, view and model.
    """
    CREATE TABLE image_embeddings (
        user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        image_key  TEXT NOT NULL,  -- content hash of the file, plus the view ("<hash>:flip")
        model_id   TEXT NOT NULL,  -- name#fingerprint: never mixed across models
        dim        INTEGER NOT NULL,
        vector     BLOB NOT NULL,
        PRIMARY KEY (user_id, model_id, image_key)
    );
    """,
    # 5: reliability. (a) Files of a deleted user still to remove, written in the same
    # transaction as the delete (no user id: only paths, themselves removed once done),
    # so a crash between commit and removal is finished by the next open. (b) Undated or
    # same-time repeats of an interaction are distinct events: ``seq`` numbers them.
    # (c) ``deletions_pruned``: document_deletions up to this revision were pruned, so an
    # index older than it must be rebuilt rather than caught up.
    """
    CREATE TABLE pending_removals (
        path TEXT PRIMARY KEY
    );
    ALTER TABLE users ADD COLUMN deletions_pruned INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE interactions_v5 (
        user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        item_id TEXT NOT NULL REFERENCES items(item_id),
        action  TEXT NOT NULL,
        rating  REAL,
        time    TEXT NOT NULL DEFAULT '',
        seq     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, item_id, action, time, seq)
    );
    INSERT INTO interactions_v5(user_id, item_id, action, rating, time)
        SELECT user_id, item_id, action, rating, time FROM interactions;
    DROP TABLE interactions;
    ALTER TABLE interactions_v5 RENAME TO interactions;
    CREATE INDEX interactions_by_item ON interactions(item_id);
    """,
    # 6: outputs of every modality. ``modality`` says what an output is (text, image...);
    # existing outputs whose provenance lists images were images. ``output_media`` holds
    # the files of an output in order (the images of one request), each row scoped by
    # user like everything else, so delete-user removes them with the user.
    """
    ALTER TABLE outputs ADD COLUMN modality TEXT NOT NULL DEFAULT 'text';
    UPDATE outputs SET modality='image' WHERE json_type(provenance, '$.images')='array';
    CREATE TABLE output_media (
        output_id TEXT NOT NULL REFERENCES outputs(output_id) ON DELETE CASCADE,
        user_id   TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        position  INTEGER NOT NULL,
        kind      TEXT NOT NULL,  -- image, video, audio...
        path      TEXT NOT NULL,
        PRIMARY KEY (output_id, position)
    );
    CREATE INDEX output_media_by_user ON output_media(user_id);
    INSERT INTO output_media(output_id, user_id, position, kind, path)
        SELECT o.output_id, o.user_id, m.key, 'image', m.value
        FROM outputs o, json_each(o.provenance, '$.images') m
        WHERE json_type(o.provenance, '$.images')='array' AND m.type='text';
    """,
    # 7: the user's stated preferences ("I'm vegetarian"), each with the document (chat
    # turn) and the span of its text it was stated in, when it was found in their words.
    # ``source`` is no foreign key: a preference outlives the turn it was said in (the
    # user removes it on its own), and goes with the user like everything else.
    """
    CREATE TABLE preferences (
        user_id       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        preference_id TEXT NOT NULL,
        text          TEXT NOT NULL,
        origin        TEXT NOT NULL,  -- user (given as such) or detected (in their words)
        source        TEXT,           -- the document it was stated in
        span_start    INTEGER,
        span_end      INTEGER,
        time          TEXT,
        PRIMARY KEY (user_id, preference_id)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def apply_migrations(db: sqlite3.Connection, current: int, target: int = SCHEMA_VERSION) -> None:
    """Apply migrations ``current`` .. ``target`` (inside the caller's transaction) and
    record the version. ``target`` below the newest builds an older store (for tests of
    upgrading in place)."""
    for script in MIGRATIONS[current:target]:
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute(f"PRAGMA user_version={target}")


# Every table holding rows of one user besides ``users``: all go when the user goes.
USER_TABLES = (
    "documents",
    "document_deletions",
    "interactions",
    "subjects",
    "feedback",
    "embeddings",
    "image_embeddings",
    "summaries",
    "outputs",
    "output_media",
    "artifacts",
    "preferences",
)
