-- The message archive (XEP-0313) and the offline queue (XEP-0160) in one table: one
-- row per message per owning account; `offline` = 1 while it waits for its owner.
-- `seq` orders the archive (times can tie); `stanza_id` is the XEP-0359 archive ID
-- clients see; `origin` identifies a resent message, so it is kept once.
CREATE TABLE archive (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    domain    TEXT    NOT NULL,
    localpart TEXT    NOT NULL,
    stanza_id TEXT    NOT NULL,
    with_jid  TEXT    NOT NULL,
    origin    TEXT,
    at_micros INTEGER NOT NULL,
    stanza    TEXT    NOT NULL,
    offline   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (domain, localpart, stanza_id),
    -- NULLs are distinct: a message without an origin is never a duplicate.
    UNIQUE (domain, localpart, origin),
    FOREIGN KEY (domain, localpart) REFERENCES users (domain, localpart) ON DELETE CASCADE
) STRICT;

-- Every index ends in the rowid (= seq), so each serves its filter in archive order.
CREATE INDEX archive_by_owner ON archive (domain, localpart);
CREATE INDEX archive_by_peer ON archive (domain, localpart, with_jid);
CREATE INDEX archive_offline ON archive (domain, localpart) WHERE offline = 1;
