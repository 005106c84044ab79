//! The core suite on PostgreSQL, the cluster backend.

core_suite!(Postgres);
