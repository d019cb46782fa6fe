//! The Call aggregate (`call-{call_id}`): started → ended → analyzed.
//!
//! Retell delivers late, twice and out of order, so the state keeps each fact as it arrived
//! and the status is read from which facts are present, not from the order they came in:
//! * `ended` without `started` creates the call; a late `started` is still recorded.
//! * `analyzed` before `ended` is kept; the call reads analyzed once it has ended.
//! * a second `started`, `ended` or `analyzed` is a duplicate: no event.
//! * an `ended` with a filled appointment form also records `AppointmentRequested`; so does an
//!   `analyzed` with one (Retell's real shape puts the form in the analysis). A call records
//!   one request: the first delivery carrying a form (Retell sends it in one or the other).
//! * a booking naming the call links it (`CallLinkedToBooking`), which may be the very first
//!   event of the stream: the call still reads correctly when Retell's events arrive later.

use chrono::{DateTime, Utc};

use crate::aggregate::Aggregate;
use crate::appointment::requested_start;
use crate::command::{AnalyzeCall, CallCommand, EndCall};
use crate::event::{
    AppointmentForm, AppointmentRequested, AvailabilityChecked, CallAnalyzed, CallEnded,
    CallLinkedToBooking, CallStarted, Event,
};
use crate::rejection::Rejection;

/// Where a call is in its life, from the facts recorded so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Started,
    Ended,
    Analyzed,
}

/// A booking that names this call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkedBooking {
    /// The booking's provider time; the latest booking is the call's appointment.
    pub linked_at: DateTime<Utc>,
    pub booking_uid: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    started: Option<CallStarted>,
    ended: Option<CallEnded>,
    analyzed: Option<CallAnalyzed>,
    appointment_request: Option<AppointmentRequested>,
    /// Sorted by (occurred_at, request_id) so the state does not depend on arrival order.
    availability_checks: Vec<AvailabilityChecked>,
    /// Sorted by provider time, then uid.
    linked_bookings: Vec<LinkedBooking>,
}

impl Call {
    /// None while neither `started` nor `ended` has arrived (e.g. only a booking link).
    pub fn status(&self) -> Option<CallStatus> {
        match (&self.started, &self.ended, &self.analyzed) {
            (_, Some(_), Some(_)) => Some(CallStatus::Analyzed),
            (_, Some(_), None) => Some(CallStatus::Ended),
            (Some(_), None, _) => Some(CallStatus::Started),
            (None, None, _) => None,
        }
    }

    pub fn started(&self) -> Option<&CallStarted> {
        self.started.as_ref()
    }
    pub fn ended(&self) -> Option<&CallEnded> {
        self.ended.as_ref()
    }
    pub fn analyzed(&self) -> Option<&CallAnalyzed> {
        self.analyzed.as_ref()
    }
    pub fn appointment_request(&self) -> Option<&AppointmentRequested> {
        self.appointment_request.as_ref()
    }
    pub fn availability_checks(&self) -> &[AvailabilityChecked] {
        &self.availability_checks
    }
    pub fn linked_bookings(&self) -> &[LinkedBooking] {
        &self.linked_bookings
    }

    /// The call's appointment: the most recent booking (by provider time) that names it. The
    /// calls read model joins that booking's status.
    pub fn booking_uid(&self) -> Option<&str> {
        self.linked_bookings
            .last()
            .map(|link| link.booking_uid.as_str())
    }

    /// The caller's number: `call_ended` is the more complete report, so it wins.
    pub fn from_number(&self) -> Option<&str> {
        self.party(|parties| parties.from_number.as_deref())
    }
    pub fn to_number(&self) -> Option<&str> {
        self.party(|parties| parties.to_number.as_deref())
    }
    pub fn tenant_id(&self) -> Option<&str> {
        self.party(|parties| parties.tenant_id.as_deref())
    }
    pub fn branch_id(&self) -> Option<&str> {
        self.party(|parties| parties.branch_id.as_deref())
    }

    /// The customer's name: what the agent collected at the end of the call, else the name in
    /// the appointment form.
    pub fn customer_name(&self) -> Option<&str> {
        self.ended
            .as_ref()
            .and_then(|ended| ended.outcome.customer_name.as_deref())
            .or_else(|| {
                self.appointment_request
                    .as_ref()
                    .and_then(|request| request.form.name.as_deref())
            })
    }

