//! The embedded backend on SQLite.
