//! The core suite on SQLite, the embedded default.

core_suite!(Sqlite);
