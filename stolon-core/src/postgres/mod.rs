//! One PostgreSQL instance: initdb, start/stop, configuration files, base backup, pg_rewind, queries.
