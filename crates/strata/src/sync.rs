//! The engine's locks and atomics, in one place so that the `shuttle` feature can swap in
//! shuttle's instrumented versions for deterministic concurrency tests.

#[cfg(not(feature = "shuttle"))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(feature = "shuttle")]
pub(crate) use shuttle::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A reader-writer lock whose guards come back directly (no poisoning: the engine restores
/// its invariants before any call that could unwind, so a panic elsewhere leaves it sound).
#[derive(Debug, Default)]
pub(crate) struct RwLock<T> {
    #[cfg(not(feature = "shuttle"))]
    inner: parking_lot::RwLock<T>,
    #[cfg(feature = "shuttle")]
    inner: shuttle::sync::RwLock<T>,
}

#[cfg(not(feature = "shuttle"))]
impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: parking_lot::RwLock::new(value),
        }
    }
    #[inline]
    pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, T> {
        self.inner.read()
    }
    #[inline]
    pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, T> {
        self.inner.write()
    }
    pub(crate) fn try_write(&self) -> Option<parking_lot::RwLockWriteGuard<'_, T>> {
        self.inner.try_write()
    }
}

#[cfg(feature = "shuttle")]
impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: shuttle::sync::RwLock::new(value),
        }
    }
    pub(crate) fn read(&self) -> shuttle::sync::RwLockReadGuard<'_, T> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub(crate) fn write(&self) -> shuttle::sync::RwLockWriteGuard<'_, T> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    pub(crate) fn try_write(&self) -> Option<shuttle::sync::RwLockWriteGuard<'_, T>> {
        match self.inner.try_write() {
            Ok(guard) => Some(guard),
            Err(shuttle::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(shuttle::sync::TryLockError::WouldBlock) => None,
        }
    }
}
