//! PostgreSQL errors classified by SQLSTATE (PostgreSQL manual, appendix A), so that the
//! consumer retries what time can fix and dead-letters what it cannot, by rule rather than
//! by guess.
//!
//! | class | meaning | what the consumer does |
//! |---|---|---|
//! | 08 | connection exception | retry with backoff, forever |
//! | 40 | transaction rollback (serialization failure, deadlock) | retry, forever |
//! | 53 | insufficient resources (disk full, out of memory, too many connections) | retry, forever |
//! | 57 | operator intervention (admin shutdown, crash shutdown, cannot connect now) | retry, forever |
//! | 55P03 | lock not available (`NOWAIT`, `lock_timeout`) | retry, forever |
//! | 58 | system error (I/O) | retry, forever |
//! | 42 | syntax or access rule (an undefined column or table while a rolling deploy migrates) | retry, forever |
//! | 23505 | unique violation (two replicas raced for the same row) | retry a bounded number of times, then dead-letter |
//! | 22, other 23 | data exception, integrity constraint | dead-letter with the reason |
//! | anything else | | dead-letter with the reason |

/// What to do about a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlClass {
    /// Retried with backoff until it succeeds: the database, not the message, is at fault.
    Transient,
    /// Retried a bounded number of times (a race another replica won), then dead-lettered.
    Conflict,
    /// The statement can never succeed with this message: dead-lettered.
    Permanent,
}

/// The class of a five-character SQLSTATE.
pub fn classify(sqlstate: &str) -> SqlClass {
    if sqlstate == "23505" {
        return SqlClass::Conflict;
    }
    if sqlstate == "55P03" {
        return SqlClass::Transient;
    }
    match sqlstate.get(..2) {
        Some("08" | "40" | "53" | "57" | "58" | "42") => SqlClass::Transient,
        _ => SqlClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::{classify, SqlClass};

    #[test]
    fn each_class_of_the_table() {
        for transient in [
            "08006", "08001", "40001", "40P01", "53100", "53300", "57P01", "57P03", "55P03",
            "58030", "42703", "42P01",
        ] {
            assert_eq!(classify(transient), SqlClass::Transient, "{transient}");
        }
        assert_eq!(classify("23505"), SqlClass::Conflict);
        for permanent in [
            "22001", "22P02", "23502", "23503", "23514", "P0001", "", "2",
        ] {
            assert_eq!(classify(permanent), SqlClass::Permanent, "{permanent}");
        }
        // Another state of class 55 (object not in prerequisite state) is not a lock wait.
        assert_eq!(classify("55000"), SqlClass::Permanent);
    }
}
