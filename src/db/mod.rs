//! SQLite state of bty-web: open, pragmas, append-only migrations; the only place with SQL.
