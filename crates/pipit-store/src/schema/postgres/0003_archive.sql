-- The message archive (XEP-0313) and the offline queue (XEP-0160) in one table: one
-- row per message per owning account; `offline` is true while it waits for its owner.
-- `seq` orders the archive (times can tie); `stanza_id` is the XEP-0359 archive ID
-- clients see; `origin` identifies a resent message, so it is kept once.
CREATE TABLE archive (
    seq       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain    TEXT COLLATE "C" NOT NULL,
    localpart TEXT COLLATE "C" NOT NULL,
    stanza_id TEXT    NOT NULL,
    with_jid  TEXT    NOT NULL,
    origin    TEXT,
    at_micros BIGINT  NOT NULL,
    stanza    TEXT    NOT NULL,
    offline   BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (domain, localpart, stanza_id),
    -- NULLs are distinct: a message without an origin is never a duplicate.
    UNIQUE (domain, localpart, origin),
    FOREIGN KEY (domain, localpart) REFERENCES users (domain, localpart) ON DELETE CASCADE
);

CREATE INDEX archive_by_owner ON archive (domain, localpart, seq);
CREATE INDEX archive_by_peer ON archive (domain, localpart, with_jid, seq);
CREATE INDEX archive_offline ON archive (domain, localpart, seq) WHERE offline;