    fn party<'a>(
        &'a self,
        field: impl Fn(&'a crate::event::CallParties) -> Option<&'a str>,
    ) -> Option<&'a str> {
        self.ended
            .as_ref()
            .and_then(|ended| field(&ended.parties))
            .or_else(|| {
                self.started
                    .as_ref()
                    .and_then(|started| field(&started.parties))
            })
    }

    fn decide_end(&self, command: EndCall) -> Vec<Event> {
        if self.ended.is_some() {
            return vec![];
        }
        let EndCall {
            call_id,
            occurred_at,
            parties,
            outcome,
            appointment_form,
            time_zone,
        } = command;
        let request = self.request_appointment(&call_id, occurred_at, appointment_form, time_zone);
        let ended = CallEnded {
            call_id,
            occurred_at,
            parties,
            outcome,
        };
        std::iter::once(ended.into()).chain(request).collect()
    }

    fn decide_analysis(&self, command: AnalyzeCall) -> Vec<Event> {
        if self.analyzed.is_some() {
            return vec![];
        }
        let AnalyzeCall {
            call_id,
            occurred_at,
            analysis,
            appointment_form,
            time_zone,
        } = command;
        let request = self.request_appointment(&call_id, occurred_at, appointment_form, time_zone);
        let analyzed = CallAnalyzed {
            call_id,
            occurred_at,
            analysis,
        };
        std::iter::once(analyzed.into()).chain(request).collect()
    }

    /// `AppointmentRequested` for a filled form, unless the call already has a request.
    fn request_appointment(
        &self,
        call_id: &str,
        occurred_at: DateTime<Utc>,
        form: Option<AppointmentForm>,
        time_zone: chrono_tz::Tz,
    ) -> Option<Event> {
        if self.appointment_request.is_some() {
            return None;
        }
        // An empty form (the agent opened it, the caller hung up) is no request.
        let form = form.filter(|form| *form != AppointmentForm::default())?;
        Some(
            AppointmentRequested {
                call_id: call_id.to_owned(),
                occurred_at,
                requested_start: requested_start(
                    form.date.as_deref(),
                    form.time.as_deref(),
                    time_zone,
                ),
                form,
                time_zone: time_zone.name().to_owned(),
            }
            .into(),
        )
    }
}

impl Aggregate for Call {
    type Command = CallCommand;

    fn decide(&self, command: CallCommand) -> Result<Vec<Event>, Rejection> {
        Ok(match command {
            CallCommand::StartCall(command) => {
                if self.started.is_some() {
                    vec![]
                } else {
                    vec![
                        CallStarted {
                            call_id: command.call_id,
                            occurred_at: command.occurred_at,
                            parties: command.parties,
                        }
                        .into(),
                    ]
                }
            }
            CallCommand::EndCall(command) => self.decide_end(command),
            CallCommand::AnalyzeCall(command) => self.decide_analysis(command),
            CallCommand::RecordAvailabilityCheck(command) => {
                // Without a request id every check is its own fact; with one, Retell's retry
                // of the same request is a duplicate.
                let seen = command.request_id.is_some()
                    && self
                        .availability_checks
                        .iter()
                        .any(|check| check.request_id == command.request_id);
                if seen {
                    vec![]
                } else {
                    vec![
                        AvailabilityChecked {
                            call_id: command.call_id,
                            occurred_at: command.occurred_at,
                            request_id: command.request_id,
                            function_name: command.function_name,
                            arguments: command.arguments,
                            answer: command.answer,
                        }
                        .into(),
                    ]
                }
            }
            CallCommand::LinkBooking(command) => {
                let linked = self
                    .linked_bookings
                    .iter()
                    .any(|link| link.booking_uid == command.booking_uid);
                if linked {
                    vec![]
                } else {
                    vec![
                        CallLinkedToBooking {
                            call_id: command.call_id,
                            booking_uid: command.booking_uid,
                            occurred_at: command.occurred_at,
                        }
                        .into(),
                    ]
                }
            }
        })
    }

