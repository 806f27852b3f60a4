//! Streaming XML for XMPP: a parser that reports exact byte offsets, and an element tree.
