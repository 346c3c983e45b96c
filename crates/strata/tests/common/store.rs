//! Helpers shared by the `store_*` tests: a store on a mock clock with no periodic
//! maintenance, a publisher that records, the event rules that the event and publisher tests
//! share, and random keys.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata::config::Config;
use strata::store::{Invalidation, Store};
use strata::MockClock;

use super::Rng;

pub fn config(toml: &str) -> Config {
    Config::from_sources(Some(toml), []).unwrap_or_else(|e| panic!("config refused: {e}"))
}

/// No periodic maintenance during a test: background work is what the test asks for.
pub const NO_MAINTENANCE: Duration = Duration::from_secs(24 * 3600);

/// A store for `toml` on a mock clock.
pub fn store(toml: &str) -> (Store, MockClock) {
    let clock = MockClock::new();
    let store = Store::builder(config(toml))
        .clock(clock.clone())
        .maintenance_interval(NO_MAINTENANCE)
        .build()
        .unwrap();
    (store, clock)
}

/// What a publisher was handed, in order.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Invalidation>>>);

impl Recorder {
    pub fn take(&self) -> Vec<Invalidation> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A store for `toml` on a mock clock whose publisher records into the returned recorder.
pub fn recorded_store(toml: &str) -> (Store, Recorder) {
    let recorder = Recorder::default();
    let sink = recorder.clone();
    let store = Store::builder(config(toml))
        .clock(MockClock::new())
        .maintenance_interval(NO_MAINTENANCE)
        .publisher(move |inv| sink.0.lock().unwrap().push(inv.clone()))
        .build()
        .unwrap();
    (store, recorder)
}

/// Runs `work` over `0..n` split across a few threads (debug builds are slow; the work is
/// independent per index, so the outcome does not depend on the split).
pub fn in_parallel(n: u64, work: impl Fn(Range<u64>) + Sync) {
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get().clamp(1, 8)) as u64;
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let work = &work;
            s.spawn(move || work(t * chunk..((t + 1) * chunk).min(n)));
        }
    });
}

pub fn key_text(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// Key bytes: letters, every character the glob language gives a meaning to, the key
/// separator's `:`, and two bytes above 0x7f (where signed range ends differ).
pub const KEY_BYTES: &[u8] = b"ab:*?[]^\\-\x80\xff";

pub fn random_bytes(rng: &mut Rng, alphabet: &[u8], max_len: u64) -> Vec<u8> {
    let len = rng.below(max_len + 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
        .collect()
}

/// The event rules of the event and publisher tests: a cascade three levels deep with a
/// diamond, rules restricted to one namespace, and a parameter no rule uses.
pub const EVENTS: &str = r#"
max_bytes = "64MiB"
[namespaces.payment]
[namespaces.bill]
[namespaces.wallet]
[namespaces.dashboard]

[events."payment.succeeded"]
params = ["user_id", "bill_id"]
keys = ["payment::history::{user_id}", "bill::status::{bill_id}"]
tags = ["dashboard:{user_id}"]
cascade = ["wallet.changed", "bill.paid"]

# Level 2, restricted to one namespace (but its tags are store-wide).
[events."wallet.changed"]
params = ["user_id"]
namespaces = ["wallet"]
prefixes = ["wallet::{user_id}::"]
tags = ["wallet:{user_id}"]
cascade = ["ledger.changed"]

[events."bill.paid"]
namespaces = ["bill"]
patterns = ["bill::{bill_id}::line::*"]
cascade = ["ledger.changed"]

# Level 3, reached twice (a diamond), in every namespace.
[events."ledger.changed"]
keys = ["ledger::{user_id}"]
tags = ["ledger:{user_id}"]

# Declares a parameter its rules do not use: still part of its signature.
[events."refund.issued"]
params = ["user_id", "amount"]
keys = ["payment::history::{user_id}"]
"#;
