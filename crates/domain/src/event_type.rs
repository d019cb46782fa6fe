//! The EventType aggregate (`event-type-{id}`): a Cal.com bookable service. Created once; a
//! repeated `event_type.created` is a duplicate.

use crate::aggregate::Aggregate;
use crate::command::EventTypeCommand;
use crate::event::{Event, EventTypeCreated};
use crate::rejection::Rejection;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventType {
    created: Option<EventTypeCreated>,
}

impl EventType {
    pub fn created(&self) -> Option<&EventTypeCreated> {
        self.created.as_ref()
    }
}

impl Aggregate for EventType {
    type Command = EventTypeCommand;

    fn decide(&self, command: EventTypeCommand) -> Result<Vec<Event>, Rejection> {
        let EventTypeCommand::CreateEventType(command) = command;
        if self.created.is_some() {
            return Ok(vec![]);
        }
        Ok(vec![
            EventTypeCreated {
                event_type_id: command.event_type_id,
                occurred_at: command.occurred_at,
                details: command.details,
            }
            .into(),
        ])
    }

    fn evolve(mut self, event: &Event) -> Self {
        if let Event::EventTypeCreated(created) = event {
            self.created.get_or_insert_with(|| created.clone());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CreateEventType;
    use crate::event::EventTypeDetails;
    use chrono::{TimeZone, Utc};

    #[test]
    fn created_once_then_duplicate() {
        let command = || {
            EventTypeCommand::CreateEventType(CreateEventType {
                event_type_id: 7891,
                occurred_at: Utc.timestamp_opt(0, 0).unwrap(),
                details: EventTypeDetails {
                    title: Some("Premium Haarstyling".into()),
                    slug: None,
                    description: None,
                    duration_min: Some(60),
                    hidden: None,
                    price: Some(65.0),
                    currency: Some("EUR".into()),
                    user_id: Some(12345),
                    team_id: None,
                    locations: vec![],
                },
            })
        };
        let events = EventType::default().decide(command()).unwrap();
        assert_eq!(events.len(), 1);
        let state = events.iter().fold(EventType::default(), EventType::evolve);
        assert_eq!(state.created().unwrap().details.duration_min, Some(60));
        assert_eq!(state.decide(command()), Ok(vec![]));
    }
}
