//! The exit codes, for scripts. Each command documents which it can end with.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the instance answered with an error (its `detail` is printed); `warm`: a job failed |
//! | 2 | bad usage (clap's own code), or a `--url` this build cannot use |
//! | 3 | the instance cannot be reached (refused, timed out, host not found) |
//! | 4 | the token was refused: 401 (missing or wrong) or 403 (read-only token on a change) |
//! | 5 | `strata health`: the instance is degraded or down |

pub const OK: u8 = 0;
pub const ANSWERED: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const REFUSED: u8 = 4;
pub const UNHEALTHY: u8 = 5;

/// The table above, for `--help`.
pub const HELP: &str = "\
Exit codes:
  0  done
  1  the instance answered an error (its detail is printed); warm: a job failed
  2  bad usage
  3  cannot reach the instance (connection refused, timeout, unknown host)
  4  token refused: 401 missing or wrong, 403 read-only token on a change
     (set STRATA_ADMIN_TOKEN)
  5  health: the instance is degraded or down

Environment:
  STRATA_URL          the admin API (default http://127.0.0.1:8080)
  STRATA_ADMIN_TOKEN  the admin or read-only token (preferred to --token, which shows in ps)";
