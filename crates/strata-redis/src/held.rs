//! What this instance holds for the keys of its write-through namespaces (those whose source
//! of truth is Redis, as in `strata serve`), read by the writer when it sends a key's
//! write-through: the value is taken then, not when the key changed, so however many changes
//! were queued the latest one goes, and a key dropped here since (by another instance's
//! newer write) sends nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use strata::store::Namespace;
use strata::{HeapSize, Key};

use crate::codec::Codec;

/// A key's value as this instance holds it, encoded for Redis, and what its TTL has left.
pub(crate) struct Current {
    pub(crate) payload: Vec<u8>,
    pub(crate) ttl: Option<Duration>,
}

/// One namespace's reader.
trait Holder: Send + Sync {
    fn current(&self, key: &Key) -> Option<Current>;
    /// What its TTL has left: `None` when not held, `Some(None)` when it never expires.
    fn ttl(&self, key: &Key) -> Option<Option<Duration>>;
}

/// A namespace and the codec its values go to Redis with.
struct Encoded<V, C> {
    namespace: Namespace<V>,
    codec: Arc<C>,
}

impl<V, C> Holder for Encoded<V, C>
where
    V: Clone + HeapSize + Send + Sync + 'static,
    C: Codec<V>,
{
    fn ttl(&self, key: &Key) -> Option<Option<Duration>> {
        self.namespace.ttl(key)
    }

    fn current(&self, key: &Key) -> Option<Current> {
        let ttl = self.namespace.ttl(key)?;
        let encoded = self.namespace.peek_with(key, |value| {
            let mut payload = Vec::new();
            self.codec.encode(value, &mut payload).map(|()| payload)
        })?;
        match encoded {
            Ok(payload) => Some(Current { payload, ttl }),
            Err(e) => {
                tracing::warn!(namespace = %self.namespace.name(), error = %e,
                    "a value could not be encoded for Redis; kept on this instance only");
                None
            }
        }
    }
}

/// The write-through namespaces' readers, by name.
#[derive(Default)]
pub(crate) struct Held {
    by_namespace: RwLock<HashMap<Arc<str>, Box<dyn Holder>>>,
}

impl Held {
    /// Registers `namespace`, whose values go to Redis with `codec`.
    pub(crate) fn register<V, C>(&self, namespace: Namespace<V>, codec: Arc<C>)
    where
        V: Clone + HeapSize + Send + Sync + 'static,
        C: Codec<V>,
    {
        let name = Arc::from(namespace.name());
        self.by_namespace
            .write()
            .insert(name, Box::new(Encoded { namespace, codec }));
    }

    /// When `key` of `namespace` expires here (`None`: never). A key not held (or not a
    /// write-through namespace's) is gone already: now.
    pub(crate) fn expires(&self, namespace: &str, key: &Key) -> Option<Instant> {
        let now = Instant::now();
        let held = self.by_namespace.read();
        match held.get(namespace).and_then(|holder| holder.ttl(key)) {
            None => Some(now),
            Some(ttl) => now.checked_add(ttl?),
        }
    }

    /// What this instance holds for `key` of `namespace` now.
    pub(crate) fn current(&self, namespace: &str, key: &Key) -> Option<Current> {
        self.by_namespace.read().get(namespace)?.current(key)
    }
}