    fn evolve(mut self, event: &Event) -> Self {
        match event {
            // First report wins: a duplicate never reaches the stream, and a stream written
            // by an older version with a repeat must still read the same.
            Event::CallStarted(started) => {
                self.started.get_or_insert_with(|| started.clone());
            }
            Event::CallEnded(ended) => {
                self.ended.get_or_insert_with(|| ended.clone());
            }
            Event::CallAnalyzed(analyzed) => {
                self.analyzed.get_or_insert_with(|| analyzed.clone());
            }
            Event::AppointmentRequested(request) => {
                self.appointment_request
                    .get_or_insert_with(|| request.clone());
            }
            Event::AvailabilityChecked(check) => {
                let key = |c: &AvailabilityChecked| (c.occurred_at, c.request_id.clone());
                let at = self
                    .availability_checks
                    .partition_point(|existing| key(existing) <= key(check));
                self.availability_checks.insert(at, check.clone());
            }
            Event::CallLinkedToBooking(link) => {
                let link = LinkedBooking {
                    linked_at: link.occurred_at,
                    booking_uid: link.booking_uid.clone(),
                };
                if let Err(at) = self.linked_bookings.binary_search(&link) {
                    self.linked_bookings.insert(at, link);
                }
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::replay;
    use crate::command::{LinkBooking, RecordAvailabilityCheck, StartCall};
    use crate::event::{AvailabilityAnswer, CallAnalysis, CallOutcome, CallParties};
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_744_700_000 + seconds, 0).unwrap()
    }

    fn parties(from: &str) -> CallParties {
        CallParties {
            from_number: Some(from.into()),
            to_number: Some("+493083793369".into()),
            ..CallParties::default()
        }
    }

    fn start() -> CallCommand {
        CallCommand::StartCall(StartCall {
            call_id: "call_1".into(),
            occurred_at: at(0),
            parties: parties("+4915100000001"),
        })
    }

    fn end(form: Option<AppointmentForm>) -> CallCommand {
        CallCommand::EndCall(EndCall {
            call_id: "call_1".into(),
            occurred_at: at(300),
            parties: parties("+4915100000002"),
            outcome: CallOutcome {
                duration_s: Some(300),
                customer_name: Some("Max Mustermann".into()),
                ..CallOutcome::default()
            },
            appointment_form: form,
            time_zone: chrono_tz::Europe::Berlin,
        })
    }

    fn analyze() -> CallCommand {
        analyze_with(None)
    }

    fn analyze_with(form: Option<AppointmentForm>) -> CallCommand {
        CallCommand::AnalyzeCall(AnalyzeCall {
            call_id: "call_1".into(),
            occurred_at: at(400),
            analysis: CallAnalysis::default(),
            appointment_form: form,
            time_zone: chrono_tz::Europe::Berlin,
        })
    }

    fn link(uid: &str, seconds: i64) -> CallCommand {
        CallCommand::LinkBooking(LinkBooking {
            call_id: "call_1".into(),
            booking_uid: uid.into(),
            occurred_at: at(seconds),
        })
    }

    /// Decides each command on the state so far and applies what it decided.
    fn run(commands: impl IntoIterator<Item = CallCommand>) -> (Call, Vec<Event>) {
        let mut all = vec![];
        let mut call = Call::default();
        for command in commands {
            let events = call.decide(command).unwrap();
            call = events.iter().fold(call, Call::evolve);
            all.extend(events);
        }
        (call, all)
    }

    fn types(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(Event::event_type).collect()
    }

    #[test]
    fn started_ended_analyzed_in_order() {
        let (call, events) = run([start(), end(None), analyze()]);
        assert_eq!(types(&events), ["CallStarted", "CallEnded", "CallAnalyzed"]);
        assert_eq!(call.status(), Some(CallStatus::Analyzed));
    }

    #[test]
    fn ended_without_started_creates_the_call() {
        let (call, events) = run([end(None)]);
        assert_eq!(types(&events), ["CallEnded"]);
        assert_eq!(call.status(), Some(CallStatus::Ended));
        assert_eq!(call.from_number(), Some("+4915100000002"));
    }

    #[test]
    fn a_late_started_is_kept_and_the_ended_report_still_wins() {
        let (call, events) = run([end(None), start()]);
        assert_eq!(types(&events), ["CallEnded", "CallStarted"]);
        assert_eq!(call.status(), Some(CallStatus::Ended));
        assert_eq!(call.from_number(), Some("+4915100000002"));
    }

    #[test]
    fn analyzed_before_ended_reads_analyzed_once_ended() {
        let (call, _) = run([start(), analyze()]);
        assert_eq!(call.status(), Some(CallStatus::Started));
        let (call, _) = run([start(), analyze(), end(None)]);
        assert_eq!(call.status(), Some(CallStatus::Analyzed));
    }

    #[test]
    fn repeats_are_duplicates() {
        let (call, _) = run([start(), end(None), analyze()]);
        for command in [start(), end(None), analyze()] {
            assert_eq!(call.decide(command), Ok(vec![]));
        }
    }

    #[test]
    fn an_ended_with_a_form_requests_an_appointment_in_the_branch_time_zone() {
        let form = AppointmentForm {
            date: Some("15.04.2025".into()),
            time: Some("14:30".into()),
            service: Some("Herrenhaarschnitt".into()),
            ..AppointmentForm::default()
        };
        let (call, events) = run([end(Some(form))]);
        assert_eq!(types(&events), ["CallEnded", "AppointmentRequested"]);
        let request = call.appointment_request().unwrap();
        assert_eq!(
            request.requested_start,
            Some(Utc.with_ymd_and_hms(2025, 4, 15, 12, 30, 0).unwrap())
        );
        assert_eq!(request.time_zone, "Europe/Berlin");
    }

    #[test]
    fn an_analysis_with_a_form_requests_an_appointment_once() {
        let form = || {
            Some(AppointmentForm {
                date: Some("20.06.2025".into()),
                time: Some("15:00".into()),
                ..AppointmentForm::default()
            })
        };
        let (call, events) = run([end(None), analyze_with(form())]);
        assert_eq!(
            types(&events),
            ["CallEnded", "CallAnalyzed", "AppointmentRequested"]
        );
        assert_eq!(
            call.appointment_request().unwrap().requested_start,
            Some(Utc.with_ymd_and_hms(2025, 6, 20, 13, 0, 0).unwrap())
        );
        let (_, events) = run([analyze_with(form()), end(form())]);
        assert_eq!(
            types(&events),
            ["CallAnalyzed", "AppointmentRequested", "CallEnded"],
            "the second form is not a second request"
        );
    }

    #[test]
    fn an_unreadable_date_is_kept_raw_without_an_instant() {
        let form = AppointmentForm {
            date: Some("nächsten Dienstag".into()),
            time: Some("14:30".into()),
            ..AppointmentForm::default()
        };
        let (call, _) = run([end(Some(form))]);
        let request = call.appointment_request().unwrap();
        assert_eq!(request.form.date.as_deref(), Some("nächsten Dienstag"));
        assert_eq!(request.requested_start, None);
    }

    #[test]
    fn an_empty_form_is_no_request() {
        let (_, events) = run([end(Some(AppointmentForm::default()))]);
        assert_eq!(types(&events), ["CallEnded"]);
    }

    #[test]
    fn a_link_may_come_first_and_the_latest_booking_is_the_appointment() {
        let (call, events) = run([link("bkg_new", 50), link("bkg_old", 10), end(None)]);
        assert_eq!(
            types(&events),
            ["CallLinkedToBooking", "CallLinkedToBooking", "CallEnded"]
        );
        assert_eq!(call.booking_uid(), Some("bkg_new"));
        assert_eq!(call.status(), Some(CallStatus::Ended));
        assert_eq!(call.decide(link("bkg_old", 10)), Ok(vec![]));
    }

    #[test]
    fn availability_checks_are_deduplicated_by_request_id() {
        let check = |request_id: Option<&str>| {
            CallCommand::RecordAvailabilityCheck(RecordAvailabilityCheck {
                call_id: "call_1".into(),
                occurred_at: at(100),
                request_id: request_id.map(Into::into),
                function_name: "check_availability".into(),
                arguments: serde_json::json!({"date": "2025-04-15"}),
                answer: AvailabilityAnswer {
                    available: false,
                    slots: vec![],
                    message: "Leider belegt".into(),
                },
            })
        };
        let (call, events) = run([
            check(Some("req_1")),
            check(Some("req_1")),
            check(None),
            check(None),
        ]);
        assert_eq!(events.len(), 3);
        assert_eq!(call.availability_checks().len(), 3);
    }

    #[test]
    fn the_state_is_the_fold_of_its_events() {
        let (call, events) = run([link("bkg_1", 500), end(None), start(), analyze()]);
        assert_eq!(replay::<Call>(&events), call);
    }
}
