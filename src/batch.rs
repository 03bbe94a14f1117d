//! A batch of one stream's messages on its way from the connection to the stream's recorder
//! thread, on a time the shell passes in. Handing over every frame on its own woke the recorder
//! thread ~80 times a second per stream, which cost more CPU than the writing; so messages wait
//! until the batch holds `max_bytes`, or until its oldest message has waited `max_age`, which the
//! shell learns from [`Batch::poll_timeout`] and sleeps until. Waking then, and not only when the
//! next message arrives, is what lets a publisher's pause never hold frames back: the keyframe
//! that ends a chunk reaches the recorder within `max_age` even if nothing follows it.
//!
//! Time is whatever monotonic count the shell keeps (the connection's: time since accept).

use std::time::Duration;

#[derive(Debug)]
pub struct Batch<T> {
    items: Vec<T>,
    bytes: usize,
    /// When the oldest message waiting arrived; meaningless while `items` is empty.
    oldest: Duration,
    max_bytes: usize,
    max_age: Duration,
}

impl<T> Batch<T> {
    pub fn new(max_bytes: usize, max_age: Duration) -> Batch<T> {
        Batch {
            items: Vec::new(),
            bytes: 0,
            oldest: Duration::ZERO,
            max_bytes,
            max_age,
        }
    }

    /// Adds a message of `bytes` payload bytes that arrived at `now`; returns the whole batch
    /// when it is full and must be handed over now.
    pub fn push(&mut self, now: Duration, item: T, bytes: usize) -> Option<Vec<T>> {
        if self.items.is_empty() {
            self.oldest = now;
        }
        self.items.push(item);
        self.bytes = self.bytes.saturating_add(bytes);
        (self.bytes >= self.max_bytes).then(|| self.take())
    }

    /// When the batch must be handed over although it is not full; `None` while it is empty.
    pub fn poll_timeout(&self) -> Option<Duration> {
        (!self.items.is_empty()).then(|| self.oldest.saturating_add(self.max_age))
    }

    /// The batch, once its oldest message has waited `max_age` by `now`.
    pub fn handle_timeout(&mut self, now: Duration) -> Option<Vec<T>> {
        self.poll_timeout()
            .is_some_and(|due| now >= due)
            .then(|| self.take())
    }

    /// Everything waiting, whatever its age (the stream ends, or the shell hands over early).
    pub fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn empty_batch_never_wakes_anyone() {
        let mut b: Batch<u8> = Batch::new(10, AGE);
        assert_eq!(b.poll_timeout(), None);
        assert_eq!(b.handle_timeout(ms(1_000_000)), None);
    }

    #[test]
    fn a_lone_message_is_due_max_age_after_it_arrived_with_nothing_after_it() {
        let mut b = Batch::new(1000, AGE);
        assert_eq!(b.push(ms(50), 'a', 10), None);
        assert_eq!(b.push(ms(120), 'b', 10), None);
        // Due by the oldest message, not the newest.
        assert_eq!(b.poll_timeout(), Some(ms(150)));
        assert_eq!(b.handle_timeout(ms(149)), None);
        assert_eq!(b.handle_timeout(ms(150)), Some(vec!['a', 'b']));
        assert_eq!(b.poll_timeout(), None);
        // The next batch ages from its own first message.
        b.push(ms(400), 'c', 10);
        assert_eq!(b.poll_timeout(), Some(ms(500)));
    }

    #[test]
    fn a_full_batch_goes_at_once_and_the_count_starts_again() {
        let cases: [(&[usize], &[Option<usize>]); 3] = [
            // (bytes of each message, size of the batch each push hands over)
            (&[100, 100, 56], &[None, None, Some(3)]),
            (&[300], &[Some(1)]),
            (&[255, 1, 255, 1], &[None, Some(2), None, Some(2)]),
        ];
        for (sizes, want) in cases {
            let mut b = Batch::new(256, AGE);
            let got: Vec<Option<usize>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| b.push(ms(i as u64), i, n).map(|v| v.len()))
                .collect();
            assert_eq!(got, want, "sizes {sizes:?}");
            assert_eq!(b.poll_timeout(), None, "sizes {sizes:?}: nothing left");
        }
    }

    #[test]
    fn take_empties_whatever_its_age() {
        let mut b = Batch::new(1000, AGE);
        b.push(ms(0), 1, 999);
        assert_eq!(b.take(), vec![1]);
        assert_eq!(b.push(ms(1), 2, 1), None, "the byte count started again");
        assert_eq!(b.take(), vec![2]);
    }
}
