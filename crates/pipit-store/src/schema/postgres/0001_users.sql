-- Accounts and their SCRAM credentials (never a password). Names are stored as the
-- caller gives them: the server normalises (nodeprep / domain) before calling.
-- COLLATE "C" makes ORDER BY byte order, as in SQLite and Rust, whatever the
-- database's locale. iterations is BIGINT because INTEGER cannot hold every u32.
CREATE TABLE users (
    localpart         TEXT COLLATE "C" NOT NULL,
    domain            TEXT COLLATE "C" NOT NULL,
    salt              BYTEA  NOT NULL,
    iterations        BIGINT NOT NULL,
    sha1_stored_key   BYTEA  NOT NULL,
    sha1_server_key   BYTEA  NOT NULL,
    sha256_stored_key BYTEA  NOT NULL,
    sha256_server_key BYTEA  NOT NULL,
    created_at        BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now())::BIGINT),
    PRIMARY KEY (domain, localpart)
);
