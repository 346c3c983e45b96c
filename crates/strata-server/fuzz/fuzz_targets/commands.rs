//! Fuzzes the command layer: any bytes, read in any chunking, run as commands by one client
//! of a server over a small store, must never panic, and after every read the store holds
//! no more than its budget (`CONFIG SET maxmemory` may move it) and every namespace no more
//! than its share. The server's limits are small, so the limits' paths are reached: arguments
//! of 64 KiB, commands of 1,024 arguments, replies of 256 KiB, 128 KiB for all clients'
//! buffers.
//!
//! Input layout: a 0xFF byte ends a read (it is not part of the stream), so the fuzzer
//! chooses how commands are split across reads. Inline commands (`SET k v EX 10\r\n`) reach
//! the commands as easily as RESP arrays do.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::config::Config;
use strata::store::Store;
use strata_server::fuzzing::Harness;

const CONFIG: &str = r#"
max_bytes = "4MiB"

[namespaces.session]
ttl = "1m"
max_bytes = "1MiB"

[namespaces.capped]
max_entries = 100

[events."user.changed"]
params = ["id"]
keys = ["user:{id}"]
tags = ["user:{id}"]

[server]
max_bulk_len = "64KiB"
max_array_len = 1024
max_inline_len = "4KiB"
output_buffer = "256KiB"
max_client_memory = "128KiB"

[server.prefixes]
"s:*" = "session"
"c:*" = "capped"
"#;

fuzz_target!(|input: &[u8]| {
    let config = Config::from_sources(Some(CONFIG), []).expect("the harness's configuration");
    // No periodic maintenance: each input has a store of its own, dropped at its end.
    let store = Store::builder(config)
        .maintenance_interval(std::time::Duration::from_secs(3600))
        .build()
        .expect("the harness's store");
    let mut harness = Harness::new(store).expect("the harness");
    for read in input.split(|&b| b == 0xFF) {
        harness.feed(read);
        let stats = harness.store().stats();
        let budget = harness.store().max_bytes();
        assert!(
            stats.total.weighted_size <= budget,
            "the store holds {} bytes, over its budget of {budget}",
            stats.total.weighted_size
        );
        for (name, figures) in &stats.namespaces {
            let share = figures.limits.max_bytes.unwrap_or(u64::MAX);
            assert!(
                figures.stats.weighted_size <= share,
                "namespace {name} holds {} bytes, over its share of {share}",
                figures.stats.weighted_size
            );
        }
        if harness.ended().is_some() {
            break;
        }
    }
});
