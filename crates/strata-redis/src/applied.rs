//! How far the tailer has applied each partition of the log. A read of Redis also reads the
//! newest entry of the key's partition; waiting until the tailer has applied that far means
//! that no entry about a change the read already includes can be applied after it and drop
//! what was read (`strata serve` would then answer nil for a key that exists).

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::rung;

/// A stream entry's id, `<milliseconds>-<sequence>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryId(u64, u64);

impl EntryId {
    /// The id Redis wrote as `text`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

/// The last entry applied, per partition.
pub(crate) struct Applied {
    ids: Mutex<Vec<EntryId>>,
    moved: Notify,
}

impl Applied {
    pub(crate) fn new(partitions: u32) -> Self {
        Self {
            ids: Mutex::new(vec![EntryId::default(); partitions as usize]),
            moved: Notify::new(),
        }
    }

    /// The tailer is at `id` in `partition` (read and applied up to it).
    pub(crate) fn set(&self, partition: usize, id: EntryId) {
        if let Some(at) = self.ids.lock().get_mut(partition) {
            *at = id;
        }
        self.moved.notify_waiters();
    }

    /// Waits until the tailer has applied `partition` up to `id`.
    pub(crate) async fn reached(&self, partition: usize, id: EntryId) {
        rung::until(&self.moved, || {
            self.ids.lock().get(partition).is_none_or(|at| *at >= id)
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_order_as_redis_orders_them() {
        let id = |s| EntryId::parse(s).unwrap();
        assert!(id("1700000000000-0") < id("1700000000000-1"));
        assert!(id("1700000000000-9") < id("1700000000001-0"));
        assert!(id("9-0") < id("10-0"), "numbers, not text");
        assert_eq!(EntryId::parse("0-0"), Some(EntryId::default()));
        assert_eq!(EntryId::parse("nonsense"), None);
    }

    #[tokio::test]
    async fn a_reader_waits_until_the_tailer_has_applied_its_entry() {
        let applied = Applied::new(2);
        let target = EntryId::parse("5-0").unwrap();
        let mut reached = Box::pin(applied.reached(1, target));
        let short = Duration::from_millis(20);
        assert!(tokio::time::timeout(short, &mut reached).await.is_err());
        applied.set(1, EntryId::parse("4-9").unwrap());
        assert!(tokio::time::timeout(short, &mut reached).await.is_err());
        applied.set(1, EntryId::parse("5-0").unwrap());
        tokio::time::timeout(Duration::from_secs(5), reached)
            .await
            .expect("reached");
    }
}
