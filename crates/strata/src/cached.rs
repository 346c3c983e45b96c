//! The process-wide store behind the `#[cached]` and `#[invalidates]` macros.
//!
//! A cached function keeps its values in a namespace of [`global()`], named by its
//! `namespace = "..."` argument. Every namespace a macro names is declared at link time, so
//! the global store always has it: built lazily on first use from the default configuration
//! plus those namespaces (each with the `[defaults]`), or given by the application with
//! [`set_global`] before the first cached call, which checks that the store has them all.
//!
//! A macro's cache is an ordinary namespace, reachable by name for manual invalidation:
//!
//! ```
//! use strata::cached::global;
//! use strata::store::Invalidation;
//! # let name = "default";
//! global().clear_namespace(name).unwrap();
//! global()
//!     .invalidate(&Invalidation::Prefix { namespace: Some(name.into()), prefix: "user::".into() })
//!     .unwrap();
//! ```
//!
//! Functions sharing a namespace may return different types: each value is stored with its
//! type, and a value of another type under the same key is a miss (the keys of two
//! functions should not collide, but if they do the answers stay right).

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use thiserror::Error;

use crate::config::Config;
use crate::store::Store;

static GLOBAL: OnceLock<Store> = OnceLock::new();

/// A namespace a `#[cached]` or `#[invalidates]` function names, collected at link time.
#[derive(Debug)]
pub struct Declared {
    /// The namespace.
    pub namespace: &'static str,
    /// The function, as `module::path::name`.
    pub function: &'static str,
}

inventory::collect!(Declared);

/// Every namespace the macros in this program name, each with the first function naming it.
pub fn declared() -> impl Iterator<Item = &'static Declared> {
    inventory::iter::<Declared>.into_iter()
}

/// The store the macros use: the one given to [`set_global`], or else one built on first
/// use from the default configuration (256 MiB, no TTL) plus every namespace the macros
/// name.
pub fn global() -> &'static Store {
    GLOBAL.get_or_init(|| {
        let mut config = Config::default();
        for declared in declared() {
            let defaults = config.defaults.clone();
            config
                .namespaces
                .entry(declared.namespace.to_owned())
                .or_insert(defaults);
        }
        match Store::from_config(&config) {
            Ok(store) => store,
            Err(e) => {
                // Only a program naming so many namespaces that each would get less than
                // the minimum share gets here: its cached functions run uncached.
                tracing::error!(error = %e, "the cached functions' store could not be built");
                Store::new()
            }
        }
    })
}

/// Why [`set_global`] refused a store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GlobalError {
    /// The global store was set, or used, already.
    #[error("the global store is in use already: set it before the first cached call")]
    AlreadySet,
    /// The store lacks namespaces the macros name (add them to its configuration).
    #[error("the store has no namespace {} used by {}", .0.join(", "), .1.join(", "))]
    MissingNamespaces(Vec<String>, Vec<String>),
}

/// Makes `store` the one the macros use. Call it at start-up, before the first cached call;
/// the store must have every namespace the macros name.
///
/// ```
/// use strata::config::Config;
/// use strata::store::Store;
/// let config = Config::from_sources(Some("[namespaces.user]\nttl = \"10m\""), []).unwrap();
/// let store = Store::from_config(&config).unwrap();
/// // Fails if a cached function names a namespace this store lacks, or if it is too late.
/// let _ = strata::cached::set_global(store);
/// ```
pub fn set_global(store: Store) -> Result<(), GlobalError> {
    let have: BTreeSet<&str> = store.namespace_names().collect();
    let (mut missing, mut users) = (BTreeSet::new(), BTreeSet::new());
    for declared in declared().filter(|d| !have.contains(d.namespace)) {
        missing.insert(declared.namespace.to_owned());
        users.insert(declared.function.to_owned());
    }
    if !missing.is_empty() {
        return Err(GlobalError::MissingNamespaces(
            missing.into_iter().collect(),
            users.into_iter().collect(),
        ));
    }
    GLOBAL.set(store).map_err(|_| GlobalError::AlreadySet)
}

