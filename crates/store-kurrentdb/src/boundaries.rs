//! Exact `$all` positions the store has seen, to start `$all` reads from.
//!
//! KurrentDB reads `$all` only from a position where a record starts: a read from an offset
//! inside a record is refused as an invalid position. The trait's callers page with
//! `last.position + 1`, which is such an offset, so a read starts instead from the nearest
//! known event at or below it and skips what comes before the position asked for. Only
//! positions read from `$all` (reads and the head subscription) are kept: they are the
//! server's own (commit, prepare) pairs, valid to read from.
//!
//! Bounded: the newest positions are kept, as readers follow the head; a reader far behind
//! pays a search (see `read.rs`), never a wrong answer.

use std::collections::BTreeMap;
use std::sync::Mutex;

use kurrentdb::Position;

pub struct Boundaries {
    /// By prepare position, the position to read from.
    known: Mutex<BTreeMap<u64, Position>>,
    capacity: usize,
}

impl Boundaries {
    pub fn new(capacity: usize) -> Self {
        Boundaries {
            known: Mutex::new(BTreeMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Keeps `position`, an event's position as a `$all` read or subscription reported it.
    pub fn remember(&self, position: Position) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.insert(position.prepare, position);
        while known.len() > self.capacity {
            known.pop_first();
        }
    }

    /// The known event with the greatest prepare position at or below `prepare`.
    pub fn at_or_below(&self, prepare: u64) -> Option<Position> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.range(..=prepare).next_back().map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(commit: u64, prepare: u64) -> Position {
        Position { commit, prepare }
    }

    #[test]
    fn finds_the_nearest_event_at_or_below() {
        let boundaries = Boundaries::new(10);
        assert_eq!(boundaries.at_or_below(500), None);
        boundaries.remember(at(100, 100));
        boundaries.remember(at(300, 300));
        // The second event of a two-event append shares the first's commit position.
        boundaries.remember(at(300, 420));
        assert_eq!(boundaries.at_or_below(99), None);
        assert_eq!(boundaries.at_or_below(100), Some(at(100, 100)));
        assert_eq!(boundaries.at_or_below(301), Some(at(300, 300)));
        assert_eq!(boundaries.at_or_below(421), Some(at(300, 420)));
        assert_eq!(boundaries.at_or_below(u64::MAX), Some(at(300, 420)));
    }

    #[test]
    fn keeps_the_newest_within_capacity() {
        let boundaries = Boundaries::new(2);
        for p in [10, 20, 30] {
            boundaries.remember(at(p, p));
        }
        assert_eq!(boundaries.at_or_below(15), None, "the oldest is forgotten");
        assert_eq!(boundaries.at_or_below(25), Some(at(20, 20)));
        assert_eq!(boundaries.at_or_below(35), Some(at(30, 30)));
    }
}
