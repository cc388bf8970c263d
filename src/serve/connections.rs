//! The cap on open connections (SPEC §3 `serve.max_connections`), so that
//! clients that connect and send nothing (or very slowly) cannot use up the
//! process's file descriptors and lock everyone out.
//!
//! Every accepted connection takes a slot. A connection with no request in
//! flight (one that has not sent its request head yet, a keep-alive
//! connection between requests, a refused request lingering) is *idle*. At
//! the cap, a new connection closes the connection idle the longest and
//! takes its place; only when every connection is busy is the new one
//! refused (a short 503 on plain HTTP) and closed at once. So a flood of
//! half-open connections can never keep `/healthz` or a real upload out:
//! each new arrival pushes the oldest of them out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The open connections and the cap on them.
pub struct Connections {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// Orders idleness: bumped whenever a connection becomes idle.
    tick: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    in_flight: usize,
    idle_since: u64,
    close: CancellationToken,
}

/// What became of a new connection.
pub enum Admission {
    /// It has a slot (released when dropped); `evicted` is set when an idle
    /// connection was closed to make room.
    Admitted { slot: Slot, evicted: bool },
    /// Every slot is busy: refuse it.
    Full,
}

impl Connections {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            table: Mutex::default(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// How many connections hold a slot.
    pub fn open(&self) -> usize {
        self.table.lock().map(|t| t.open.len()).unwrap_or(0)
    }

    /// Give a new connection a slot, closing the connection idle the
    /// longest when at the cap.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let Ok(mut table) = self.table.lock() else {
            return Admission::Full;
        };
        let mut evicted = false;
        if table.open.len() >= self.max {
            let oldest_idle = table
                .open
                .iter()
                .filter(|(_, entry)| entry.in_flight == 0)
                .min_by_key(|(_, entry)| entry.idle_since)
                .map(|(id, _)| *id);
            let Some(id) = oldest_idle else {
                return Admission::Full;
            };
            if let Some(entry) = table.open.remove(&id) {
                entry.close.cancel();
            }
            evicted = true;
        }
        let id = table.next_id;
        table.next_id += 1;
        table.tick += 1;
        let close = CancellationToken::new();
        let idle_since = table.tick;
        table.open.insert(
            id,
            Entry {
                in_flight: 0,
                idle_since,
                close: close.clone(),
            },
        );
        Admission::Admitted {
            slot: Slot {
                id,
                connections: self.clone(),
                close,
            },
            evicted,
        }
    }

    fn request_started(&self, id: u64) {
        if let Ok(mut table) = self.table.lock() {
            if let Some(entry) = table.open.get_mut(&id) {
                entry.in_flight += 1;
            }
        }
    }

    fn request_finished(&self, id: u64) {
        if let Ok(mut table) = self.table.lock() {
            table.tick += 1;
            let tick = table.tick;
            if let Some(entry) = table.open.get_mut(&id) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                if entry.in_flight == 0 {
                    entry.idle_since = tick;
                }
            }
        }
    }
}

/// One connection's place; dropping it frees the place.
pub struct Slot {
    id: u64,
    connections: Arc<Connections>,
    close: CancellationToken,
}

impl Slot {
    /// Cancelled when the connection is closed to make room for another.
    pub fn close_token(&self) -> CancellationToken {
        self.close.clone()
    }

    /// A handle for marking requests on this connection busy.
    pub fn requests(&self) -> Requests {
        Requests {
            id: self.id,
            connections: self.connections.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut table) = self.connections.table.lock() {
            table.open.remove(&self.id);
        }
    }
}

/// Marks requests on one connection as in flight.
#[derive(Clone)]
pub struct Requests {
    id: u64,
    connections: Arc<Connections>,
}

impl Requests {
    /// The connection is busy until the returned guard is dropped.
    pub fn start(&self) -> InFlight {
        self.connections.request_started(self.id);
        InFlight {
            requests: self.clone(),
        }
    }
}

pub struct InFlight {
    requests: Requests,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.requests.connections.request_finished(self.requests.id);
    }
}

/// File descriptors kept for everything but client connections: the
/// listener, logs, upload temporary files, release scripts' pipes.
const RESERVED_FDS: u64 = 64;

/// The open-files limit after raising the soft limit to the hard one (as
/// Go's runtime does): `(soft, hard)` now, or `None` when it cannot be read.
pub fn raise_open_files_limit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    Some((limit.rlim_cur, limit.rlim_max))
}

/// The connection cap that the open-files limit `soft` leaves room for.
pub fn affordable_connections(wanted: usize, soft: u64) -> usize {
    let room = soft.saturating_sub(RESERVED_FDS).max(soft / 2).max(1);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(connections: &Arc<Connections>) -> (Slot, bool) {
        match connections.admit() {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Full => panic!("refused"),
        }
    }

    #[test]
    fn at_the_cap_the_connection_idle_longest_makes_room() {
        let connections = Connections::new(3);
        let (a, _) = admitted(&connections);
        let (b, _) = admitted(&connections);
        let (c, _) = admitted(&connections);
        // a is busy; c's request finished after b was admitted, so b has
        // been idle the longest.
        let busy_a = a.requests().start();
        let finished_c = c.requests().start();
        drop(finished_c);
        let (d, evicted) = admitted(&connections);
        assert!(evicted);
        assert!(b.close_token().is_cancelled());
        assert!(!a.close_token().is_cancelled() && !c.close_token().is_cancelled());
        assert_eq!(connections.open(), 3);
        // Now c (idle since its request) goes before d (idle since admission
        // later on).
        let (_e, _) = admitted(&connections);
        assert!(c.close_token().is_cancelled());
        assert!(!d.close_token().is_cancelled());
        drop(busy_a);
        drop(b);
        assert_eq!(connections.open(), 3);
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let connections = Connections::new(2);
        let (a, _) = admitted(&connections);
        let (b, _) = admitted(&connections);
        let _x = a.requests().start();
        let _y = b.requests().start();
        assert!(matches!(connections.admit(), Admission::Full));
        drop(a);
        assert!(matches!(
            connections.admit(),
            Admission::Admitted { evicted: false, .. }
        ));
    }

    #[test]
    fn the_cap_leaves_room_for_other_files() {
        assert_eq!(affordable_connections(1024, 1_048_576), 1024);
        assert_eq!(affordable_connections(1024, 1024), 960);
        assert_eq!(affordable_connections(1024, 64), 32);
    }
}
