//! A client's replies not yet written: a buffer the commands write into, and the large parts
//! already sealed off it.
//!
//! One contiguous buffer grows by doubling: appending a 7 MiB value to a reply of 60 MiB
//! would allocate 128 MiB and copy the 60 into it, holding both for a moment, so a reply
//! costs up to three times its size at its peak, and the step happens between two checks of
//! the memory bound. Instead, when a large element does not fit and the buffer already holds
//! [`SEAL_AT`] bytes or more, the buffer's contents are split off as they are (no copy) and
//! queued, and the element starts a buffer of its own, sized for it. A reply of many large
//! values is then a queue of parts each about one value long, and the memory it holds is
//! what it says.
//!
//! Before each large element is written, [`Output::room_for`] makes its room and reports the
//! client's memory with it to the bound on all clients' buffers, so the bound is checked
//! before the memory is touched, not after. It also refuses an element that would take the
//! reply past `output_buffer`. A refused reply is abandoned: the command stops writing and
//! the connection closes without sending it.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client_memory::ClientAccount;

/// A buffer holding at least this much is sealed off rather than grown for a large element.
pub(crate) const SEAL_AT: usize = 64 << 10;

/// Why a reply was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abandoned {
    /// It would have passed `output_buffer`.
    OutputLimit,
    /// The client was chosen to be closed to keep all clients' buffers within
    /// `max_client_memory`.
    Evicted,
}

/// Replies waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Parts split off `buf`, oldest first.
    sealed: Vec<Bytes>,
    /// Their total length.
    sealed_len: usize,
    /// Where replies are written.
    pub(crate) buf: BytesMut,
    /// Set when an element was refused: what was built must not be sent.
    abandoned: Option<Abandoned>,
}

impl Output {
    /// Bytes waiting to be written.
    pub(crate) fn len(&self) -> usize {
        self.sealed_len + self.buf.len()
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The memory held: the sealed parts and the buffer's whole capacity.
    pub(crate) fn memory(&self) -> usize {
        self.sealed_len + self.buf.capacity()
    }

    /// Why the reply being built was abandoned, if it was.
    pub(crate) fn abandoned(&self) -> Option<Abandoned> {
        self.abandoned
    }

    /// Makes room for an element of `n` bytes and reports the client's memory with it (`held`
    /// besides the replies) to `account`. `false` when the element would take the replies
    /// past `limit` bytes, or the client was chosen to be closed: the reply is then abandoned.
    pub(crate) fn room_for(
        &mut self,
        n: usize,
        limit: usize,
        held: usize,
        account: &ClientAccount,
    ) -> bool {
        if self.abandoned.is_some() {
            return false;
        }
        if self.len().saturating_add(n) > limit {
            self.abandoned = Some(Abandoned::OutputLimit);
            return false;
        }
        if self.buf.capacity() - self.buf.len() < n {
            if self.buf.len() >= SEAL_AT {
                let part = self.buf.split().freeze();
                self.sealed_len += part.len();
                self.sealed.push(part);
            }
            self.buf.reserve(n);
        }
        if account.report(held + self.memory()).is_err() {
            self.abandoned = Some(Abandoned::Evicted);
            return false;
        }
        true
    }

    /// Writes everything out, in order, and empties the buffer (keeping its capacity).
    pub(crate) async fn write_to(
        &mut self,
        stream: &mut (impl AsyncWrite + Unpin),
    ) -> std::io::Result<()> {
        for part in &self.sealed {
            stream.write_all(part).await?;
        }
        self.sealed.clear();
        self.sealed_len = 0;
        stream.write_all(&self.buf).await?;
        self.buf.clear();
        Ok(())
    }

    /// Drops the buffer if its capacity is more than `most`.
    pub(crate) fn shrink_to(&mut self, most: usize) {
        if self.buf.capacity() > most {
            self.buf = BytesMut::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::client_memory::ClientMemory;

    #[test]
    fn a_large_element_gets_a_part_of_its_own_instead_of_doubling_the_buffer() {
        let memory = Arc::new(ClientMemory::new(u64::MAX));
        let account = memory.register(1);
        let mut out = Output::default();
        let value = vec![b'v'; 1 << 20];
        for _ in 0..10 {
            assert!(out.room_for(value.len(), usize::MAX, 0, &account));
            out.buf.extend_from_slice(&value);
        }
        assert_eq!(out.len(), 10 << 20);
        // Nine parts sealed off and the last value in the buffer, each about its own size:
        // no buffer was doubled (one would hold 16 MiB for these 10).
        assert_eq!(out.sealed.len(), 9);
        assert!(out.memory() < (10 << 20) + SEAL_AT, "{}", out.memory());
        assert_eq!(memory.total() as usize, out.memory());
    }

    #[test]
    fn an_element_past_the_limit_abandons_the_reply() {
        let memory = Arc::new(ClientMemory::new(u64::MAX));
        let account = memory.register(1);
        let mut out = Output::default();
        assert!(out.room_for(100, 150, 0, &account));
        out.buf.extend_from_slice(&[0; 100]);
        assert!(!out.room_for(51, 150, 0, &account));
        assert_eq!(out.abandoned(), Some(Abandoned::OutputLimit));
        assert!(!out.room_for(1, 150, 0, &account), "stays abandoned");
    }

    #[test]
    fn an_element_that_passes_the_bound_on_all_clients_abandons_the_biggest_reply() {
        let memory = Arc::new(ClientMemory::new(1000));
        let account = memory.register(1);
        let mut out = Output::default();
        assert!(out.room_for(600, usize::MAX, 0, &account));
        out.buf.extend_from_slice(&[0; 600]);
        // Room for 600 more takes it past 1000 before anything is written.
        assert!(!out.room_for(600, usize::MAX, 0, &account));
        assert_eq!(out.abandoned(), Some(Abandoned::Evicted));
        assert!(account.is_evicted());
        assert_eq!(memory.evicted(), 1);
    }
}
