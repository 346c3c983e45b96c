//! The two FIFO queues a shard keeps, threaded through its slab: each entry's `next` and
//! the previous index in its link word make doubly linked lists of `u32` slab indices, so the
//! queues cost no allocation and no pointer. This file is the mechanics only (append, unlink,
//! move to main's tail, follow an entry the slab moved); which entry leaves and when is the
//! policy's business (`policy.rs`), as quick_cache keeps its linked slab apart from its shard.

use super::entry::{Entry, NIL};

/// One queue: its ends, how many entries it holds and what they weigh.
#[derive(Debug, Clone, Copy)]
pub(super) struct Queue {
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) len: usize,
    pub(super) weight: u64,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: NIL,
        tail: NIL,
        len: 0,
        weight: 0,
    };
}

/// The small queue (probation) and the main queue. Every entry of the slab is in exactly one
/// of them, as its queue flag says.
#[derive(Debug, Clone, Copy)]
pub(super) struct Queues {
    pub(super) small: Queue,
    pub(super) main: Queue,
}

impl Queues {
    pub(super) const EMPTY: Queues = Queues {
        small: Queue::EMPTY,
        main: Queue::EMPTY,
    };

    #[inline]
    fn queue_mut(&mut self, main: bool) -> &mut Queue {
        if main {
            &mut self.main
        } else {
            &mut self.small
        }
    }

    /// Appends `idx` (weighing `weight`) to a queue. Its access bits are kept; its queue flag
    /// is set to match.
    #[inline]
    pub(super) fn push_tail<K, V>(
        &mut self,
        slab: &mut [Entry<K, V>],
        idx: u32,
        main: bool,
        weight: u64,
    ) {
        let tail = self.queue_mut(main).tail;
        let entry = &mut slab[idx as usize];
        entry.set_prev(tail);
        entry.next = NIL;
        let freq = entry.freq();
        entry.set_state(freq, main);
        if tail == NIL {
            self.queue_mut(main).head = idx;
        } else {
            slab[tail as usize].next = idx;
        }
        let queue = self.queue_mut(main);
        queue.tail = idx;
        queue.len += 1;
        queue.weight += weight;
    }

    /// Takes `idx` (weighing `weight`) out of its queue; its slab slot is left as it is.
    #[inline]
    pub(super) fn unlink<K, V>(&mut self, slab: &mut [Entry<K, V>], idx: usize, weight: u64) {
        let (prev, next, main) = {
            let e = &slab[idx];
            (e.prev(), e.next, e.in_main())
        };
        if prev == NIL {
            self.queue_mut(main).head = next;
        } else {
            slab[prev as usize].next = next;
        }
        if next == NIL {
            self.queue_mut(main).tail = prev;
        } else {
            slab[next as usize].set_prev(prev);
        }
        let queue = self.queue_mut(main);
        queue.len -= 1;
        queue.weight -= weight;
    }

    /// Moves `idx` (weighing `weight`) to main's tail with `freq` access bits: a promotion, a
    /// CLOCK rotation, or an entry parked where the policy looks last.
    #[inline]
    pub(super) fn move_to_main_tail<K, V>(
        &mut self,
        slab: &mut [Entry<K, V>],
        idx: usize,
        freq: u32,
        weight: u64,
    ) {
        self.unlink(slab, idx, weight);
        slab[idx].set_state(freq, true);
        self.push_tail(slab, idx as u32, true, weight);
    }

    /// An entry's weight changed from `old` to `new` in place.
    #[inline]
    pub(super) fn reweigh(&mut self, main: bool, old: u64, new: u64) {
        let queue = self.queue_mut(main);
        queue.weight = queue.weight - old + new;
    }

    /// The entry now at slab index `to` was moved there from elsewhere in the slab: repoints
    /// its neighbours and its queue's ends at `to`.
    #[inline]
    pub(super) fn relocated<K, V>(&mut self, slab: &mut [Entry<K, V>], to: usize) {
        let (prev, next, main) = {
            let e = &slab[to];
            (e.prev(), e.next, e.in_main())
        };
        if prev == NIL {
            self.queue_mut(main).head = to as u32;
        } else {
            slab[prev as usize].next = to as u32;
        }
        if next == NIL {
            self.queue_mut(main).tail = to as u32;
        } else {
            slab[next as usize].set_prev(to as u32);
        }
    }

    /// Checks that the queues hold every slab entry exactly once, with links that agree both
    /// ways, queue flags that match, and lengths and weights that add up (`weight_of(idx)`
    /// gives each entry's weight). Panics with the broken invariant. For tests.
    pub(super) fn check<K, V>(&self, slab: &[Entry<K, V>], weight_of: impl Fn(usize) -> u64) {
        let mut seen = vec![false; slab.len()];
        for (main, queue) in [(false, &self.small), (true, &self.main)] {
            let name = if main { "main" } else { "small" };
            let (mut len, mut weight, mut prev, mut idx) = (0, 0, NIL, queue.head);
            while idx != NIL {
                let i = idx as usize;
                assert!(i < slab.len(), "{name}: index {i} past the slab");
                assert!(!seen[i], "{name}: entry {i} linked twice");
                seen[i] = true;
                let entry = &slab[i];
                assert_eq!(entry.in_main(), main, "{name}: entry {i}'s queue flag");
                assert_eq!(entry.prev(), prev, "{name}: entry {i}'s previous link");
                len += 1;
                weight += weight_of(i);
                prev = idx;
                idx = entry.next;
            }
            assert_eq!(queue.tail, prev, "{name}: tail");
            assert_eq!(queue.len, len, "{name}: length");
            assert_eq!(queue.weight, weight, "{name}: weight");
        }
        if let Some(lost) = seen.iter().position(|s| !s) {
            panic!("slab entry {lost} is in no queue");
        }
    }
}
