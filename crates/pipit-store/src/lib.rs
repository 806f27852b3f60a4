//! Pipit storage.
