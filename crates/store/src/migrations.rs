//! Versioned schema migrations, embedded in the binary. Each backend records applied versions
//! in a `schema_migrations` table; `migrate()` applies the missing ones in order.

/// One migration: a version (strictly increasing) and its SQL.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// SQLite migrations, oldest first.
pub(crate) const SQLITE: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/sqlite/0001_initial.sql"),
}];

/// PostgreSQL migrations, oldest first.
pub(crate) const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "initial",
    sql: include_str!("../migrations/postgres/0001_initial.sql"),
}];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_and_backends_agree() {
        for set in [SQLITE, POSTGRES] {
            assert!(set.windows(2).all(|w| w[0].version < w[1].version));
        }
        let sqlite: Vec<_> = SQLITE.iter().map(|m| (m.version, m.name)).collect();
        let postgres: Vec<_> = POSTGRES.iter().map(|m| (m.version, m.name)).collect();
        assert_eq!(sqlite, postgres);
    }
}
