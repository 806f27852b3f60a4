-- Rosters (RFC 6121 §2) and presence subscriptions (§3). `contact` is the contact's
-- bare JID as the server prepared it. Everything dies with its account (needs PRAGMA
-- foreign_keys, which SqliteStore sets).

-- One row per roster item. pending_out is the user's own request waiting for the
-- contact's answer (`ask='subscribe'`).
CREATE TABLE roster_items (
    domain       TEXT    NOT NULL,
    localpart    TEXT    NOT NULL,
    contact      TEXT    NOT NULL,
    name         TEXT,
    subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    pending_out  INTEGER NOT NULL DEFAULT 0 CHECK (pending_out IN (0, 1)),
    PRIMARY KEY (domain, localpart, contact),
    FOREIGN KEY (domain, localpart) REFERENCES users (domain, localpart) ON DELETE CASCADE
) STRICT;

-- The groups of an item, each once; they go with the item.
CREATE TABLE roster_groups (
    domain    TEXT NOT NULL,
    localpart TEXT NOT NULL,
    contact   TEXT NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (domain, localpart, contact, name),
    FOREIGN KEY (domain, localpart, contact)
        REFERENCES roster_items (domain, localpart, contact) ON DELETE CASCADE
) STRICT;

-- Contacts whose subscription requests wait for the user's answer ("pending in",
-- §3.1.3), with or without an item: a request alone is not a roster item.
CREATE TABLE roster_pending_in (
    domain    TEXT NOT NULL,
    localpart TEXT NOT NULL,
    contact   TEXT NOT NULL,
    PRIMARY KEY (domain, localpart, contact),
    FOREIGN KEY (domain, localpart) REFERENCES users (domain, localpart) ON DELETE CASCADE
) STRICT;

-- The roster version (§2.6): one up with every change to an item; no row is 0.
CREATE TABLE roster_versions (
    domain    TEXT    NOT NULL,
    localpart TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (domain, localpart),
    FOREIGN KEY (domain, localpart) REFERENCES users (domain, localpart) ON DELETE CASCADE
) STRICT;
