//! LISTEN/NOTIFY: how a node hears of changes made by the others.

use std::time::Duration;

use postgres::Client;

use super::{CHANNELS, Lane, PostgresStorage};
use crate::{StoreError, StoreEvent, StoreListener};

/// A connection of its own that waits for the store's notifications.
pub(super) struct PostgresListener {
    pub(super) storage: PostgresStorage,
    pub(super) client: Option<Client>,
}

impl StoreListener for PostgresListener {
    fn wait(&mut self, timeout: Duration) -> Result<Vec<StoreEvent>, StoreError> {
        let mut events = Vec::new();
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut conn = self.storage.connect(Lane::Write)?;
            let listen: String = CHANNELS.iter().map(|c| format!("LISTEN {c};")).collect();
            conn.client.batch_execute(&listen)?;
            self.client = Some(conn.client);
            // Anything may have changed while no one listened.
            events.push(StoreEvent::Reconnected);
        }
        let Some(client) = self.client.as_mut() else { return Ok(events) };
        let (seen, failed) = {
            use postgres::fallible_iterator::FallibleIterator as _;
            let mut notifications = client.notifications();
            let mut seen = Vec::new();
            let first = notifications.timeout_iter(timeout).next();
            let failed = match first {
                Ok(n) => {
                    seen.extend(n);
                    // Take whatever else has arrived, without waiting.
                    let mut rest = notifications.iter();
                    while let Ok(Some(n)) = rest.next() {
                        seen.push(n);
                    }
                    None
                }
                Err(e) => Some(e),
            };
            (seen, failed)
        };
        if let Some(e) = failed {
            self.client = None;
            return Err(e.into());
        }
        for n in seen {
            let event = match n.channel() {
                "prereg_registrations" => StoreEvent::Registrations,
                _ => StoreEvent::Policy,
            };
            if !events.contains(&event) {
                events.push(event);
            }
        }
        Ok(events)
    }
}