/// A cached value of any type, with its weight (what the namespace's byte bound counts).
#[derive(Clone)]
#[doc(hidden)]
pub struct Erased {
    value: Arc<dyn Any + Send + Sync>,
    weight: usize,
}

impl crate::HeapSize for Erased {
    fn heap_size(&self) -> usize {
        self.weight
    }
}

impl Erased {
    fn new<T: Any + Send + Sync>(value: T, heap: usize) -> Self {
        // The value's own size, its heap, and the Arc's two counters.
        let weight = std::mem::size_of::<T>() + heap + 2 * std::mem::size_of::<usize>();
        Self {
            value: Arc::new(value),
            weight,
        }
    }

    fn is<T: Any>(&self) -> bool {
        self.value.is::<T>()
    }
}

/// What the macros expand to. Not a public API: it changes with the macros.
#[doc(hidden)]
pub mod __private {
    use std::convert::Infallible;
    use std::fmt::Display;
    use std::future::Future;
    use std::sync::OnceLock;
    use std::time::Duration;

    pub use inventory;

    pub use super::Declared;
    use super::{global, Erased};
    use crate::key::Key;
    use crate::store::{Invalidation, Namespace, Put};
    use crate::HeapSize;

    /// One cached function: its namespace, its TTL, and its handle, opened on first call.
    pub struct Site {
        namespace: &'static str,
        function: &'static str,
        ttl: Option<Duration>,
        handle: OnceLock<Option<Namespace<Erased>>>,
    }

    impl Site {
        pub const fn new(namespace: &'static str, function: &'static str, ttl_nanos: u64) -> Self {
            let ttl = if ttl_nanos == 0 {
                None
            } else {
                Some(Duration::from_nanos(ttl_nanos))
            };
            Self {
                namespace,
                function,
                ttl,
                handle: OnceLock::new(),
            }
        }

        /// The namespace, or `None` when the global store refuses it (it holds another
        /// type, opened by hand): then the function runs uncached, as logged once.
        fn namespace(&self) -> Option<&Namespace<Erased>> {
            self.handle
                .get_or_init(|| match global().namespace::<Erased>(self.namespace) {
                    Ok(ns) => Some(ns),
                    Err(e) => {
                        tracing::error!(
                            function = self.function,
                            error = %e,
                            "#[cached] runs uncached"
                        );
                        None
                    }
                })
                .as_ref()
        }

        fn put(&self) -> Put {
            match self.ttl {
                Some(ttl) => Put::new().ttl(ttl),
                None => Put::new(),
            }
        }
    }

    /// How a function's return type splits into what is cached and what is not.
    pub trait Mode<R> {
        /// What is stored.
        type Value: Clone + Send + Sync + 'static;
        /// What is handed back uncached.
        type Error;
        fn split(r: R) -> Result<Self::Value, Self::Error>;
        fn join(r: Result<Self::Value, Self::Error>) -> R;
        /// Heap bytes of a stored value.
        fn heap(value: &Self::Value) -> usize;
    }

    /// A function returning a plain value: every value is cached.
    pub struct Plain;
    /// A function returning a `Result`: values are cached, errors are not.
    pub struct Fallible;
    /// A function returning a `Result`, caching its errors too (`cache_errors`).
    pub struct CacheErrors;

