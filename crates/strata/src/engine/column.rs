//! A per-entry column beside a shard's slab that only some caches keep: the weights (kept by
//! weighted caches; every entry weighs 1 otherwise) and the hard deadlines (kept by
//! time-to-idle caches, where an entry's own deadline moves with reads). A cache that does not
//! keep a column pays nothing for it: every method is a no-op or answers `None`.

/// Values indexed like the slab, when `kept`.
#[derive(Debug)]
pub(super) struct Column<T> {
    kept: bool,
    values: Vec<T>,
}

impl<T: Copy> Column<T> {
    pub(super) fn new(kept: bool) -> Self {
        Self {
            kept,
            values: Vec::new(),
        }
    }

    /// The value at `idx`, or `None` when the column is not kept.
    #[inline]
    pub(super) fn get(&self, idx: usize) -> Option<T> {
        if self.kept {
            Some(self.values[idx])
        } else {
            None
        }
    }

    #[inline]
    pub(super) fn set(&mut self, idx: usize, value: T) {
        if self.kept {
            self.values[idx] = value;
        }
    }

    #[inline]
    pub(super) fn push(&mut self, value: T) {
        if self.kept {
            self.values.push(value);
        }
    }

    /// Removes `idx`, moving the last value into it (as the slab does).
    #[inline]
    pub(super) fn swap_remove(&mut self, idx: usize) {
        if self.kept {
            self.values.swap_remove(idx);
        }
    }

    /// Makes room for `capacity` values in all (the slab's new capacity).
    pub(super) fn reserve_to(&mut self, capacity: usize) {
        if self.kept {
            self.values
                .reserve_exact(capacity.saturating_sub(self.values.len()));
        }
    }

    pub(super) fn shrink_to(&mut self, capacity: usize) {
        self.values.shrink_to(capacity);
    }

    pub(super) fn clear(&mut self) {
        self.values.clear();
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<T>()
    }

    /// How many values it holds (0 when not kept), for invariant checks.
    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    pub(super) fn is_kept(&self) -> bool {
        self.kept
    }
}
