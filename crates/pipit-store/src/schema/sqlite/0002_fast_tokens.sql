-- FAST tokens (XEP-0484). Only SHA-256 of each token is kept, never the token itself
-- (pipit_proto::sasl::HtTokenKey explains why the server can still verify with it). The
-- hash is still a secret: it authenticates for the HT-* mechanisms as the token does.
-- expires_at is unix seconds from the caller's clock. last_count is the highest 0-RTT
-- `count` accepted for the token (XEP-0484 §3.4); counts are positive, so 0 is "none yet".
-- user_agent_id is the SASL2 <user-agent id=…/> the token was issued to (XEP-0388 §2.2).
CREATE TABLE fast_tokens (
    domain        TEXT    NOT NULL,
    localpart     TEXT    NOT NULL,
    token_hash    BLOB    NOT NULL,
    mechanism     TEXT    NOT NULL,
    expires_at    INTEGER NOT NULL,
    last_count    INTEGER NOT NULL DEFAULT 0,
    user_agent_id TEXT,
    created_at    INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (domain, localpart, token_hash),
    -- A token dies with its account (needs PRAGMA foreign_keys, which SqliteStore sets).
    FOREIGN KEY (domain, localpart) REFERENCES users (domain, localpart) ON DELETE CASCADE
) STRICT;

CREATE INDEX fast_tokens_expiry ON fast_tokens (expires_at);

-- A token never outlives the password that earned it: any write of an account's
-- credentials deletes all its tokens, in the same statement, whoever issues the UPDATE.
CREATE TRIGGER fast_tokens_die_with_the_password
AFTER UPDATE OF salt, iterations, sha1_stored_key, sha1_server_key,
                sha256_stored_key, sha256_server_key ON users
BEGIN
    DELETE FROM fast_tokens WHERE domain = NEW.domain AND localpart = NEW.localpart;
END;