    impl<T: Clone + HeapSize + Send + Sync + 'static> Mode<T> for Plain {
        type Value = T;
        type Error = Infallible;
        fn split(r: T) -> Result<T, Infallible> {
            Ok(r)
        }
        fn join(r: Result<T, Infallible>) -> T {
            match r {
                Ok(value) => value,
                Err(never) => match never {},
            }
        }
        fn heap(value: &T) -> usize {
            value.heap_size()
        }
    }

    impl<T: Clone + HeapSize + Send + Sync + 'static, E> Mode<Result<T, E>> for Fallible {
        type Value = T;
        type Error = E;
        fn split(r: Result<T, E>) -> Result<T, E> {
            r
        }
        fn join(r: Result<T, E>) -> Result<T, E> {
            r
        }
        fn heap(value: &T) -> usize {
            value.heap_size()
        }
    }

    impl<T, E> Mode<Result<T, E>> for CacheErrors
    where
        T: Clone + HeapSize + Send + Sync + 'static,
        E: Clone + Send + Sync + 'static,
    {
        type Value = Result<T, E>;
        type Error = Infallible;
        fn split(r: Result<T, E>) -> Result<Result<T, E>, Infallible> {
            Ok(r)
        }
        fn join(r: Result<Result<T, E>, Infallible>) -> Result<T, E> {
            match r {
                Ok(result) => result,
                Err(never) => match never {},
            }
        }
        fn heap(value: &Result<T, E>) -> usize {
            value.as_ref().map_or(0, T::heap_size)
        }
    }

    fn erase<M: Mode<R>, R>(value: M::Value) -> Erased {
        let heap = M::heap(&value);
        Erased::new(value, heap)
    }

    fn unerase<M: Mode<R>, R>(erased: Erased) -> M::Value {
        match erased.value.downcast_ref::<M::Value>() {
            Some(value) => value.clone(),
            // `load_borrowed` hands back only values that `Erased::is::<M::Value>` accepted,
            // or the one this caller's own body produced.
            None => unreachable!("a cached value of another type was handed back"),
        }
    }

    /// The body of an async `#[cached]` function.
    pub async fn cached_async<M, R, Fut>(site: &'static Site, key: String, body: Fut) -> R
    where
        M: Mode<R>,
        Fut: Future<Output = R>,
    {
        let Some(ns) = site.namespace() else {
            return body.await;
        };
        let body = async move { M::split(body.await).map(erase::<M, R>) };
        let fits = Erased::is::<M::Value>;
        let loaded = ns
            .load_borrowed(Key::from(key), site.put(), fits, body)
            .await;
        M::join(loaded.map(|loaded| unerase::<M, R>(loaded.value)))
    }

    /// The body of a synchronous `#[cached]` function.
    pub fn cached_sync<M, R>(site: &'static Site, key: String, body: impl FnOnce() -> R) -> R
    where
        M: Mode<R>,
    {
        let Some(ns) = site.namespace() else {
            return body();
        };
        let body = move || M::split(body()).map(erase::<M, R>);
        let fits = Erased::is::<M::Value>;
        let loaded = ns.load_borrowed_blocking(Key::from(key), site.put(), fits, body);
        M::join(loaded.map(|loaded| unerase::<M, R>(loaded.value)))
    }

    /// What an `#[invalidates]` function drops once it succeeded.
    pub fn invalidate(
        namespace: Option<&'static str>,
        keys: Vec<String>,
        patterns: Vec<String>,
        tags: Vec<String>,
    ) {
        let namespace = namespace.map(str::to_owned);
        let keys = keys.into_iter().map(|key| Invalidation::Key {
            namespace: namespace.clone(),
            key: Key::from(key),
        });
        let patterns = patterns.into_iter().map(|pattern| Invalidation::Pattern {
            namespace: namespace.clone(),
            pattern: Key::from(pattern),
        });
        let tags = tags.into_iter().map(|tag| Invalidation::Tag { tag });
        for invalidation in keys.chain(patterns).chain(tags) {
            // The macros declare their namespaces, so the global store has them, unless
            // the application set a store without them, which `set_global` refuses.
            if let Err(e) = global().invalidate(&invalidation) {
                tracing::error!(error = %e, "#[invalidates] could not invalidate");
            }
        }
    }

    /// `value` as text with the glob's special characters escaped, for a pattern's
    /// placeholder: the value matches itself only.
    pub fn glob_escaped(value: &dyn Display) -> String {
        let mut out = String::new();
        crate::key::glob_escape_into(&value.to_string(), &mut out);
        out
    }
}
