//! What an entry weighs.
//!
//! A cache bounded by weight asks a weigher for every entry it admits and keeps the sum under
//! the bound. [`CacheBuilder::max_bytes`](crate::CacheBuilder::max_bytes) uses the
//! [`DefaultWeigher`]: the heap bytes of key and value (through [`HeapSize`]) plus what the
//! engine itself spends on the entry, so a bound of 100 MiB is close to 100 MiB of memory.
//! [`CacheBuilder::weigher`](crate::CacheBuilder::weigher) takes any function instead.
//!
//! The weigher runs before the cache takes any lock, once per insert; its answer is stored with
//! the entry, so a weigher whose answer changes over time cannot skew the accounting, and one
//! that panics only fails that insert ([`InsertError::WeigherPanicked`](crate::InsertError)).

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

/// Says what an entry weighs, in whatever unit the bound is in.
pub trait Weigher<K, V>: Send + Sync + 'static {
    /// The weight of one entry. Saturate rather than overflow: a weight above the cache's
    /// per-shard limit is refused with [`InsertError::TooLarge`](crate::InsertError).
    fn weigh(&self, key: &K, value: &V) -> u64;
}

impl<K, V, F> Weigher<K, V> for F
where
    F: Fn(&K, &V) -> u64 + Send + Sync + 'static,
{
    fn weigh(&self, key: &K, value: &V) -> u64 {
        self(key, value)
    }
}

/// Bytes a value owns on the heap, beyond its own `size_of`.
///
/// Implemented for the common key and value types; implement it for your own to use
/// [`CacheBuilder::max_bytes`](crate::CacheBuilder::max_bytes).
///
/// ```
/// use strata::HeapSize;
/// struct Profile { name: String, avatar: Vec<u8> }
/// impl HeapSize for Profile {
///     fn heap_size(&self) -> usize { self.name.heap_size() + self.avatar.heap_size() }
/// }
/// ```
pub trait HeapSize {
    /// Heap bytes owned by `self` (not counting `size_of::<Self>()`).
    fn heap_size(&self) -> usize;

    /// True when no value of the type owns heap memory, so that a collection of them is
    /// weighed by its length alone instead of element by element.
    const OWNS_NO_HEAP: bool = false;
}

macro_rules! no_heap {
    ($($t:ty),*) => { $(impl HeapSize for $t {
        #[inline]
        fn heap_size(&self) -> usize { 0 }
        const OWNS_NO_HEAP: bool = true;
    })* };
}
no_heap!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    (),
    &'static str,
    &'static [u8]
);

impl HeapSize for String {
    fn heap_size(&self) -> usize {
        self.capacity()
    }
}

/// An unsized value's own bytes are not its heap: whatever points to it (`Box<str>`,
/// `Arc<str>`) counts them, as it counts any pointee's size.
impl HeapSize for str {
    fn heap_size(&self) -> usize {
        0
    }
}

/// Heap owned by the elements themselves (nothing for `Vec<u8>` and the like, without a walk).
fn elements_heap<T: HeapSize>(items: &[T]) -> usize {
    if T::OWNS_NO_HEAP {
        0
    } else {
        items.iter().map(T::heap_size).sum()
    }
}

impl<T: HeapSize> HeapSize for Vec<T> {
    fn heap_size(&self) -> usize {
        self.capacity() * std::mem::size_of::<T>() + elements_heap(self)
    }
}

/// The elements' own heap; the slice's bytes are counted by what points to it.
impl<T: HeapSize> HeapSize for [T] {
    fn heap_size(&self) -> usize {
        elements_heap(self)
    }
}

impl<T: HeapSize + ?Sized> HeapSize for Box<T> {
    fn heap_size(&self) -> usize {
        std::mem::size_of_val::<T>(self) + T::heap_size(self)
    }
}

/// Shared pointers count the whole pointee: the cache may be what keeps it alive.
impl<T: HeapSize + ?Sized> HeapSize for Arc<T> {
    fn heap_size(&self) -> usize {
        2 * std::mem::size_of::<usize>() + std::mem::size_of_val::<T>(self) + T::heap_size(self)
    }
}

impl<T: HeapSize + ?Sized> HeapSize for Rc<T> {
    fn heap_size(&self) -> usize {
        2 * std::mem::size_of::<usize>() + std::mem::size_of_val::<T>(self) + T::heap_size(self)
    }
}

impl<T: HeapSize> HeapSize for Option<T> {
    fn heap_size(&self) -> usize {
        self.as_ref().map_or(0, T::heap_size)
    }
}

impl<T: HeapSize + ToOwned + ?Sized> HeapSize for Cow<'_, T>
where
    T::Owned: HeapSize,
{
    fn heap_size(&self) -> usize {
        match self {
            Cow::Borrowed(_) => 0,
            Cow::Owned(owned) => owned.heap_size(),
        }
    }
}

/// `Bytes` counts its visible length: the buffer may be shared, and the slice is what the
/// cache keeps alive for certain.
impl HeapSize for bytes::Bytes {
    fn heap_size(&self) -> usize {
        self.len()
    }
}

impl<A: HeapSize, B: HeapSize> HeapSize for (A, B) {
    fn heap_size(&self) -> usize {
        self.0.heap_size() + self.1.heap_size()
    }
}

impl<A: HeapSize, B: HeapSize, C: HeapSize> HeapSize for (A, B, C) {
    fn heap_size(&self) -> usize {
        self.0.heap_size() + self.1.heap_size() + self.2.heap_size()
    }
}

/// Weighs an entry as the bytes it costs: key and value in the entry and on the heap, plus the
/// engine's own bookkeeping for one entry (its slot, hash-table bucket and frequency counters).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultWeigher;

impl<K: HeapSize + 'static, V: HeapSize + 'static> Weigher<K, V> for DefaultWeigher {
    fn weigh(&self, key: &K, value: &V) -> u64 {
        let bytes = crate::engine::entry_overhead::<K, V>()
            .saturating_add(key.heap_size())
            .saturating_add(value.heap_size());
        bytes as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_sizes_of_common_types() {
        assert_eq!(7u64.heap_size(), 0);
        assert_eq!(String::with_capacity(40).heap_size(), 40);
        assert_eq!(vec![0u8; 100].heap_size(), 100);
        assert_eq!(vec![String::from("abc")].heap_size(), 24 + 3);
        assert_eq!(bytes::Bytes::from(vec![1u8; 33]).heap_size(), 33);
        assert_eq!(Some(String::from("ab")).heap_size(), 2);
        // Pointers to unsized values count the pointee once.
        assert_eq!(Box::<[u8]>::from(&[0u8; 64][..]).heap_size(), 64);
        assert_eq!(Box::<str>::from("abcd").heap_size(), 4);
        assert_eq!(
            Box::<[String]>::from(vec![String::from("abc")]).heap_size(),
            24 + 3
        );
        assert_eq!(std::sync::Arc::<str>::from("abcd").heap_size(), 16 + 4);
    }

    #[test]
    fn default_weigher_counts_overhead_and_heap() {
        let w = <DefaultWeigher as Weigher<String, Vec<u8>>>::weigh(
            &DefaultWeigher,
            &String::from("key"),
            &vec![0u8; 1000],
        );
        assert!(w >= 1003 + std::mem::size_of::<(String, Vec<u8>)>() as u64);
    }
}
