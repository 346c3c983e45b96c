//! Compression of values in Redis: a namespace's values whose encoding is longer than its
//! `compress_above` go as one zstd frame at level 1, marked in the envelope (`z`). Why zstd
//! and why level 1: examples/compression_bench.rs, figures in docs/benchmarks.md (on JSON,
//! zstd stores 45% less than lz4 at a cost well under a round trip; level 3 gains nothing).
//! A frame is decompressed only if it says how long it is and that fits the store's budget:
//! a value another program wrote cannot make an instance allocate without bound.

use std::cell::RefCell;
use std::collections::HashMap;

use strata::config::Config;

/// zstd's level: its fastest, which compresses JSON almost as well as 3.
const LEVEL: i32 = 1;

thread_local! {
    /// A compression context per thread: making one per value costs more than compressing a
    /// small value.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Which namespaces compress, from what length, and the most a value may decompress to.
#[derive(Debug, Default)]
pub(crate) struct Packing {
    above: HashMap<String, u64>,
    max_unpacked: u64,
}

impl Packing {
    pub(crate) fn from_config(config: &Config) -> Self {
        let above = config
            .namespace_names()
            .into_iter()
            .filter_map(|name| {
                let above = config.namespace(&name).compress_above?;
                Some((name, above))
            })
            .collect();
        Self {
            above,
            max_unpacked: config.max_bytes,
        }
    }

    /// `payload` of `namespace` as it goes to Redis: compressed (`true`) when it is longer
    /// than the namespace's threshold and compressing makes it shorter.
    pub(crate) fn pack(&self, namespace: &str, payload: Vec<u8>) -> (bool, Vec<u8>) {
        let Some(&above) = self.above.get(namespace) else {
            return (false, payload);
        };
        if payload.len() as u64 <= above {
            return (false, payload);
        }
        let packed = COMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = zstd::bulk::Compressor::new(LEVEL).ok();
            }
            cell.as_mut()?.compress(&payload).ok()
        });
        match packed {
            Some(packed) if packed.len() < payload.len() => (true, packed),
            _ => (false, payload),
        }
    }

    /// A value's payload as its codec wrote it.
    pub(crate) fn unpack(&self, compressed: bool, payload: &[u8]) -> Result<Vec<u8>, String> {
        if !compressed {
            return Ok(payload.to_vec());
        }
        let len = match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(len)) => len,
            _ => return Err("a compressed value that does not say its length".into()),
        };
        if len > self.max_unpacked {
            return Err(format!(
                "a compressed value of {len} bytes, more than the store's max_bytes"
            ));
        }
        zstd::bulk::decompress(payload, len as usize).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packing(above: u64) -> Packing {
        let toml = format!("max_bytes = \"64MiB\"\n[namespaces.big]\ncompress_above = {above}\n");
        Packing::from_config(&Config::from_sources(Some(&toml), []).unwrap())
    }

    #[test]
    fn only_values_past_the_threshold_are_compressed_and_they_read_back() {
        let packing = packing(100);
        let json = br#"{"status":"succeeded","currency":"EUR"}"#.repeat(20);
        let (compressed, packed) = packing.pack("big", json.clone());
        assert!(compressed && packed.len() < json.len() / 4);
        assert_eq!(packing.unpack(true, &packed).unwrap(), json);
        assert_eq!(
            packing.pack("big", b"short".to_vec()),
            (false, b"short".to_vec())
        );
        assert_eq!(packing.pack("default", json.clone()), (false, json.clone()));
        // Noise does not shrink: kept as it is.
        let noise: Vec<u8> = (0..1000u32)
            .flat_map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()).to_le_bytes())
            .collect();
        assert!(!packing.pack("big", noise).0);
    }

    #[test]
    fn a_frame_that_would_pass_the_budget_or_is_not_zstd_is_refused() {
        let packing = packing(1);
        let huge = zstd::bulk::compress(&vec![0u8; 65 << 20], 1).unwrap();
        assert!(packing
            .unpack(true, &huge)
            .unwrap_err()
            .contains("max_bytes"));
        assert!(packing.unpack(true, b"not a frame").is_err());
    }
}
