-- Accounts and their SCRAM credentials (never a password). Names are stored as the
-- caller gives them: the server normalises (nodeprep / domain) before calling.
CREATE TABLE users (
    localpart         TEXT    NOT NULL,
    domain            TEXT    NOT NULL,
    salt              BLOB    NOT NULL,
    iterations        INTEGER NOT NULL,
    sha1_stored_key   BLOB    NOT NULL,
    sha1_server_key   BLOB    NOT NULL,
    sha256_stored_key BLOB    NOT NULL,
    sha256_server_key BLOB    NOT NULL,
    created_at        INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (domain, localpart)
) STRICT;
